// Package ingest moves WAL files from a server's incoming/ directory into the archive:
// it watches with fsnotify (plus a start-up and overflow rescan), validates each file,
// compresses it, stores it durably, records it in the index and only then unlinks it.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/bufpool"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// PipelineConfig is everything the pipeline needs to know about one PostgreSQL server.
type PipelineConfig struct {
	Name             string
	IncomingDir      string
	ErrorsDir        string
	Compression      string
	CompressionLevel int
	Workers          int
	// QuietPeriod is how long a file that is not a complete segment must stay unchanged
	// before it is taken as final (writers that write in place give no close event).
	QuietPeriod time.Duration
	// LearnIdentity asks the server for its identity when none is known yet; nil or an
	// error means the first valid segment teaches it.
	LearnIdentity func(ctx context.Context) (record.Identity, error)
}

// Pipeline validates, compresses, stores and indexes the files of one server.
type Pipeline struct {
	srv   PipelineConfig
	store storage.Store
	idx   index.Index
	log   *slog.Logger

	idMu     sync.Mutex
	identity *record.Identity

	// Per-name serialisation: the same name is never processed by two workers at once.
	mu       sync.Mutex
	inflight map[string]bool
	// active counts files being processed, to choose latency or throughput compression.
	active atomic.Int32
	// pub: files published by a rename, final at once (published.go).
	pub published
}

// NewPipeline returns a pipeline for srv; it loads the server's identity if one was
// learned before.
func NewPipeline(srv PipelineConfig, store storage.Store, idx index.Index, log *slog.Logger) (*Pipeline, error) {
	if srv.Workers < 1 {
		srv.Workers = 1
	}
	if srv.QuietPeriod <= 0 {
		srv.QuietPeriod = 2 * time.Second
	}
	if !compress.Valid(srv.Compression) {
		return nil, fmt.Errorf("server %s: unknown compression %q", srv.Name, srv.Compression)
	}
	p := &Pipeline{srv: srv, store: store, idx: idx, log: log.With("server", srv.Name), inflight: map[string]bool{}}
	id, err := archive.LoadIdentity(context.Background(), store, srv.Name)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if err == nil {
		p.identity = &id
	}
	return p, nil
}

// Identity returns what the pipeline enforces, if known.
func (p *Pipeline) Identity() (record.Identity, bool) {
	p.idMu.Lock()
	defer p.idMu.Unlock()
	if p.identity == nil {
		return record.Identity{}, false
	}
	return *p.identity, true
}

// EnsureIdentity asks the server for its identity when none is stored yet.
func (p *Pipeline) EnsureIdentity(ctx context.Context) {
	if _, ok := p.Identity(); ok || p.srv.LearnIdentity == nil {
		return
	}
	id, err := p.srv.LearnIdentity(ctx)
	if err != nil {
		p.log.Warn("cannot ask the server for its identity; the first valid segment will set it", "err", err)
		return
	}
	if err := p.setIdentity(ctx, id); err != nil {
		p.log.Error("store identity", "err", err)
	}
}

func (p *Pipeline) setIdentity(ctx context.Context, id record.Identity) error {
	p.idMu.Lock()
	defer p.idMu.Unlock()
	if p.identity != nil {
		return nil
	}
	if err := archive.SaveIdentity(ctx, p.store, p.srv.Name, id); err != nil {
		return err
	}
	p.identity = &id
	p.log.Info("server identity learned", "system_id", id.SystemID, "wal_segment_size", id.SegSize, "source", id.Source)
	return nil
}

// Result is what happened to one incoming file.
type Result struct {
	Name     string
	Outcome  string // archived, duplicate, quarantined, pending, gone
	Reason   string
	Record   record.WALFile
	Duration time.Duration
	Requeue  time.Duration // for pending: look again after this long
	// Indexed is when the index entry was committed (archived files): from then on the
	// file is in the archive, whatever happens to its copy in incoming/.
	Indexed time.Time
}

// Outcomes.
const (
	Archived    = "archived"
	Duplicate   = "duplicate"
	Quarantined = "quarantined"
	Pending     = "pending"
	Gone        = "gone"
	Busy        = "busy"
)

// rejection is a reason to quarantine a file rather than an operational failure.
type rejection struct{ reason string }

func (r *rejection) Error() string { return r.reason }

func reject(format string, a ...any) error { return &rejection{reason: fmt.Sprintf(format, a...)} }

