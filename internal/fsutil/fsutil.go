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
	"os"
	"path/filepath"
	"strings"
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
	return writeAtomic(path, r, perm, false)
}

// WriteAtomic writes r to path durably: temp name in the same directory, fsync, rename,
// fsync of the directory. Readers never see a partial file under path. It returns the
// number of bytes written.
func WriteAtomic(path string, r io.Reader, perm os.FileMode) (int64, error) {
	return writeAtomic(path, r, perm, true)
}

func writeAtomic(path string, r io.Reader, perm os.FileMode, durable bool) (int64, error) {
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
	n, err := io.Copy(f, r)
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
