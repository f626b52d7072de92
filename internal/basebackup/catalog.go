package basebackup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// WALFigures is the archived WAL linked to a backup: every archived file from the
// backup's begin WAL up to the next DONE backup's begin WAL (exclusive), or to the end of
// the archive for the newest. It is what the backup needs to be restored to any point
// before the next one.
type WALFigures struct {
	Count       int   `json:"wal_count"`
	Bytes       int64 `json:"wal_bytes"`
	StoredBytes int64 `json:"wal_stored_bytes"`
}

// WALScanner is the index's range query.
type WALScanner interface {
	ScanWAL(ctx context.Context, server string, r index.WALRange, fn func(record.WALFile) error) error
}

// LinkedWAL computes WALFigures for each backup (keyed by id) with one range query each.
func LinkedWAL(ctx context.Context, idx WALScanner, server string, backups []record.Backup) (map[string]WALFigures, error) {
	sorted := append([]record.Backup(nil), backups...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	out := make(map[string]WALFigures, len(sorted))
	for i, b := range sorted {
		if b.BeginWAL == "" {
			out[b.ID] = WALFigures{}
			continue
		}
		r := index.WALRange{From: b.BeginWAL}
		for _, n := range sorted[i+1:] {
			if n.Done() && n.BeginWAL > b.BeginWAL {
				r.To = n.BeginWAL
				break
			}
		}
		var f WALFigures
		err := idx.ScanWAL(ctx, server, r, func(w record.WALFile) error {
			f.Count++
			f.Bytes += w.RawSize
			f.StoredBytes += w.StoredSize
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("WAL of backup %s: %w", b.ID, err)
		}
		out[b.ID] = f
	}
	return out, nil
}

// Keys lists every stored object of a backup, in the store's lexical order.
func Keys(ctx context.Context, store storage.Store, server, id string) ([]storage.Info, error) {
	var keys []storage.Info
	err := store.List(ctx, archive.BackupPrefix(server, id), func(i storage.Info) error {
		keys = append(keys, i)
		return nil
	})
	return keys, err
}

// Deleter is the part of the index delete writes to.
type Deleter interface {
	PutBackup(ctx context.Context, server string, b record.Backup) error
	DeleteBackup(ctx context.Context, server, id string) error
}

// ErrKept is returned when deleting a backup pinned with `keep`.
var ErrKept = errors.New("backup is pinned with keep")

// Delete removes a backup, crash-safely: backup.info is first rewritten as FAILED
// ("being deleted") so that an interrupted delete never leaves a backup that looks
// usable, then the content goes, then backup.info, and the index record last (a record
// without backup.info is dropped by index rebuild). A kept backup is refused, and so is
// one whose backup is still running (the server's backup lock is held).
func Delete(ctx context.Context, store storage.Store, idx Deleter, serverDir, server string, b record.Backup) error {
	if b.Keep {
		return fmt.Errorf("backup %s of %s: %w: release it first with `walkeeper keep %s %s --release`", b.ID, server, ErrKept, server, b.ID)
	}
	if b.Status == record.StatusStarted || b.Status == record.StatusWaitingWAL {
		lock, err := TryLock(serverDir)
		if err != nil {
			return fmt.Errorf("backup %s of %s is %s and %w; wait for it to end", b.ID, server, b.Status, err)
		}
		defer lock.Unlock()
	}
	info, err := LoadInfo(ctx, store, server, b.ID)
	switch {
	case err == nil:
		if info.Keep {
			return fmt.Errorf("backup %s of %s: %w: release it first with `walkeeper keep %s %s --release`", b.ID, server, ErrKept, server, b.ID)
		}
		b = info
		b.Status = record.StatusFailed
		b.Error = "being deleted (" + time.Now().UTC().Format(time.RFC3339) + "): content incomplete; run `walkeeper delete` again to finish"
		if err := SaveInfo(ctx, store, b); err != nil {
			return err
		}
		if err := idx.PutBackup(ctx, server, b); err != nil {
			return fmt.Errorf("backup %s of %s: index: %w", b.ID, server, err)
		}
	case errors.Is(err, storage.ErrNotFound):
		// Already gone from storage: only content leftovers and the record remain.
	default:
		return err
	}
	keys, err := Keys(ctx, store, server, b.ID)
	if err != nil {
		return fmt.Errorf("backup %s of %s: %w", b.ID, server, err)
	}
	infoKey := archive.BackupInfoKey(server, b.ID)
	var content []string
	for _, k := range keys {
		if k.Key != infoKey {
			content = append(content, k.Key)
		}
	}
	if err := deleteKeys(ctx, store, content); err != nil {
		return fmt.Errorf("backup %s of %s: %w", b.ID, server, err)
	}
	if err := store.Delete(ctx, infoKey); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("backup %s of %s: %w", b.ID, server, err)
	}
	pruneEmptyDirs(store, archive.BackupPrefix(server, b.ID))
	if err := idx.DeleteBackup(ctx, server, b.ID); err != nil && !errors.Is(err, index.ErrNotFound) {
		return fmt.Errorf("backup %s of %s: content deleted but the index record remains: %w (`walkeeper index rebuild %s` drops it)", b.ID, server, err, server)
	}
	return nil
}

func deleteKeys(ctx context.Context, store storage.Store, keys []string) error {
	if bd, ok := store.(storage.BatchDeleter); ok {
		return bd.DeleteMany(ctx, keys)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	ch := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range ch {
				if err := store.Delete(ctx, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	wg.Wait()
	return first
}

// pruneEmptyDirs removes the directories a deleted backup leaves on a local store
// (object stores have none). Only empty directories are removed.
func pruneEmptyDirs(store storage.Store, prefix string) {
	ps, ok := store.(interface{ Path(string) (string, error) })
	if !ok {
		return
	}
	root, err := ps.Path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return
	}
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	// Deepest first.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		_ = os.Remove(d) // fails (harmlessly) on a non-empty directory
	}
	_ = syncParent(root)
}

func syncParent(p string) error {
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
