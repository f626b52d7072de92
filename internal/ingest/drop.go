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
// index or the daemon. The copy is renamed into place only when it holds exactly the
// source's size: a short copy is never visible in incoming/, and PostgreSQL, told of
// the failure, keeps the file and tries again. A file of the wrong size for a segment
// is still dropped: the daemon quarantines it with its reason and check reports it,
// whereas refusing it here would fail archive_command forever and fill pg_wal.
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
	if _, err := fsutil.WriteAtomicExact(dst, f, 0o600, fi.Size()); err != nil {
		return "", fmt.Errorf("archive-wal %s: %w", src, err)
	}
	return dst, nil
}
