package basebackup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/bufpool"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// chunkSize is how much of a file one compression job takes: large files (relation
// segments of up to 1 GiB) are split so every core works on them; the chunks are
// independent frames concatenated into the file's one object.
const chunkSize = 4 << 20

// Files up to smallFile bytes are stored in bundles: objects of up to about bundleSize
// raw bytes holding many files, compressed as one zstd frame whose window spans the
// whole bundle ("solid"), each file at a recorded offset of the decompressed bundle. A
// data directory is mostly small catalog files, nearly the same in every database
// (template0, template1, postgres...): a window that sees them all stores the catalogs
// about three times smaller than per-file frames (a fresh cluster's 17 MB of small files:
// 1.5 MB per file, 0.5 MB solid), and bundling saves hundreds of durable writes. Reading
// one file decodes its bundle; restore and verify read by bundle (PlanReads), so each
// is decoded once.
const (
	smallFile  = 256 << 10
	bundleSize = 32 << 20
)

// streamResult is what BASE_BACKUP reported and what was stored.
type streamResult struct {
	startLSN, endLSN segments.LSN
	startTLI, endTLI uint32
	entries          []*Entry
	objects          []StoredObject
	manifest         []byte
	tsLocations      map[uint32]string // from the tablespace result set and 'n' messages
	size, stored     int64
	files            int
}

// streamOptions configures one BASE_BACKUP transfer.
type streamOptions struct {
	store          storage.Store
	server, id     string
	label          string
	codec          string
	level          int
	jobs           int
	writers        int
	bandwidthLimit int64
	opaqueNames    bool
	progress       func(total int64) func(done int64)
	onStart        func(startLSN segments.LSN, tli uint32) error
}

// baseBackupSQL is the BASE_BACKUP command walkeeper sends to a server of the given
// major: the option list of 15 and later, the old keyword syntax before (13 and 14 reject
// the list; 15 and later the keywords). No TABLESPACE_MAP: the pg_tblspc links come
// through as symlinks, so a relocated restore verifies cleanly. No WAL: walkeeper takes
// the WAL from its own archive. No wait (WAIT false, NOWAIT): walkeeper waits for the
// archive itself, with a timeout and a cause.
func baseBackupSQL(label string, major int) string {
	q := strings.ReplaceAll(label, "'", "''")
	if major < 15 {
		return fmt.Sprintf("BASE_BACKUP LABEL '%s' PROGRESS FAST NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'", q)
	}
	return fmt.Sprintf("BASE_BACKUP (LABEL '%s', PROGRESS, CHECKPOINT 'fast', WAIT false, WAL false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')", q)
}

// chunk is one compression job and its result. A bundle chunk has members instead of
// raw: each member is compressed alone and its offset and length recorded in its entry.
type chunk struct {
	raw     []byte
	out     []byte
	err     error
	done    chan struct{}
	members []*Entry
	raws    [][]byte
	// crc is the CRC-32C of a large file's chunk, of rawLen bytes (sums.go).
	crc    uint32
	rawLen int64
}

// fileJob is one file being stored: its chunks arrive in order on chunks.
type fileJob struct {
	entry  *Entry
	chunks chan *chunk
	bundle bool // entry names a bundle, not a file: its members carry their own sums
}

// chunkBufs holds large files' chunk buffers, and bundleBufs the buffers small files are
// read into, back to back, so a bundle costs no allocation and no copy per member (a
// schema of thousands of tables is tens of thousands of small files). Not sync.Pools:
// every GC empties those, and a backup makes many, so most buffers were fresh memory
// whose page faults showed as a third of the copy out of the stream (profiled on a
// schema of 3,000 tables). The bounds keep what a daemon retains to ~200 MiB.
var (
	chunkBufs  = bufpool.New(16, chunkSize)
	bundleBufs = bufpool.New(4, bundleSize+smallFile)
)

// pipeline compresses and stores the files of the tar streams.
type pipeline struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	o      streamOptions
	work   chan *chunk
	files  chan *fileJob
	wg     sync.WaitGroup

	mu      sync.Mutex
	entries []*Entry
	stored  int64

	// The open bundle; only the goroutine reading the current archive touches it.
	bundle    *chunk
	bundleRaw int
	bundles   int
	objects   int // files stored as objects of their own, for opaque names

	stores []StoredObject // every object stored, under mu

	sorted chan struct{} // closed once entries are in order (archivesEnded)
}

