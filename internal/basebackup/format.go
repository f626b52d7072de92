package basebackup

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Entry types.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Entry is one item of a stored backup: what restore recreates and verify checks, one
// at a time and in any order (directories first).
type Entry struct {
	Tablespace uint32    `json:"tablespace"` // 0 = the data directory, else the tablespace OID
	Path       string    `json:"path"`       // slash-separated, relative to the data directory or tablespace root
	Type       string    `json:"type"`       // "file" | "dir" | "symlink"
	Mode       uint32    `json:"mode"`       // permission bits
	Size       int64     `json:"size"`       // uncompressed
	ModTime    time.Time `json:"mtime"`
	Link       string    `json:"link,omitempty"`  // symlink target (pg_tblspc/<oid> -> original location)
	Key        string    `json:"key,omitempty"`   // storage key of the stored content (files)
	Codec      string    `json:"codec,omitempty"` // compression of the stored content
	StoredSize int64     `json:"stored_size,omitempty"`
	// Bundle marks content stored as the StoredSize bytes at Offset of the object Key
	// (small files share bundle objects); otherwise the whole object is the content.
	Bundle bool  `json:"bundle,omitempty"`
	Offset int64 `json:"offset,omitempty"`
	// Solid marks content stored as the Size bytes at Offset of the decompressed object
	// Key: a bundle compressed as one frame (format version 2).
	Solid bool `json:"solid,omitempty"`
	// Sum is the file's CRC-32C as backup_manifest writes it, taken while it streamed
	// (sums.go); "" in backups taken before walkeeper recorded it.
	Sum string `json:"crc32c,omitempty"`
}

// contentsFile is the stored form of a backup's entry list.
type contentsFile struct {
	Version  int     `json:"version"`
	BackupID string  `json:"backup_id"`
	Entries  []Entry `json:"entries"`
	// Objects is every object the backup stored, as stored (sums.go).
	Objects []StoredObject `json:"objects,omitempty"`
}

// formatVersion is written in contents.json; readers refuse newer versions. Version 2
// stores small files in solid bundles (Entry.Solid); version 1's per-file frames in
// bundles (Entry.Bundle) are still read.
const formatVersion = 2

// dataKey is the key of one file's content.
func dataKey(server, id string, tablespace uint32, p, codec string) string {
	root := "pgdata"
	if tablespace != 0 {
		root = strconv.FormatUint(uint64(tablespace), 10)
	}
	return archive.BackupDataPrefix(server, id) + root + "/" + p + compress.Suffix(codec)
}

// opaqueDataKey is the key of the n-th file stored on its own when names must reveal
// nothing of the data directory (Options.OpaqueNames): the contents list, sealed like
// every object, maps it back to its path.
func opaqueDataKey(server, id string, n int, codec string) string {
	return archive.BackupDataPrefix(server, id) + fmt.Sprintf("objects/%06d", n) + compress.Suffix(codec)
}

// LoadInfo reads a backup's backup.info.
func LoadInfo(ctx context.Context, store storage.Store, server, id string) (record.Backup, error) {
	var b record.Backup
	r, err := store.Get(ctx, archive.BackupInfoKey(server, id))
	if err != nil {
		return b, fmt.Errorf("backup %s of %s: %w", id, server, err)
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(&b); err != nil {
		return b, fmt.Errorf("backup %s of %s: %s: %w", id, server, archive.BackupInfoKey(server, id), err)
	}
	if b.ID != id {
		return b, fmt.Errorf("backup %s of %s: %s holds id %q", id, server, archive.BackupInfoKey(server, id), b.ID)
	}
	return b, nil
}

// SaveInfo writes a backup's backup.info durably.
func SaveInfo(ctx context.Context, store storage.Store, b record.Backup) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if _, err := store.Put(ctx, archive.BackupInfoKey(b.Server, b.ID), bytes.NewReader(data)); err != nil {
		return fmt.Errorf("backup %s: write backup.info: %w", b.ID, err)
	}
	return nil
}

