package remotewal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// pipeSession is a Session whose other end is Serve in this process (no ssh).
func pipeSession(t *testing.T, store storage.Store) *Session {
	t.Helper()
	reqR, reqW := io.Pipe()
	ansR, ansW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Serve(context.Background(), store, "pg1", reqR, ansW)
		ansW.CloseWithError(err)
		done <- err
	}()
	s := &Session{remote: Remote{SSH: []string{"test"}}, stdin: reqW, r: bufioReader(ansR), waiting: make(chan pending, 256)}
	t.Cleanup(func() {
		reqW.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// TestSession: segments archived with each codec come back decompressed and exact over
// one session, with many requests in flight from several goroutines; a missing one is
// storage.ErrNotFound and the session goes on; the segment size comes from the identity.
func TestSession(t *testing.T) {
	ctx := context.Background()
	store := storage.NewLocal(t.TempDir())
	const segSize = 1 << 20
	if err := archive.SaveIdentity(ctx, store, "pg1", record.Identity{SystemID: 7, SegSize: segSize, Magic: 0xD110}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i := 1; i <= 12; i++ {
		name := segments.SegmentFileName(1, uint64(i), segSize)
		data := bytes.Repeat([]byte(fmt.Sprintf("segment %d ", i)), segSize/8)[:segSize]
		codec := compress.Codecs[i%len(compress.Codecs)]
		enc, err := compress.EncodeAll(codec, 0, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, archive.WALKey("pg1", name, codec), bytes.NewReader(enc)); err != nil {
			t.Fatal(err)
		}
		want[name] = data
	}
	s := pipeSession(t, store)
	if n, err := s.SegSize(ctx); err != nil || n != segSize {
		t.Fatalf("SegSize = %d, %v", n, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 0, segSize)
			for i := 1 + w; i <= 12; i += 4 {
				name := segments.SegmentFileName(1, uint64(i), segSize)
				got, err := s.Fetch(ctx, name, buf)
				if err != nil || !bytes.Equal(got, want[name]) {
					errs <- fmt.Errorf("%s: %d bytes, %v", name, len(got), err)
				}
			}
			missing := segments.SegmentFileName(1, uint64(100+w), segSize)
			if _, err := s.Fetch(ctx, missing, buf); !errors.Is(err, storage.ErrNotFound) {
				errs <- fmt.Errorf("missing %s: %v, want ErrNotFound", missing, err)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A name that is no WAL file is answered with an error, not a key lookup.
	if _, err := s.Fetch(ctx, "../identity", nil); err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "backup host") {
		t.Fatalf("Fetch of a path: %v", err)
	}
	if got, err := s.Fetch(ctx, segments.SegmentFileName(1, 1, segSize), nil); err != nil || !bytes.Equal(got, want[segments.SegmentFileName(1, 1, segSize)]) {
		t.Fatalf("the session did not go on after an error answer: %v", err)
	}
}

// TestSessionBroken: a stream that ends in the middle of an answer is ErrConnection
// for that request and every later one, never a short segment.
func TestSessionBroken(t *testing.T) {
	reqR, reqW := io.Pipe()
	go func() { _, _ = io.Copy(io.Discard, reqR) }()
	ans := strings.NewReader("ok none 1000\n" + strings.Repeat("x", 400))
	s := &Session{remote: Remote{SSH: []string{"test"}}, stdin: reqW, r: bufioReader(ans), waiting: make(chan pending, 4)}
	for i := 0; i < 2; i++ {
		got, err := s.Fetch(context.Background(), "000000010000000000000001", nil)
		if !errors.Is(err, ErrConnection) || got != nil {
			t.Fatalf("fetch %d over a cut stream: %d bytes, %v; want ErrConnection", i, len(got), err)
		}
	}
}

// TestServeBound: an answer claiming more than any archived object can be is refused
// before anything is allocated.
func TestServeBound(t *testing.T) {
	reqR, reqW := io.Pipe()
	go func() { _, _ = io.Copy(io.Discard, reqR) }()
	ans := strings.NewReader(fmt.Sprintf("ok none %d\n", int64(maxObject)+1))
	s := &Session{remote: Remote{SSH: []string{"test"}}, stdin: reqW, r: bufioReader(ans), waiting: make(chan pending, 4)}
	if _, err := s.Fetch(context.Background(), "000000010000000000000001", nil); !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "bad answer") {
		t.Fatalf("oversized answer: %v", err)
	}
}

// TestJudge: ssh's 255 is a connection failure; any other status is the remote
// walkeeper's, with its last stderr line as the message.
func TestJudge(t *testing.T) {
	r := Remote{SSH: []string{"ssh", "backup"}}
	run := func(script string) error {
		var stderr bytes.Buffer
		cmd := r.command(context.Background())
		cmd.Path, cmd.Args = "/bin/sh", []string{"sh", "-c", script}
		cmd.Stderr = &stderr
		return r.judge(cmd.Run(), &stderr)
	}
	if err := run("echo 'ssh: connect to host backup port 22: Connection refused' >&2; exit 255"); !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("255: %v", err)
	}
	var ee *ExitError
	if err := run("echo 'warning: x' >&2; echo 'walkeeper: pg1: 00000001 is not in the archive' >&2; exit 1"); !errors.As(err, &ee) || ee.Code != 1 || ee.Msg != "pg1: 00000001 is not in the archive" {
		t.Errorf("exit 1: %v", err)
	}
	if err := run("kill -9 $$"); !errors.Is(err, ErrConnection) {
		t.Errorf("ssh killed: %v, want ErrConnection", err)
	}
	if err := run("exit 0"); err != nil {
		t.Errorf("exit 0: %v", err)
	}
}
