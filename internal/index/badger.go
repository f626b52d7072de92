package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// Badger is the local Index on a badger database. Only one process may hold it.
type Badger struct {
	db  *badger.DB
	dir string
}

// ErrLocked is returned by OpenBadger when another process holds the database.
var ErrLocked = errors.New("index is locked by another process")

// OpenBadger opens (creating) the index database in dir with the small-footprint
// profile of LIBRARY-NOTES.md: the index is small and must not cost the backup host
// hundreds of megabytes.
//
// A damaged database (a truncated or corrupted table, a broken manifest) is reported as
// a *DamagedError (errors.Is ErrDamaged) instead of a panic: the tables are checked
// before badger opens them, and a panic during the open is recovered.
func OpenBadger(dir string, logger *slog.Logger) (x *Badger, err error) {
	opts := badger.DefaultOptions(dir).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10).
		WithNumCompactors(2).
		WithCompression(0).
		WithMetricsEnabled(false).
		WithSyncWrites(true).
		WithLogger(nil)
	var bl *badgerLogger
	if logger != nil {
		bl = &badgerLogger{l: logger, holding: true}
		opts = opts.WithLogger(bl)
	}
	// The lock first: the tables of a database another process holds are not ours to
	// read (that process may be rewriting them), and "locked" is the answer then.
	if err := probeLock(dir); err != nil {
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	if err := markedDamaged(dir); err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			x, err = nil, &DamagedError{Dir: dir, Cause: oneLine(fmt.Sprint(p))}
		}
		var de *DamagedError
		if errors.As(err, &de) {
			markDamaged(de)
		}
		bl.release(err == nil)
	}()
	if err := checkTables(dir, opts); err != nil {
		return nil, err
	}
	db, err := badger.Open(opts)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("open index %s: %w", dir, ErrLocked)
		}
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("open index %s: %w", dir, err)
		}
		return nil, &DamagedError{Dir: dir, Cause: oneLine(err.Error())}
	}
	return &Badger{db: db, dir: dir}, nil
}

// badgerLogger hands badger's messages to slog. While the database opens it holds
// them: an open that fails is reported once, as the error (a DamagedError naming the
// cause), not also as badger's own lines on stderr before it, so a command's failure
// stays one line; after a successful open the held messages are logged in order.
type badgerLogger struct {
	l       *slog.Logger
	mu      sync.Mutex
	holding bool
	held    []heldMsg
}

type heldMsg struct {
	level slog.Level
	msg   string
}

func (b *badgerLogger) log(level slog.Level, f string, a ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(f, a...))
	b.mu.Lock()
	if b.holding {
		b.held = append(b.held, heldMsg{level, msg})
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.l.Log(context.Background(), level, msg, "component", "badger")
}

// release ends the hold: the held messages are logged when the open succeeded and
// dropped when it failed (its error carries the cause). A nil logger is a no-op.
func (b *badgerLogger) release(opened bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	held := b.held
	b.holding, b.held = false, nil
	b.mu.Unlock()
	if !opened {
		return
	}
	for _, m := range held {
		b.l.Log(context.Background(), m.level, m.msg, "component", "badger")
	}
}

func (b *badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a...) }
func (b *badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a...) }
func (b *badgerLogger) Infof(string, ...any)        {}
func (b *badgerLogger) Debugf(string, ...any)       {}

func walPrefix(server string) []byte { return []byte("w/" + server + "/") }
func walKey(server, name string) []byte {
	return []byte("w/" + server + "/" + name)
}
func backupPrefix(server string) []byte { return []byte("b/" + server + "/") }
func backupKey(server, id string) []byte {
	return []byte("b/" + server + "/" + id)
}

// view and update are db.View and db.Update with a panic inside badger (a damaged
// block) turned into a DamagedError.
func (x *Badger) view(fn func(*badger.Txn) error) (err error) {
	defer x.recoverRead(&err)
	return x.db.View(fn)
}

func (x *Badger) update(fn func(*badger.Txn) error) (err error) {
	defer x.recoverRead(&err)
	return x.db.Update(fn)
}

// Close implements Index.
func (x *Badger) Close() error { return x.db.Close() }

// PutWAL implements Index.
func (x *Badger) PutWAL(_ context.Context, server string, f record.WALFile) error {
	v := encodeWAL(server, f)
	if err := x.update(func(txn *badger.Txn) error { return txn.Set(walKey(server, f.Name), v) }); err != nil {
		return fmt.Errorf("index put %s/%s: %w", server, f.Name, err)
	}
	return nil
}

// PutWALBatch records many archived files in one write batch (one fsync per flush
// instead of one per file), for bulk loads such as benchmarks and rebuilds.
func (x *Badger) PutWALBatch(_ context.Context, server string, fs []record.WALFile) (err error) {
	defer x.recoverRead(&err)
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, f := range fs {
		if err := wb.Set(walKey(server, f.Name), encodeWAL(server, f)); err != nil {
			return fmt.Errorf("index put %s/%s: %w", server, f.Name, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("index put batch of %s: %w", server, err)
	}
	return nil
}

// GetWAL implements Index.
func (x *Badger) GetWAL(_ context.Context, server, name string) (record.WALFile, error) {
	var f record.WALFile
	err := x.view(func(txn *badger.Txn) error {
		it, err := txn.Get(walKey(server, name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) (err error) { f, err = decodeWAL(server, name, b); return err })
	})
	if err != nil {
		return f, fmt.Errorf("wal %s/%s: %w", server, name, err)
	}
	return f, nil
}

func (x *Badger) get(key []byte, v any) error {
	return x.view(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error { return json.Unmarshal(b, v) })
	})
}