// Contents returns every entry of a stored backup, sorted so that each directory comes
// before its contents (data directory first, then tablespaces by OID).
func Contents(ctx context.Context, store storage.Store, server, id string) ([]Entry, error) {
	es, _, err := ContentsAndObjects(ctx, store, server, id)
	return es, err
}

// ContentsAndObjects is Contents with the stored objects the backup recorded (none for
// a backup taken before walkeeper recorded them).
func ContentsAndObjects(ctx context.Context, store storage.Store, server, id string) ([]Entry, []StoredObject, error) {
	key := archive.BackupContentsKey(server, id)
	r, err := store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		key = archive.BackupContentsV1Key(server, id)
		r, err = store.Get(ctx, key)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("backup %s of %s: contents: %w", id, server, err)
	}
	defer r.Close()
	data, err := storage.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("backup %s of %s: %s: %w", id, server, key, err)
	}
	if strings.HasSuffix(key, compress.Suffix(compress.Zstd)) {
		// One frame written by EncodeAll: the shared decoder, not a stream decoder
		// built (and its buffers allocated) for one object.
		if data, err = compress.DecodeAll(compress.Zstd, data, nil); err != nil {
			return nil, nil, fmt.Errorf("backup %s of %s: %s: %w", id, server, key, err)
		}
	}
	c, err := decodeContents(data)
	if err != nil {
		return nil, nil, fmt.Errorf("backup %s of %s: %s: %w", id, server, key, err)
	}
	if c.Version > formatVersion {
		return nil, nil, fmt.Errorf("backup %s of %s: %s: format version %d is newer than this walkeeper reads (%d)", id, server, key, c.Version, formatVersion)
	}
	sortEntries(c.Entries)
	return c.Entries, c.Objects, nil
}

// sortEntries orders entries by tablespace then path: a parent directory's path is a
// prefix of its children's, so it sorts first.
func sortEntries(es []Entry) {
	// Stored lists are already in order: the check is one pass over them.
	for i := 1; i < len(es); i++ {
		if compareEntries(&es[i-1], &es[i]) > 0 {
			slices.SortStableFunc(es, func(a, b Entry) int { return compareEntries(&a, &b) })
			return
		}
	}
}

// compareEntries orders entries by tablespace, then path.
func compareEntries(a, b *Entry) int {
	if c := cmp.Compare(a.Tablespace, b.Tablespace); c != 0 {
		return c
	}
	return strings.Compare(a.Path, b.Path)
}

// OpenEntry returns the decompressed content of a file entry. Reading it to the end
// fails if the content is not exactly e.Size bytes, so a truncated or damaged object
// never passes for a good one.
func OpenEntry(ctx context.Context, store storage.Store, e Entry) (io.ReadCloser, error) {
	if e.Type != TypeFile {
		return nil, fmt.Errorf("%s: not a file (%s)", e.Path, e.Type)
	}
	if e.Key == "" {
		if e.Size != 0 {
			return nil, fmt.Errorf("%s: no stored content for %d bytes", e.Path, e.Size)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	codec := e.Codec
	if codec == "" {
		codec = compress.None
	}
	if e.Solid {
		data, err := solidBundles.get(ctx, store, e.Key, codec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Path, err)
		}
		if e.Offset < 0 || e.Offset+e.Size > int64(len(data)) {
			return nil, fmt.Errorf("%s: %s holds %d bytes, the file is recorded at %d..%d: %w", e.Path, e.Key, len(data), e.Offset, e.Offset+e.Size, io.ErrUnexpectedEOF)
		}
		return io.NopCloser(bytes.NewReader(data[e.Offset : e.Offset+e.Size])), nil
	}
	raw, err := store.Get(ctx, e.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	var src io.Reader = raw
	if e.Bundle {
		if s, ok := raw.(io.Seeker); ok {
			_, err = s.Seek(e.Offset, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, raw, e.Offset)
		}
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("%s: %s at offset %d: %w", e.Path, e.Key, e.Offset, err)
		}
		src = io.LimitReader(raw, e.StoredSize)
	}
	// A large file decodes on every core, frame by frame (its chunks are independent
	// frames): it is the longest job of a restore or verify, and the others finish
	// before it.
	var dr io.ReadCloser
	if !e.Bundle && e.Size >= 16<<20 {
		dr, err = compress.NewFramesReader(codec, src, max(2, runtime.GOMAXPROCS(0)))
	} else {
		dr, err = compress.NewReader(codec, src)
	}
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("%s: %s: %w", e.Path, e.Key, err)
	}
	return &entryReader{r: dr, raw: raw, e: e}, nil
}

