package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// TestDropExactCopy: a source whose content is not the size stat gave (here a /proc
// file, which stats as 0 bytes and reads as more) is never renamed into incoming/.
func TestDropExactCopy(t *testing.T) {
	incoming := t.TempDir()
	if _, err := Drop(incoming, "/proc/self/status"); !errors.Is(err, fsutil.ErrShortCopy) {
		t.Fatalf("Drop of a file that changed while copied: %v, want ErrShortCopy", err)
	}
	if es, _ := os.ReadDir(incoming); len(es) != 0 {
		t.Fatalf("incoming/ holds %v after a refused drop", es)
	}
}

func TestTempTargetRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, base := range []string{"00000002.history", "000000010000000000000001", "a-b"} {
		tmp := filepath.Base(tempNameFor(dir, base))
		if got := tempTarget(tmp); got != base {
			t.Errorf("TempTarget(%q) = %q, want %q", tmp, got, base)
		}
	}
	for _, s := range []string{"00000002.history", ".wk-tmp-x", ".wk-tmp-x-12345", ".wk-tmp--0123456789ab", ".wk-tmp-x-0123456789aZ"} {
		if got := tempTarget(s); got != "" {
			t.Errorf("TempTarget(%q) = %q, want none", s, got)
		}
	}
}

func tempNameFor(dir, base string) string { return fsutil.TempName(dir, base) }
func tempTarget(s string) string          { return fsutil.TempTarget(s) }

// TestDroppedHistoryNeedsNoQuietPeriod: a history file archive-wal published (temp name
// and rename) is ingested at once, with no quiet period: with a quiet period of an hour,
// only the rename tells the watcher it is final. A file written in place still waits.
func TestDroppedHistoryNeedsNoQuietPeriod(t *testing.T) {
	f := newFixture(t, "zstd")
	f.srv.QuietPeriod = time.Hour
	trustCtime = false
	defer func() { trustCtime = true }()
	p, err := NewPipeline(f.srv, f.store, f.idx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan Result, 16)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func(r Result) { results <- r }) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond) // the watch is set up before Run's first scan returns
	// Written in place (not through a temp name): must wait for the quiet period.
	inPlace := filepath.Join(f.srv.IncomingDir, "00000003.history")
	if err := os.WriteFile(inPlace, []byte("1\t0/3000000\tno recovery target specified\n\n2\t0/4000000\tx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.drop(t, "00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	select {
	case r := <-results:
		if r.Name != "00000002.history" || r.Outcome != Archived {
			t.Fatalf("first result %+v, want 00000002.history archived", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a dropped history file waited for the quiet period")
	}
	if _, err := os.Stat(inPlace); err != nil {
		t.Fatalf("the file written in place did not wait: %v", err)
	}
}

// TestHandOverNeverReplaces: the receiver's hand-over from streaming/ follows Drop's
// rule: same content already waiting is success, other content waits beside it.
func TestHandOverNeverReplaces(t *testing.T) {
	home := t.TempDir()
	incoming, streaming := filepath.Join(home, "incoming"), filepath.Join(home, "streaming")
	for _, d := range []string{incoming, streaming} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	name := "000000010000000000000001.partial"
	put := func(data string) string {
		p := filepath.Join(streaming, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := DropData(incoming, name, []byte("archived by archive_command")); err != nil {
		t.Fatal(err)
	}
	if err := HandOver(incoming, name, put("archived by archive_command")); err != nil {
		t.Fatal(err)
	}
	if err := HandOver(incoming, name, put("streamed, other bytes")); err != nil {
		t.Fatal(err)
	}
	c := archive.Copies(incoming, name)
	if len(c) != 2 {
		t.Fatalf("incoming copies %v, want the first and the differing one", c)
	}
	first, _ := os.ReadFile(filepath.Join(incoming, c[0]))
	second, _ := os.ReadFile(filepath.Join(incoming, c[1]))
	if string(first) != "archived by archive_command" || string(second) != "streamed, other bytes" {
		t.Fatalf("copies %q, %q", first, second)
	}
	if _, err := os.Stat(filepath.Join(streaming, name)); !os.IsNotExist(err) {
		t.Fatalf("streaming/ still holds the handed-over file: %v", err)
	}
}

// TestSameContentByBlocks: equal files of several blocks are equal, one byte changed
// at the very end, or a missing file or another size, are not.
func TestSameContentByBlocks(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<16+7) // 3 MiB and a bit: several blocks
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(a, data, 0o600))
	must(os.WriteFile(b, data, 0o600))
	if !sameContent(a, b) {
		t.Fatal("equal files compared different")
	}
	other := bytes.Clone(data)
	other[len(other)-1] ^= 1
	must(os.WriteFile(b, other, 0o600))
	if sameContent(a, b) {
		t.Fatal("files differing in the last byte compared equal")
	}
	must(os.WriteFile(b, data[:len(data)-1], 0o600))
	if sameContent(a, b) || sameContent(a, filepath.Join(dir, "missing")) {
		t.Fatal("a shorter or a missing file compared equal")
	}
}

// TestStaleTempSweptWhileRunning: a temporary file an archive-wal killed mid-copy left
// in incoming/ is removed by the running pipeline once no writer touched it for
// StaleTempAge (it was removed only at the daemon's start before); a fresh one stays.
func TestStaleTempSweptWhileRunning(t *testing.T) {
	f := newFixture(t, "zstd")
	defer func(d time.Duration) { RescanInterval = d }(RescanInterval)
	RescanInterval = 50 * time.Millisecond
	p, err := NewPipeline(f.srv, f.store, f.idx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, nil) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond)
	stale := fsutil.TempName(f.srv.IncomingDir, "000000010000000000000005")
	fresh := fsutil.TempName(f.srv.IncomingDir, "000000010000000000000006")
	for _, tmp := range []string{stale, fresh} {
		if err := os.WriteFile(tmp, []byte("half a copy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-StaleTempAge - time.Minute)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(stale); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a stale temporary file stayed in incoming/ while the pipeline ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a fresh temporary file (a live writer's) was removed: %v", err)
	}
}
