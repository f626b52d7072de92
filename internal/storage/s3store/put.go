package s3store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// Object metadata Put stores for Get's end-to-end check (x-amz-meta-*).
const (
	metaSHA256   = "Walkeeper-Sha256"    // hex SHA-256 of a single-PUT object
	metaPartSize = "Walkeeper-Part-Size" // part size of a multipart object
)

// partPool recycles part buffers across Puts of the same part size.
var partPool sync.Map // int64 -> *sync.Pool of *[]byte

func getBuf(size int64) *[]byte {
	p, _ := partPool.LoadOrStore(size, &sync.Pool{New: func() any { b := make([]byte, size); return &b }})
	return p.(*sync.Pool).Get().(*[]byte)
}

func putBuf(size int64, b *[]byte) {
	if p, ok := partPool.Load(size); ok {
		p.(*sync.Pool).Put(b)
	}
}

// Put implements storage.Store. r is read once, one part at a time (see the package doc):
// memory use is at most UploadConcurrency part buffers, however large the object.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	obj, err := s.object(key)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// A small object never needs a part-sized buffer: read up to 1 MiB first.
	first := make([]byte, min(int64(1<<20), s.partSize)+1)
	n, err := io.ReadFull(r, first)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return s.putSingle(ctx, key, obj, first[:n])
	case err != nil:
		return 0, fmt.Errorf("put %s: read: %w", key, err)
	}
	buf := getBuf(s.partSize)
	part := (*buf)[:copy(*buf, first[:n])]
	m, err := io.ReadFull(r, (*buf)[len(part):])
	part = (*buf)[:len(part)+m]
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		defer putBuf(s.partSize, buf)
		return s.putSingle(ctx, key, obj, part)
	case err != nil:
		putBuf(s.partSize, buf)
		return 0, fmt.Errorf("put %s: read: %w", key, err)
	}
	return s.putMultipart(ctx, key, obj, buf, r)
}

// putSingle stores body in one PUT, with its SHA-256 in the object's metadata.
func (s *Store) putSingle(ctx context.Context, key, obj string, body []byte) (int64, error) {
	md5sum := md5.Sum(body)
	shasum := sha256.Sum256(body)
	sha := hex.EncodeToString(shasum[:])
	info, err := s.core.PutObject(ctx, s.bucket, obj, bytes.NewReader(body), int64(len(body)),
		base64.StdEncoding.EncodeToString(md5sum[:]), sha,
		minio.PutObjectOptions{UserMetadata: map[string]string{metaSHA256: sha}})
	if err != nil {
		return 0, s.wrap("put", key, err)
	}
	if want := hex.EncodeToString(md5sum[:]); info.ETag != want && isMD5ETag(info.ETag) {
		return 0, fmt.Errorf("put %s: the server's ETag %s differs from the MD5 of the body sent (%s)", key, info.ETag, want)
	}
	return int64(len(body)), nil
}

func isMD5ETag(etag string) bool {
	_, err := hex.DecodeString(etag)
	return err == nil && len(etag) == 32
}

// putMultipart uploads first (a full part buffer) and the rest of r in parts of PartSize,
// up to UploadConcurrency parts at a time, and completes the upload only when every part
// is stored; on any error it aborts the upload, so that nothing becomes visible.
func (s *Store) putMultipart(ctx context.Context, key, obj string, first *[]byte, r io.Reader) (total int64, err error) {
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, obj, minio.PutObjectOptions{
		UserMetadata: map[string]string{metaPartSize: strconv.FormatInt(s.partSize, 10)},
	})
	if err != nil {
		putBuf(s.partSize, first)
		return 0, s.wrap("put", key, err)
	}
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is canceled: an unfinished upload is invisible but billed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.core.AbortMultipartUpload(actx, s.bucket, obj, id)
	}()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		etag string
		md5  [md5.Size]byte
	}
	var (
		mu       sync.Mutex
		results  []result
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(e error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = e
			cancel()
		}
	}
	// slots bounds the part buffers alive (being filled or uploaded) to UploadConcurrency.
	slots := make(chan struct{}, s.concurrency)
	upload := func(num int, buf *[]byte, n int) {
		defer wg.Done()
		defer func() { putBuf(s.partSize, buf); <-slots }()
		part := (*buf)[:n]
		md5sum := md5.Sum(part)
		shasum := sha256.Sum256(part)
		p, err := s.core.PutObjectPart(pctx, s.bucket, obj, id, num, bytes.NewReader(part), int64(n), minio.PutObjectPartOptions{
			Md5Base64: base64.StdEncoding.EncodeToString(md5sum[:]),
			Sha256Hex: hex.EncodeToString(shasum[:]),
		})
		if err != nil {
			fail(s.wrap(fmt.Sprintf("put (part %d)", num), key, err))
			return
		}
		if etag, want := strings.Trim(p.ETag, `"`), hex.EncodeToString(md5sum[:]); etag != want && isMD5ETag(etag) {
			fail(fmt.Errorf("put %s: part %d: the server's ETag %s differs from the MD5 of the part sent (%s)", key, num, etag, want))
			return
		}
		mu.Lock()
		results[num-1] = result{etag: p.ETag, md5: md5sum}
		mu.Unlock()
	}
	slots <- struct{}{} // first's
	buf, n := first, len(*first)
	for num := 1; ; num++ {
		if num > MaxParts {
			putBuf(s.partSize, buf)
			<-slots
			fail(fmt.Errorf("put %s: more than %d parts of %d bytes: raise the part size", key, MaxParts, s.partSize))
			break
		}
		mu.Lock()
		results = append(results, result{})
		mu.Unlock()
		total += int64(n)
		wg.Add(1)
		go upload(num, buf, n)
		select {
		case slots <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break // a part failed; the slot maybe taken here is never waited for
		}
		buf = getBuf(s.partSize)
		var rerr error
		n, rerr = io.ReadFull(r, *buf)
		if n == 0 && (errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF)) {
			putBuf(s.partSize, buf)
			<-slots
			break
		}
		if rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			putBuf(s.partSize, buf)
			<-slots
			fail(fmt.Errorf("put %s: read: %w", key, rerr))
			break
		}
	}
	wg.Wait()
	mu.Lock()
	err = firstErr
	mu.Unlock()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return 0, err
	}
	parts := make([]minio.CompletePart, len(results))
	md5s := make([]byte, 0, len(results)*md5.Size)
	for i, res := range results {
		parts[i] = minio.CompletePart{PartNumber: i + 1, ETag: res.etag}
		md5s = append(md5s, res.md5[:]...)
	}
	info, err := s.core.CompleteMultipartUpload(ctx, s.bucket, obj, id, parts, minio.PutObjectOptions{})
	if err != nil {
		return 0, s.wrap("put (complete)", key, err)
	}
	if want := multipartETag(md5s, len(parts)); strings.Trim(info.ETag, `"`) != want {
		// The object is visible but Get could never verify it: remove it.
		_ = s.core.RemoveObject(context.WithoutCancel(ctx), s.bucket, obj, minio.RemoveObjectOptions{})
		return 0, fmt.Errorf("put %s: the server's multipart ETag %s is not the MD5 of its parts' MD5s (%s): it cannot be verified end to end (SSE-KMS or SSE-C on the bucket?)", key, info.ETag, want)
	}
	return total, nil
}

// multipartETag is S3's ETag of a multipart object: hex MD5 of the parts' binary MD5s,
// "-", the number of parts.
func multipartETag(md5s []byte, parts int) string {
	sum := md5.Sum(md5s)
	return hex.EncodeToString(sum[:]) + "-" + strconv.Itoa(parts)
}
