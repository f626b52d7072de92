package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocalPutGetListDelete(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := NewLocal(root)
	keys := []string{"pg1/wals/0000000100000000/000000010000000000000002.zst", "pg1/wals/0000000100000000/000000010000000000000001.zst",
		"pg1/base/20260101T000000/backup.info", "pg2/wals/0000000100000000/000000010000000000000001"}
	for _, k := range keys {
		n, err := s.Put(ctx, k, strings.NewReader("content of "+k))
		if err != nil || n != int64(len("content of "+k)) {
			t.Fatalf("put %s: %d %v", k, n, err)
		}
	}
	fi, err := os.Stat(filepath.Join(root, keys[0]))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("object mode %v %v", fi.Mode(), err)
	}
	di, _ := os.Stat(filepath.Join(root, "pg1", "wals"))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", di.Mode())
	}
	r, err := s.Get(ctx, keys[1])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "content of "+keys[1] {
		t.Fatalf("get: %q", b)
	}
	// A temp file of an unfinished put is never listed.
	if err := os.WriteFile(filepath.Join(root, "pg1/wals/0000000100000000/.wk-tmp-x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.List(ctx, "pg1/wals/", func(i Info) error { got = append(got, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{keys[1], keys[0]}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("list pg1/wals/: %v, want %v", got, want)
	}
	got = nil
	_ = s.List(ctx, "pg", func(i Info) error { got = append(got, i.Key); return nil })
	if len(got) != 4 {
		t.Fatalf("list pg: %v", got)
	}
	got = nil
	_ = s.List(ctx, "pg1/wals/0000000100000000/000000010000000000000001", func(i Info) error { got = append(got, i.Key); return nil })
	if len(got) != 1 {
		t.Fatalf("list by name prefix: %v", got)
	}
	if err := s.List(ctx, "nosuch/", func(Info) error { t.Fatal("listed"); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, keys[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, keys[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stat after delete: %v", err)
	}
	if err := s.Delete(ctx, keys[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	for _, bad := range []string{"", "/abs", "../up", "a/../b", "a//b"} {
		if _, err := s.Put(ctx, bad, strings.NewReader("x")); err == nil {
			t.Errorf("put %q accepted", bad)
		}
	}
}

// ReadAll reads an object whole, whether or not its reader can tell its size.
func TestReadAll(t *testing.T) {
	s := NewLocal(t.TempDir())
	want := bytes.Repeat([]byte("walkeeper "), 100000)
	if _, err := s.Put(context.Background(), "k", bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, src := range []io.Reader{r, bytes.NewReader(want)} {
		got, err := ReadAll(src)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ReadAll(%T): %d bytes (%v), want %d", src, len(got), err, len(want))
		}
	}
}
