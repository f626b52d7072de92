// Package storetest is the conformance suite of storage.Store: one table of behaviours that
// every store (storage.Local, s3store.Store, and wrappers such as an encrypting store) must
// show alike, so that nothing above the storage layer can tell them apart.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// Options tune the suite to a store.
type Options struct {
	// LargeSize is the size of the object of the "large" case, chosen to span several of
	// a multipart store's parts (default 12 MiB + 123 bytes).
	LargeSize int64
}

// Case is one behaviour of the table.
type Case struct {
	Name string
	Run  func(t *testing.T, s storage.Store, o Options)
}

// Cases is the table Run runs.
var Cases = []Case{
	{"PutGetStat", putGetStat},
	{"Overwrite", overwrite},
	{"Empty", empty},
	{"NotFound", notFound},
	{"Delete", deleteKey},
	{"ListOrderAndPrefixes", listOrder},
	{"ManySlashes", manySlashes},
	{"Large", large},
	{"BadKeys", badKeys},
	{"ListCallbackError", listCallbackError},
}

// Run runs every case as a subtest on a fresh, empty store from open.
func Run(t *testing.T, open func(t *testing.T) storage.Store, o Options) {
	if o.LargeSize == 0 {
		o.LargeSize = 12<<20 + 123
	}
	for _, c := range Cases {
		t.Run(c.Name, func(t *testing.T) { c.Run(t, open(t), o) })
	}
}

var ctx = context.Background()

func put(t *testing.T, s storage.Store, key string, data []byte) {
	t.Helper()
	n, err := s.Put(ctx, key, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("put %s: wrote %d bytes, want %d", key, n, len(data))
	}
}

// Get reads key whole, failing the test on any error (of the read or at close).
func Get(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	r, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	b, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("get %s: read: %v", key, err)
	}
	return b
}