// Process handles one file of incoming/ by base name. Operational errors (disk full,
// index down) are returned and the file stays in incoming/ to be tried again; bad files
// are quarantined and reported in the Result.
//
// entry is the name in incoming/: a WAL file name, or a later copy of one waiting beside
// an earlier copy ("<name>.wk-dup-<stamp>", see Drop), judged only once every earlier
// copy is gone (archived or quarantined): first come, first archived.
func (p *Pipeline) Process(ctx context.Context, entry string) (Result, error) {
	start := time.Now()
	base, dup := archive.SplitDup(entry)
	res := Result{Name: base}
	// Serialised per WAL name, not per entry: two copies of one name must never be
	// stored at once.
	p.mu.Lock()
	if p.inflight[base] {
		p.mu.Unlock()
		res.Outcome = Busy
		return res, nil
	}
	p.inflight[base] = true
	p.mu.Unlock()
	p.active.Add(1)
	defer p.active.Add(-1)
	defer func() {
		p.mu.Lock()
		delete(p.inflight, base)
		p.mu.Unlock()
		if res.Outcome != Pending && res.Outcome != Busy {
			p.forgetPublished(entry)
		}
		res.Duration = time.Since(start)
	}()

	path := filepath.Join(p.srv.IncomingDir, entry)
	if dup {
		if c := archive.Copies(p.srv.IncomingDir, base); len(c) > 0 && c[0] != entry {
			res.Outcome = Pending
			res.Requeue = 50 * time.Millisecond
			return res, nil
		}
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		res.Outcome = Gone
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("archive %s: %w", base, err)
	}
	err = p.process(ctx, base, path, fi, &res)
	var rj *rejection
	if errors.As(err, &rj) {
		if qerr := p.quarantine(path, base, rj.reason); qerr != nil {
			return res, fmt.Errorf("quarantine %s: %w", base, qerr)
		}
		res.Outcome = Quarantined
		res.Reason = rj.reason
		p.log.Warn("file quarantined", "file", base, "reason", rj.reason)
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("archive %s: %w", base, err)
	}
	return res, nil
}

func (p *Pipeline) process(ctx context.Context, base, path string, fi os.FileInfo, res *Result) error {
	if !fi.Mode().IsRegular() {
		return reject("not a regular file")
	}
	name, err := segments.Parse(base)
	if err != nil {
		return reject("not a WAL file name: %v", err)
	}
	id, known := p.Identity()
	// A segment that is not yet full may still be written in place: wait for it to
	// reach the segment size, or to stay unchanged for the quiet period.
	quiet := time.Since(fi.ModTime()) >= p.srv.QuietPeriod
	switch name.Kind {
	case segments.KindSegment:
		full := known && uint64(fi.Size()) == id.SegSize || !known && segments.ValidSegSize(uint64(fi.Size()))
		if !full && !quiet {
			res.Outcome = Pending
			res.Requeue = p.srv.QuietPeriod - time.Since(fi.ModTime())
			return nil
		}
	default:
		if !quiet && !p.renamedIn(fi) && !p.published(path, fi) {
			res.Outcome = Pending
			res.Requeue = p.srv.QuietPeriod - time.Since(fi.ModTime())
			return nil
		}
	}

	// The size first: memory per file is bounded by what a valid file can be.
	limit := maxFileSize(name.Kind, id, known)
	if fi.Size() > limit {
		return tooLarge(fi.Size(), limit, name.Kind)
	}
	buf := getBuf(fi.Size())
	defer bufs.Put(buf)
	data, err := readInto(path, buf, limit)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			res.Outcome = Gone
			return nil
		}
		if errors.Is(err, fsutil.ErrTooLarge) {
			return tooLarge(limit+1, limit, name.Kind)
		}
		return err
	}
	if err := p.validate(ctx, name, data); err != nil {
		return err
	}
	id, _ = p.Identity()
	// Hash while compressing: the checksum is off the critical path of a lone segment.
	// The result is only used for a duplicate, which is rare, or after compression.
	sumc := make(chan [32]byte, 1)
	go func() { sumc <- sha256.Sum256(data) }()
	var out []byte
	var cerr error
	// Same size class as the input: one kind of buffer circulates in bufs.
	obuf := getBuf(int64(len(data)))
	defer func() { bufs.Put(out) }()
	if p.active.Load() <= 1 {
		// A lone file: spread its compression over all cores for latency.
		out, cerr = compress.EncodeAllParallel(p.srv.Compression, p.srv.CompressionLevel, data, obuf[:0])
	} else {
		out, cerr = compress.EncodeAll(p.srv.Compression, p.srv.CompressionLevel, data, obuf[:0])
	}
	sum := <-sumc
	if cerr != nil {
		return fmt.Errorf("compress: %w", cerr)
	}
	rec := record.WALFile{
		Name:        base,
		Kind:        name.Kind.String(),
		Timeline:    name.Timeline,
		RawSize:     int64(len(data)),
		Compression: p.srv.Compression,
		SHA256:      hex.EncodeToString(sum[:]),
		Source:      record.SourceArchive,
	}
	rec.SegNo, rec.StartLSN = name.Place(id.SegSize)

	// Invariant 2: same name and content is success, other content never overwrites.
	dup, err := p.existing(ctx, base, data, rec.SHA256)
	if err != nil {
		return err
	}
	if dup != nil {
		failpoint("duplicate-before-unlink")
		if err := unlinkSame(path, fi); err != nil {
			return err
		}
		res.Outcome = Duplicate
		res.Record = *dup
		return nil
	}

	failpoint("after-compress")
	rec.Key = archive.WALKey(p.srv.Name, base, p.srv.Compression)
	n, err := p.store.Put(ctx, rec.Key, bytes.NewReader(out))
	if err != nil {
		return err
	}
	failpoint("after-write")
	rec.StoredSize = n
	if st, err := p.store.Stat(ctx, rec.Key); err == nil {
		// The object's own time, so that a rebuild from disk reproduces the record.
		rec.ArrivedAt = st.ModTime.UTC()
	} else {
		rec.ArrivedAt = time.Now().UTC()
	}
	if err := p.idx.PutWAL(ctx, p.srv.Name, rec); err != nil {
		return err
	}
	res.Indexed = time.Now()
	failpoint("after-index")
	if err := unlinkSame(path, fi); err != nil {
		return err
	}
	failpoint("after-unlink")
	res.Outcome = Archived
	res.Record = rec
	return nil
}

