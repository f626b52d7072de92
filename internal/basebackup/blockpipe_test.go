package basebackup

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

// TestBlockPipe: bytes written in writes of any size come out whole and in order
// through reads of any size, then the writer's close error (io.EOF for Close).
func TestBlockPipe(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	data := make([]byte, 5*pipeBlockSize+12345)
	rng.Read(data)
	for _, closeErr := range []error{nil, errors.New("stream aborted")} {
		p := newBlockPipe()
		got := make(chan []byte)
		var readErr error
		go func() {
			var out []byte
			buf := make([]byte, 70000)
			for {
				n, err := p.Read(buf[:1+rng.Intn(len(buf)-1)])
				out = append(out, buf[:n]...)
				if err != nil {
					readErr = err
					break
				}
			}
			got <- out
		}()
		w := rand.New(rand.NewSource(2))
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+w.Intn(100000))
			if k, err := p.Write(rest[:n]); err != nil || k != n {
				t.Fatalf("write: %d of %d, %v", k, n, err)
			}
			rest = rest[n:]
		}
		if err := p.CloseWithError(closeErr); err != nil {
			t.Fatal(err)
		}
		out := <-got
		want := closeErr
		if want == nil {
			want = io.EOF
		}
		if !bytes.Equal(out, data) || readErr != want {
			t.Fatalf("read %d of %d bytes (equal: %v), then %v; want %v", len(out), len(data), bytes.Equal(out, data), readErr, want)
		}
	}
}

// TestBlockPipeReaderStops: once the reader stops, the writer's next write that needs
// the reader fails with the reader's error instead of blocking.
func TestBlockPipeReaderStops(t *testing.T) {
	p := newBlockPipe()
	cause := errors.New("tar stream: unsafe path")
	p.CloseReader(cause)
	block := make([]byte, pipeBlockSize)
	var err error
	for i := 0; i <= pipeBlocks+1 && err == nil; i++ {
		_, err = p.Write(block)
	}
	if !errors.Is(err, cause) {
		t.Fatalf("write after the reader stopped: %v, want %v", err, cause)
	}
}