// Keys lists prefix, failing the test on an error.
func Keys(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.List(ctx, prefix, func(i storage.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return keys
}

// Random returns n bytes of seeded pseudo-random data (incompressible, reproducible).
func Random(n int64, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func putGetStat(t *testing.T, s storage.Store, _ Options) {
	key := "s1/log/0000000100000000/000000010000000000000001.zst"
	data := Random(70_000, 1)
	put(t, s, key, data)
	if got := Get(t, s, key); !bytes.Equal(got, data) {
		t.Fatalf("get returned %d bytes that differ from the %d put", len(got), len(data))
	}
	fi, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Key != key || fi.Size != int64(len(data)) || fi.ModTime.IsZero() {
		t.Fatalf("stat: %+v", fi)
	}
}

func overwrite(t *testing.T, s storage.Store, _ Options) {
	key := "s1/bk/20260101T000000/meta.txt"
	put(t, s, key, []byte("first version, longer than the second"))
	put(t, s, key, []byte("second"))
	if got := string(Get(t, s, key)); got != "second" {
		t.Fatalf("after overwrite: %q", got)
	}
	if fi, err := s.Stat(ctx, key); err != nil || fi.Size != 6 {
		t.Fatalf("stat after overwrite: %+v %v", fi, err)
	}
	if keys := Keys(t, s, "s1/"); len(keys) != 1 {
		t.Fatalf("list after overwrite: %v", keys)
	}
}

func empty(t *testing.T, s storage.Store, _ Options) {
	key := "s1/bk/20260101T000000/empty"
	put(t, s, key, nil)
	if got := Get(t, s, key); len(got) != 0 {
		t.Fatalf("empty object read back as %d bytes", len(got))
	}
	if fi, err := s.Stat(ctx, key); err != nil || fi.Size != 0 {
		t.Fatalf("stat empty: %+v %v", fi, err)
	}
	if keys := Keys(t, s, "s1/bk/"); !slices.Equal(keys, []string{key}) {
		t.Fatalf("list: %v", keys)
	}
}

func notFound(t *testing.T, s storage.Store, _ Options) {
	put(t, s, "s1/log/present", []byte("x"))
	for _, key := range []string{"s1/log/missing", "nosuchdir/missing", "s1/log/presen"} {
		if _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), key) {
			t.Errorf("get %s: %v, want ErrNotFound naming the key", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), key) {
			t.Errorf("stat %s: %v, want ErrNotFound naming the key", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), key) {
			t.Errorf("delete %s: %v, want ErrNotFound naming the key", key, err)
		}
	}
	if keys := Keys(t, s, "nosuch/"); len(keys) != 0 {
		t.Errorf("list nosuch/: %v", keys)
	}
}

func deleteKey(t *testing.T, s storage.Store, _ Options) {
	a, b := "s1/log/0000000100000000/000000010000000000000001", "s1/log/0000000100000000/000000010000000000000002"
	put(t, s, a, []byte("a"))
	put(t, s, b, []byte("b"))
	if err := s.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, a); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat after delete: %v", err)
	}
	if _, err := s.Get(ctx, a); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if keys := Keys(t, s, "s1/"); !slices.Equal(keys, []string{b}) {
		t.Fatalf("list after delete: %v", keys)
	}
	if err := s.Delete(ctx, a); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func listOrder(t *testing.T, s storage.Store, _ Options) {
	keys := []string{
		"s1/log/0000000100000000/000000010000000000000002.zst",
		"s1/log/0000000100000000/000000010000000000000001.zst",
		"s1/log/0000000100000000/000000010000000000000001.partial",
		"s1/log/0000000100000001/000000010000000100000000.zst",
		"s1/log/00000002.hist",
		"s1/bk/20260101T000000/meta.txt",
		"s1/bk/20260101T000000/data.tar.zst",
		"s10/log/0000000100000000/000000010000000000000001",
		"s2/log/0000000100000000/000000010000000000000001",
		"top",
	}
	sizes := map[string]int64{}
	for i := len(keys) - 1; i >= 0; i-- { // not in order
		data := Random(int64(10+i), uint64(i))
		put(t, s, keys[i], data)
		sizes[keys[i]] = int64(len(data))
	}
	sorted := slices.Clone(keys)
	sort.Strings(sorted)
	filter := func(prefix string) []string {
		var out []string
		for _, k := range sorted {
			if strings.HasPrefix(k, prefix) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, prefix := range []string{"", "s1/", "s1/log/", "s1/log/0000000100000000/", "s1/log/0000000100000000/00000001000000000000000",
		"s1/log/0000000100000000/000000010000000000000001.", "s1", "s", "s1/bk/20260101T000000/", "t", "nosuch", "s1/log/0000000100000002/"} {
		var got []string
		err := s.List(ctx, prefix, func(i storage.Info) error {
			if i.Size != sizes[i.Key] {
				t.Errorf("list %q: %s has size %d, want %d", prefix, i.Key, i.Size, sizes[i.Key])
			}
			got = append(got, i.Key)
			return nil
		})
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		if want := filter(prefix); !slices.Equal(got, want) {
			t.Errorf("list %q:\n got %v\nwant %v", prefix, got, want)
		}
	}
}

func manySlashes(t *testing.T, s storage.Store, _ Options) {
	deep := "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/object"
	sibling := "a/b/c/d/e/f/g/h/i/j/other"
	put(t, s, deep, []byte("deep"))
	put(t, s, sibling, []byte("sibling"))
	if got := string(Get(t, s, deep)); got != "deep" {
		t.Fatalf("get %s: %q", deep, got)
	}
	if keys := Keys(t, s, "a/b/c/"); !slices.Equal(keys, []string{deep, sibling}) {
		t.Fatalf("list a/b/c/: %v", keys)
	}
	if keys := Keys(t, s, "a/b/c/d/e/f/g/h/i/j/k/"); !slices.Equal(keys, []string{deep}) {
		t.Fatalf("list .../k/: %v", keys)
	}
	if err := s.Delete(ctx, deep); err != nil {
		t.Fatal(err)
	}
	if keys := Keys(t, s, "a/"); !slices.Equal(keys, []string{sibling}) {
		t.Fatalf("list a/ after delete: %v", keys)
	}
}

func large(t *testing.T, s storage.Store, o Options) {
	key := "s1/bk/20260101T000000/data.tar.zst"
	data := Random(o.LargeSize, 42)
	put(t, s, key, data)
	got := Get(t, s, key)
	if !bytes.Equal(got, data) {
		t.Fatalf("large object: read %d bytes that differ from the %d put", len(got), len(data))
	}
	if fi, err := s.Stat(ctx, key); err != nil || fi.Size != o.LargeSize {
		t.Fatalf("stat large: %+v %v", fi, err)
	}
}

func badKeys(t *testing.T, s storage.Store, _ Options) {
	for _, bad := range []string{"", "/abs", "../up", "a/../b", "a//b", "a/"} {
		if _, err := s.Put(ctx, bad, strings.NewReader("x")); err == nil {
			t.Errorf("put %q accepted", bad)
		}
		if _, err := s.Get(ctx, bad); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("get %q: %v, want a bad-key error", bad, err)
		}
	}
}

func listCallbackError(t *testing.T, s storage.Store, _ Options) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("s1/log/k%d", i), []byte("x"))
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(ctx, "s1/", func(storage.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("list with a failing callback: %v after %d calls, want the callback's error after 1", err, calls)
	}
}