func newPipeline(ctx context.Context, o streamOptions) *pipeline {
	ctx, cancel := context.WithCancelCause(ctx)
	p := &pipeline{ctx: ctx, cancel: cancel, o: o,
		work:  make(chan *chunk, 2*o.jobs),
		files: make(chan *fileJob, o.writers)}
	for range o.jobs {
		p.wg.Add(1)
		go p.compressor()
	}
	for range o.writers {
		p.wg.Add(1)
		go p.writer()
	}
	return p
}

func (p *pipeline) fail(err error) { p.cancel(err) }

// err is the first failure, if any.
func (p *pipeline) err() error {
	if p.ctx.Err() == nil {
		return nil
	}
	return context.Cause(p.ctx)
}

func (p *pipeline) compressor() {
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case c, ok := <-p.work:
			if !ok {
				return
			}
			if c.members != nil {
				compressBundle(c, p.o.codec, p.o.level)
			} else {
				c.crc, c.rawLen = crc32.Checksum(c.raw, castagnoli), int64(len(c.raw))
				c.out, c.err = compress.EncodeAll(p.o.codec, p.o.level, c.raw, nil)
				releaseRaw(c)
			}
			close(c.done)
		}
	}
}

// compressBundle compresses a bundle's members as one solid frame and records where
// each one lies in the decompressed bundle.
func compressBundle(c *chunk, codec string, level int) {
	if c.raws == nil {
		// Members were read straight into c.raw at their offsets (addToBundle).
		for _, e := range c.members {
			e.Sum = ManifestCRC32C(crc32.Checksum(c.raw[e.Offset:e.Offset+e.Size], castagnoli))
		}
		c.out, c.err = compress.EncodeSolid(codec, level, c.raw)
		if cap(c.raw) == bundleSize+smallFile {
			bundleBufs.Put(c.raw)
		}
		c.raw = nil
		return
	}
	total := 0
	for _, r := range c.raws {
		total += len(r)
	}
	buf := make([]byte, 0, total)
	for i, e := range c.members {
		e.Solid, e.Bundle = true, false
		e.Offset, e.StoredSize = int64(len(buf)), 0
		e.Sum = ManifestCRC32C(crc32.Checksum(c.raws[i], castagnoli))
		buf = append(buf, c.raws[i]...)
	}
	c.raws = nil
	c.out, c.err = compress.EncodeSolid(codec, level, buf)
}

// chunkReader yields a file's compressed chunks in order, for storage.Put, summing
// what it yields (the stored object) and joining the chunks' CRCs (the file).
type chunkReader struct {
	ctx    context.Context
	chunks chan *chunk
	cur    []byte
	curC   *chunk
	stored *xxhash.Digest
	crc    uint32
}

func (r *chunkReader) Read(b []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.curC != nil {
			releaseChunk(r.curC)
			r.curC = nil
		}
		var c *chunk
		var ok bool
		select {
		case <-r.ctx.Done():
			return 0, context.Cause(r.ctx)
		case c, ok = <-r.chunks:
		}
		if !ok {
			return 0, io.EOF
		}
		select {
		case <-r.ctx.Done():
			return 0, context.Cause(r.ctx)
		case <-c.done:
		}
		if c.err != nil {
			return 0, c.err
		}
		r.cur, r.curC = c.out, c
		r.crc = crc32cCombine(r.crc, c.crc, c.rawLen)
	}
	n := copy(b, r.cur)
	r.stored.Write(b[:n])
	r.cur = r.cur[n:]
	return n, nil
}

// releaseRaw returns a compressed chunk's input buffer to the pool.
func releaseRaw(c *chunk) {
	if cap(c.raw) == chunkSize {
		chunkBufs.Put(c.raw)
	}
	c.raw = nil
}

func releaseChunk(c *chunk) { c.out = nil }

func (p *pipeline) writer() {
	defer p.wg.Done()
	for {
		var job *fileJob
		var ok bool
		select {
		case <-p.ctx.Done():
			return
		case job, ok = <-p.files:
		}
		if !ok {
			return
		}
		r := &chunkReader{ctx: p.ctx, chunks: job.chunks, stored: xxhash.New()}
		n, err := p.o.store.Put(p.ctx, job.entry.Key, r)
		if r.curC != nil {
			releaseChunk(r.curC)
		}
		if err != nil {
			p.fail(fmt.Errorf("store %s: %w", job.entry.Path, err))
			return
		}
		p.mu.Lock()
		job.entry.StoredSize = n
		if !job.bundle {
			job.entry.Sum = ManifestCRC32C(r.crc)
		}
		p.stored += n
		p.stores = append(p.stores, StoredObject{Key: job.entry.Key, Size: n, XXH64: XXH64(r.stored)})
		p.mu.Unlock()
	}
}