// ScanWAL implements Index.
func (x *Badger) ScanWAL(ctx context.Context, server string, r WALRange, fn func(record.WALFile) error) error {
	prefix := walPrefix(server)
	return x.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		start := append(slices.Clone(prefix), r.From...)
		var stop []byte
		if r.To != "" {
			stop = append(slices.Clone(prefix), r.To...)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			if stop != nil && string(item.Key()) >= string(stop) {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			var f record.WALFile
			name := string(item.Key()[len(prefix):])
			if err := item.Value(func(b []byte) (err error) { f, err = decodeWAL(server, name, b); return err }); err != nil {
				return fmt.Errorf("index record %s: %w", item.Key(), err)
			}
			if err := fn(f); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteWAL implements Index.
func (x *Badger) DeleteWAL(_ context.Context, server string, names []string) (err error) {
	defer x.recoverRead(&err)
	wb := x.db.NewWriteBatch()
	defer wb.Cancel()
	for _, n := range names {
		if err := wb.Delete(walKey(server, n)); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// WALStats implements Index.
func (x *Badger) WALStats(ctx context.Context, server string) (Stats, error) {
	var s Stats
	seen := map[uint32]bool{}
	err := x.ScanWAL(ctx, server, WALRange{}, func(f record.WALFile) error {
		s.Files++
		s.RawBytes += f.RawSize
		s.StoredBytes += f.StoredSize
		if f.Kind == segments.KindSegment.String() {
			s.Segments++
			if s.FirstSegment == "" {
				s.FirstSegment = f.Name
			}
			s.LastSegment = f.Name
		}
		if !seen[f.Timeline] && f.Timeline > 0 {
			seen[f.Timeline] = true
			s.Timelines = append(s.Timelines, f.Timeline)
		}
		if f.ArrivedAt.After(s.LastArrival) {
			s.LastArrival = f.ArrivedAt
			s.LastArrived = f.Name
		}
		return nil
	})
	slices.Sort(s.Timelines)
	return s, err
}

// WALTimelines implements Index with seeks only: per timeline, one forward seek to its
// first key (its .history sorts before its segments) and one reverse seek to its last,
// reading no values, so the cost is independent of the number of archived segments.
func (x *Badger) WALTimelines(ctx context.Context, server string) ([]TimelineSpan, error) {
	prefix := walPrefix(server)
	var out []TimelineSpan
	err := x.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		rit := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false, Reverse: true})
		defer rit.Close()
		pos := slices.Clone(prefix)
		for it.Seek(pos); it.Valid(); it.Seek(pos) {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := string(it.Item().Key()[len(prefix):])
			n, err := segments.Parse(name)
			if err != nil {
				// Not a name the archive writes: step over it.
				pos = append(slices.Clone(it.Item().Key()), 0)
				continue
			}
			span := TimelineSpan{Timeline: n.Timeline}
			tliPrefix := append(slices.Clone(prefix), name[:8]...)
			for ; it.ValidForPrefix(tliPrefix); it.Next() {
				name := string(it.Item().Key()[len(prefix):])
				n, err := segments.Parse(name)
				if err != nil {
					continue
				}
				if n.Kind == segments.KindHistory {
					span.History = true
					continue
				}
				span.MinName = name
				break
			}
			end := append(slices.Clone(tliPrefix), 0xff)
			if span.MinName != "" {
				for rit.Seek(end); rit.ValidForPrefix(tliPrefix); rit.Next() {
					name := string(rit.Item().Key()[len(prefix):])
					if n, err := segments.Parse(name); err == nil && n.Kind != segments.KindHistory {
						span.MaxName = name
						break
					}
				}
			}
			out = append(out, span)
			pos = end
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index timelines of %s: %w", server, err)
	}
	return out, nil
}

// PutBackup implements Index.
func (x *Badger) PutBackup(_ context.Context, server string, b record.Backup) error {
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := x.update(func(txn *badger.Txn) error { return txn.Set(backupKey(server, b.ID), v) }); err != nil {
		return fmt.Errorf("index put backup %s/%s: %w", server, b.ID, err)
	}
	return nil
}

// GetBackup implements Index.
func (x *Badger) GetBackup(_ context.Context, server, id string) (record.Backup, error) {
	var b record.Backup
	if err := x.get(backupKey(server, id), &b); err != nil {
		return b, fmt.Errorf("backup %s/%s: %w", server, id, err)
	}
	return b, nil
}

// ListBackups implements Index. Backup ids are timestamps, so key order is age order.
func (x *Badger) ListBackups(_ context.Context, server string) ([]record.Backup, error) {
	var out []record.Backup
	err := x.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: backupPrefix(server), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var b record.Backup
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &b) }); err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// DeleteBackup implements Index.
func (x *Badger) DeleteBackup(_ context.Context, server, id string) error {
	return x.update(func(txn *badger.Txn) error { return txn.Delete(backupKey(server, id)) })
}

// DropServer implements Index.
func (x *Badger) DropServer(_ context.Context, server string) (err error) {
	defer x.recoverRead(&err)
	return x.db.DropPrefix(walPrefix(server), backupPrefix(server))
}
