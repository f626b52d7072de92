package s3store

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
)

// reader streams one object (or a range of it). A connection that breaks mid-body is
// resumed with a ranged GET from where it broke (If-Match the first response's ETag, so
// that an object overwritten meanwhile is an error, not a splice), up to the store's
// attempts. With verify, the whole object is checked at EOF (see the package doc).
type reader struct {
	s        *Store
	ctx      context.Context
	key, obj string
	etag     string
	body     io.ReadCloser
	off      int64 // next byte's offset in the object
	end      int64 // one past the last byte wanted
	attempts int   // resumes so far

	verify   bool
	sha      hash.Hash // single-PUT object: whole SHA-256
	wantSHA  string
	partSize int64     // multipart object: part size, with partMD5 over the current part
	partMD5  hash.Hash //
	inPart   int64
	md5s     []byte
	closed   bool
	err      error // sticky error once verification failed
}

// open sends the first GET. n < 0 reads to the end.
func (s *Store) open(ctx context.Context, key string, off, n int64, verify bool) (io.ReadCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	opts := minio.GetObjectOptions{}
	if off > 0 || n >= 0 {
		opts.Set("Range", rangeHeader(off, n))
	}
	body, info, hdr, err := s.core.GetObject(ctx, s.bucket, obj, opts)
	if err != nil {
		if er := minio.ToErrorResponse(err); er.StatusCode == http.StatusRequestedRangeNotSatisfiable || er.Code == "InvalidRange" {
			return io.NopCloser(strings.NewReader("")), nil // past the end: nothing to read
		}
		return nil, s.wrap("get", key, err)
	}
	rd := &reader{s: s, ctx: ctx, key: key, obj: obj, etag: info.ETag, body: body, off: off, verify: verify}
	// Size is the response's Content-Length: the object's, or the range's. -1 (a server
	// that sends no length) is an end known only at EOF.
	rd.end = info.Size
	if info.Size >= 0 && (off > 0 || n >= 0) {
		rd.end = off + info.Size
	}
	if !verify {
		return rd, nil
	}
	if v := hdr.Get("X-Amz-Meta-" + metaSHA256); v != "" {
		rd.sha, rd.wantSHA = sha256.New(), strings.ToLower(v)
		return rd, nil
	}
	if v := hdr.Get("X-Amz-Meta-" + metaPartSize); v != "" {
		ps, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || ps < 1 || !strings.Contains(info.ETag, "-") {
			body.Close()
			return nil, fmt.Errorf("get %s: metadata %s=%q with ETag %s: not a multipart object walkeeper wrote", key, metaPartSize, v, info.ETag)
		}
		rd.partSize, rd.partMD5 = ps, md5.New()
		return rd, nil
	}
	if isMD5ETag(info.ETag) {
		// Not written by this store (copied in by another tool): the MD5 ETag of a
		// single-PUT object still verifies it.
		rd.sha, rd.wantSHA = md5.New(), info.ETag
		return rd, nil
	}
	body.Close()
	return nil, fmt.Errorf("get %s: no checksum to verify it by (no %s metadata, ETag %s): not written by walkeeper", key, metaSHA256, info.ETag)
}

func rangeHeader(off, n int64) string {
	if n < 0 {
		return fmt.Sprintf("bytes=%d-", off)
	}
	return fmt.Sprintf("bytes=%d-%d", off, off+n-1)
}

// Read implements io.Reader.
func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.closed {
		return 0, errors.New("read after close")
	}
	for {
		n, err := r.body.Read(p)
		if n > 0 {
			r.hash(p[:n])
			r.off += int64(n)
		}
		if err == nil {
			return n, nil
		}
		if r.end >= 0 && r.off > r.end {
			r.err = fmt.Errorf("get %s: read %d bytes, the object has %d", r.key, r.off, r.end)
			return n, r.err
		}
		// All bytes arrived (a connection may still break after the last one), or the
		// server ended a body of unknown length.
		if (r.end >= 0 && r.off == r.end) || (r.end < 0 && errors.Is(err, io.EOF)) {
			if verr := r.check(); verr != nil {
				r.err = verr
				return n, verr
			}
			r.err = io.EOF
			return n, io.EOF
		}
		// A short body or a broken connection: resume from r.off.
		if rerr := r.resume(err); rerr != nil {
			r.err = rerr
			if n > 0 {
				return n, nil
			}
			return 0, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *reader) hash(b []byte) {
	if !r.verify {
		return
	}
	if r.sha != nil {
		r.sha.Write(b)
		return
	}
	for len(b) > 0 {
		take := min(int64(len(b)), r.partSize-r.inPart)
		r.partMD5.Write(b[:take])
		r.inPart += take
		b = b[take:]
		if r.inPart == r.partSize {
			r.md5s = r.partMD5.Sum(r.md5s)
			r.partMD5.Reset()
			r.inPart = 0
		}
	}
}

// check compares what was read with the object's checksum.
func (r *reader) check() error {
	if !r.verify {
		return nil
	}
	var got, want string
	if r.sha != nil {
		got, want = hex.EncodeToString(r.sha.Sum(nil)), r.wantSHA
	} else {
		md5s, parts := r.md5s, len(r.md5s)/md5.Size
		if r.inPart > 0 {
			md5s = r.partMD5.Sum(md5s)
			parts++
		}
		got, want = multipartETag(md5s, parts), strings.Trim(r.etag, `"`)
	}
	if got != want {
		return fmt.Errorf("get %s: checksum mismatch: the object read back is corrupt (read %s, stored %s)", r.key, got, want)
	}
	return nil
}

// resume replaces a broken body with a ranged GET from r.off.
func (r *reader) resume(cause error) error {
	r.body.Close()
	r.attempts++
	if r.attempts >= r.s.maxAttempts || r.ctx.Err() != nil {
		return r.s.clean(fmt.Errorf("get %s: at byte %d of %d: %w", r.key, r.off, r.end, cause))
	}
	opts := minio.GetObjectOptions{}
	want := int64(-1) // to the end when the length is unknown
	if r.end >= 0 {
		want = r.end - r.off
	}
	opts.Set("Range", rangeHeader(r.off, want))
	if err := opts.SetMatchETag(r.etag); err != nil {
		return err
	}
	body, _, _, err := r.s.core.GetObject(r.ctx, r.s.bucket, r.obj, opts)
	if err != nil {
		return r.s.wrap(fmt.Sprintf("get (resuming at byte %d after %v)", r.off, cause), r.key, err)
	}
	r.body = body
	return nil
}

// Close implements io.Closer.
func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	return r.body.Close()
}