// bundleMember places small file e in the open bundle (opening one if need be) and
// returns the bytes its content goes to; memberAdded follows once they are filled.
func (p *pipeline) bundleMember(e *Entry) []byte {
	if p.bundle == nil {
		p.bundles++
		p.bundle = &chunk{done: make(chan struct{}), raw: bundleBufs.Get(bundleSize + smallFile)}
	}
	c := p.bundle
	start := len(c.raw)
	// The open bundle holds less than bundleSize and a member at most smallFile: the
	// buffer's capacity always has room.
	c.raw = c.raw[:start+int(e.Size)]
	e.Solid, e.Bundle, e.Offset, e.StoredSize = true, false, int64(start), 0
	e.Key = archive.BackupDataPrefix(p.o.server, p.o.id) + fmt.Sprintf("bundles/%06d", p.bundles) + compress.Suffix(p.o.codec)
	c.members = append(c.members, e)
	p.bundleRaw = len(c.raw)
	return c.raw[start:]
}

// memberAdded queues the open bundle once it is full.
func (p *pipeline) memberAdded() error {
	if p.bundleRaw >= bundleSize {
		return p.flushBundle()
	}
	return nil
}

// archivesEnded is called once the last archive has ended (the manifest follows): the
// open bundle is compressed, and the entries sorted, while the manifest streams. No
// entry is added any more, and the order depends on paths alone.
func (p *pipeline) archivesEnded() error {
	if p.sorted != nil {
		return nil
	}
	if err := p.flushBundle(); err != nil {
		return err
	}
	p.sorted = make(chan struct{})
	go func() {
		defer close(p.sorted)
		slices.SortFunc(p.entries, compareEntries)
	}()
	return nil
}

// flushBundle queues the open bundle for compression and storage.
func (p *pipeline) flushBundle() error {
	c := p.bundle
	if c == nil {
		return nil
	}
	p.bundle, p.bundleRaw = nil, 0
	job := &fileJob{entry: &Entry{Path: c.members[0].Key, Key: c.members[0].Key}, chunks: make(chan *chunk, 1), bundle: true}
	select {
	case <-p.ctx.Done():
		return context.Cause(p.ctx)
	case p.files <- job:
	}
	defer close(job.chunks)
	select {
	case <-p.ctx.Done():
		return context.Cause(p.ctx)
	case p.work <- c:
	}
	job.chunks <- c // buffered: never blocks
	return nil
}

// startFile queues large file e for storage; its chunks follow (queueChunk), then the
// caller closes the job's chunks.
func (p *pipeline) startFile(e *Entry) (*fileJob, error) {
	job := &fileJob{entry: e, chunks: make(chan *chunk, 4)}
	select {
	case <-p.ctx.Done():
		return nil, context.Cause(p.ctx)
	case p.files <- job:
	}
	return job, nil
}

// queueChunk queues the next chunk of job's file (raw, from chunkBufs) for compression.
func (p *pipeline) queueChunk(job *fileJob, raw []byte) error {
	c := &chunk{raw: raw, done: make(chan struct{})}
	select {
	case <-p.ctx.Done():
		chunkBufs.Put(raw)
		return context.Cause(p.ctx)
	case p.work <- c:
	}
	select {
	case <-p.ctx.Done():
		return context.Cause(p.ctx)
	case job.chunks <- c:
	}
	return nil
}

// finish waits for every queued file to be stored and releases the pipeline. The
// caller has stopped queueing: the tar goroutine has returned.
func (p *pipeline) finish() error {
	close(p.files)
	// Compressors drain the chunks already queued before they see the close.
	close(p.work)
	p.wg.Wait()
	err := p.err()
	p.cancel(nil)
	return err
}

// throttle limits the stream to a byte rate.
type throttle struct {
	limit int64
	start time.Time
	n     int64
}

func (t *throttle) wait(ctx context.Context, n int) error {
	if t.limit <= 0 {
		return nil
	}
	if t.start.IsZero() {
		t.start = time.Now()
	}
	t.n += int64(n)
	want := t.start.Add(time.Duration(float64(t.n) / float64(t.limit) * float64(time.Second)))
	if d := time.Until(want); d > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return nil
}

