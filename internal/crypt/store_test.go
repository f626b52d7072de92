package crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// newRepo is an encrypted store over a fresh local store, unlocked by a new key file.
func newRepo(t testing.TB) (*Store, *storage.Local) {
	t.Helper()
	inner := storage.NewLocal(t.TempDir())
	kf := filepath.Join(t.TempDir(), "repo.key")
	if _, err := GenerateKeyFile(kf); err != nil {
		t.Fatal(err)
	}
	u, err := KeyFile(kf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Init(context.Background(), inner, u, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s, inner
}

// plaintext is n deterministic bytes (a counter, so a byte moved is a byte changed).
func plaintext(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readAll reads key through s, returning what was read before any error.
func readAll(s storage.Store, key string) ([]byte, error) {
	r, err := s.Get(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func rawObject(t *testing.T, inner *storage.Local, key string) []byte {
	t.Helper()
	p, _ := inner.Path(key)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeRaw(t *testing.T, inner *storage.Local, key string, data []byte) {
	t.Helper()
	if _, err := inner.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

// TestRoundTrip stores objects of the sizes around the chunk boundaries, a WAL
// segment's and random ones, and reads them back: the same bytes, the plaintext size
// from Put, Stat and List, the stored size the envelope says, and no plaintext in
// what the inner store holds.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	sizes := []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 17, 16 << 20}
	r := rand.New(rand.NewPCG(1, 2))
	for range 4 {
		sizes = append(sizes, r.IntN(1<<20))
	}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			key := fmt.Sprintf("pg1/wals/0000000100000000/obj-%d", n)
			want := plaintext(n)
			put, err := s.Put(ctx, key, bytes.NewReader(want))
			if err != nil || put != int64(n) {
				t.Fatalf("put: %d, %v", put, err)
			}
			got, err := readAll(s, key)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("get: %d bytes (want %d), %v", len(got), n, err)
			}
			st, err := s.Stat(ctx, key)
			if err != nil || st.Size != int64(n) || st.Key != key {
				t.Fatalf("stat: %+v, %v", st, err)
			}
			var listed []storage.Info
			if err := s.List(ctx, key, func(i storage.Info) error { listed = append(listed, i); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(listed) != 1 || listed[0].Size != int64(n) {
				t.Fatalf("list: %+v", listed)
			}
			raw := rawObject(t, inner, key)
			if int64(len(raw)) != StoredSize(int64(n)) {
				t.Fatalf("stored %d bytes, the envelope says %d", len(raw), StoredSize(int64(n)))
			}
			if n >= 32 && bytes.Contains(raw, want[:32]) {
				t.Fatal("the stored object holds the plaintext")
			}
			// age's own random-access reader agrees on the plaintext size.
			_, size, err := age.DecryptReaderAt(bytes.NewReader(raw), int64(len(raw)), s.id)
			if err != nil || size != int64(n) {
				t.Fatalf("age.DecryptReaderAt: size %d, %v", size, err)
			}
		})
	}
}

// TestPlainSize: PlainSize inverts StoredSize for every size around the chunk
// boundaries and refuses sizes no object can have.
func TestPlainSize(t *testing.T) {
	for _, n := range []int64{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 5*ChunkSize - 1, 5 * ChunkSize, 5*ChunkSize + 1, 16 << 20, 1 << 40} {
		if got, ok := PlainSize(StoredSize(n)); !ok || got != n {
			t.Errorf("PlainSize(StoredSize(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, stored := range []int64{-1, 0, HeaderSize, HeaderSize + TagSize - 1,
		// a second chunk holding only its tag: an empty last chunk after a full one
		HeaderSize + ChunkSize + TagSize + TagSize,
		HeaderSize + 2*(ChunkSize+TagSize) + 5} {
		if got, ok := PlainSize(stored); ok {
			t.Errorf("PlainSize(%d) = %d, want invalid", stored, got)
		}
	}
}

// TestTamper damages a stored object of three and a half chunks in each region and
// in each way an attacker or a bad disk could: every read fails with ErrCorrupt and
// the key, and what a reader got before the error is the object's true beginning.
func TestTamper(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	const n = 3*ChunkSize + ChunkSize/2
	want := plaintext(n)
	const key, other = "pg1/wals/0000000100000000/000000010000000000000001", "pg1/wals/0000000100000000/000000010000000000000002"
	if _, err := s.Put(ctx, key, bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, other, bytes.NewReader(plaintext(n + 1)[1:])); err != nil {
		t.Fatal(err)
	}
	orig, otherRaw := rawObject(t, inner, key), rawObject(t, inner, other)
	enc := ChunkSize + TagSize
	chunk := func(b []byte, i int) []byte { return b[HeaderSize+i*enc : min(HeaderSize+(i+1)*enc, len(b))] }
	flip := func(at int) func([]byte) []byte {
		return func(b []byte) []byte { b[at] ^= 0x40; return b }
	}
	cases := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"header version line", flip(3)},
		{"header stanza argument", flip(30)},
		{"header wrapped file key", flip(80)},
		{"header MAC", flip(130)},
		{"stream nonce", flip(HeaderSize - 1)},
		{"first chunk body", flip(HeaderSize + 10)},
		{"first chunk tag", flip(HeaderSize + ChunkSize + 3)},
		{"middle chunk body", flip(HeaderSize + enc + 1000)},
		{"last chunk body", flip(HeaderSize + 3*enc + 7)},
		{"last chunk tag", flip(len(orig) - 1)},
		{"truncated at a chunk boundary", func(b []byte) []byte { return b[:HeaderSize+3*enc] }},
		{"truncated to the header", func(b []byte) []byte { return b[:HeaderSize] }},
		{"truncated inside a chunk", func(b []byte) []byte { return b[:HeaderSize+enc+100] }},
		{"one byte appended", func(b []byte) []byte { return append(b, 0) }},
		{"a chunk appended", func(b []byte) []byte { return append(b, chunk(b, 1)...) }},
		{"chunks swapped", func(b []byte) []byte {
			out := append([]byte(nil), b[:HeaderSize]...)
			out = append(out, chunk(b, 1)...)
			out = append(out, chunk(b, 0)...)
			return append(out, b[HeaderSize+2*enc:]...)
		}},
		{"middle chunk dropped", func(b []byte) []byte {
			return append(append([]byte(nil), b[:HeaderSize+enc]...), b[HeaderSize+2*enc:]...)
		}},
		{"body of another object", func(b []byte) []byte {
			return append(append([]byte(nil), b[:HeaderSize]...), otherRaw[HeaderSize:]...)
		}},
		{"header of another object", func(b []byte) []byte {
			return append(append([]byte(nil), otherRaw[:HeaderSize]...), b[HeaderSize:]...)
		}},
		{"a chunk of another object", func(b []byte) []byte {
			out := append([]byte(nil), b...)
			copy(out[HeaderSize+enc:], chunk(otherRaw, 1))
			return out
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			writeRaw(t, inner, key, c.damage(append([]byte(nil), orig...)))
			got, err := readAll(s, key)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), key) {
				t.Fatalf("read: %v (%d bytes), want ErrCorrupt naming %s", err, len(got), key)
			}
			if !bytes.HasPrefix(want, got) {
				t.Fatalf("a reader got %d bytes that are not the object's beginning", len(got))
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
	writeRaw(t, inner, key, orig)
	if got, err := readAll(s, key); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the undamaged object: %v", err)
	}
}

// TestForeignObjects: an object that is not encrypted, and one sealed to another
// repository's key, are refused at Get with ErrCorrupt and the key.
func TestForeignObjects(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	other, otherInner := newRepo(t)
	const key = "pg1/identity.json"
	writeRaw(t, inner, key, []byte(`{"system_identifier": 1}`))
	if _, err := readAll(s, key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not an encrypted object") {
		t.Fatalf("plain object: %v", err)
	}
	if _, err := other.Put(ctx, key, strings.NewReader("theirs")); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, inner, key, rawObject(t, otherInner, key))
	if _, err := readAll(s, key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not sealed to this repository's key") {
		t.Fatalf("foreign object: %v", err)
	}
	if _, err := s.Get(ctx, "pg1/none"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing object: %v, want ErrNotFound", err)
	}
}

// TestKeyObjectIsNotAnObject: the key object never shows in List, and Get, Put, Stat
// and Delete through the Store refuse it, so retention or a rebuild cannot touch it.
func TestKeyObjectIsNotAnObject(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	if _, err := s.Put(ctx, "pg1/identity.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.List(ctx, "", func(i storage.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "pg1/identity.json" {
		t.Fatalf("list: %q", keys)
	}
	if _, err := s.Put(ctx, KeyObject, strings.NewReader("x")); err == nil {
		t.Error("put of the key object through the store succeeded")
	}
	if _, err := s.Get(ctx, KeyObject); err == nil {
		t.Error("get of the key object through the store succeeded")
	}
	if _, err := s.Stat(ctx, KeyObject); err == nil {
		t.Error("stat of the key object through the store succeeded")
	}
	if err := s.Delete(ctx, KeyObject); err == nil {
		t.Error("delete of the key object through the store succeeded")
	}
	if _, err := inner.Stat(ctx, KeyObject); err != nil {
		t.Fatalf("key object: %v", err)
	}
	if err := s.Delete(ctx, "pg1/identity.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Stat(ctx, "pg1/identity.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted object: %v", err)
	}
}

// failingReader yields n bytes, then fails.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

// TestPutSourceFails: a source that fails halfway fails the Put with its error, and
// no object (not even a validly sealed short one) is left under the key.
func TestPutSourceFails(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	boom := errors.New("source broke")
	for _, n := range []int{0, 10, ChunkSize, 3*ChunkSize + 5} {
		key := fmt.Sprintf("pg1/base/20261201T000000/data/f%d", n)
		if _, err := s.Put(ctx, key, &failingReader{n: n, err: boom}); !errors.Is(err, boom) {
			t.Fatalf("put of a failing source (%d bytes): %v", n, err)
		}
		if _, err := inner.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after a failed put of %d bytes: %v", n, err)
		}
	}
}

// brokenStore is a local store whose readers fail after some bytes, as a network
// read does: the error must reach the caller as the inner store's, not as damage.
type brokenStore struct {
	*storage.Local
	after int64
	err   error
}

func (b brokenStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := b.Local.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(r, b.after), &failingReader{err: b.err}), r}, nil
}

// TestInnerReadError: a failing inner reader is reported as that failure, wrapped
// with the key, not as a damaged object.
func TestInnerReadError(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	const key = "pg1/wals/0000000100000000/000000010000000000000001"
	if _, err := s.Put(ctx, key, bytes.NewReader(plaintext(3*ChunkSize))); err != nil {
		t.Fatal(err)
	}
	netErr := errors.New("connection reset by peer")
	for _, after := range []int64{10, HeaderSize + ChunkSize + 100} {
		b := newStore(brokenStore{inner, after, netErr}, s.id)
		_, err := readAll(b, key)
		if !errors.Is(err, netErr) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), key) {
			t.Fatalf("inner failure after %d bytes: %v", after, err)
		}
	}
}
