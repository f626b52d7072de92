package retention

import (
	"context"
	"fmt"
	"io"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// LockServerWait is LockServer waiting at most LockWait for another run.
func LockServerWait(ctx context.Context, serverDir string) (*Lock, error) {
	lctx, cancel := context.WithTimeout(ctx, LockWait)
	defer cancel()
	return LockServer(lctx, serverDir)
}

// Keep pins backup id of server (or, with keep false, releases the pin) under the
// server's retention lock, so that no run in progress deletes what is being pinned.
// Errors name the server.
func Keep(ctx context.Context, idx index.Index, store storage.Store, serverDir, server, id string, keep bool) (record.Backup, error) {
	lock, err := LockServerWait(ctx, serverDir)
	if err != nil {
		return record.Backup{}, err
	}
	defer lock.Unlock()
	info, err := SetKeep(ctx, idx, store, server, id, keep)
	if err != nil {
		return info, fmt.Errorf("%s: %w", server, err)
	}
	return info, nil
}

// WriteKeepText tells a DBA what pinning (or releasing) backup info of server did.
func WriteKeepText(w io.Writer, server string, info record.Backup) {
	if info.Keep {
		fmt.Fprintf(w, "%s: backup %s pinned: retention keeps it and the WAL it needs to reach consistency\n", server, info.ID)
	} else {
		fmt.Fprintf(w, "%s: backup %s released: the retention policy applies to it again\n", server, info.ID)
	}
	if info.Status != record.StatusDone {
		fmt.Fprintf(w, "note: backup %s is %s, not DONE: it cannot be restored\n", info.ID, info.Status)
	}
}

// SetKeep pins (keep=true) or releases a backup: durably in its backup.info first (the
// truth an index rebuild reads), then in the index. Call it under LockServer.
func SetKeep(ctx context.Context, idx index.Index, store storage.Store, server, id string, keep bool) (record.Backup, error) {
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
