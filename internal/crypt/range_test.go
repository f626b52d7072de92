package crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// rangeStore is a local store with a ranged read, counting the requests an object
// store would receive.
type rangeStore struct {
	*storage.Local
	stats, gets, ranges int
}

func (r *rangeStore) Stat(ctx context.Context, key string) (storage.Info, error) {
	r.stats++
	return r.Local.Stat(ctx, key)
}

func (r *rangeStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r.gets++
	return r.Local.Get(ctx, key)
}

func (r *rangeStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	r.ranges++
	f, err := r.Local.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, err := f.(io.Seeker).Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, n), f}, nil
}

// TestGetRange reads ranges inside, across and past the chunks of a 20-chunk object,
// through an inner store with a ranged read (at most one Stat and three ranged reads
// per range, never a whole Get) and through one without (the local store), and checks
// that damage inside the range fails while damage outside it is not read.
func TestGetRange(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	const size = 20*ChunkSize - 300
	want := plaintext(size)
	const key = "pg1/base/20261201T101010/data/pgdata/base/1/1259.zst"
	if _, err := s.Put(ctx, key, bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	rs := &rangeStore{Local: inner}
	ranged := newStore(rs, s.id)
	cases := []struct{ off, n int64 }{
		{0, 0}, {0, 1}, {0, 100}, {ChunkSize - 1, 2}, {ChunkSize, ChunkSize}, {5*ChunkSize + 7, 3 * ChunkSize},
		{10 * ChunkSize, -1}, {size - 1, 1}, {size - 10, 100}, {size, 10}, {size + 5, 10}, {0, -1}, {0, size},
	}
	for _, c := range cases {
		end := min(c.off+c.n, size)
		if c.n < 0 {
			end = size
		}
		exp := want[min(c.off, size):max(end, min(c.off, size))]
		for name, st := range map[string]*Store{"ranged": ranged, "local": s} {
			rs.stats, rs.gets, rs.ranges = 0, 0, 0
			r, err := st.GetRange(ctx, key, c.off, c.n)
			if err != nil {
				t.Fatalf("%s %d+%d: %v", name, c.off, c.n, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, exp) {
				t.Fatalf("%s %d+%d: %d bytes (want %d), %v", name, c.off, c.n, len(got), len(exp), err)
			}
			if name == "ranged" && (rs.stats != 1 || rs.gets != 0 || rs.ranges > 3 || rs.ranges < 1) {
				t.Errorf("%d+%d: %d stats, %d gets, %d ranged reads", c.off, c.n, rs.stats, rs.gets, rs.ranges)
			}
		}
	}
	if _, err := ranged.GetRange(ctx, "pg1/none", 0, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := ranged.GetRange(ctx, KeyObject, 0, 1); err == nil {
		t.Fatal("ranged read of the key object succeeded")
	}

	raw := rawObject(t, inner, key)
	damaged := append([]byte(nil), raw...)
	damaged[HeaderSize+8*(ChunkSize+TagSize)+5] ^= 1 // chunk 8
	writeRaw(t, inner, key, damaged)
	for _, c := range []struct {
		off, n int64
		bad    bool
	}{{8*ChunkSize + 100, 10, true}, {7 * ChunkSize, 2 * ChunkSize, true}, {0, ChunkSize, false}, {15 * ChunkSize, 100, false}} {
		r, err := ranged.GetRange(ctx, key, c.off, c.n)
		if err == nil {
			_, err = io.ReadAll(r)
		}
		switch {
		case c.bad && (!errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), key)):
			t.Errorf("range %d+%d over a damaged chunk: %v", c.off, c.n, err)
		case !c.bad && err != nil:
			t.Errorf("range %d+%d away from the damage: %v", c.off, c.n, err)
		}
	}
	// A damaged last chunk fails every range: it vouches for the size.
	damaged = append([]byte(nil), raw...)
	damaged[len(damaged)-1] ^= 1
	writeRaw(t, inner, key, damaged)
	if _, err := ranged.GetRange(ctx, key, 0, 10); !errors.Is(err, ErrCorrupt) {
		t.Errorf("range with a damaged last chunk: %v", err)
	}
	writeRaw(t, inner, key, raw[:len(raw)-TagSize-1])
	if _, err := ranged.GetRange(ctx, key, 0, 10); !errors.Is(err, ErrCorrupt) {
		t.Errorf("range of a truncated object: %v", err)
	}
}

// TestDeleteMany: keys go to the inner store's batched delete when it has one,
// missing keys are no error, and the key object is refused.
func TestDeleteMany(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	var keys []string
	for i := range 5 {
		k := fmt.Sprintf("pg1/wals/0000000100000000/00000001000000000000000%d", i)
		keys = append(keys, k)
		if _, err := s.Put(ctx, k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMany(ctx, append(keys, "pg1/wals/none")); err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = inner.List(ctx, "pg1/", func(storage.Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d objects left", n)
	}
	if err := s.DeleteMany(ctx, []string{KeyObject}); err == nil {
		t.Fatal("DeleteMany of the key object succeeded")
	}
	if _, err := inner.Stat(ctx, KeyObject); err != nil {
		t.Fatal(err)
	}
}
