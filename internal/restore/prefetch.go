package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// The spool's control files. The spool holds only segments decompressed ahead (named
// as in the archive, so a rename hands one to PostgreSQL) and these dot files.
const (
	// "<segment> <prefetch> [<pg_wal dir>]" from get-wal, or "<segment>" alone from the
	// restore_command's shell test (GetWALCommand): what PostgreSQL asked for last.
	wantedFile = ".wanted"
	lockFile   = ".lock" // flock held by the one running prefetcher
	bootFile   = ".boot" // boot id the spool was filled under
)

// PrefetchIdle is how long a prefetcher waits for PostgreSQL's next request before it
// exits; the next get-wal starts a new one. Generous: the restore_command's shell test
// answers for placed segments without checking that a prefetcher still runs, so one
// that left during a slow stretch of replay would cost a synchronous fetch later.
var PrefetchIdle = 30 * time.Second

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// spoolValid reports whether the spool's files can be served. Spooled files are never
// fsynced (they can be fetched again), so after an OS crash a renamed file may have
// lost its content: a spool filled under another boot is emptied instead.
func spoolValid(spool string) bool {
	b, err := os.ReadFile(filepath.Join(spool, bootFile))
	if err == nil && strings.TrimSpace(string(b)) == bootID() {
		return true
	}
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(spool); serr != nil {
			return false
		}
	}
	wipeSpool(spool)
	_, _ = fsutil.WriteAtomicNoSync(filepath.Join(spool, bootFile), strings.NewReader(bootID()+"\n"), 0o600)
	return false
}

func wipeSpool(spool string) {
	ents, _ := os.ReadDir(spool)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") || fsutil.IsTemp(e.Name()) {
			os.Remove(filepath.Join(spool, e.Name()))
		}
	}
}

func prepareSpool(spool string) error {
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(spool, bootFile)); err != nil {
		spoolValid(spool)
	}
	return nil
}

// prefetcherRunning reports whether a prefetcher holds the spool's lock, without
// taking it: a prefetcher starting at that moment would otherwise find the lock taken
// and leave, while this get-wal believed one runs.
func prefetcherRunning(spool string) bool {
	held, err := fsutil.LockHeld(filepath.Join(spool, lockFile))
	return err == nil && held
}

// readWanted reads .wanted; n is -1 when the line names the segment only (written by
// the shell, which rewrites the file in place: a torn read is a name that does not
// parse, ignored, and read again complete at the next poll).
func readWanted(spool string) (name string, n int, pgwal string) {
	b, err := os.ReadFile(filepath.Join(spool, wantedFile))
	if err != nil {
		return "", 0, ""
	}
	f := strings.SplitN(strings.TrimRight(string(b), "\n"), " ", 3)
	if len(f) < 2 {
		return f[0], -1, ""
	}
	n, _ = strconv.Atoi(f[1])
	if len(f) == 3 {
		pgwal = f[2]
	}
	return f[0], n, pgwal
}

// placeInPGWAL hard-links a spooled segment into pg_wal under its own name, with the
// archive status PostgreSQL gives what restore_command fetched (restoredStatus: .done,
// so it is never archived again, or .ready under archive_mode = always), when pg_wal
// has no file of that name.
// get-wal then answers "not in the archive" for it and PostgreSQL reads it from pg_wal,
// as it does any segment restore_command cannot supply: replay skips the durable rename
// (two fsyncs and a journal commit per segment) that every restored file costs. Only a
// pg_wal with an archive_status directory, on the spool's file system, is used.
func placeInPGWAL(spool, pgwal, name string) {
	if pgwal == "" {
		return
	}
	if fi, err := os.Stat(filepath.Join(pgwal, "archive_status")); err != nil || !fi.IsDir() {
		return
	}
	dst := filepath.Join(pgwal, name)
	// The status file comes first: from the moment the link exists, the restore_command's
	// shell test may send PostgreSQL to read the segment from pg_wal, and a segment there
	// without its status would be archived again after a promotion.
	status := filepath.Join(pgwal, "archive_status", name+restoredStatus(pgwal))
	_, statErr := os.Lstat(status)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(status, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		// Unmarked, PostgreSQL would archive the segment again after a promotion:
		// leave it to the plain spool path.
		return
	}
	f.Close()
	if err := os.Link(filepath.Join(spool, name), dst); err != nil && created {
		os.Remove(status)
	}
}

