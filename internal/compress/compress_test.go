package compress

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	src := make([]byte, 5<<20+12345) // over the parallel split threshold, not a multiple of it
	r := rand.New(rand.NewPCG(1, 2))
	for i := range src {
		src[i] = byte(r.IntN(8)) // compressible, like WAL
	}
	levels := []int{0, 1, 3, 19}
	if testing.Short() {
		// zstd level 19 takes over 15 s of the test (minutes under -race) and runs the same
		// code paths as the lower levels: the full suite keeps it, the fast pass drops it.
		levels = levels[:3]
	}
	for _, c := range Codecs {
		for _, level := range levels {
			if c == Gzip && level > 9 {
				continue
			}
			enc, err := EncodeAll(c, level, src, nil)
			if err != nil {
				t.Fatalf("%s/%d: %v", c, level, err)
			}
			par, err := EncodeAllParallel(c, level, src, nil)
			if err != nil {
				t.Fatalf("%s/%d parallel: %v", c, level, err)
			}
			if dec, err := DecodeAll(c, par, nil); err != nil || !bytes.Equal(dec, src) {
				t.Fatalf("%s/%d: parallel round trip failed: %v", c, level, err)
			}
			if r, err := NewReader(c, bytes.NewReader(par)); err != nil {
				t.Fatal(err)
			} else if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, src) {
				t.Fatalf("%s/%d: parallel output through the stream reader: %v", c, level, err)
			}
			dec, err := DecodeAll(c, enc, nil)
			if err != nil || !bytes.Equal(dec, src) {
				t.Fatalf("%s/%d: round trip failed: %v", c, level, err)
			}
			if n, ok := ContentSize(c, enc[:min(len(enc), 32)], enc); c != None && (!ok || n != int64(len(src))) {
				t.Fatalf("%s: content size %d %v", c, n, ok)
			}
			var buf bytes.Buffer
			w, err := NewWriter(c, level, &buf)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write(src)
			_ = w.Close()
			rd, err := NewReader(c, &buf)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rd)
			if err != nil || !bytes.Equal(got, src) {
				t.Fatalf("%s stream: %v", c, err)
			}
		}
		name := "000000010000000000000001" + Suffix(c)
		if got, base := FromName(name); got != c || base != "000000010000000000000001" {
			t.Fatalf("FromName(%s) = %s %s", name, got, base)
		}
	}
	if _, err := EncodeAll("lz9", 0, nil, nil); err == nil {
		t.Fatal("unknown codec accepted")
	}
}
