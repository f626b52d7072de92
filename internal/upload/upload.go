// Package upload is the daemon's uploader: it copies a server's archive from the local
// tier to its repository in the background, so that ingest's latency stays the local
// disk's, and it never removes a local copy the repository has not confirmed.
//
// What the repository holds is learnt once per daemon start (one listing, S3's 1,000
// keys per request) and then kept in memory; each archived WAL file is uploaded as soon
// as ingest reports it, and a scan of the local tier (no request to the repository)
// finds finished backups and changed backup.info files. Archived WAL files and backup
// data never change under one name (invariant 2), so a key the repository holds is
// done; backup.info changes (a pin, a status) and is uploaded again when its local copy
// is newer, always after the rest of its backup so that a backup is never complete in
// the repository before all its objects are there.
package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Options configure an Uploader.
type Options struct {
	Server        string
	Local, Remote storage.Store
	Log           *slog.Logger
	// Rescan is how often the local tier is scanned for work no event announced
	// (finished backups, pins); default DefaultRescan.
	Rescan time.Duration
	// LocalWALRetention, when positive, removes a WAL file's local copy once the
	// repository holds it and the local copy is that old.
	LocalWALRetention time.Duration
	// Retry is the first wait after a failed upload (doubled up to 5 minutes;
	// default 1 s).
	Retry time.Duration
	// Jobs is how many objects are uploaded at once (default DefaultJobs): one upload
	// waits on the network for most of its time.
	Jobs int
}

// DefaultJobs is the default Options.Jobs.
const DefaultJobs = 4

// DefaultRescan is the default Options.Rescan.
const DefaultRescan = time.Minute

// Stats is the uploader's state for status and check.
type Stats struct {
	Pending       int       `json:"pending"`
	PendingBytes  int64     `json:"pending_bytes"`
	OldestPending time.Time `json:"oldest_pending,omitzero"` // when the oldest waiting object was written locally
	Uploaded      int64     `json:"uploaded"`                // objects since the daemon started
	UploadedBytes int64     `json:"uploaded_bytes"`
	LocalRemoved  int64     `json:"local_removed"` // local WAL copies removed by local_wal_retention
	Scanned       bool      `json:"scanned"`       // the repository's listing was read
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	// Requests are all the daemon's requests to the repository since it started
	// (uploads, retention, reads), by kind; nil for a repository that is not an object
	// store.
	Requests *storage.RequestCounts `json:"requests,omitempty"`
}

// FromInfo reads an uploader's Stats from the daemon's info (decoded from JSON when it
// came over the socket); nil when there is none.
func FromInfo(v any) *Stats {
	if v == nil {
		return nil
	}
	if s, ok := v.(*Stats); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var s Stats
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	return &s
}

// Uploader copies one server's archive to its repository.
type Uploader struct {
	o      Options
	notify chan string
	// dropped: ingest announced a file the queue had no room for; the next scan walks
	// the WAL too.
	dropped atomic.Bool

	mu      sync.Mutex
	remote  map[string]time.Time // key -> when the repository got it
	pending map[string]storage.Info
	stats   Stats
}

// New returns an Uploader; Run starts it.
func New(o Options) *Uploader {
	if o.Rescan <= 0 {
		o.Rescan = DefaultRescan
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	if o.Jobs <= 0 {
		o.Jobs = DefaultJobs
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Uploader{o: o, notify: make(chan string, 1024), remote: map[string]time.Time{}, pending: map[string]storage.Info{}}
}

// Archived tells the uploader that key was just archived locally. It never blocks
// ingest: when the queue is full the next scan finds the key.
func (u *Uploader) Archived(key string) {
	select {
	case u.notify <- key:
	default:
		u.dropped.Store(true)
	}
}

// Stats returns a snapshot of the uploader's state.
func (u *Uploader) Stats() Stats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.stats
	s.Pending, s.PendingBytes, s.OldestPending = len(u.pending), 0, time.Time{}
	for _, i := range u.pending {
		s.PendingBytes += i.Size
		if s.OldestPending.IsZero() || i.ModTime.Before(s.OldestPending) {
			s.OldestPending = i.ModTime
		}
	}
	return s
}

// Run uploads until ctx ends. Failures are retried with a growing wait; they never
// stop it, and the local archive is never touched by a failure.
func (u *Uploader) Run(ctx context.Context) error {
	wait := u.o.Retry
	for ctx.Err() == nil {
		err := u.listRemote(ctx)
		if err == nil {
			break
		}
		u.fail(err)
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, 5*time.Minute)
	}
	tick := time.NewTicker(u.o.Rescan)
	defer tick.Stop()
	u.dropped.Store(true) // the first scan walks everything
	for {
		if err := u.scan(ctx, u.dropped.Swap(false)); err != nil && ctx.Err() == nil {
			u.dropped.Store(true)
			u.fail(err)
		}
		if err := u.drain(ctx); err != nil && ctx.Err() == nil {
			u.fail(err)
			if !u.waitTaking(ctx, time.After(wait), false) {
				return nil
			}
			wait = min(2*wait, 5*time.Minute)
			continue
		}
		wait = u.o.Retry
		u.removeLocal(ctx)
		if !u.waitTaking(ctx, tick.C, true) {
			return nil
		}
	}
}

