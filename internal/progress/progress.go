// Package progress counts bytes as they flow, for the progress bars of backup, restore
// and verify: the copy loops stay unaware of who is watching.
package progress

import "io"

// Writer passes every write to W, then reports the bytes written to Fn (also after a
// short write, so the count never runs ahead of or behind what reached W).
type Writer struct {
	W  io.Writer
	Fn func(int64)
}

// Write implements io.Writer.
func (p Writer) Write(b []byte) (int, error) {
	n, err := p.W.Write(b)
	p.Fn(int64(n))
	return n, err
}