type entryReader struct {
	r   io.ReadCloser
	raw io.Closer
	e   Entry
	n   int64
}

func (er *entryReader) Read(p []byte) (int, error) {
	n, err := er.r.Read(p)
	er.n += int64(n)
	if er.n > er.e.Size {
		return n, fmt.Errorf("%s: %s holds more than the %d bytes recorded", er.e.Path, er.e.Key, er.e.Size)
	}
	if errors.Is(err, io.EOF) && er.n != er.e.Size {
		return n, fmt.Errorf("%s: %s holds %d bytes, %d recorded: %w", er.e.Path, er.e.Key, er.n, er.e.Size, io.ErrUnexpectedEOF)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("%s: %s: %w", er.e.Path, er.e.Key, err)
	}
	return n, err
}

// WriteTo implements io.WriterTo when the decoder does (NewFramesReader), so that
// io.Copy passes decoded frames on whole, with the same size checks as Read.
func (er *entryReader) WriteTo(w io.Writer) (int64, error) {
	wt, ok := er.r.(io.WriterTo)
	if !ok {
		return io.Copy(w, struct{ io.Reader }{er})
	}
	start := er.n
	sw := &sizeWriter{w: w, er: er}
	_, err := wt.WriteTo(sw)
	n := er.n - start
	if err != nil {
		if sw.werr != nil { // the destination failed, not the stored object
			return n, sw.werr
		}
		if errors.Is(err, errTooLong) {
			return n, fmt.Errorf("%s: %s holds more than the %d bytes recorded", er.e.Path, er.e.Key, er.e.Size)
		}
		return n, fmt.Errorf("%s: %s: %w", er.e.Path, er.e.Key, err)
	}
	if er.n != er.e.Size {
		return n, fmt.Errorf("%s: %s holds %d bytes, %d recorded: %w", er.e.Path, er.e.Key, er.n, er.e.Size, io.ErrUnexpectedEOF)
	}
	return n, nil
}

var errTooLong = errors.New("more than recorded")

// sizeWriter counts what an entryReader hands on and refuses more than the entry's size.
type sizeWriter struct {
	w    io.Writer
	er   *entryReader
	werr error // w's own failure
}

func (s *sizeWriter) Write(p []byte) (int, error) {
	if s.er.n+int64(len(p)) > s.er.e.Size {
		return 0, errTooLong
	}
	n, err := s.w.Write(p)
	s.er.n += int64(n)
	if err != nil {
		s.werr = err
	}
	return n, err
}

func (er *entryReader) Close() error {
	err := er.r.Close()
	if cerr := er.raw.Close(); err == nil {
		err = cerr
	}
	return err
}