// runBaseBackup sends BASE_BACKUP on a replication connection and stores the stream.
//
// Two stream layouts, chosen from the server's major:
//   - 15 and later: ONE COPY OUT for the whole backup, its CopyData typed by a first byte:
//     'n' new archive (name, NUL, tablespace path), 'd' data of the current archive,
//     'p' progress, 'm' the manifest starts (its bytes follow as 'd'). Any other type
//     fails the backup: data must never be skipped silently.
//   - 13 and 14: one COPY OUT of plain tar bytes per tablespace, in the order of the
//     tablespace result set (base last), then one more COPY OUT holding the manifest.
func runBaseBackup(ctx context.Context, conn *pgconn.PgConn, o streamOptions) (*streamResult, error) {
	res := &streamResult{tsLocations: map[uint32]string{}}
	major, err := pgutil.ServerMajor(conn)
	if err != nil {
		return nil, fmt.Errorf("BASE_BACKUP: the server's version: %w", err)
	}
	if err := pgutil.CheckMajor(major); err != nil {
		return nil, err
	}
	legacy := major < 15
	conn.Frontend().SendQuery(&pgproto3.Query{String: baseBackupSQL(o.label, major)})
	if err := conn.Frontend().Flush(); err != nil {
		return nil, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	p := newPipeline(ctx, o)
	finished := false
	var (
		resultSet  int // 0 start position, 1 tablespaces, 2 end position
		columns    []string
		tarW       *tarStream
		inManifest bool
		manifest   bytes.Buffer
		total      int64
		progress   func(int64)
		th         = throttle{limit: o.bandwidthLimit}
		tsOrder    []uint32 // legacy: the archives' tablespaces in stream order (0 = base)
		copies     int      // legacy: COPY OUT streams begun
		done       int64    // legacy: tar bytes received, for progress
	)
	defer func() {
		if finished {
			return
		}
		p.fail(errors.New("backup stream aborted"))
		if tarW != nil {
			tarW.abort()
		}
		_ = p.finish()
	}()
	endArchive := func() error {
		if tarW == nil {
			return nil
		}
		err := tarW.Close()
		if err != nil {
			tarW.abort()
		}
		tarW = nil
		return err
	}
	startArchive := func(oid uint32) { tarW = newTarStream(p, oid) }
	writeTar := func(b []byte) error {
		if tarW == nil {
			return fmt.Errorf("BASE_BACKUP: data before any archive")
		}
		if err := tarW.Write(b); err != nil {
			if perr := p.err(); perr != nil {
				return perr
			}
			return err
		}
		return nil
	}
	// One watch of the context for the whole stream: given a context that can be
	// cancelled, pgconn registers and removes a callback on it for every message, and a
	// schema of 37,000 files streams over 100,000 of them. Cancelling sets a deadline in
	// the past, which ends the read in progress.
	stopWatch := context.AfterFunc(p.ctx, func() { _ = conn.Conn().SetDeadline(time.Now()) })
	defer stopWatch()
	for {
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if perr := p.err(); perr != nil {
				return nil, perr
			}
			return nil, fmt.Errorf("BASE_BACKUP stream: connection to the server lost: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			columns = columns[:0]
			for _, f := range m.Fields {
				columns = append(columns, string(f.Name))
			}
		case *pgproto3.DataRow:
			if len(columns) == 2 && columns[0] == "recptr" {
				lsn, err := segments.ParseLSN(string(m.Values[0]))
				if err != nil {
					return nil, fmt.Errorf("BASE_BACKUP position %q: %w", m.Values[0], err)
				}
				tli, err := strconv.ParseUint(string(m.Values[1]), 10, 32)
				if err != nil {
					return nil, fmt.Errorf("BASE_BACKUP timeline %q: %w", m.Values[1], err)
				}
				if resultSet == 0 {
					res.startLSN, res.startTLI = lsn, uint32(tli)
					if o.onStart != nil {
						if err := o.onStart(lsn, uint32(tli)); err != nil {
							return nil, err
						}
					}
				} else {
					res.endLSN, res.endTLI = lsn, uint32(tli)
				}
			} else if len(columns) == 3 && columns[0] == "spcoid" {
				var oid uint32
				if m.Values[0] != nil {
					n, err := strconv.ParseUint(string(m.Values[0]), 10, 32)
					if err != nil || n == 0 {
						return nil, fmt.Errorf("BASE_BACKUP: tablespace oid %q: not a tablespace oid", m.Values[0])
					}
					oid = uint32(n)
					res.tsLocations[oid] = string(m.Values[1])
				}
				tsOrder = append(tsOrder, oid)
				if m.Values[2] != nil {
					if kb, err := strconv.ParseInt(string(m.Values[2]), 10, 64); err == nil {
						total += kb * 1024
					}
				}
			}
		case *pgproto3.CommandComplete:
			resultSet++
		case *pgproto3.CopyOutResponse:
			if o.progress != nil && progress == nil {
				progress = o.progress(total)
			}
			if legacy {
				switch {
				case copies < len(tsOrder):
					if err := endArchive(); err != nil {
						return nil, err
					}
					startArchive(tsOrder[copies])
				case copies == len(tsOrder):
					if err := endArchive(); err != nil {
						return nil, err
					}
					if err := p.archivesEnded(); err != nil {
						return nil, err
					}
					inManifest = true
				default:
					return nil, fmt.Errorf("BASE_BACKUP: COPY stream %d after %d tablespaces and the manifest", copies+1, len(tsOrder))
				}
				copies++
			}
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			if err := th.wait(p.ctx, len(m.Data)); err != nil {
				return nil, err
			}
			if legacy {
				if inManifest {
					manifest.Write(m.Data)
					continue
				}
				if err := writeTar(m.Data); err != nil {
					return nil, err
				}
				if done += int64(len(m.Data)); progress != nil {
					progress(done)
				}
				continue
			}
			switch m.Data[0] {
			case 'n':
				if err := endArchive(); err != nil {
					return nil, err
				}
				parts := bytes.SplitN(m.Data[1:], []byte{0}, 3)
				if len(parts) < 2 {
					return nil, fmt.Errorf("BASE_BACKUP: malformed new-archive message")
				}
				name, loc := string(parts[0]), string(parts[1])
				var oid uint32
				if name != "base.tar" {
					n, err := strconv.ParseUint(strings.TrimSuffix(name, ".tar"), 10, 32)
					if err != nil || !strings.HasSuffix(name, ".tar") {
						return nil, fmt.Errorf("BASE_BACKUP: unexpected archive %q (server-side compression is not used)", name)
					}
					oid = uint32(n)
					res.tsLocations[oid] = loc
				}
				startArchive(oid)
			case 'm':
				if err := endArchive(); err != nil {
					return nil, err
				}
				if err := p.archivesEnded(); err != nil {
					return nil, err
				}
				inManifest = true
			case 'd':
				if inManifest {
					manifest.Write(m.Data[1:])
					continue
				}
				if err := writeTar(m.Data[1:]); err != nil {
					return nil, err
				}
			case 'p':
				if len(m.Data) >= 9 && progress != nil {
					progress(int64(binary.BigEndian.Uint64(m.Data[1:9])))
				}
			default:
				return nil, fmt.Errorf("BASE_BACKUP: CopyData of unknown type %q (%d bytes) from a PostgreSQL %d server: refusing to drop it", m.Data[0], len(m.Data), major)
			}
		case *pgproto3.CopyDone:
			if err := endArchive(); err != nil {
				return nil, err
			}
		case *pgproto3.ErrorResponse:
			_ = endArchive()
			return nil, fmt.Errorf("BASE_BACKUP: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.NoticeResponse:
		case *pgproto3.ReadyForQuery:
			if err := endArchive(); err != nil {
				return nil, err
			}
			if err := p.archivesEnded(); err != nil {
				return nil, err
			}
			finished = true
			stopWatch()
			if err := p.finish(); err != nil {
				return nil, err
			}
			if res.endLSN == 0 {
				return nil, errors.New("BASE_BACKUP ended without an end position")
			}
			if manifest.Len() == 0 {
				return nil, errors.New("BASE_BACKUP sent no backup_manifest")
			}
			res.manifest = manifest.Bytes()
			<-p.sorted
			res.entries = p.entries
			res.objects = p.stores
			res.stored = p.stored
			for _, e := range p.entries {
				if e.Type == TypeFile {
					res.files++
					res.size += e.Size
				}
			}
			if progress != nil {
				progress(-1)
			}
			return res, nil
		}
	}
}
