// Package s3store is a storage.Store on an S3-compatible object store (AWS S3, Ceph RGW,
// MinIO, SeaweedFS, versitygw, ...).
//
// The client library is minio-go/v7 rather than aws-sdk-go-v2's s3: it is one module with
// a handful of small dependencies (aws-sdk-go-v2's s3 pulls a dozen SDK modules plus smithy
// and adds about twice the binary size), it speaks path-style and virtual-host buckets to
// any S3-compatible server without the SDK's newer default trailing CRC checksums that many
// of them reject, it retries every request (5xx, 429, SlowDown, throttling codes and
// connection errors) with capped exponential backoff and full jitter up to a configurable
// number of attempts, re-sending a seekable body, and it has the credential chain walkeeper
// needs (environment, shared credentials file and profile, EC2/ECS/EKS instance role).
//
// Semantics match storage.Local: Get, Stat and Delete of a missing key wrap
// storage.ErrNotFound; List is in lexical key order (S3 lists by UTF-8 byte order), paged,
// for any number of keys; Put returns once the server answered 200 to the PUT or to
// CompleteMultipartUpload, and a failed Put never leaves a visible object (a single PUT is
// atomic; a multipart upload is invisible until completed, and is aborted on failure).
//
// Put reads the body into part buffers (Options.PartSize, 32 MiB by default): a body that
// fits in one is sent in one PUT, a larger one as a multipart upload of PartSize parts,
// UploadConcurrency (4) at a time, so that memory stays at most 4 parts whatever the
// object's size; the reader is never read twice (it need not be seekable), and a retried
// request re-sends its buffered part. Each
// request carries the body's MD5 (Content-MD5) and SHA-256 (the signed payload hash), which
// the server checks. End to end, Get verifies the whole object at EOF: a single-PUT object
// against the SHA-256 Put stored in its metadata (x-amz-meta-walkeeper-sha256), a multipart
// object against its ETag, the MD5 of its parts' MD5s, recomputed from the part size Put
// stored in its metadata (x-amz-meta-walkeeper-part-size). A mismatch is an error naming
// the key. Multipart verification needs MD5-based ETags, i.e. no SSE-KMS or SSE-C on the
// bucket (walkeeper's own encryption takes their place); Put checks the ETag it gets back
// and fails when the server does not follow that rule.
//
// Credentials are never printed: every error passes through a filter that removes the
// secret key and session token.
package s3store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// Defaults and S3's limits.
const (
	DefaultPartSize    = 32 << 20
	MinPartSize        = 5 << 20 // S3: every part but the last is at least 5 MiB
	MaxPartSize        = 5 << 30
	MaxParts           = 10000
	DefaultMaxAttempts = 10
	// DefaultUploadConcurrency parts in flight: enough to hide one request's latency
	// behind the others' transfer, at 4 x PartSize of memory per large Put.
	DefaultUploadConcurrency = 4
	deleteBatch              = 1000 // S3: DeleteObjects takes at most 1000 keys
)

// Options configure a Store.
type Options struct {
	// Endpoint is the server's URL: "https://s3.eu-west-1.amazonaws.com",
	// "http://127.0.0.1:7070". Without a scheme, https is meant; plain http is used only
	// when the endpoint says http://.
	Endpoint string
	// Region is the bucket's region; empty asks the server once (GetBucketLocation).
	Region string
	// Bucket must exist: New does not create it.
	Bucket string
	// Prefix is prepended to every key, as "Prefix/key"; empty stores keys at the root.
	Prefix string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET rather than BUCKET.ENDPOINT
	// (needed by most self-hosted servers).
	PathStyle bool
	// CAFile is a PEM file of CA certificates trusted besides the system's (a private CA).
	CAFile string
	// PartSize is the multipart part size and the largest object sent in one PUT
	// (default DefaultPartSize, at least MinPartSize). An object may have MaxParts parts.
	PartSize int64
	// UploadConcurrency is how many parts of one multipart Put are in flight at once
	// (default DefaultUploadConcurrency); each holds a PartSize buffer.
	UploadConcurrency int
	// MaxAttempts bounds the attempts per request, the first included (default
	// DefaultMaxAttempts).
	MaxAttempts int
	// ListPageSize is the keys per List request (default and S3's maximum 1000).
	ListPageSize int

	// Credentials, tried in this order: AccessKeyID and SecretAccessKey (and SessionToken)
	// when set; else the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN); else the shared credentials file (CredentialsFile, default
	// $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials and ~/.aws/config) and its
	// Profile (default $AWS_PROFILE or "default"); else the instance's role (EC2 IMDS,
	// ECS, EKS pod identity, web identity).
	AccessKeyID, SecretAccessKey, SessionToken string
	CredentialsFile, Profile                   string

	// Transport, when set, is the HTTP transport under the request counter (tests).
	Transport http.RoundTripper
}

