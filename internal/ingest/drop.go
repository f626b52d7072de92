package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// Drop is archive-wal's whole job: copy the file PostgreSQL hands to archive_command into
// incoming/ durably (temp name, fsync, rename, directory fsync). It returns only once the
// copy survives a crash, so PostgreSQL may recycle its segment; it does not need the
// index or the daemon. A file already waiting under that name is never replaced (see
// drop). The copy is published only when it holds exactly the source's size: a short
// copy is never visible in incoming/, and PostgreSQL, told of the failure, keeps the
// file and tries again. A file of the wrong size for a segment is still dropped: the
// daemon quarantines it with its reason and check reports it, whereas refusing it here
// would fail archive_command forever and fill pg_wal.
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
	dst, err := drop(incomingDir, filepath.Base(src), f, fi.Size())
	if err != nil {
		return "", fmt.Errorf("archive-wal %s: %w", src, err)
	}
	return dst, nil
}

// DropData is Drop for content in memory (the receiver's history files).
func DropData(incomingDir, name string, data []byte) (string, error) {
	return drop(incomingDir, name, bytes.NewReader(data), int64(len(data)))
}

// drop writes r durably into incoming/ as name. When a copy of name is already waiting
// there (not yet ingested), the file is never replaced (invariant 2: a newcomer must
// not overwrite): the same content is success with nothing written, other content is
// kept beside it as "<name>.wk-dup-<stamp>", which ingest judges after the earlier
// copy (archived, or quarantined as a conflict with the reason). Only a copy of exactly
// size bytes is published.
func drop(incomingDir, name string, r io.Reader, size int64) (string, error) {
	tmp, n, err := fsutil.WriteTemp(incomingDir, name, io.LimitReader(r, size+1), 0o600)
	if err != nil {
		return "", err
	}
	if n != size {
		os.Remove(tmp)
		return "", fmt.Errorf("%w: %d bytes, expected %d (the source changed while copied)", fsutil.ErrShortCopy, n, size)
	}
	published := false
	defer func() {
		if !published {
			os.Remove(tmp)
		}
	}()
	dst := filepath.Join(incomingDir, name)
	for attempt := 0; ; attempt++ {
		copies := archive.Copies(incomingDir, name)
		for _, c := range copies {
			if sameContent(tmp, filepath.Join(incomingDir, c)) {
				return filepath.Join(incomingDir, c), nil
			}
		}
		if len(copies) > 0 || attempt > 0 {
			dst = filepath.Join(incomingDir, archive.DupName(name, time.Now().UnixNano()))
		}
		err := fsutil.PublishNoReplace(tmp, dst)
		if err == nil {
			published = true
			return dst, nil
		}
		if !errors.Is(err, os.ErrExist) || attempt > 3 {
			return "", err
		}
	}
}

// HandOver moves a finished file at src (the receiver's streaming/, on the same file
// system) into incoming/ as name with Drop's rule: never over a waiting copy; the same
// content is success (src removed), other content waits beside it.
func HandOver(incomingDir, name, src string) error {
	srcDir := filepath.Dir(src)
	for _, c := range archive.Copies(incomingDir, name) {
		if sameContent(src, filepath.Join(incomingDir, c)) {
			return fsutil.RemoveDurable(src)
		}
	}
	dst := filepath.Join(incomingDir, name)
	for attempt := 0; ; attempt++ {
		if attempt > 0 || len(archive.Copies(incomingDir, name)) > 0 {
			dst = filepath.Join(incomingDir, archive.DupName(name, time.Now().UnixNano()))
		}
		err := fsutil.PublishNoReplace(src, dst)
		if err == nil {
			return fsutil.SyncDir(srcDir)
		}
		if !errors.Is(err, os.ErrExist) || attempt > 3 {
			return err
		}
	}
}

// sameContent reports whether both files exist and hold the same bytes. It compares
// them a block at a time: the files may be as large as anything dropped into incoming/
// (a 4 GiB file archived twice), and memory must not grow with them.
func sameContent(a, b string) bool {
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	fa, err := os.Stat(a)
	if err != nil || fa.Size() != fb.Size() {
		return false
	}
	x, err := os.Open(a)
	if err != nil {
		return false
	}
	defer x.Close()
	y, err := os.Open(b)
	if err != nil {
		return false
	}
	defer y.Close()
	const block = 1 << 20
	bx, by := make([]byte, block), make([]byte, block)
	for {
		nx, ex := io.ReadFull(x, bx)
		ny, ey := io.ReadFull(y, by)
		if nx != ny || !bytes.Equal(bx[:nx], by[:ny]) {
			return false
		}
		if ex == io.EOF || ex == io.ErrUnexpectedEOF {
			return ey == ex
		}
		if ex != nil || ey != nil {
			return false
		}
	}
}