// placed reports whether pg_wal/<name> is the file the prefetcher spooled and linked
// there in this boot (same inode as spool/<name>), so PostgreSQL can read it from pg_wal.
func placed(spool, pgwal, name string) bool {
	a, err := os.Lstat(filepath.Join(spool, name))
	if err != nil || !a.Mode().IsRegular() {
		return false
	}
	b, err := os.Lstat(filepath.Join(pgwal, name))
	return err == nil && os.SameFile(a, b) && a.Size() == b.Size() && a.Size() > 0
}

// PrefetchStats counts a prefetcher's work.
type PrefetchStats struct {
	Fetched int
	Bytes   int64
}

// WALSource is where a prefetcher reads archived segments: the archive's storage on
// this host (StoreSource), or a session to the backup host (get-wal --ssh).
type WALSource interface {
	// SegSize is the archive's wal_segment_size.
	SegSize(ctx context.Context) (uint64, error)
	// Fetch returns archived WAL file name decompressed into buf's memory (buf[:0]),
	// an error wrapping storage.ErrNotFound when it is not archived.
	Fetch(ctx context.Context, name string, buf []byte) ([]byte, error)
}

// StoreSource reads server's archive in store.
type StoreSource struct {
	Store  storage.Store
	Server string
}

// SegSize implements WALSource from the archive's identity.
func (s StoreSource) SegSize(ctx context.Context) (uint64, error) {
	id, err := archive.LoadIdentity(ctx, s.Store, s.Server)
	if err != nil {
		return 0, err
	}
	if !segments.ValidSegSize(id.SegSize) {
		return 0, fmt.Errorf("%s: no valid WAL segment size in the archive identity", s.Server)
	}
	return id.SegSize, nil
}

// Fetch implements WALSource.
func (s StoreSource) Fetch(ctx context.Context, name string, buf []byte) ([]byte, error) {
	key, codec, err := archive.Find(ctx, s.Store, s.Server, name)
	if err != nil {
		return nil, err
	}
	return readArchivedInto(ctx, s.Store, key, codec, buf)
}

// Prefetch is the background prefetcher get-wal starts: while PostgreSQL keeps asking
// (the spool's .wanted file changes), it decompresses the N segments after the last one
// asked for into the spool, nearest first, with jobs workers, and drops spooled
// segments PostgreSQL has gone past. Only one runs per spool (flock); it exits after
// PrefetchIdle without a new request, at the end of the archive's timeline, or when the
// spool disappears (recovery ended).
func Prefetch(ctx context.Context, store storage.Store, server, spool string, jobs int) (PrefetchStats, error) {
	return PrefetchFrom(ctx, spool, jobs, StoreOpener(store, server))
}

