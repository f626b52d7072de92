package restore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/basebackup/bbtest"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// manySmall is a data directory of n small files over a few directories, sizes mixed
// so that largest-first and path order both jump between bundles.
func manySmall(n int) []bbtest.File {
	rng := rand.New(rand.NewSource(7))
	files := []bbtest.File{{Path: "base", Type: basebackup.TypeDir}}
	for d := 0; d < 4; d++ {
		files = append(files, bbtest.File{Path: fmt.Sprintf("base/%d", d+1), Type: basebackup.TypeDir})
	}
	for i := 0; i < n; i++ {
		data := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 1+rng.Intn(6000))
		files = append(files, bbtest.File{Path: fmt.Sprintf("base/%d/%d", i%4+1, 16384+i), Data: data})
	}
	files = append(files, bbtest.File{Path: "base/1/big", Data: bytes.Repeat([]byte("big"), 200000)})
	files = append(files, bbtest.File{Path: "PG_VERSION", Data: []byte("15\n")})
	return files
}

// TestRestoreDecodesEachBundleOnce: a restore reads by stored object, so each solid
// bundle is decoded exactly once whatever the order of the files, and every file comes
// back byte for byte.
func TestRestoreDecodesEachBundleOnce(t *testing.T) {
	ctx := context.Background()
	store := storage.NewLocal(t.TempDir())
	files := manySmall(600)
	b := bbtest.Write(t, store, "pg1", "20261124T100000", files, 64<<10, 64<<10, nil)
	if b.Bundles < 10 {
		t.Fatalf("only %d bundles: the test needs many", b.Bundles)
	}
	dest := filepath.Join(t.TempDir(), "restored")
	before := basebackup.SolidDecodes()
	_, err := Run(ctx, Options{Server: "pg1", Source: NewSource(store, "pg1"), Store: store, Choice: Choice{Backup: b.Info, TLI: 1},
		Dest: dest, WAL: WALGet, RestoreCommand: "false", Jobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := basebackup.SolidDecodes() - before; got != int64(b.Bundles) {
		t.Fatalf("%d bundle decodes for %d bundles", got, b.Bundles)
	}
	for _, f := range files {
		if f.Type != "" {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dest, f.Path))
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Fatalf("%s: %v, %d bytes of %d", f.Path, err, len(got), len(f.Data))
		}
	}
}

// TestRestoreRefusesLinkEscape: a backup whose contents were crafted to hold a link
// and then a file under it (or a link out of pg_tblspc, or a file written through a
// tablespace's link) is refused with one line before anything is written, and nothing
// lands outside DEST.
func TestRestoreRefusesLinkEscape(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	outside := filepath.Join(work, "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	ts := []record.Tablespace{{OID: 16400, Name: "ts1", Location: filepath.Join(work, "ts-orig")}}
	cases := map[string][]bbtest.File{
		"link then file": {
			{Path: "evil", Type: basebackup.TypeSymlink, Link: outside},
			{Path: "evil/pwned", Data: []byte("x")},
		},
		"link to a file": {
			{Path: "PG_VERSION", Type: basebackup.TypeSymlink, Link: filepath.Join(outside, "pwned")},
		},
		"link in pg_tblspc, not a tablespace": {
			{Path: "pg_tblspc", Type: basebackup.TypeDir},
			{Path: "pg_tblspc/99999", Type: basebackup.TypeSymlink, Link: outside},
			{Path: "pg_tblspc/99999/pwned", Data: []byte("x")},
		},
		"file through a tablespace link": {
			{Path: "pg_tblspc", Type: basebackup.TypeDir},
			{Path: "pg_tblspc/16400", Type: basebackup.TypeSymlink, Link: outside},
			{Path: "pg_tblspc/16400/pwned", Data: []byte("x")},
		},
		"link inside a tablespace": {
			{Tablespace: 16400, Path: "PG_15_202209061", Type: basebackup.TypeSymlink, Link: outside},
			{Tablespace: 16400, Path: "PG_15_202209061/pwned", Data: []byte("x")},
		},
	}
	i := 0
	for name, files := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			store := storage.NewLocal(t.TempDir())
			b := bbtest.Write(t, store, "pg1", "20261124T100000", append([]bbtest.File{{Path: "base", Type: basebackup.TypeDir}}, files...), 1<<10, 1<<20, ts)
			dest := filepath.Join(work, fmt.Sprint("dest", i))
			_, err := Run(ctx, Options{Server: "pg1", Source: NewSource(store, "pg1"), Store: store, Choice: Choice{Backup: b.Info, TLI: 1},
				Dest: dest, Tablespaces: map[string]string{"ts1": filepath.Join(work, fmt.Sprint("ts", i))}, WAL: WALGet, RestoreCommand: "false", Jobs: 2})
			if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("want a one-line refusal, got %v", err)
			}
			if _, serr := os.Stat(dest); !os.IsNotExist(serr) {
				t.Errorf("a refused restore created %s", dest)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("written outside DEST: %v", ents)
			}
		})
	}
}

