package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// walRange deletes (or, in a dry run, counts) the archived files of one range, a batch
// at a time: each batch's storage objects are deleted, then its index records. The
// scan reads the next batch while the current one is deleted (it moves by cursor, so
// it never depends on the deletions), using both cores on large ranges. r's counters
// are what the scan found (on an error they may include a batch read ahead).
func (a *Applier) walRange(ctx context.Context, r *RangeResult, dryRun bool, handled *atomic.Int64) error {
	if dryRun {
		return a.scanRange(ctx, r, func([]string, []string) error { return nil })
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type walBatch struct{ names, keys []string }
	batches := make(chan walBatch, 1)
	var scanErr error
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer close(batches)
		scanErr = a.scanRange(ctx, r, func(names, keys []string) error {
			select {
			case batches <- walBatch{slices.Clone(names), slices.Clone(keys)}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	var err error
	for b := range batches {
		if err != nil {
			continue // drain after a failure
		}
		// Every object of the batch is durably gone before any of its records.
		if err = a.deleteWALObjects(ctx, b.names, b.keys, handled); err != nil {
			cancel()
			continue
		}
		if err = a.Index.DeleteWAL(ctx, a.Server, b.names); err != nil {
			err = fmt.Errorf("retention %s: drop index records %s..%s: %w", a.Server, b.names[0], b.names[len(b.names)-1], err)
			cancel()
			continue
		}
		if a.Progress != nil {
			a.Progress(handled.Load())
		}
	}
	<-scanned
	if err != nil {
		return err
	}
	return scanErr
}

// scanRange calls fn with the names and storage keys of the range's files, up to Batch
// at a time (the slices are reused after fn returns), and counts them in r.
func (a *Applier) scanRange(ctx context.Context, r *RangeResult, fn func(names, keys []string) error) error {
	batch := a.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	to := segments.SegmentFileName(r.Timeline, r.ToSegNo, a.SegSize)
	cursor := r.First
	stop := errors.New("batch full")
	names := make([]string, 0, batch)
	keys := make([]string, 0, batch)
	for {
		names, keys = names[:0], keys[:0]
		var last string
		err := a.Index.ScanWAL(ctx, a.Server, index.WALRange{From: cursor, To: to}, func(f record.WALFile) error {
			last = f.Name
			if f.Kind == segments.KindHistory.String() || !strings.HasPrefix(f.Name, r.First[:8]) {
				return nil // history files are never deleted (and cannot sort here)
			}
			names = append(names, f.Name)
			keys = append(keys, f.Key)
			r.Files++
			if f.Kind == segments.KindSegment.String() {
				r.Segments++
			}
			r.Bytes += f.StoredSize
			r.RawBytes += f.RawSize
			if len(names) >= batch {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			return fmt.Errorf("retention %s: scan %s..%s: %w", a.Server, r.First, r.Last, err)
		}
		if len(names) > 0 {
			if ferr := fn(names, keys); ferr != nil {
				return ferr
			}
		}
		if !errors.Is(err, stop) {
			return nil
		}
		cursor = last + "\x00"
	}
}

// deleteWorkers is how many objects are deleted at once: each Delete is durable on its
// own (a directory fsync for the local store), and concurrent ones share the
// filesystem's journal commits.
const deleteWorkers = 8

// deleteWALObjects removes the objects of one batch; it returns only when every one of
// them is durably gone (or an error stopped it).
func (a *Applier) deleteWALObjects(ctx context.Context, names, keys []string, handled *atomic.Int64) error {
	if bd, ok := a.Store.(storage.BatchDeleter); ok {
		return a.deleteWALBatch(ctx, bd, names, keys, handled)
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for range min(deleteWorkers, len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(names) || ctx.Err() != nil {
					return
				}
				mu.Lock()
				stop := firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				if n := handled.Add(1); a.failAfterFiles > 0 && n > a.failAfterFiles {
					fail(errInjected)
					return
				}
				if err := a.deleteWALObject(ctx, names[i], keys[i]); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// deleteWALBatch is deleteWALObjects on a store that deletes in batches (a
// repository on object storage: a request per thousand keys, not one or two per key).
func (a *Applier) deleteWALBatch(ctx context.Context, bd storage.BatchDeleter, names, keys []string, handled *atomic.Int64) error {
	batch := make([]string, 0, len(names))
	for i, name := range names {
		if n := handled.Add(1); a.failAfterFiles > 0 && n > a.failAfterFiles {
			return errInjected
		}
		key, err := a.walObjectKey(ctx, name, keys[i])
		if err != nil {
			return err
		}
		if key != "" {
			batch = append(batch, key)
		}
	}
	if err := bd.DeleteMany(ctx, batch); err != nil {
		return fmt.Errorf("retention %s: delete %d WAL files: %w", a.Server, len(batch), err)
	}
	return ctx.Err()
}

// walObjectKey is the key of archived file name to delete ("" when it is gone
// already), checked to lie inside the server's archive under the file's own name.
func (a *Applier) walObjectKey(ctx context.Context, name, key string) (string, error) {
	if key == "" {
		k, _, err := archive.Find(ctx, a.Store, a.Server, name)
		if errors.Is(err, storage.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("retention %s: %s: %w", a.Server, name, err)
		}
		key = k
	}
	if !archive.IsWALKeyOf(a.Server, name, key) {
		return "", fmt.Errorf("retention %s: %s: index record points outside the archive (%q): run `walkeeper index rebuild`", a.Server, name, key)
	}
	return key, nil
}

// deleteWALObject removes one archived file's object; one already gone is fine (an
// interrupted run deleted it before dropping its record).
func (a *Applier) deleteWALObject(ctx context.Context, name, key string) error {
	// Only ever delete inside the server's archive, under the file's own name, in its
	// own directory (archive.WALKey, in any codec).
	key, err := a.walObjectKey(ctx, name, key)
	if err != nil || key == "" {
		return err
	}
	if err := a.Store.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("retention %s: delete %s: %w", a.Server, name, err)
	}
	return nil
}
