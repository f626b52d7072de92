package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// TempTarget is the final base name a temporary file from TempName(dir, base) was made
// for, or "" when tmpBase is not such a name. The incoming watcher uses it: a rename
// away from a temporary name is a writer publishing a finished file.
func TempTarget(tmpBase string) string {
	rest, ok := strings.CutPrefix(tmpBase, TempPrefix)
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 || len(rest)-i-1 != 12 {
		return ""
	}
	for _, c := range rest[i+1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return rest[:i]
}

// WriteTemp writes r durably to a fresh temporary name for base in dir (fsynced, not
// yet published) and returns its path and size. The caller publishes it with
// PublishNoReplace or removes it.
func WriteTemp(dir, base string, r io.Reader, perm os.FileMode) (string, int64, error) {
	if err := MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	tmp := TempName(dir, base)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return "", 0, fmt.Errorf("write %s: %w", filepath.Join(dir, base), err)
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("write %s: %w", filepath.Join(dir, base), err)
	}
	return tmp, n, nil
}

// PublishNoReplace renames tmp to path unless path exists (then an error matching
// os.ErrExist, and tmp stays), and fsyncs the directory. It never replaces a file:
// renameat2(RENAME_NOREPLACE), or link+unlink where the file system lacks it.
func PublishNoReplace(tmp, path string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if err = os.Link(tmp, path); err == nil {
			err = os.Remove(tmp)
		}
	}
	if errors.Is(err, unix.EEXIST) || errors.Is(err, os.ErrExist) {
		return fmt.Errorf("publish %s: %w", path, os.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}
