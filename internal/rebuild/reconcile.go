package rebuild

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Diff counts what Reconcile found the index to lack or hold wrongly.
type Diff struct {
	// WALAdded: archived objects the index had no record of (or a record of another
	// object or size), now recorded.
	WALAdded int
	// BackupsAdded: backups whose backup.info the index did not hold, or held
	// otherwise, now recorded.
	BackupsAdded int
	Skipped      []string
}

// Empty reports whether the index matched the archive.
func (d Diff) Empty() bool { return d.WALAdded == 0 && d.BackupsAdded == 0 }

// Reconcile makes server's index records match the archive without rebuilding what
// already matches: the index is derived (invariant 4), and damage that badger cannot see
// (a truncated or corrupted memtable log after a crash, which badger replays up to the
// damage and silently drops the rest) loses records without any error. Every archived
// WAL object is listed and compared with its record by key and stored size; only
// objects without a matching record are read back (as Server reads them). Every
// backup.info is compared with its record and recorded again when it differs. Nothing
// is removed: a record whose object is gone is evidence of a loss for verify and check
// to report (or what an interrupted retention run leaves for the next to finish), and
// a backup record without a backup.info is an interrupted deletion retention finishes.
func Reconcile(ctx context.Context, idx index.Index, store storage.Store, server string, segSize uint64) (Diff, error) {
	var d Diff
	have := map[string]record.WALFile{}
	if err := idx.ScanWAL(ctx, server, index.WALRange{}, func(f record.WALFile) error {
		have[f.Name] = f
		return nil
	}); err != nil {
		return d, fmt.Errorf("reconcile %s: %w", server, err)
	}
	var missing []object
	if err := archive.ListWAL(ctx, store, server, func(i storage.Info, k archive.Key, err error) error {
		if err != nil {
			return nil // not a WAL object (Server skips it too)
		}
		if r, ok := have[k.Name]; ok && r.Key == i.Key && r.StoredSize == i.Size {
			return nil
		}
		missing = append(missing, object{i, k})
		return nil
	}); err != nil {
		return d, fmt.Errorf("reconcile %s: %w", server, err)
	}
	if len(missing) > 0 && segSize == 0 {
		return d, fmt.Errorf("reconcile %s: %d archived files are not indexed, and the segment size is not known", server, len(missing))
	}
	for _, o := range missing {
		rec, skip, err := walRecord(ctx, store, o.info, o.key)
		if err != nil {
			return d, fmt.Errorf("reconcile %s: %w", server, err)
		}
		if skip != "" {
			d.Skipped = append(d.Skipped, skip)
			continue
		}
		rec.SegNo, rec.StartLSN = o.key.WAL.Place(segSize)
		if err := idx.PutWAL(ctx, server, rec); err != nil {
			return d, fmt.Errorf("reconcile %s: %w", server, err)
		}
		d.WALAdded++
	}
	ids, err := archive.ListBackupIDs(ctx, store, server)
	if err != nil {
		return d, fmt.Errorf("reconcile %s: %w", server, err)
	}
	for _, id := range ids {
		b, err := basebackup.LoadInfo(ctx, store, server, id)
		if err != nil {
			d.Skipped = append(d.Skipped, err.Error())
			continue
		}
		cur, err := idx.GetBackup(ctx, server, id)
		if err == nil && reflect.DeepEqual(cur, b) {
			continue
		}
		if err != nil && !errors.Is(err, index.ErrNotFound) {
			return d, fmt.Errorf("reconcile %s: %w", server, err)
		}
		if err := idx.PutBackup(ctx, server, b); err != nil {
			return d, fmt.Errorf("reconcile %s: %w", server, err)
		}
		d.BackupsAdded++
	}
	return d, nil
}

type object struct {
	info storage.Info
	key  archive.Key
}
