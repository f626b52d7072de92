package crypt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"filippo.io/age"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// rangeGetter and batchDeleter are the optional capabilities of an inner store (an
// object store has them) that the Store passes on: the same methods as
// storage.RangeGetter and storage.BatchDeleter.
type rangeGetter interface {
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
}

type batchDeleter interface {
	DeleteMany(ctx context.Context, keys []string) error
}

// DeleteMany deletes keys with the inner store's batched delete when it has one (an
// object store's DeleteObjects), else one Delete per key; a key that does not exist
// is not an error. The key object is refused.
func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := checkNotKeyObject("delete", k); err != nil {
			return err
		}
	}
	if bd, ok := s.inner.(batchDeleter); ok {
		return bd.DeleteMany(ctx, keys)
	}
	var errs []error
	for _, k := range keys {
		if err := s.inner.Delete(ctx, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// headerRead is what age's header parser reads at once from the start of an object
// (a bufio.Reader's default size); prefetching it spares a request.
const headerRead = 4096

// mergeGap is the largest hole between two spans GetRange fetches with one request
// rather than two: reading up to this much more costs less than another request.
const mergeGap = 256 << 10

// GetRange reads n plaintext bytes from offset off of key (n < 0: to the end;
// reading past the end returns what there is). Only the chunks that hold the range
// are fetched and authenticated, plus the header and the last chunk (age
// authenticates the plaintext size with it): one Stat and at most three ranged reads
// of the inner store (fewer when they lie close together), through its GetRange when
// it has one. A damaged chunk in the range, header or last chunk fails with
// ErrCorrupt and the key; damage elsewhere in the object is not seen (Get sees it).
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := checkNotKeyObject("get", key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	st, err := s.inner.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	size := st.Size
	plain, ok := PlainSize(size)
	if !ok {
		return nil, fmt.Errorf("%s: %w: %d bytes is no encrypted object's size", key, ErrCorrupt, size)
	}
	if n < 0 || off+n > plain {
		n = max(plain-off, 0)
	}
	const enc = ChunkSize + TagSize
	last := HeaderSize + (max(plain-1, 0)/ChunkSize)*enc
	spans := []span{{0, min(max(headerRead, HeaderSize), size)}, {last, size}}
	if n > 0 {
		first := HeaderSize + (off/ChunkSize)*enc
		end := min(HeaderSize+((off+n-1)/ChunkSize+1)*enc, size)
		spans = append(spans, span{first, end})
	}
	ra := &spanReader{ctx: ctx, s: s, key: key}
	for _, sp := range mergeSpans(spans) {
		data, err := ra.fetch(sp.off, sp.end-sp.off)
		if err != nil {
			return nil, err
		}
		ra.cached = append(ra.cached, cachedSpan{sp.off, data})
	}
	pr, psize, err := age.DecryptReaderAt(ra, size, s.id)
	if err != nil {
		if ra.err != nil {
			return nil, ra.err
		}
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, fmt.Errorf("%s: %w: not sealed to this repository's key", key, ErrCorrupt)
		}
		return nil, fmt.Errorf("%s: %w: %v", key, ErrCorrupt, err)
	}
	if psize != plain {
		return nil, fmt.Errorf("%s: %w: holds %d bytes, its size says %d", key, ErrCorrupt, psize, plain)
	}
	return &rangeReader{key: key, ra: ra, r: io.NewSectionReader(pr, off, n)}, nil
}

type span struct{ off, end int64 }

// mergeSpans sorts spans and joins those that overlap or lie within mergeGap.
func mergeSpans(spans []span) []span {
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	var out []span
	for _, sp := range spans {
		if sp.end <= sp.off {
			continue
		}
		if k := len(out) - 1; k >= 0 && sp.off <= out[k].end+mergeGap {
			out[k].end = max(out[k].end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

type cachedSpan struct {
	off  int64
	data []byte
}

// spanReader is the io.ReaderAt age decrypts from: the spans GetRange fetched, and a
// ranged read of the inner store for anything else.
type spanReader struct {
	ctx    context.Context
	s      *Store
	key    string
	cached []cachedSpan
	err    error // the inner store's last failure
}

func (r *spanReader) ReadAt(p []byte, off int64) (int, error) {
	for _, c := range r.cached {
		if off >= c.off && off+int64(len(p)) <= c.off+int64(len(c.data)) {
			return copy(p, c.data[off-c.off:]), nil
		}
	}
	data, err := r.fetch(off, int64(len(p)))
	n := copy(p, data)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// fetch reads n stored bytes at off, with the inner store's GetRange when it has one.
func (r *spanReader) fetch(off, n int64) ([]byte, error) {
	var rc io.ReadCloser
	var err error
	if rg, ok := r.s.inner.(rangeGetter); ok {
		rc, err = rg.GetRange(r.ctx, r.key, off, n)
	} else if rc, err = r.s.inner.Get(r.ctx, r.key); err == nil {
		if sk, ok := rc.(io.Seeker); ok {
			_, err = sk.Seek(off, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, rc, off)
		}
	}
	if err != nil {
		if rc != nil {
			rc.Close()
		}
		r.err = err
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, n))
	if err != nil {
		r.err = fmt.Errorf("read %s: %w", r.key, err)
		return nil, r.err
	}
	return data, nil
}

// rangeReader names the key in the errors of a ranged read.
type rangeReader struct {
	key string
	ra  *spanReader
	r   io.Reader
}

func (rr *rangeReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		if rr.ra.err != nil {
			return n, rr.ra.err
		}
		err = fmt.Errorf("%s: %w: %v", rr.key, ErrCorrupt, err)
	}
	return n, err
}

func (rr *rangeReader) Close() error { return nil }
