package index

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"
	"sync"

	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// RebuildResult counts what a rebuild found.
type RebuildResult struct {
	WALFiles int      `json:"wal_files"`
	Backups  int      `json:"backups"`
	Skipped  []string `json:"skipped,omitempty"`
}

// Rebuild recreates a server's index records from the archive (invariant 4): every
// object under <server>/wals/ is read back, decompressed and checksummed, and every
// <server>/base/<id>/backup.info is loaded. segSize is the server's WAL segment size
// (from its identity), needed to place segments by LSN. progress, if set, is called
// after each WAL file.
func Rebuild(ctx context.Context, idx Index, store storage.Store, server string, segSize uint64, progress func(done int)) (RebuildResult, error) {
	var res RebuildResult
	if err := idx.DropServer(ctx, server); err != nil {
		return res, fmt.Errorf("rebuild %s: %w", server, err)
	}
	var objs []storage.Info
	if err := store.List(ctx, server+"/wals/", func(i storage.Info) error { objs = append(objs, i); return nil }); err != nil {
		return res, fmt.Errorf("rebuild %s: %w", server, err)
	}

	jobs := make(chan storage.Info)
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
				rec, skip, err := walRecord(ctx, store, o)
				if err == nil && skip == "" {
					rec.SegNo, rec.StartLSN = 0, 0
					if n, perr := segments.Parse(rec.Name); perr == nil && n.Kind != segments.KindHistory && segSize != 0 {
						rec.SegNo = n.SegNo(segSize)
						rec.StartLSN = n.StartLSN(segSize)
					}
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

	var infos []string
	if err := store.List(ctx, server+"/base/", func(i storage.Info) error {
		if path.Base(i.Key) == "backup.info" && strings.Count(strings.TrimPrefix(i.Key, server+"/base/"), "/") == 1 {
			infos = append(infos, i.Key)
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("rebuild %s: %w", server, err)
	}
	for _, k := range infos {
		b, err := readBackupInfo(ctx, store, k)
		if err != nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %v", k, err))
			continue
		}
		if err := idx.PutBackup(ctx, server, b); err != nil {
			return res, fmt.Errorf("rebuild %s: %w", server, err)
		}
		res.Backups++
	}
	return res, nil
}

func readBackupInfo(ctx context.Context, store storage.Store, key string) (catalog.Backup, error) {
	var b catalog.Backup
	r, err := store.Get(ctx, key)
	if err != nil {
		return b, err
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(&b); err != nil {
		return b, fmt.Errorf("parse: %w", err)
	}
	if b.ID == "" {
		return b, fmt.Errorf("no backup id")
	}
	return b, nil
}

func walRecord(ctx context.Context, store storage.Store, o storage.Info) (catalog.WALFile, string, error) {
	codec, name := compress.FromName(path.Base(o.Key))
	n, err := segments.Parse(name)
	if err != nil {
		return catalog.WALFile{}, fmt.Sprintf("%s: not an archived WAL file: %v", o.Key, err), nil
	}
	r, err := store.Get(ctx, o.Key)
	if err != nil {
		return catalog.WALFile{}, "", err
	}
	defer r.Close()
	dr, err := compress.NewReader(codec, r)
	if err != nil {
		return catalog.WALFile{}, fmt.Sprintf("%s: %v", o.Key, err), nil
	}
	defer dr.Close()
	h := sha256.New()
	raw, err := io.Copy(h, dr)
	if err != nil {
		return catalog.WALFile{}, fmt.Sprintf("%s: unreadable: %v", o.Key, err), nil
	}
	return catalog.WALFile{
		Name:        name,
		Kind:        n.Kind.String(),
		Timeline:    n.Timeline,
		RawSize:     raw,
		StoredSize:  o.Size,
		Compression: codec,
		SHA256:      hex.EncodeToString(h.Sum(nil)),
		ArrivedAt:   o.ModTime.UTC(),
		Source:      catalog.SourceRebuild,
		Key:         o.Key,
	}, "", nil
}
