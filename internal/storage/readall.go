package storage

import (
	"bytes"
	"io"
	"os"
)

// ReadAll reads a whole object from r, the reader Get returned, into one buffer of the
// object's size when r can tell it (a local file): io.ReadAll grows its buffer by
// doubling and copying, which cost verify ~10 ms on a manifest and contents list of a
// schema of 37,000 files.
func ReadAll(r io.Reader) ([]byte, error) {
	f, ok := r.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return io.ReadAll(r)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	_, err = buf.ReadFrom(r)
	return buf.Bytes(), err
}
