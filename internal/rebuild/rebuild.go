// Package rebuild recreates a server's index records from the archive (invariant 4:
// the index is derived). It sits above index, basebackup and archive, so that the
// index stays a low layer that knows nothing of the backup format.
package rebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Result counts what a rebuild found.
type Result struct {
	WALFiles int      `json:"wal_files"`
	Backups  int      `json:"backups"`
	Skipped  []string `json:"skipped,omitempty"`
}

// WriteText is the result as `index rebuild` prints it for a DBA.
func (res Result) WriteText(w io.Writer, server string) {
	fmt.Fprintf(w, "%s: index rebuilt: %d WAL files, %d backups\n", server, res.WALFiles, res.Backups)
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "  skipped %s\n", s)
	}
}

// Server recreates server's index records from the archive: every object under its
// wals/ is read back, decompressed and checksummed, and every backup's backup.info is
// loaded (basebackup.LoadInfo). segSize is the server's WAL segment size (from its
// identity, archive.SegSize), needed to place segments by LSN. progress, if set, is
// called after each WAL file.
func Server(ctx context.Context, idx index.Index, store storage.Store, server string, segSize uint64, progress func(done int)) (Result, error) {
	var res Result
	if err := idx.DropServer(ctx, server); err != nil {
		return res, fmt.Errorf("rebuild %s: %w", server, err)
	}
	type object struct {
		info storage.Info
		key  archive.Key
		err  error
	}
	var objs []object
	if err := archive.ListWAL(ctx, store, server, func(i storage.Info, k archive.Key, err error) error {
		objs = append(objs, object{i, k, err})
		return nil
	}); err != nil {
		return res, fmt.Errorf("rebuild %s: %w", server, err)
	}

	jobs := make(chan object)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		done     int
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range jobs {
				var rec record.WALFile
				skip, err := "", error(nil)
				if o.err != nil {
					skip = o.err.Error()
				} else {
					rec, skip, err = walRecord(ctx, store, o.info, o.key)
				}
				if err == nil && skip == "" {
					rec.SegNo, rec.StartLSN = o.key.WAL.Place(segSize)
					err = idx.PutWAL(ctx, server, rec)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if skip != "" {
					res.Skipped = append(res.Skipped, skip)
				} else if err == nil {
					res.WALFiles++
				}
				done++
				if progress != nil {
					progress(done)
				}
				mu.Unlock()
			}
		}()
	}
	for _, o := range objs {
		jobs <- o
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return res, fmt.Errorf("rebuild %s: %w", server, firstErr)
	}

	ids, err := archive.ListBackupIDs(ctx, store, server)
	if err != nil {
		return res, fmt.Errorf("rebuild %s: %w", server, err)
	}
	for _, id := range ids {
		b, err := basebackup.LoadInfo(ctx, store, server, id)
		if err != nil {
			res.Skipped = append(res.Skipped, err.Error())
			continue
		}
		if err := idx.PutBackup(ctx, server, b); err != nil {
			return res, fmt.Errorf("rebuild %s: %w", server, err)
		}
		res.Backups++
	}
	return res, nil
}

// walRecord reads one archived object back into its index record (without its
// position, which needs the segment size). An object that cannot be decompressed is
// skipped with the reason; only a storage failure is an error.
func walRecord(ctx context.Context, store storage.Store, o storage.Info, k archive.Key) (record.WALFile, string, error) {
	r, err := store.Get(ctx, o.Key)
	if err != nil {
		return record.WALFile{}, "", err
	}
	defer r.Close()
	dr, err := compress.NewReader(k.Codec, r)
	if err != nil {
		return record.WALFile{}, fmt.Sprintf("%s: %v", o.Key, err), nil
	}
	defer dr.Close()
	h := sha256.New()
	raw, err := io.Copy(h, dr)
	if err != nil {
		return record.WALFile{}, fmt.Sprintf("%s: unreadable: %v", o.Key, err), nil
	}
	return record.WALFile{
		Name:        k.Name,
		Kind:        k.WAL.Kind.String(),
		Timeline:    k.WAL.Timeline,
		RawSize:     raw,
		StoredSize:  o.Size,
		Compression: k.Codec,
		SHA256:      hex.EncodeToString(h.Sum(nil)),
		ArrivedAt:   o.ModTime.UTC(),
		Source:      record.SourceRebuild,
		Key:         o.Key,
	}, "", nil
}
