package ingest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// Drop is archive-wal's whole job: copy the file PostgreSQL hands to archive_command into
// incoming/ durably (temp name, fsync, rename, directory fsync). It returns only once the
// copy survives a crash, so PostgreSQL may recycle its segment; it does not need the
// index or the daemon.
func Drop(incomingDir, src string) (string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("archive-wal %s: no such file", src)
		}
		return "", fmt.Errorf("archive-wal %s: %w", src, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("archive-wal %s: not a regular file", src)
	}
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("archive-wal %s: %w", src, err)
	}
	defer f.Close()
	dst := filepath.Join(incomingDir, filepath.Base(src))
	n, err := fsutil.WriteAtomic(dst, f, 0o600)
	if err != nil {
		return "", fmt.Errorf("archive-wal %s: %w", src, err)
	}
	if n != fi.Size() {
		return "", fmt.Errorf("archive-wal %s: copied %d bytes of %d (file changed while copying)", src, n, fi.Size())
	}
	return dst, nil
}
