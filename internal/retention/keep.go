package retention

import (
	"context"
	"fmt"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// SetKeep pins (keep=true) or releases a backup: durably in its backup.info first (the
// truth an index rebuild reads), then in the index. Call it under LockServer.
func SetKeep(ctx context.Context, idx index.Index, store storage.Store, server, id string, keep bool) (catalog.Backup, error) {
	info, err := basebackup.LoadInfo(ctx, store, server, id)
	if err != nil {
		return info, err
	}
	if beingDeleted(info) {
		return info, fmt.Errorf("backup %s of %s is being deleted and cannot be pinned (run `walkeeper delete %s %s` to finish)", id, server, server, id)
	}
	if info.Keep != keep {
		info.Keep = keep
		if err := basebackup.SaveInfo(ctx, store, info); err != nil {
			return info, err
		}
	}
	if err := idx.PutBackup(ctx, server, info); err != nil {
		return info, fmt.Errorf("backup %s of %s: %w", id, server, err)
	}
	return info, nil
}
