// Package compress names walkeeper's codecs (zstd, gzip, none), the file suffix each
// leaves in the archive, and the one place that encodes and decodes them.
package compress

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/walkeeper/walkeeper/internal/bufpool"
)

// Codec names as written in the configuration and in the index records.
const (
	Zstd = "zstd"
	Gzip = "gzip"
	None = "none"
)

// Suffix is the file-name suffix of an object compressed with codec.
func Suffix(codec string) string {
	switch codec {
	case Zstd:
		return ".zst"
	case Gzip:
		return ".gz"
	}
	return ""
}

// FromName returns the codec an archived file name was written with and the name
// without its suffix.
func FromName(name string) (codec, base string) {
	switch {
	case strings.HasSuffix(name, ".zst"):
		return Zstd, strings.TrimSuffix(name, ".zst")
	case strings.HasSuffix(name, ".gz"):
		return Gzip, strings.TrimSuffix(name, ".gz")
	}
	return None, name
}

// Codecs lists the codecs in the order a reader probes for an archived file.
var Codecs = []string{Zstd, Gzip, None}

// Valid reports whether codec is known.
func Valid(codec string) bool { return codec == Zstd || codec == Gzip || codec == None }

// zstdLevel maps a zstd-style level (1-22) to the encoder's four speeds. Level 0, the
// default of WAL compression, is the fastest: on OLTP WAL it keeps ~90% of the default
// level's ratio for ~30% more speed, and the archive's latency comes first.
func zstdLevel(level int) zstd.EncoderLevel {
	if level <= 0 {
		return zstd.SpeedFastest
	}
	return zstd.EncoderLevelFromZstd(level)
}

var (
	encMu    sync.Mutex
	encoders = map[encKey]*zstd.Encoder{}
	decoder  *zstd.Decoder
	decOnce  sync.Once
)

// encKey names a shared encoder: its level, and its window (0: the level's default).
type encKey struct {
	level  zstd.EncoderLevel
	window int
}

// zstdEncoder returns a shared block encoder for EncodeAll; it is safe for concurrent use
// and records the content size in the frame, which index rebuild reads back cheaply.
func zstdEncoder(level, window int) (*zstd.Encoder, error) {
	k := encKey{zstdLevel(level), window}
	encMu.Lock()
	defer encMu.Unlock()
	if e, ok := encoders[k]; ok {
		return e, nil
	}
	opts := []zstd.EOption{zstd.WithEncoderLevel(k.level), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0))}
	if window > 0 {
		opts = append(opts, zstd.WithWindowSize(window))
	}
	e, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, err
	}
	encoders[k] = e
	return e, nil
}

func zstdDecoder() *zstd.Decoder {
	decOnce.Do(func() {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderMaxMemory(2<<30))
		if err != nil {
			panic(fmt.Sprintf("zstd decoder: %v", err))
		}
		decoder = d
	})
	return decoder
}

// EncodeAll compresses a whole buffer (one WAL file) and appends it to dst.
func EncodeAll(codec string, level int, src, dst []byte) ([]byte, error) {
	switch codec {
	case Zstd:
		e, err := zstdEncoder(level, 0)
		if err != nil {
			return nil, err
		}
		return e.EncodeAll(src, dst), nil
	case Gzip:
		buf := bytes.NewBuffer(dst)
		if level == 0 {
			level = gzip.DefaultCompression
		}
		w, err := gzip.NewWriterLevel(buf, level)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case None:
		return append(dst, src...), nil
	}
	return nil, fmt.Errorf("unknown compression %q", codec)
}

