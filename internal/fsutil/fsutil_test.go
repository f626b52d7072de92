package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteAtomicExact: only a copy of exactly the expected size appears under the final
// name; a short or long one leaves neither it nor a temp file behind.
func TestWriteAtomicExact(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		data string
		size int64
		ok   bool
	}{{"abcdef", 6, true}, {"abc", 6, false}, {"abcdefgh", 6, false}, {"", 0, true}} {
		path := filepath.Join(dir, "f")
		os.Remove(path)
		n, err := WriteAtomicExact(path, strings.NewReader(c.data), 0o600, c.size)
		_, serr := os.Stat(path)
		if c.ok && (err != nil || n != c.size || serr != nil) {
			t.Errorf("%q size %d: n %d, %v, stat %v", c.data, c.size, n, err, serr)
		}
		if !c.ok && (!errors.Is(err, ErrShortCopy) || serr == nil) {
			t.Errorf("%q size %d: %v, stat %v; want ErrShortCopy and no file", c.data, c.size, err, serr)
		}
		if tmps, _ := filepath.Glob(filepath.Join(dir, TempPrefix+"*")); len(tmps) != 0 {
			t.Fatalf("temp files left: %v", tmps)
		}
	}
}

// TestRemoveStaleTemps: old temp files go (in subdirectories too), fresh ones and real
// files stay.
func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(rel string, mtime time.Time) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale1 := mk(TempPrefix+"a", old)
	stale2 := mk("sub/"+TempPrefix+"b", old)
	fresh := mk(TempPrefix+"c", time.Now())
	real := mk("000000010000000000000001", old)
	removed, err := RemoveStaleTemps(dir, 10*time.Minute)
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	for p, want := range map[string]bool{stale1: false, stale2: false, fresh: true, real: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", p, err == nil, want)
		}
	}
	if removed, _ := RemoveStaleTemps(dir, 0); len(removed) != 1 {
		t.Fatalf("minAge 0 removed %v, want the fresh temp file", removed)
	}
}

func TestExecutable(t *testing.T) {
	p, err := Executable()
	if err != nil || !filepath.IsAbs(p) {
		t.Fatalf("Executable = %q, %v", p, err)
	}
	if r, err := filepath.EvalSymlinks(p); err != nil || r != p {
		t.Errorf("Executable = %q, resolves to %q (%v)", p, r, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("Executable %q is not an executable file: %v", p, err)
	}
}