// renamedIn reports whether a file was renamed into place after its last write, as
// archive-wal and rsync do: rename(2) updates the inode's ctime but not its mtime, so a
// ctime later than the mtime means the content was final before the file appeared.
// Timestamps are coarse (a clock tick), so a fast writer can still look unrenamed and
// then simply waits out the quiet period.
func (p *Pipeline) renamedIn(fi os.FileInfo) bool {
	if !trustCtime {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec).After(fi.ModTime())
}

// trustCtime enables renamedIn; tests turn it off to prove that the rename event alone
// makes a published file final.
var trustCtime = true

// unlinkSame removes an archived incoming file, unless archive-wal (or the streaming
// receiver) renamed a new file over that name meanwhile: only the file that was read may
// go, and the newcomer is left for its own turn.
func unlinkSame(path string, read os.FileInfo) error {
	now, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !os.SameFile(now, read) {
		// The newcomer's own event queues it again; it is judged as a duplicate then.
		return nil
	}
	// No directory fsync: an unlink lost in a crash brings the file back, and it is
	// then recognised as a duplicate of what is archived.
	return os.Remove(path)
}

// bufs recycles the pipeline's segment-sized buffers: allocating (and faulting in) two
// fresh 16 MiB buffers per segment costs a tenth of the CPU and, on a VM, tens of
// milliseconds on the latency path. Up to 8 buffers of 64 MiB are kept; larger segments
// allocate per file.
var bufs = bufpool.New(8, 64<<20)

// readSlack is the room a buffer keeps past the size it was asked for: readInto needs a
// byte past the end to see EOF without growing (copying) a full buffer.
const readSlack = 4096

func getBuf(size int64) []byte { return bufs.Get(int(size) + readSlack) }

// readInto reads a whole file into buf's storage (growing it if the file grew), and
// fails with fsutil.ErrTooLarge once it has read more than limit bytes.
func readInto(path string, buf []byte, limit int64) ([]byte, error) {
	// O_NOATIME: the first read of a new file would otherwise dirty its inode (relatime)
	// and join a journal transaction. Only the owner may ask for it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOATIME, 0)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return fsutil.ReadLimited(f, buf, limit)
}

