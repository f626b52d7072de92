package retention

import (
	"context"
	"errors"
	"fmt"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// ErrBelowRedundancy is CheckDelete's refusal.
var ErrBelowRedundancy = errors.New("below minimum_redundancy")

// CheckDelete says whether deleting backup id by hand keeps minimum_redundancy: a DONE
// backup may go only while at least minRedundancy other DONE backups remain (the
// rule retention keeps, invariant 6). Backups that are not DONE never count, so
// deleting them is always allowed here. force skips the rule.
func CheckDelete(server string, backups []record.Backup, id string, minRedundancy int, force bool) error {
	var target *record.Backup
	done := 0
	for i := range backups {
		if backups[i].ID == id {
			target = &backups[i]
		}
		if backups[i].Done() {
			done++
		}
	}
	if target == nil {
		return fmt.Errorf("backup %s of %s: %w", id, server, index.ErrNotFound)
	}
	if force || !target.Done() || done-1 >= minRedundancy {
		return nil
	}
	return fmt.Errorf("backup %s of %s: deleting it would leave %d DONE backup(s), %w %d: take a new backup first, or give --force", id, server, done-1, ErrBelowRedundancy, minRedundancy)
}

// DeleteOptions is one `walkeeper delete`.
type DeleteOptions struct {
	Index             index.Index
	Store             storage.Store
	Server            string
	ServerDir         string // <home>/<server>: the retention and backup locks
	ID                string
	MinimumRedundancy int
	Force             bool // allow going below minimum_redundancy (never past a keep pin)
}

// DeleteBackup deletes one backup by hand under the server's retention lock (taken
// within ctx's deadline), so that it never interleaves with a retention run or a
// `keep`: the backup's index record is read again once the lock is held and CheckDelete decides on
// what is true then.
func DeleteBackup(ctx context.Context, lockCtx context.Context, o DeleteOptions) (record.Backup, error) {
	lock, err := LockServer(lockCtx, o.ServerDir)
	if err != nil {
		return record.Backup{}, err
	}
	defer lock.Unlock()
	bs, err := o.Index.ListBackups(ctx, o.Server)
	if err != nil {
		return record.Backup{}, err
	}
	if err := CheckDelete(o.Server, bs, o.ID, o.MinimumRedundancy, o.Force); err != nil {
		return record.Backup{}, err
	}
	var b record.Backup
	for _, x := range bs {
		if x.ID == o.ID {
			b = x
		}
	}
	return b, basebackup.Delete(ctx, o.Store, o.Index, o.ServerDir, o.Server, b)
}