// Store is a storage.Store on one bucket and prefix.
type Store struct {
	core        minio.Core
	bucket      string
	prefix      string // "" or ending in "/"
	endpoint    string // for messages
	partSize    int64
	maxAttempts int
	concurrency int
	pageSize    int
	creds       *credentials.Credentials
	counter     *counter
}

var (
	_ storage.Store          = (*Store)(nil)
	_ storage.RangeGetter    = (*Store)(nil)
	_ storage.BatchDeleter   = (*Store)(nil)
	_ storage.RequestCounter = (*Store)(nil)
)

// New opens the store and checks that the bucket exists and the credentials are accepted
// (one HEAD request).
func New(ctx context.Context, o Options) (*Store, error) {
	u, secure, err := parseEndpoint(o.Endpoint)
	if err != nil {
		return nil, err
	}
	if o.Bucket == "" {
		return nil, fmt.Errorf("s3 store at %s: no bucket given", u)
	}
	s := &Store{
		bucket: o.Bucket, endpoint: u, partSize: o.PartSize, maxAttempts: o.MaxAttempts, pageSize: o.ListPageSize,
	}
	if p := strings.Trim(o.Prefix, "/"); p != "" {
		if path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." {
			return nil, fmt.Errorf("s3 prefix %q: not a clean relative path", o.Prefix)
		}
		s.prefix = p + "/"
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if s.partSize < MinPartSize || s.partSize > MaxPartSize {
		return nil, fmt.Errorf("s3 part size %d: must be between %d (5 MiB) and %d (5 GiB)", s.partSize, MinPartSize, MaxPartSize)
	}
	if s.maxAttempts == 0 {
		s.maxAttempts = DefaultMaxAttempts
	}
	if s.maxAttempts < 1 {
		return nil, fmt.Errorf("s3 max attempts %d: must be at least 1", s.maxAttempts)
	}
	s.concurrency = o.UploadConcurrency
	if s.concurrency <= 0 {
		s.concurrency = DefaultUploadConcurrency
	}
	if s.pageSize <= 0 || s.pageSize > 1000 {
		s.pageSize = 1000
	}
	base := o.Transport
	if base == nil {
		tr, err := minio.DefaultTransport(secure)
		if err != nil {
			return nil, err
		}
		if o.CAFile != "" {
			pool, err := loadCA(o.CAFile)
			if err != nil {
				return nil, err
			}
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		base = tr
	}
	s.counter = &counter{next: base}
	s.creds = chain(o)
	v, err := s.creds.GetWithContext(&credentials.CredContext{Client: &http.Client{Transport: base, Timeout: 10 * time.Second}})
	if err != nil || v.AccessKeyID == "" || v.SecretAccessKey == "" {
		return nil, fmt.Errorf("s3 store at %s: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use a shared credentials file, or run with an instance role", u)
	}
	lookup := minio.BucketLookupAuto
	if o.PathStyle {
		lookup = minio.BucketLookupPath
	}
	cl, err := minio.New(strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://"), &minio.Options{
		Creds:        s.creds,
		Secure:       secure,
		Transport:    s.counter,
		Region:       o.Region,
		BucketLookup: lookup,
		MaxRetries:   s.maxAttempts,
	})
	if err != nil {
		return nil, s.clean(fmt.Errorf("s3 store at %s: %w", u, err))
	}
	s.core = minio.Core{Client: cl}
	ok, err := cl.BucketExists(ctx, o.Bucket)
	if err != nil {
		return nil, s.clean(fmt.Errorf("s3 bucket %s at %s: %w", o.Bucket, u, err))
	}
	if !ok {
		return nil, fmt.Errorf("s3 bucket %s does not exist at %s", o.Bucket, u)
	}
	return s, nil
}

func parseEndpoint(e string) (string, bool, error) {
	if e == "" {
		return "", false, errors.New("s3 store: no endpoint given")
	}
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err == nil && u.User != nil {
		// Never echo it: it may hold a secret.
		return "", false, fmt.Errorf("s3 endpoint %s://%s: credentials do not belong in the endpoint URL", u.Scheme, u.Host)
	}
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false, fmt.Errorf("s3 endpoint %q: want http(s)://HOST[:PORT]", e)
	}
	switch u.Scheme {
	case "https":
		return "https://" + u.Host, true, nil
	case "http":
		return "http://" + u.Host, false, nil
	}
	return "", false, fmt.Errorf("s3 endpoint %q: scheme %q is neither http nor https", e, u.Scheme)
}

func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("s3 CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3 CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

func chain(o Options) *credentials.Credentials {
	if o.AccessKeyID != "" || o.SecretAccessKey != "" {
		return credentials.NewStaticV4(o.AccessKeyID, o.SecretAccessKey, o.SessionToken)
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Filename: o.CredentialsFile, Profile: o.Profile},
		&credentials.IAM{},
	})
}

