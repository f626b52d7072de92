package daemon

import (
	"context"
	"log/slog"

	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
)

// ShortIndex opens the index (the daemon's, else the local database) for each call and
// closes it at once: a backup may wait a long time for WAL, and holding the badger
// database that long would keep `walkeeper watch` from starting (invariant 5).
type ShortIndex struct {
	Home string
	Log  *slog.Logger
}

func (s ShortIndex) with(fn func(index.Index) error) error {
	idx, _, err := OpenIndex(s.Home, s.Log)
	if err != nil {
		return err
	}
	defer idx.Close()
	return fn(idx)
}

// PutBackup records a backup.
func (s ShortIndex) PutBackup(ctx context.Context, server string, b record.Backup) error {
	return s.with(func(i index.Index) error { return i.PutBackup(ctx, server, b) })
}

// ListBackups lists a server's backups.
func (s ShortIndex) ListBackups(ctx context.Context, server string) (bs []record.Backup, err error) {
	err = s.with(func(i index.Index) error { bs, err = i.ListBackups(ctx, server); return err })
	return bs, err
}
