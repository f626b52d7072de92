package index

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// ErrDamaged marks an index database that cannot be read: a truncated or corrupted
// table, a broken manifest. The index is derived data (invariant 4), so the cure is
// always the same: move it aside and rebuild it from the archive.
var ErrDamaged = errors.New("index is damaged")

// DamagedError names the index directory and what is wrong with it, and tells the
// DBA how to recover.
type DamagedError struct {
	Dir   string
	Cause string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("index %s is damaged (%s): run `walkeeper index rebuild SERVER` (or restart `walkeeper watch`, which rebuilds it)", e.Dir, e.Cause)
}

// Is makes errors.Is(err, ErrDamaged) hold.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// checkTables opens every table file the manifest references with badger's own reader,
// verifying the checksum of every block. badger opens tables in goroutines of its own,
// where a truncated file panics (slice bounds out of range) beyond any recover of ours,
// and it silently skips a table whose checksum does not match: both are found here first.
//
// The manifest is read first, as badger will: badger deletes every table its manifest
// does not reference (a table being written when the process was killed, often empty:
// a normal crash, not damage), so those are not checked; a manifest that is missing or
// references none of the tables on disk (truncated) would silently empty the index.
func checkTables(dir string, opts badger.Options) (err error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(files) == 0 {
		return nil
	}
	sort.Strings(files)
	fp, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		return &DamagedError{Dir: dir, Cause: oneLine(fmt.Sprintf("%d table files but no readable manifest: %v", len(files), err))}
	}
	defer fp.Close()
	mf, _, err := badger.ReplayManifestFile(fp, opts.ExternalMagicVersion, opts)
	if err != nil {
		return &DamagedError{Dir: dir, Cause: oneLine("manifest: " + err.Error())}
	}
	referenced := 0
	for _, f := range files {
		id, ok := table.ParseFileID(filepath.Base(f))
		if !ok {
			continue
		}
		if _, ok := mf.Tables[id]; !ok {
			continue
		}
		referenced++
		if err := checkTable(f); err != nil {
			return &DamagedError{Dir: dir, Cause: oneLine(err.Error())}
		}
	}
	if referenced == 0 {
		return &DamagedError{Dir: dir, Cause: fmt.Sprintf("the manifest references none of the %d table files", len(files))}
	}
	return nil
}

// oneLine folds a multi-line message (badger's panics span several) into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func checkTable(path string) (err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, z.NewFile) {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	closed := false
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: %v", filepath.Base(path), p)
		}
		if !closed {
			_ = mf.Close(-1)
		}
	}()
	// OpenTable takes mf over and closes it itself when it fails.
	t, err := table.OpenTable(mf, table.Options{ChkMode: options.OnTableRead})
	if err != nil {
		closed = true
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	_ = t
	return nil
}

// recoverRead turns a panic inside badger (a damaged block read on our goroutine) into
// a DamagedError for the caller; used with defer at the top of every read and write.
func (x *Badger) recoverRead(err *error) {
	if p := recover(); p != nil {
		e := &DamagedError{Dir: x.dir, Cause: oneLine(fmt.Sprint(p))}
		markDamaged(e)
		*err = e
	}
}

// MoveAside renames a damaged index directory to index.broken-<UTC timestamp> beside
// it (kept for a post-mortem, never read again) and returns the new path; the next
// open creates an empty index for a rebuild to fill.
func MoveAside(dir string) (string, error) {
	to := fmt.Sprintf("%s.broken-%s", dir, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(dir, to); err != nil {
		return "", fmt.Errorf("move damaged index aside: %w", err)
	}
	if err := fsutil.SyncDir(filepath.Dir(dir)); err != nil {
		return "", err
	}
	return to, nil
}

// probeLock fails with ErrLocked when another process holds the database, using the
// same flock on the directory badger takes (and releasing it at once for badger).
func probeLock(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrLocked
		}
		return err
	}
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

// damagedMark is a file left in the index directory by the first open or read that
// found the database damaged. badger may already have "repaired" what it could during
// that failed open (a truncated memtable log is dropped), after which the same
// directory opens silently without its newest records; the mark keeps every later open
// failing with the first cause until the index is moved aside and rebuilt (the rebuild
// starts from a new directory, so the mark goes with the old one).
const damagedMark = "WALKEEPER-DAMAGED"

// markDamaged records e in its directory (best effort: a read-only home keeps only the
// error this command prints).
func markDamaged(e *DamagedError) {
	if _, err := os.Stat(e.Dir); err != nil {
		return
	}
	_, _ = fsutil.WriteAtomic(filepath.Join(e.Dir, damagedMark), strings.NewReader(e.Cause+"\n"), 0o600)
}

// markedDamaged is the DamagedError an earlier command recorded in dir, or nil.
func markedDamaged(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, damagedMark))
	if err != nil {
		return nil
	}
	return &DamagedError{Dir: dir, Cause: "found damaged earlier: " + oneLine(string(b))}
}