// PrefetchFrom is Prefetch reading from the WALSource open gives, opened once the spool's
// lock is held (a session to the backup host costs a connection; a prefetcher that
// finds another running opens none) and closed when the prefetcher leaves.
func PrefetchFrom(ctx context.Context, spool string, jobs int, open func(context.Context) (WALSource, func(), error)) (PrefetchStats, error) {
	var st PrefetchStats
	lockPath := filepath.Join(spool, lockFile)
	lock, err := fsutil.TryLock(lockPath)
	if errors.Is(err, fsutil.ErrLockHeld) {
		return st, nil // another prefetcher serves this spool
	}
	if err != nil {
		return st, fmt.Errorf("prefetch: %w", err)
	}
	defer func() { lock.Unlock() }()
	src, closeSrc, err := open(ctx)
	if err != nil {
		return st, fmt.Errorf("prefetch: %w", err)
	}
	defer closeSrc()
	segSize, err := src.SegSize(ctx)
	if err != nil {
		return st, fmt.Errorf("prefetch: %w", err)
	}
	jobs = max(1, jobs)
	last := ""
	depth, pgwalDir := 0, "" // from get-wal's last full request
	idleSince := time.Now()
	for {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if _, err := os.Stat(spool); err != nil {
			return st, nil
		}
		w, n, pgwal := readWanted(spool)
		if n >= 0 {
			depth, pgwalDir = n, pgwal
		}
		if w != "" && w != last && depth > 0 {
			last = w
			if err := fillSpool(ctx, src, spool, pgwalDir, w, depth, segSize, jobs, &st); err != nil {
				return st, err
			}
			idleSince = time.Now()
			continue
		}
		if time.Since(idleSince) > PrefetchIdle {
			// Give up the lock, then look once more so a request that arrived while a
			// get-wal saw us running is not left without a prefetcher.
			lock.Unlock()
			if w2, _, _ := readWanted(spool); w2 == last {
				return st, nil
			}
			if lock, err = fsutil.TryLock(lockPath); err != nil {
				return st, nil
			}
			idleSince = time.Now()
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeSpoolFile writes a spooled segment through a temporary name and a rename, not
// fsynced: the spool is a cache of the archive, served only under the boot it was
// filled in (spoolValid, and the restore_command's shell test reads the boot id too),
// so a file an OS crash emptied is never handed to PostgreSQL; after the crash,
// get-wal fetches the segment from the archive again. An fsync here was not free for
// the replay: each one flushed the disk's cache while the startup process, evicting
// dirty buffers, waited on fsyncs of its own (perf sched: 2.9 s of waits against 0.7 s
// with the same WAL already in pg_wal, over 87 segments).
func writeSpoolFile(path string, data []byte) error {
	tmp := fsutil.TempName(filepath.Dir(path), filepath.Base(path))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func fillSpool(ctx context.Context, src WALSource, spool, pgwal, wanted string, n int, segSize uint64, jobs int, st *PrefetchStats) error {
	wn, err := segments.Parse(wanted)
	if err != nil || wn.Kind != segments.KindSegment || wn.ValidFor(segSize) != nil {
		return nil
	}
	cur := wn.SegNo(segSize)
	n = min(max(n, 0), 64)
	// Drop what PostgreSQL went past and what lies outside the window (another
	// timeline's probe may have moved it).
	ents, _ := os.ReadDir(spool)
	have := map[string]bool{}
	for _, e := range ents {
		if fsutil.IsTemp(e.Name()) {
			os.Remove(filepath.Join(spool, e.Name()))
			continue
		}
		sn, err := segments.Parse(e.Name())
		if err != nil || sn.Kind != segments.KindSegment {
			continue
		}
		s := sn.SegNo(segSize)
		if s <= cur || s > cur+uint64(n) || sn.Timeline != wn.Timeline {
			// Only the spool's link goes. A copy placed in pg_wal is left to PostgreSQL,
			// never taken back: a get-wal may just have told PostgreSQL to read it
			// there, and a file missing then would end recovery early. PostgreSQL removes
			// it like any other segment (at a restartpoint, or at the end of recovery as
			// one of an abandoned timeline), and it carries the archive status PostgreSQL gives a
			// restored file (restoredStatus).
			os.Remove(filepath.Join(spool, e.Name()))
			continue
		}
		have[e.Name()] = true
	}
	var todo []string
	for i := 1; i <= n; i++ {
		name := segments.SegmentFileName(wn.Timeline, cur+uint64(i), segSize)
		if !have[name] {
			todo = append(todo, name)
		}
	}
	var next, end atomic.Int64
	end.Store(int64(len(todo)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, segSize) // reused: see readArchivedInto
			for {
				i := next.Add(1) - 1
				if i >= end.Load() {
					return
				}
				name := todo[i]
				data, err := src.Fetch(ctx, name, buf)
				if errors.Is(err, storage.ErrNotFound) {
					// End of this timeline in the archive: nothing after it either.
					for {
						e := end.Load()
						if i >= e || end.CompareAndSwap(e, i) {
							break
						}
					}
					return
				}
				if err == nil {
					buf = data
					err = writeSpoolFile(filepath.Join(spool, name), data)
					if err == nil {
						placeInPGWAL(spool, pgwal, name)
						mu.Lock()
						st.Fetched++
						st.Bytes += int64(len(data))
						mu.Unlock()
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					end.Store(0)
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		if _, serr := os.Stat(spool); serr != nil {
			return nil // spool removed: recovery ended
		}
		return fmt.Errorf("prefetch: %w", firstErr)
	}
	return nil
}
