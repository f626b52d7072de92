// Package fsutil holds the durable-file primitives every writer in walkeeper uses: a file
// is only visible under its final name once its bytes and its directory entry are on disk.
package fsutil

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TempPrefix starts the name of every temporary file walkeeper writes, so scanners (the
// incoming watcher, storage listings, rebuild) can tell a half-written file from a real one.
const TempPrefix = ".wk-tmp-"

// IsTemp reports whether base is the name of one of walkeeper's temporary files.
func IsTemp(base string) bool { return strings.HasPrefix(base, TempPrefix) }

// SyncDir fsyncs a directory so that renames and creations inside it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// MkdirAll creates dir and any missing parents with perm, fsyncing each parent whose
// entries changed, so a directory that a durable write depends on is itself durable.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: exists and is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return SyncDir(parent)
}

// TempName returns a fresh temporary name in dir for a file that will become base.
func TempName(dir, base string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, TempPrefix+base+"-"+hex.EncodeToString(b[:]))
}

// WriteAtomicNoSync writes r to path through a temporary name and a rename, without
// fsync: for copies that can be made again (get-wal's output), where readers must never
// see a partial file but a crash may lose the copy.
func WriteAtomicNoSync(path string, r io.Reader, perm os.FileMode) (int64, error) {
	return writeAtomic(path, r, perm, false, -1)
}

// WriteAtomic writes r to path durably: temp name in the same directory, fsync, rename,
// fsync of the directory. Readers never see a partial file under path. It returns the
// number of bytes written.
func WriteAtomic(path string, r io.Reader, perm os.FileMode) (int64, error) {
	return writeAtomic(path, r, perm, true, -1)
}

// ErrShortCopy is WriteAtomicExact's error when r did not give exactly the expected
// number of bytes.
var ErrShortCopy = errors.New("copied byte count differs from the expected size")

// WriteAtomicExact is WriteAtomic for a source of known size: unless r gives exactly
// size bytes, nothing is renamed into place (the temp file is removed) and the error
// wraps ErrShortCopy. A reader may not see a short or overlong copy under path, even
// for a moment.
func WriteAtomicExact(path string, r io.Reader, perm os.FileMode, size int64) (int64, error) {
	return writeAtomic(path, r, perm, true, size)
}

func writeAtomic(path string, r io.Reader, perm os.FileMode, durable bool, size int64) (int64, error) {
	dir := filepath.Dir(path)
	if durable {
		if err := MkdirAll(dir, 0o700); err != nil {
			return 0, err
		}
	}
	tmp := TempName(dir, filepath.Base(path))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	n, err := io.Copy(f, r)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("%w: %d bytes, expected %d (the source changed while copied)", ErrShortCopy, n, size)
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if !durable {
		return n, nil
	}
	if err := SyncDir(dir); err != nil {
		return 0, err
	}
	return n, nil
}

// WriteFileAtomic is WriteAtomic for a byte slice.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	_, err := WriteAtomic(path, bytes.NewReader(data), perm)
	return err
}

// RenameDurable renames oldpath to newpath and fsyncs both directories.
func RenameDurable(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	if err := SyncDir(filepath.Dir(newpath)); err != nil {
		return err
	}
	if filepath.Dir(oldpath) != filepath.Dir(newpath) {
		return SyncDir(filepath.Dir(oldpath))
	}
	return nil
}

// RemoveDurable unlinks path and fsyncs its directory; a missing file is not an error.
func RemoveDurable(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// RemoveStaleTemps removes walkeeper's temporary files (TempPrefix) under dir, in it
// and its subdirectories, whose modification time is older than minAge, and returns
// the paths removed. A writer keeps its temp file's mtime fresh with every write, so an
// old one belongs to a process that died between create and rename; should a live but
// stalled writer lose its temp file all the same, its rename fails and it reports the
// failure (archive-wal exits non-zero and PostgreSQL keeps the segment): nothing
// durable is ever removed, as a temp name is never the final name of anything.
func RemoveStaleTemps(dir string, minAge time.Duration) ([]string, error) {
	var removed []string
	now := time.Now()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !IsTemp(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || now.Sub(fi.ModTime()) < minAge {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed = append(removed, p)
		return nil
	})
	dirs := map[string]bool{}
	for _, p := range removed {
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if serr := SyncDir(d); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return removed, fmt.Errorf("remove stale temporary files under %s: %w", dir, err)
	}
	return removed, nil
}

// ErrTooLarge is ReadLimited's answer for input longer than its limit.
var ErrTooLarge = errors.New("larger than its limit")

// ReadLimited reads r to its end into buf's storage (growing it when needed) and fails
// with ErrTooLarge once more than limit bytes came: every reader of an unvalidated file
// (ingest, and get-wal serving a copy waiting in incoming/) bounds its memory by what a
// valid file of its kind can be, even for a file that grows while read. buf's length is
// kept (call with buf[:0]); give it limit plus a little capacity to see EOF without
// growing.
func ReadLimited(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), len(buf)+int(limit-int64(len(buf)))+1)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, ErrTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
