// Package restore brings archived data back: get-wal for restore_command, and the
// restore of base backups with their recovery configuration.
package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// ErrNotArchived means the requested WAL file is not in the archive; get-wal exits 1 on
// it, which PostgreSQL reads as "no such file" (end of recovery or a probe).
var ErrNotArchived = errors.New("not archived")

// GetWAL writes the archived file walName of server to dest, decompressed, through a
// temporary name and a rename so PostgreSQL never reads a partial file. It reads the
// archive through storage only: restore_command must not wait for the index. The copy
// is not fsynced: PostgreSQL fetches it again from the archive after a crash.
func GetWAL(ctx context.Context, store storage.Store, server, walName, dest string) error {
	if _, err := segments.Parse(walName); err != nil {
		return fmt.Errorf("get-wal %s: %w", walName, err)
	}
	key, codec, err := ingest.FindArchived(ctx, store, server, walName)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("get-wal %s: %w", walName, ErrNotArchived)
	}
	if err != nil {
		return fmt.Errorf("get-wal %s: %w", walName, err)
	}
	data, err := ingest.ReadArchived(ctx, store, key, codec)
	if err != nil {
		return fmt.Errorf("get-wal %s: %w", walName, err)
	}
	if err := writeNoSync(dest, data); err != nil {
		return fmt.Errorf("get-wal %s: %w", walName, err)
	}
	return nil
}

func writeNoSync(dest string, data []byte) error {
	_, err := fsutil.WriteAtomicNoSync(dest, bytes.NewReader(data), 0o600)
	return err
}