// clean removes the secret key and session token from err's message, should a server or
// a library ever echo them; errors that hold neither are returned as they are.
func (s *Store) clean(err error) error {
	if err == nil || s.creds == nil {
		return err
	}
	v, verr := s.creds.GetWithContext(nil)
	if verr != nil {
		return err
	}
	msg := err.Error()
	out := msg
	for _, secret := range []string{v.SecretAccessKey, v.SessionToken} {
		if len(secret) >= 4 {
			out = strings.ReplaceAll(out, secret, "[redacted]")
		}
	}
	if out == msg {
		return err
	}
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s: %w", out, storage.ErrNotFound)
	}
	return errors.New(out)
}

// String names the store (no credentials).
func (s *Store) String() string { return fmt.Sprintf("s3 %s/%s/%s", s.endpoint, s.bucket, s.prefix) }

// PartSize is the multipart part size in use.
func (s *Store) PartSize() int64 { return s.partSize }

// Requests implements storage.RequestCounter.
func (s *Store) Requests() storage.RequestCounts { return s.counter.counts() }

// object maps a storage key to the S3 object name.
func (s *Store) object(key string) (string, error) {
	if key == "" || key == "." || strings.HasPrefix(key, "/") || path.Clean(key) != key || strings.HasPrefix(key, "../") || key == ".." {
		return "", fmt.Errorf("storage key %q: not a clean relative path", key)
	}
	return s.prefix + key, nil
}

// wrap gives err the context "op key" and maps S3's not-found codes to storage.ErrNotFound.
func (s *Store) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotFound)
	case "NoSuchBucket":
		return fmt.Errorf("%s %s: s3 bucket %s does not exist at %s", op, key, s.bucket, s.endpoint)
	}
	return s.clean(fmt.Errorf("%s %s: %w", op, key, err))
}

// Stat implements storage.Store (one HEAD).
func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	obj, err := s.object(key)
	if err != nil {
		return storage.Info{}, err
	}
	oi, err := s.core.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
	if err != nil {
		return storage.Info{}, s.wrap("stat", key, err)
	}
	return storage.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List implements storage.Store: one LIST request per ListPageSize keys.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix: s.prefix + prefix, Recursive: true, MaxKeys: s.pageSize,
	})
	var ferr error
	for oi := range ch {
		if ferr != nil {
			continue // drain after cancel
		}
		if oi.Err != nil {
			ferr = s.wrap("list", prefix, oi.Err)
			cancel()
			continue
		}
		key := strings.TrimPrefix(oi.Key, s.prefix)
		if strings.HasSuffix(key, "/") {
			continue // a directory marker some tools create; never a walkeeper key
		}
		if err := fn(storage.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			ferr = fmt.Errorf("list %s: %w", prefix, err)
			cancel()
		}
	}
	if ferr == nil {
		ferr = ctx.Err()
	}
	return ferr
}

// Delete implements storage.Store: a HEAD (S3's DELETE succeeds for a missing key, Store's
// contract says ErrNotFound) and a DELETE.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	if _, err := s.core.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{}); err != nil {
		return s.wrap("delete", key, err)
	}
	return s.wrap("delete", key, s.core.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{}))
}

// DeleteMany implements storage.BatchDeleter: one DeleteObjects request per 1000 keys.
func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	objs := make([]string, len(keys))
	for i, k := range keys {
		o, err := s.object(k)
		if err != nil {
			return err
		}
		objs[i] = o
	}
	var errs []error
	for start := 0; start < len(objs); start += deleteBatch {
		end := min(start+deleteBatch, len(objs))
		ch := make(chan minio.ObjectInfo, end-start)
		for _, o := range objs[start:end] {
			ch <- minio.ObjectInfo{Key: o}
		}
		close(ch)
		for rerr := range s.core.RemoveObjects(ctx, s.bucket, ch, minio.RemoveObjectsOptions{}) {
			if c := minio.ToErrorResponse(rerr.Err).Code; c == "NoSuchKey" || c == "NotFound" {
				continue
			}
			errs = append(errs, s.wrap("delete", strings.TrimPrefix(rerr.ObjectName, s.prefix), rerr.Err))
			if len(errs) == 10 {
				break
			}
		}
		if len(errs) >= 10 {
			errs = append(errs, errors.New("(further errors not shown)"))
			break
		}
	}
	return errors.Join(errs...)
}

// Get implements storage.Store; the object is verified at EOF (see the package doc).
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.open(ctx, key, 0, -1, true)
}

// GetRange implements storage.RangeGetter. A range is not verified against the whole
// object's checksum (it cannot be); each request is still checked by the transport.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, off)
	}
	if n == 0 {
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	return s.open(ctx, key, off, n, false)
}
