package basebackup

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/bufpool"
	"github.com/walkeeper/walkeeper/internal/compress"
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

// chunk is one compression job and its result: a chunk of a large file, or a bundle,
// whose members lie in raw at the offsets their entries record.
type chunk struct {
	raw     []byte
	out     []byte
	err     error
	done    chan struct{}
	members []*Entry
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

	// The open bundle; only the goroutine receiving the stream touches it.
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

// compressBundle compresses a bundle's members, which lie back to back in c.raw at
// their offsets (bundleMember), as one solid frame, and sums each member.
func compressBundle(c *chunk, codec string, level int) {
	for _, e := range c.members {
		e.Sum = ManifestCRC32C(crc32.Checksum(c.raw[e.Offset:e.Offset+e.Size], castagnoli))
	}
	c.out, c.err = compress.EncodeSolid(codec, level, c.raw)
	if cap(c.raw) == bundleSize+smallFile {
		bundleBufs.Put(c.raw)
	}
	c.raw = nil
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