// TestBeneathNeverFollowsLinks: even a link planted in the target after planning (by
// another process) is not followed, by the kernel's resolver (openat2) and by the
// component walk older kernels get.
func TestBeneathNeverFollowsLinks(t *testing.T) {
	for _, walk := range []bool{false, true} {
		noOpenat2.Store(walk)
		root := t.TempDir()
		outside := t.TempDir()
		if err := os.Symlink(outside, filepath.Join(root, "base")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, "PG_VERSION")); err != nil {
			t.Fatal(err)
		}
		d, err := os.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		fd := int(d.Fd())
		for _, rel := range []string{"base/1", "PG_VERSION"} {
			if f, err := createBeneath(fd, root, rel, 0o600); err == nil || !strings.Contains(err.Error(), "refused") {
				if f != nil {
					f.Close()
				}
				t.Errorf("walk=%v: create %s through a link: %v", walk, rel, err)
			}
		}
		if f, err := mkdirBeneath(fd, root, "base/1", 0o700); err == nil || !strings.Contains(err.Error(), "refused") {
			if f != nil {
				f.Close()
			}
			t.Errorf("walk=%v: mkdir through a link: %v", walk, err)
		}
		if f, err := mkdirBeneath(fd, root, "base", 0o700); err == nil {
			f.Close()
			t.Errorf("walk=%v: mkdir over a link accepted", walk)
		}
		if err := symlinkBeneath(fd, root, "base/x", "/", nil); err == nil {
			t.Errorf("walk=%v: symlink through a link accepted", walk)
		}
		f, err := mkdirBeneath(fd, root, "real", 0o700)
		if err != nil {
			t.Fatalf("walk=%v: %v", walk, err)
		}
		f.Close()
		w, err := createBeneath(fd, root, "real/file", 0o600)
		if err != nil {
			t.Fatalf("walk=%v: %v", walk, err)
		}
		w.Close()
		d.Close()
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("walk=%v: written outside the root: %v", walk, ents)
		}
	}
	noOpenat2.Store(false)
}

// TestRemoteRestoreByUnits: the remote sink (here `sh -c` standing in for ssh, GNU tar
// at the other end) writes every file of a many-bundle backup with one decode per
// bundle, makes only the planned pg_tblspc link, and refuses a crafted link before
// sending anything.
func TestRemoteRestoreByUnits(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	store := storage.NewLocal(filepath.Join(work, "home"))
	ts := []record.Tablespace{{OID: 16400, Name: "ts1", Location: filepath.Join(work, "ts-orig")}}
	files := append(manySmall(300),
		bbtest.File{Path: "pg_tblspc", Type: basebackup.TypeDir},
		bbtest.File{Path: "pg_tblspc/16400", Type: basebackup.TypeSymlink, Link: filepath.Join(work, "ts-orig")},
		bbtest.File{Tablespace: 16400, Path: "PG_15_202209061", Type: basebackup.TypeDir},
		bbtest.File{Tablespace: 16400, Path: "PG_15_202209061/16401", Data: []byte("in the tablespace")})
	b := bbtest.Write(t, store, "pg1", "20261124T100000", files, 64<<10, 64<<10, ts)
	dest, newTS := filepath.Join(work, "remote-dest"), filepath.Join(work, "remote-ts")
	o := Options{Server: "pg1", Source: NewSource(store, "pg1"), Store: store, Choice: Choice{Backup: b.Info, TLI: 1},
		Dest: dest, Tablespaces: map[string]string{"ts1": newTS}, WAL: WALGet, RestoreCommand: "false", Jobs: 2, Remote: []string{"sh", "-c"}}
	before := basebackup.SolidDecodes()
	if _, err := Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	if got := basebackup.SolidDecodes() - before; got != int64(b.Bundles) {
		t.Fatalf("%d bundle decodes for %d bundles", got, b.Bundles)
	}
	for _, f := range files {
		if f.Type != "" {
			continue
		}
		p := filepath.Join(dest, f.Path)
		if f.Tablespace != 0 {
			p = filepath.Join(newTS, f.Path)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Fatalf("%s: %v, %d bytes of %d", f.Path, err, len(got), len(f.Data))
		}
	}
	if l, err := os.Readlink(filepath.Join(dest, "pg_tblspc", "16400")); err != nil || l != newTS {
		t.Fatalf("pg_tblspc/16400 -> %q (%v), want %s", l, err, newTS)
	}

	outside := filepath.Join(work, "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	store2 := storage.NewLocal(filepath.Join(work, "home2"))
	b2 := bbtest.Write(t, store2, "pg1", "20261124T100000", []bbtest.File{
		{Path: "evil", Type: basebackup.TypeSymlink, Link: outside}, {Path: "evil/pwned", Data: []byte("x")}}, 1<<10, 1<<20, nil)
	o.Source, o.Store, o.Choice, o.Tablespaces = NewSource(store2, "pg1"), store2, Choice{Backup: b2.Info, TLI: 1}, nil
	o.Dest = filepath.Join(work, "remote-dest2")
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("crafted link over the remote sink: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written outside DEST: %v", ents)
	}
}