// existing returns the archived record when base is already archived with the same
// content, a rejection when it is archived with other content, and nil when it is new.
// A stored object without an index record (a crash between write and index commit) is
// compared and, when equal, indexed now.
func (p *Pipeline) existing(ctx context.Context, base string, data []byte, sum string) (*record.WALFile, error) {
	rec, err := p.idx.GetWAL(ctx, p.srv.Name, base)
	if err == nil && rec.SHA256 == sum {
		return &rec, nil
	}
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		return nil, err
	}
	key, codec, ferr := archive.Find(ctx, p.store, p.srv.Name, base)
	if errors.Is(ferr, storage.ErrNotFound) {
		return nil, nil
	}
	if ferr != nil {
		return nil, ferr
	}
	stored, err := archive.Read(ctx, p.store, key, codec)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(stored, data) {
		return nil, reject("conflict: %s is already archived with different content (archived sha256 %s, %d bytes; this one sha256 %s, %d bytes)",
			base, shaHex(stored), len(stored), sum, len(data))
	}
	st, err := p.store.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	rec = record.WALFile{Name: base, Timeline: 0, RawSize: int64(len(stored)), StoredSize: st.Size, Compression: codec,
		SHA256: sum, ArrivedAt: st.ModTime.UTC(), Source: record.SourceArchive, Key: key}
	if n, perr := segments.Parse(base); perr == nil {
		rec.Kind = n.Kind.String()
		rec.Timeline = n.Timeline
		if id, ok := p.Identity(); ok {
			rec.SegNo, rec.StartLSN = n.Place(id.SegSize)
		}
	}
	if err := p.idx.PutWAL(ctx, p.srv.Name, rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// validate enforces invariant 3, learning the server's identity from the first valid
// segment when it is not known yet.
func (p *Pipeline) validate(ctx context.Context, name segments.Name, data []byte) error {
	switch name.Kind {
	case segments.KindHistory:
		if err := segments.ValidateHistory(name, data); err != nil {
			return reject("%v", err)
		}
		return nil
	case segments.KindBackupLabel:
		if err := segments.ValidateBackupLabel(data); err != nil {
			return reject("%v", err)
		}
		return nil
	}
	id, known := p.Identity()
	if !known {
		if len(data) < 40 {
			return reject("size %d is too small for a WAL segment", len(data))
		}
		h, err := segments.ParseLongHeader(data)
		if err != nil {
			return reject("%v", err)
		}
		if name.Kind == segments.KindSegment && uint64(len(data)) != uint64(h.SegSize) {
			return reject("size %d is not the segment size %d its header names", len(data), h.SegSize)
		}
		exp := segments.Expect{SystemID: h.SystemID, SegSize: uint64(h.SegSize)}
		if err := segments.ValidateSegment(name, int64(len(data)), data, exp); err != nil {
			return reject("%v", err)
		}
		ver, _ := segments.MagicVersion(h.Magic)
		if err := p.setIdentity(ctx, record.Identity{SystemID: h.SystemID, SegSize: uint64(h.SegSize), Magic: h.Magic,
			PGVersion: ver * 10000, Source: "first segment " + name.Raw, LearnedAt: time.Now().UTC()}); err != nil {
			return err
		}
		return nil
	}
	exp := segments.Expect{SystemID: id.SystemID, SegSize: id.SegSize, Magic: id.Magic}
	if err := segments.ValidateSegment(name, int64(len(data)), data, exp); err != nil {
		return reject("%v", err)
	}
	if id.Magic == 0 && len(data) >= 40 {
		// Learned from the server, which does not tell the page magic: the first valid
		// segment completes the identity, after checking it matches the version.
		if h, err := segments.ParseLongHeader(data); err == nil {
			ver, _ := segments.MagicVersion(h.Magic)
			if id.PGVersion != 0 && ver != id.PGVersion/10000 {
				return reject("WAL page magic 0x%04X is PostgreSQL %d, the server runs %d", h.Magic, ver, id.PGVersion/10000)
			}
		}
	}
	return nil
}

// quarantine moves a rejected file to errors/ with a .reason file beside it, so nothing
// is lost and status/check can report it.
func (p *Pipeline) quarantine(path, base, reason string) error {
	if err := fsutil.MkdirAll(p.srv.ErrorsDir, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(p.srv.ErrorsDir, archive.QuarantineName(base, time.Now()))
	line := fmt.Sprintf("%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), base, reason)
	if err := fsutil.WriteFileAtomic(archive.ReasonFile(dst), []byte(line), 0o600); err != nil {
		return err
	}
	return fsutil.RenameDurable(path, dst)
}
