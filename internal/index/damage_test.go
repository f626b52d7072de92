package index

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/record"
)

// damagedIndex writes an index with enough records for a table file, closes it and
// returns its directory and table files.
func damagedIndex(t *testing.T) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "index")
	x, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fs []record.WALFile
	for i := 1; i <= 5000; i++ {
		fs = append(fs, seg(1, i))
	}
	must(t, x.PutWALBatch(context.Background(), "pg1", fs))
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no table file written")
	}
	return dir, ssts
}

// TestDamagedIndex: each way a table or the manifest can be damaged gives a one-line
// DamagedError naming the directory and the rebuild command, never a panic; after
// MoveAside the directory opens empty.
func TestDamagedIndex(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, dir string, ssts []string){
		"truncated table": func(t *testing.T, _ string, ssts []string) {
			st, _ := os.Stat(ssts[0])
			must(t, os.Truncate(ssts[0], st.Size()/2))
		},
		"empty table": func(t *testing.T, _ string, ssts []string) { must(t, os.Truncate(ssts[0], 0)) },
		"flipped bytes": func(t *testing.T, _ string, ssts []string) {
			f, err := os.OpenFile(ssts[0], os.O_RDWR, 0)
			must(t, err)
			_, err = f.WriteAt([]byte("garbage!garbage!"), 200)
			must(t, err)
			must(t, f.Close())
		},
		"truncated manifest": func(t *testing.T, dir string, _ []string) {
			must(t, os.Truncate(filepath.Join(dir, "MANIFEST"), 10))
		},
		"missing table": func(t *testing.T, _ string, ssts []string) { must(t, os.Remove(ssts[0])) },
		"empty key registry": func(t *testing.T, dir string, _ []string) {
			must(t, os.Truncate(filepath.Join(dir, "KEYREGISTRY"), 0))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir, ssts := damagedIndex(t)
			damage(t, dir, ssts)
			x, err := OpenBadger(dir, nil)
			if err == nil {
				// A damage badger tolerates at open must still not panic on reads.
				_, err = x.WALStats(context.Background(), "pg1")
				x.Close()
			}
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("open of a damaged index: %v, want ErrDamaged", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, dir) || !strings.Contains(msg, "walkeeper index rebuild SERVER") {
				t.Fatalf("error is not one line naming %s and the rebuild command: %q", dir, msg)
			}
			// The next command must meet the same damage, not an index that badger's
			// failed open left opening silently without what it could not read.
			if x, err := OpenBadger(dir, nil); !errors.Is(err, ErrDamaged) {
				if err == nil {
					x.Close()
				}
				t.Fatalf("second open of the damaged index: %v, want ErrDamaged", err)
			}
			aside, err := MoveAside(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(filepath.Base(aside), "index.broken-") {
				t.Fatalf("moved aside to %s", aside)
			}
			x, err = OpenBadger(dir, nil)
			if err != nil {
				t.Fatalf("open after moving the damaged index aside: %v", err)
			}
			defer x.Close()
			if st, err := x.WALStats(context.Background(), "pg1"); err != nil || st.Files != 0 {
				t.Fatalf("fresh index: %+v, %v", st, err)
			}
		})
	}
}

// TestCrashLeftoverTableIsNotDamage: a table file the manifest does not reference (one
// being written when the daemon was killed, often empty) is what badger removes at open:
// a normal crash, so the index opens with every record, never reported as damaged.
func TestCrashLeftoverTableIsNotDamage(t *testing.T) {
	dir, _ := damagedIndex(t)
	must(t, os.WriteFile(filepath.Join(dir, "999999.sst"), nil, 0o600))
	x, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatalf("open after a crash left an unreferenced empty table: %v", err)
	}
	defer x.Close()
	if st, err := x.WALStats(context.Background(), "pg1"); err != nil || st.Files != 5000 {
		t.Fatalf("index after the crash: %+v, %v; want 5000 files", st, err)
	}
}

// TestOpenLocked: a database held by another opener is ErrLocked, not damage.
func TestOpenLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	x, err := OpenBadger(dir, nil)
	must(t, err)
	defer x.Close()
	if _, err := OpenBadger(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDamagedOpenLogsNothing: when badger itself finds the damage while opening (a
// missing table, a truncated key registry), its own error lines are not logged beside
// the DamagedError: a command's failure is its one line on stderr. A healthy open
// still passes badger's messages on.
func TestDamagedOpenLogsNothing(t *testing.T) {
	for name, damage := range map[string]func(dir string, ssts []string) error{
		"missing table":          func(_ string, ssts []string) error { return os.Remove(ssts[0]) },
		"truncated key registry": func(dir string, _ []string) error { return os.Truncate(filepath.Join(dir, "KEYREGISTRY"), 5) },
	} {
		t.Run(name, func(t *testing.T) {
			dir, ssts := damagedIndex(t)
			must(t, damage(dir, ssts))
			var logged bytes.Buffer
			_, err := OpenBadger(dir, slog.New(slog.NewTextHandler(&logged, nil)))
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("open: %v, want ErrDamaged", err)
			}
			if logged.Len() != 0 {
				t.Fatalf("a failed open logged badger's lines besides its error:\n%s", logged.String())
			}
		})
	}
}
