package compress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// chunked compresses data as basebackup stores a large file: one EncodeAll frame per
// chunk, back to back.
func chunked(t testing.TB, data []byte, chunk int) []byte {
	t.Helper()
	var out []byte
	for lo := 0; lo < len(data); lo += chunk {
		var err error
		out, err = EncodeAll(Zstd, 1, data[lo:min(lo+chunk, len(data))], out)
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sample is compressible data with incompressible stretches, as relation pages are.
func sample(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := 0; i < n; i += 8192 {
		if rng.IntN(3) == 0 {
			for j := i; j < min(i+8192, n); j++ {
				b[j] = byte(rng.Uint32())
			}
		} else {
			copy(b[i:min(i+8192, n)], bytes.Repeat([]byte("tuple "), 1400))
		}
	}
	return b
}

func TestFramesReader(t *testing.T) {
	data := sample(10<<20 + 12345)
	packed := chunked(t, data, 1<<20)
	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'}
	withSkip := append(append(chunked(t, data[:3<<20], 1<<20), skippable...), chunked(t, data[3<<20:], 1<<20)...)
	for _, tc := range []struct {
		name   string
		packed []byte
	}{
		{"frames", packed},
		{"skippable frame between", withSkip},
	} {
		for _, mode := range []string{"Read", "WriteTo"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				r, err := NewFramesReader(Zstd, bytes.NewReader(tc.packed), 3)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				var got bytes.Buffer
				if mode == "Read" {
					_, err = io.CopyBuffer(&got, struct{ io.Reader }{r}, make([]byte, 1000))
				} else {
					_, err = io.Copy(&got, r)
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), data) {
					t.Fatalf("decoded %d bytes, not the %d written", got.Len(), len(data))
				}
			})
		}
	}
}

// A stream-written object (one frame of unknown size) and other codecs fall back to the
// stream decoder and still decode.
func TestFramesReaderFallback(t *testing.T) {
	data := sample(3 << 20)
	for _, codec := range []string{Zstd, Gzip, None} {
		var buf bytes.Buffer
		w, err := NewWriter(codec, 1, &buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		r, err := NewFramesReader(codec, &buf, 2)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes, %v", codec, len(got), err)
		}
	}
}

// A truncated or damaged object fails; it never reads as a shorter good one.
func TestFramesReaderDamage(t *testing.T) {
	data := sample(6 << 20)
	packed := chunked(t, data, 1<<20)
	flipped := bytes.Clone(packed)
	flipped[len(flipped)/2] ^= 0xff
	for name, in := range map[string][]byte{
		"cut in a frame":      packed[:len(packed)-100],
		"cut after a header":  packed[:len(chunked(t, data[:1<<20], 1<<20))+6],
		"a byte flipped":      flipped,
		"garbage after":       append(bytes.Clone(packed), 1, 2, 3, 4, 5, 6, 7, 8),
		"reserved block type": append(bytes.Clone(packed[:len(chunked(t, data[:1<<20], 1<<20))+6]), 0x07, 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			r, err := NewFramesReader(Zstd, bytes.NewReader(in), 2)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err == nil {
				t.Fatalf("read %d bytes without an error", len(got))
			}
			if name == "cut in a frame" && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("want unexpected EOF, got %v", err)
			}
		})
	}
}

// Closing before the end stops the splitter (no goroutine left reading).
func TestFramesReaderCloseEarly(t *testing.T) {
	packed := chunked(t, sample(8<<20), 1<<20)
	for range 20 {
		r, err := NewFramesReader(Zstd, bytes.NewReader(packed), 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if _, err := r.Read(make([]byte, 100)); err == nil {
			// Reading after Close may still drain what was decoded; it must end.
			io.Copy(io.Discard, r)
		}
	}
}

// FuzzFramesReader: data stored as chunk frames reads back as it was; with one byte
// changed it reads back as it was or fails, never as other content (each frame carries
// a checksum). It never panics or hangs.
func FuzzFramesReader(f *testing.F) {
	f.Add(sample(40<<10), uint32(8<<10), uint32(0), byte(0))
	f.Add([]byte("tiny"), uint32(1), uint32(5), byte(0x80))
	f.Fuzz(func(t *testing.T, data []byte, chunk, at uint32, flip byte) {
		if len(data) == 0 || len(data) > 64<<10 { // coverage-instrumented zstd is slow on more
			return
		}
		size := max(1+int(chunk%(1<<20)), len(data)/16) // at most 16 frames: each costs a goroutine
		packed := chunked(t, data, size)
		if flip != 0 {
			packed[int(at)%len(packed)] ^= flip
		}
		r, err := NewFramesReader(Zstd, bytes.NewReader(packed), 2)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		switch {
		case flip == 0 && (err != nil || !bytes.Equal(got, data)):
			t.Fatalf("%d bytes in %d-byte chunks: read %d bytes, %v", len(data), size, len(got), err)
		case flip != 0 && err == nil && !bytes.Equal(got, data):
			t.Fatalf("a damaged object read as %d bytes of other content", len(got))
		}
	})
}