// EncodeAllParallel is EncodeAll spread over all cores for one buffer: zstd compresses
// one slice per core as independent frames, written back to back (concatenated frames
// are one valid zstd stream: DecodeAll, NewReader and `zstd -d` read them as one). Each
// frame is as good as the whole at WAL's scale, so callers use it when latency matters:
// a lone file. Other codecs fall back to EncodeAll.
func EncodeAllParallel(codec string, level int, src, dst []byte) ([]byte, error) {
	n := runtime.GOMAXPROCS(0)
	if codec != Zstd || n < 2 || len(src) < 2<<20 {
		return EncodeAll(codec, level, src, dst)
	}
	// Two slices per core, so that a core also busy elsewhere (the pipeline hashes the
	// same buffer meanwhile) does not hold back the whole file with one big slice.
	n = min(2*n, len(src)>>20)
	e, err := zstdEncoder(level, 0)
	if err != nil {
		return nil, err
	}
	part := (len(src) + n - 1) / n
	outs := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		lo, hi := i*part, min((i+1)*part, len(src))
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				outs[0] = e.EncodeAll(src[lo:hi], dst)
				return
			}
			outs[i] = e.EncodeAll(src[lo:hi], scratch.Get(hi-lo))
		}()
	}
	wg.Wait()
	out := outs[0]
	for _, o := range outs[1:] {
		out = append(out, o...)
		scratch.Put(o)
	}
	return out, nil
}

// scratch recycles EncodeAllParallel's per-slice output buffers: fresh ones cost page
// faults on every lone segment, the latency path.
var scratch = bufpool.New(16, 64<<20)

// EncodeSolid compresses one buffer of many small files as a single frame whose window
// spans all of it, so content repeated far apart (the same catalog in every database)
// is stored once. Other codecs fall back to EncodeAll.
func EncodeSolid(codec string, level int, src []byte) ([]byte, error) {
	if codec != Zstd {
		return EncodeAll(codec, level, src, nil)
	}
	w := 1 << 20
	for w < len(src) && w < 64<<20 {
		w <<= 1
	}
	e, err := zstdEncoder(level, w)
	if err != nil {
		return nil, err
	}
	return e.EncodeAll(src, make([]byte, 0, len(src)/8)), nil
}

// DecodeAll decompresses a whole buffer written by EncodeAll.
func DecodeAll(codec string, src, dst []byte) ([]byte, error) {
	switch codec {
	case Zstd:
		return zstdDecoder().DecodeAll(src, dst)
	case Gzip:
		r, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, err
		}
		buf := bytes.NewBuffer(dst)
		if _, err := io.Copy(buf, r); err != nil {
			return nil, err
		}
		return buf.Bytes(), r.Close()
	case None:
		return append(dst, src...), nil
	}
	return nil, fmt.Errorf("unknown compression %q", codec)
}

// NewReader decompresses a stream.
func NewReader(codec string, r io.Reader) (io.ReadCloser, error) {
	return NewReaderN(codec, r, 1)
}

// NewReaderN decompresses a stream with up to n goroutines: zstd decodes blocks ahead
// of the reader, about twice as fast on a large file (a 1 GiB relation segment) as one
// goroutine. Other codecs ignore n.
func NewReaderN(codec string, r io.Reader, n int) (io.ReadCloser, error) {
	switch codec {
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(max(n, 1)), zstd.WithDecoderMaxMemory(2<<30))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case Gzip:
		return gzip.NewReader(r)
	case None:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q", codec)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// NewWriter compresses a stream into w; Close flushes the codec (not w).
func NewWriter(codec string, level int, w io.Writer) (io.WriteCloser, error) {
	switch codec {
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstdLevel(level)), zstd.WithEncoderConcurrency(1))
	case Gzip:
		if level == 0 {
			level = gzip.DefaultCompression
		}
		return gzip.NewWriterLevel(w, level)
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", codec)
}

// ContentSize returns the uncompressed size recorded in a compressed object's header
// (zstd frame header) or trailer (gzip ISIZE, modulo 4 GiB); ok is false when unknown.
func ContentSize(codec string, head, tail []byte) (int64, bool) {
	switch codec {
	case Zstd:
		var h zstd.Header
		if err := h.Decode(head); err != nil || !h.HasFCS {
			return 0, false
		}
		return int64(h.FrameContentSize), true
	case Gzip:
		if len(tail) < 4 {
			return 0, false
		}
		t := tail[len(tail)-4:]
		return int64(uint32(t[0]) | uint32(t[1])<<8 | uint32(t[2])<<16 | uint32(t[3])<<24), true
	}
	return 0, false
}
