package progress

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// shortWriter accepts at most max bytes per call and then fails.
type shortWriter struct {
	buf bytes.Buffer
	max int
}

func (s *shortWriter) Write(b []byte) (int, error) {
	if len(b) > s.max {
		n, _ := s.buf.Write(b[:s.max])
		return n, io.ErrShortWrite
	}
	return s.buf.Write(b)
}

func TestWriterCountsWhatWasWritten(t *testing.T) {
	var total int64
	calls := 0
	var out bytes.Buffer
	w := Writer{W: &out, Fn: func(n int64) { total += n; calls++ }}
	if _, err := io.Copy(w, bytes.NewReader(make([]byte, 100_000))); err != nil {
		t.Fatal(err)
	}
	if total != 100_000 || int64(out.Len()) != total || calls == 0 {
		t.Fatalf("reported %d bytes in %d calls, wrote %d", total, calls, out.Len())
	}

	sw := &shortWriter{max: 3}
	total = 0
	n, err := Writer{W: sw, Fn: func(n int64) { total += n }}.Write([]byte("hello"))
	if n != 3 || !errors.Is(err, io.ErrShortWrite) || total != 3 {
		t.Fatalf("short write: n %d err %v reported %d", n, err, total)
	}
}