// waitTaking queues what ingest announces until `until` fires (true) or ctx ends
// (false). With onFile it returns at the first announced file, to upload it at once;
// without, it goes on queueing through a retry's whole wait, so that nothing announced
// while the repository fails is lost from the queue.
func (u *Uploader) waitTaking(ctx context.Context, until <-chan time.Time, onFile bool) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case key := <-u.notify:
			if i, err := u.o.Local.Stat(ctx, key); err == nil {
				u.mu.Lock()
				if _, done := u.remote[key]; !done {
					u.pending[key] = i
				}
				u.mu.Unlock()
			} else {
				u.dropped.Store(true) // let the next scan find it
			}
			if onFile {
				return true
			}
		case <-until:
			return true
		}
	}
}

func (u *Uploader) fail(err error) {
	u.o.Log.Warn("upload to the repository failed; retrying", "server", u.o.Server, "err", err)
	u.mu.Lock()
	u.stats.LastError, u.stats.LastErrorAt = err.Error(), time.Now().UTC()
	u.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// listRemote learns what the repository holds for the server.
func (u *Uploader) listRemote(ctx context.Context) error {
	got := map[string]time.Time{}
	if err := u.o.Remote.List(ctx, u.o.Server+"/", func(i storage.Info) error {
		got[i.Key] = i.ModTime
		return nil
	}); err != nil {
		return fmt.Errorf("list the repository: %w", err)
	}
	u.mu.Lock()
	u.remote, u.stats.Scanned = got, true
	u.mu.Unlock()
	return nil
}

// scan queues every local object the repository lacks: the identity, the backups
// whose backup.info says DONE (a backup in progress, or failed, is not uploaded) and,
// on the first scan or after ingest announced more files than the queue held, all
// archived WAL (else ingest announces each one: a minute's scan does not walk a
// million WAL files again).
func (u *Uploader) scan(ctx context.Context, withWAL bool) error {
	var infos []storage.Info
	collect := func(i storage.Info) error {
		infos = append(infos, i)
		return nil
	}
	prefix := u.o.Server + "/"
	if !withWAL {
		prefix = archive.BackupsPrefix(u.o.Server)
		if i, err := u.o.Local.Stat(ctx, archive.IdentityKey(u.o.Server)); err == nil {
			infos = append(infos, i)
		}
	}
	if err := u.o.Local.List(ctx, prefix, collect); err != nil {
		return fmt.Errorf("list the local archive: %w", err)
	}
	u.mu.Lock()
	stale := func(i storage.Info) bool {
		at, have := u.remote[i.Key]
		return !have || mutable(i.Key) && i.ModTime.After(at)
	}
	// A backup.info the repository holds as it is here was uploaded last: its backup is
	// complete there. Only the others are read, to learn whether they are DONE.
	var read []storage.Info
	done := map[string]bool{} // backup prefix -> upload it
	for _, i := range infos {
		if path.Base(i.Key) != archiveBackupInfo {
			continue
		}
		if stale(i) {
			read = append(read, i)
		} else {
			done[path.Dir(i.Key)+"/"] = true
		}
	}
	u.mu.Unlock()
	for _, i := range read {
		id := path.Base(path.Dir(i.Key))
		if b, err := basebackup.LoadInfo(ctx, u.o.Local, u.o.Server, id); err == nil && b.Done() {
			done[archive.BackupPrefix(u.o.Server, id)] = true
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, i := range infos {
		if prefix, ok := backupOf(u.o.Server, i.Key); ok && !done[prefix] {
			continue
		}
		if stale(i) {
			u.pending[i.Key] = i
		}
	}
	return nil
}

const archiveBackupInfo = "backup.info"

// mutable keys are rewritten in place; every other key keeps its content for life.
func mutable(key string) bool {
	b := path.Base(key)
	return b == archiveBackupInfo || key == archive.IdentityKey(strings.SplitN(key, "/", 2)[0])
}

// backupOf returns the prefix of the backup key belongs to.
func backupOf(server, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, archive.BackupsPrefix(server))
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	return archive.BackupPrefix(server, id), true
}

// order puts each backup's backup.info after the rest of that backup, and WAL first.
func order(server string, keys []string) {
	wals := archive.WALPrefix(server)
	rank := func(k string) (int, string) {
		if strings.HasPrefix(k, wals) {
			return 0, k
		}
		if path.Base(k) == archiveBackupInfo {
			return 1, path.Dir(k) + "/\xff"
		}
		return 1, k
	}
	sort.Slice(keys, func(a, b int) bool {
		ra, ka := rank(keys[a])
		rb, kb := rank(keys[b])
		if ra != rb {
			return ra < rb
		}
		return ka < kb
	})
}

// drain uploads what is pending, Jobs objects at a time: first everything but the
// backups' backup.info files (WAL first), then those, so that a backup is complete in
// the repository only once all its objects are. It returns at the first failure,
// before any backup.info.
func (u *Uploader) drain(ctx context.Context) error {
	u.mu.Lock()
	keys := make([]string, 0, len(u.pending))
	for k := range u.pending {
		keys = append(keys, k)
	}
	u.mu.Unlock()
	order(u.o.Server, keys)
	split := len(keys)
	for i, k := range keys {
		if path.Base(k) == archiveBackupInfo {
			split = i
			break
		}
	}
	if err := u.uploadAll(ctx, keys[:split]); err != nil {
		return err
	}
	return u.uploadAll(ctx, keys[split:])
}

// uploadAll uploads keys, Jobs at a time, in order of start.
func (u *Uploader) uploadAll(ctx context.Context, keys []string) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range min(u.o.Jobs, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				mu.Lock()
				stop := first != nil
				mu.Unlock()
				if i >= len(keys) || stop || ctx.Err() != nil {
					return
				}
				if err := u.upload(ctx, keys[i]); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// upload copies one pending key and records the outcome.
func (u *Uploader) upload(ctx context.Context, k string) error {
	n, err := u.copy(ctx, k)
	if errors.Is(err, storage.ErrNotFound) {
		// Removed locally meanwhile (retention): nothing to upload.
		u.mu.Lock()
		delete(u.pending, k)
		u.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	u.mu.Lock()
	delete(u.pending, k)
	u.remote[k] = time.Now()
	u.stats.Uploaded++
	u.stats.UploadedBytes += n
	u.mu.Unlock()
	return nil
}

// copy uploads key from the local tier; the repository's Put returns only once the
// object is durable there.
func (u *Uploader) copy(ctx context.Context, key string) (int64, error) {
	rc, err := u.o.Local.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := u.o.Remote.Put(ctx, key, rc)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", key, err)
	}
	if _, err := u.o.Local.Stat(ctx, key); errors.Is(err, storage.ErrNotFound) {
		// Retention removed it while it was uploaded: do not leave an orphan.
		_ = u.o.Remote.Delete(ctx, key)
	}
	return n, nil
}

// removeLocal applies local_wal_retention: a WAL file whose upload the repository
// confirmed, and whose local copy is old enough, is removed locally (get-wal and
// restore then read it from the repository).
func (u *Uploader) removeLocal(ctx context.Context) {
	if u.o.LocalWALRetention <= 0 {
		return
	}
	cutoff := time.Now().Add(-u.o.LocalWALRetention)
	var old []storage.Info
	_ = u.o.Local.List(ctx, archive.WALPrefix(u.o.Server), func(i storage.Info) error {
		if i.ModTime.Before(cutoff) {
			old = append(old, i)
		}
		return nil
	})
	for _, i := range old {
		u.mu.Lock()
		_, uploaded := u.remote[i.Key]
		u.mu.Unlock()
		if !uploaded {
			continue
		}
		// Confirm once with the repository itself before the only other copy goes.
		ri, err := u.o.Remote.Stat(ctx, i.Key)
		if err != nil || ri.Size != i.Size {
			continue
		}
		if err := u.o.Local.Delete(ctx, i.Key); err == nil {
			u.mu.Lock()
			u.stats.LocalRemoved++
			u.mu.Unlock()
		}
	}
}