// Resolve finds a backup by exact id, by --name, or as `latest` / `oldest` (the newest
// or oldest DONE backup). An exact id or name may resolve to a backup that is not DONE
// (show-backup and delete need them); callers that restore check Done().
func Resolve(backups []record.Backup, ref string) (record.Backup, error) {
	sorted := append([]record.Backup(nil), backups...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	switch ref {
	case "latest", "oldest":
		var done []record.Backup
		for _, b := range sorted {
			if b.Done() {
				done = append(done, b)
			}
		}
		if len(done) == 0 {
			return record.Backup{}, fmt.Errorf("backup %q: no DONE backup exists%s", ref, existing(sorted))
		}
		if ref == "latest" {
			return done[len(done)-1], nil
		}
		return done[0], nil
	}
	for _, b := range sorted {
		if b.ID == ref {
			return b, nil
		}
	}
	for _, b := range sorted {
		if b.Name != "" && b.Name == ref {
			return b, nil
		}
	}
	return record.Backup{}, fmt.Errorf("backup %q not found (give an id, a name, latest or oldest)%s", ref, existing(sorted))
}

func existing(bs []record.Backup) string {
	if len(bs) == 0 {
		return "; the server has no backups"
	}
	var parts []string
	for _, b := range bs {
		s := b.ID
		if b.Name != "" {
			s += " (" + b.Name + ")"
		}
		if !b.Done() {
			s += " " + b.Status
		}
		parts = append(parts, s)
	}
	const max = 10
	if len(parts) > max {
		parts = append(parts[len(parts)-max:], fmt.Sprintf("and %d older", len(parts)-max))
	}
	return "; backups: " + strings.Join(parts, ", ")
}

// ValidName checks a --name: it must not be empty, look like a backup id or a keyword.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("backup name is empty")
	case name == "latest" || name == "oldest" || name == "auto":
		return fmt.Errorf("backup name %q is a reserved word", name)
	case looksLikeID(name):
		return fmt.Errorf("backup name %q looks like a backup id", name)
	case strings.ContainsAny(name, "/\x00\n"):
		return fmt.Errorf("backup name %q: '/', newlines and NUL are not allowed", name)
	}
	return nil
}

// IDLayout is the time layout of backup ids (UTC).
const IDLayout = "20060102T150405"

func looksLikeID(s string) bool {
	_, err := time.Parse(IDLayout, s)
	return err == nil
}

// bundleCache keeps the last few decoded solid bundles for OpenEntry, whose callers
// read files one at a time (a whole backup is read by unit: ReadUnit.Read); several
// callers asking for one bundle at once wait for one decode.
type bundleCache struct {
	mu    sync.Mutex
	items []*cachedBundle // most recently used last
}

type cachedBundle struct {
	key   bundleKey
	ready chan struct{}
	data  []byte
	err   error
}

// keptBundles bounds the cache: bundleSize each at most.
const keptBundles = 3

var solidBundles = &bundleCache{}

// bundleKey names one stored bundle object: its key in its store, and its size and time,
// so that an object replaced under the same key (a backup deleted and taken again in
// the same second, a test's fresh store) is never served from the cache.
type bundleKey struct {
	store   storage.Store
	key     string
	size    int64
	modTime time.Time
}

func (c *bundleCache) get(ctx context.Context, store storage.Store, skey, codec string) ([]byte, error) {
	st, err := store.Stat(ctx, skey)
	if err != nil {
		return nil, err
	}
	key := bundleKey{store, skey, st.Size, st.ModTime}
	c.mu.Lock()
	for i, it := range c.items {
		if it.key == key {
			c.items = append(append(c.items[:i:i], c.items[i+1:]...), it)
			c.mu.Unlock()
			<-it.ready
			return it.data, it.err
		}
	}
	it := &cachedBundle{key: key, ready: make(chan struct{})}
	c.items = append(c.items, it)
	if len(c.items) > keptBundles {
		c.items = c.items[len(c.items)-keptBundles:]
	}
	c.mu.Unlock()
	it.data, it.err = readSolid(ctx, store, skey, codec, nil)
	close(it.ready)
	if it.err != nil {
		// Not kept: the next reader tries again (and reports its own error).
		c.mu.Lock()
		for i, x := range c.items {
			if x == it {
				c.items = append(c.items[:i:i], c.items[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	}
	return it.data, it.err
}
