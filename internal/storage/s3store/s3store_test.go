package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/walkeeper/walkeeper/internal/s3test"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/storage/storetest"
)

var bg = context.Background()

// open returns a store on srv's bucket (through endpoint, the server's or a proxy's) with
// 5 MiB parts, so that the suite's 12 MiB object is a 3-part upload.
func open(t *testing.T, srv *s3test.Server, endpoint, prefix string, mod func(*Options)) *Store {
	t.Helper()
	o := Options{
		Endpoint: endpoint, Region: "us-east-1", Bucket: srv.Bucket, Prefix: prefix, PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PartSize: MinPartSize,
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(bg, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs storage.Local's table of behaviours (storetest) on the S3 store
// against a real S3 server.
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	n := 0
	storetest.Run(t, func(t *testing.T) storage.Store {
		n++
		return open(t, srv, srv.Endpoint, fmt.Sprintf("conformance/%d", n), nil)
	}, storetest.Options{})
}

// TestConformanceNoPrefix runs the table on the bucket's root (no Prefix), where a key
// is the object name itself.
func TestConformanceNoPrefix(t *testing.T) {
	srv := s3test.Start(t)
	storetest.Run(t, func(t *testing.T) storage.Store {
		s := open(t, srv, srv.Endpoint, "", nil)
		// Each case starts on an empty bucket.
		var keys []string
		_ = s.List(bg, "", func(i storage.Info) error { keys = append(keys, i.Key); return nil })
		if err := s.DeleteMany(bg, keys); err != nil {
			t.Fatal(err)
		}
		return s
	}, storetest.Options{LargeSize: 5<<20 + 1})
}

// TestRetriesThroughFaults: with 30% of all requests answered 503 SlowDown (then 500, then
// 429) by the proxy, every operation completes, and GETs whose bodies are cut mid-way are
// resumed and still verified.
func TestRetriesThroughFaults(t *testing.T) {
	srv := s3test.Start(t)
	proxy := s3test.NewProxy(t, srv.Endpoint)
	large := storetest.Random(11<<20+7, 3)
	for i, f := range []s3test.Faults{
		{Rate: 0.3, Status: 503},
		{Rate: 0.3, Status: 500},
		{Rate: 0.3, Status: 429},
		{CutRate: 0.5, CutAfter: 100_000, Match: func(r *http.Request) bool { return r.Method == http.MethodGet && !r.URL.Query().Has("list-type") }},
		{CutUploadRate: 0.3, CutAfter: 100_000, Match: func(r *http.Request) bool { return r.Method == http.MethodPut }},
	} {
		t.Run(fmt.Sprintf("%d-status%d-cut%.1f-cutupload%.1f", i, f.Status, f.CutRate, f.CutUploadRate), func(t *testing.T) {
			proxy.SetFaults(s3test.Faults{})
			s := open(t, srv, proxy.Endpoint, fmt.Sprintf("faults/%d", i), func(o *Options) { o.MaxAttempts = 20; o.ListPageSize = 2 })
			e0, c0, _ := proxy.Injected()
			proxy.SetFaults(f)
			for k := range 5 {
				if _, err := s.Put(bg, fmt.Sprintf("wals/%d", k), bytes.NewReader(storetest.Random(200_000, uint64(k)))); err != nil {
					t.Fatalf("put: %v", err)
				}
			}
			if _, err := s.Put(bg, "base/large", bytes.NewReader(large)); err != nil {
				t.Fatalf("put large: %v", err)
			}
			for k := range 5 {
				if got := storetest.Get(t, s, fmt.Sprintf("wals/%d", k)); !bytes.Equal(got, storetest.Random(200_000, uint64(k))) {
					t.Fatalf("get wals/%d: wrong content", k)
				}
			}
			if got := storetest.Get(t, s, "base/large"); !bytes.Equal(got, large) {
				t.Fatal("get large: wrong content")
			}
			r, err := s.GetRange(bg, "base/large", 5<<20, 300_000)
			if err != nil {
				t.Fatal(err)
			}
			part, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(part, large[5<<20:5<<20+300_000]) {
				t.Fatalf("get range: %d bytes, %v", len(part), err)
			}
			if keys := storetest.Keys(t, s, "wals/"); len(keys) != 5 {
				t.Fatalf("list: %v", keys)
			}
			if _, err := s.Stat(bg, "base/large"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(bg, "wals/0"); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteMany(bg, []string{"wals/1", "wals/2", "wals/3", "wals/4", "base/large"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Stat(bg, "wals/0"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("stat deleted: %v", err)
			}
			proxy.SetFaults(s3test.Faults{})
			if keys := storetest.Keys(t, s, ""); len(keys) != 0 {
				t.Fatalf("left after deletes: %v", keys)
			}
			e1, c1, _ := proxy.Injected()
			if e1-e0+c1-c0 < 3 {
				t.Fatalf("the proxy injected only %d errors and %d cuts: the test proved nothing", e1-e0, c1-c0)
			}
			t.Logf("injected %d errors, %d cuts; %+v", e1-e0, c1-c0, s.Requests())
		})
	}
}

// TestRetriesAreBounded: when every request fails, an operation gives up after
// MaxAttempts requests with the server's error, instead of retrying forever.
func TestRetriesAreBounded(t *testing.T) {
	srv := s3test.Start(t)
	proxy := s3test.NewProxy(t, srv.Endpoint)
	s := open(t, srv, proxy.Endpoint, "bounded", func(o *Options) { o.MaxAttempts = 3 })
	proxy.SetFaults(s3test.Faults{Rate: 1, Status: 503})
	before := s.Requests()
	_, err := s.Put(bg, "wals/x", strings.NewReader("data"))
	if err == nil || !strings.Contains(err.Error(), "wals/x") {
		t.Fatalf("put through a dead proxy: %v", err)
	}
	if got := s.Requests().Sub(before).Put; got != 3 {
		t.Fatalf("PUT sent %d times, want 3 (MaxAttempts)", got)
	}
}

// slowReader yields data in chunks and calls hook once after the first at bytes have
// been read, so that a test can act while a Put is under way.
type slowReader struct {
	data []byte
	off  int
	at   int
	hook func()
	once sync.Once
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	if r.off >= r.at {
		r.once.Do(r.hook)
	}
	n := copy(p[:min(len(p), 1<<20)], r.data[r.off:])
	r.off += n
	return n, nil
}

// TestKillDuringMultipartUpload: the server is killed after the first part of a 3-part
// upload; Put fails, no object (partial or whole) is visible after the restart, and a
// retried Put succeeds with the right content.
func TestKillDuringMultipartUpload(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Endpoint, "kill", func(o *Options) { o.MaxAttempts = 3 })
	data := storetest.Random(12<<20, 9)
	key := "base/20260101T000000/base.tar.zst"
	_, err := s.Put(bg, key, &slowReader{data: data, at: 6 << 20, hook: srv.Kill})
	if err == nil {
		t.Fatal("put succeeded although the server was killed during it")
	}
	if strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatal("error shows the secret key")
	}
	t.Logf("put while killed: %v", err)
	srv.Restart()
	if _, err := s.Stat(bg, key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat after failed put: %v, want ErrNotFound", err)
	}
	if keys := storetest.Keys(t, s, ""); len(keys) != 0 {
		t.Fatalf("visible after failed put: %v", keys)
	}
	if _, err := s.Put(bg, key, bytes.NewReader(data)); err != nil {
		t.Fatalf("retried put: %v", err)
	}
	if got := storetest.Get(t, s, key); !bytes.Equal(got, data) {
		t.Fatal("retried put: wrong content")
	}
}

// TestKillDuringSinglePut: the same for an object sent in one PUT: killed before the PUT,
// the Put fails and nothing is visible.
func TestKillDuringSinglePut(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Endpoint, "kill1", func(o *Options) { o.MaxAttempts = 2 })
	data := storetest.Random(3<<20, 10)
	_, err := s.Put(bg, "wals/x", &slowReader{data: data, at: 1 << 20, hook: srv.Kill})
	if err == nil {
		t.Fatal("put succeeded although the server was killed")
	}
	srv.Restart()
	if keys := storetest.Keys(t, s, ""); len(keys) != 0 {
		t.Fatalf("visible after failed put: %v", keys)
	}
}

// corrupt flips one byte in the middle of the file that holds key on the server.
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestChecksumMismatch: an object corrupted at rest on the server (one bit flipped in
// versitygw's file) fails Get with an error naming the key, for a single-PUT and for a
// multipart object; an intact object still reads.
func TestChecksumMismatch(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Endpoint, "sum", nil)
	small, big := storetest.Random(100_000, 1), storetest.Random(11<<20, 2)
	for key, data := range map[string][]byte{"wals/small": small, "base/big": big, "wals/intact": small} {
		if _, err := s.Put(bg, key, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"wals/small", "base/big"} {
		corrupt(t, srv.ObjectPath("sum/"+key))
		r, err := s.Get(bg, key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(r)
		r.Close()
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Fatalf("get corrupted %s: %v, want a checksum mismatch naming the key", key, err)
		}
	}
	if got := storetest.Get(t, s, "wals/intact"); !bytes.Equal(got, small) {
		t.Fatal("intact object: wrong content")
	}
}

// TestDeleteManyBatches: 2,500 keys listed in 3 LIST requests (1000 per page) and deleted
// in 3 DeleteObjects requests; missing keys in the batch are not errors.
func TestDeleteManyBatches(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Endpoint, "many", nil)
	const n = 2500
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("wals/%08X", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for k := range work {
				if _, err := s.Put(bg, k, strings.NewReader(k)); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	before := s.Requests()
	listed := storetest.Keys(t, s, "wals/")
	if len(listed) != n || listed[0] != keys[0] || listed[n-1] != keys[n-1] {
		t.Fatalf("listed %d keys", len(listed))
	}
	if d := s.Requests().Sub(before); d.List != 3 || d.Total() != 3 {
		t.Fatalf("listing 2500 keys took %+v, want 3 LIST requests", d)
	}
	before = s.Requests()
	if err := s.DeleteMany(bg, append(keys[:n-1:n-1], "wals/missing")); err != nil {
		t.Fatal(err)
	}
	if d := s.Requests().Sub(before); d.Delete != 3 || d.Total() != 3 {
		t.Fatalf("deleting 2500 keys took %+v, want 3 DeleteObjects requests", d)
	}
	if left := storetest.Keys(t, s, "wals/"); len(left) != 1 || left[0] != keys[n-1] {
		t.Fatalf("left after DeleteMany: %v", left)
	}
}

// TestRequestCounts: the counters are exact for a known sequence of operations.
func TestRequestCounts(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Endpoint, "count", nil)
	want := storage.RequestCounts{Head: 1} // New's HeadBucket
	check := func(step string) {
		t.Helper()
		if got := s.Requests(); got != want {
			t.Fatalf("after %s: %+v, want %+v", step, got, want)
		}
	}
	check("New")
	if _, err := s.Put(bg, "wals/a", strings.NewReader("small")); err != nil {
		t.Fatal(err)
	}
	want.Put++
	check("small Put")
	if _, err := s.Put(bg, "base/big", bytes.NewReader(storetest.Random(12<<20, 5))); err != nil {
		t.Fatal(err)
	}
	want.Put += 5 // create, 3 parts, complete
	check("3-part Put")
	storetest.Get(t, s, "wals/a")
	storetest.Get(t, s, "base/big")
	want.Get += 2
	check("2 Gets")
	r, err := s.GetRange(bg, "base/big", 100, 10)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if len(b) != 10 {
		t.Fatalf("range: %d bytes", len(b))
	}
	want.Get++
	check("GetRange")
	if _, err := s.Stat(bg, "wals/a"); err != nil {
		t.Fatal(err)
	}
	want.Head++
	check("Stat")
	storetest.Keys(t, s, "")
	want.List++
	check("List")
	if err := s.Delete(bg, "wals/a"); err != nil {
		t.Fatal(err)
	}
	want.Head++
	want.Delete++
	check("Delete")
	if err := s.DeleteMany(bg, []string{"base/big", "x", "y"}); err != nil {
		t.Fatal(err)
	}
	want.Delete++
	check("DeleteMany")
	if _, err := s.Get(bg, "wals/a"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	want.Get++
	check("Get of a missing key")
}

// TestMissingBucket: New names the bucket and the endpoint in one line.
func TestMissingBucket(t *testing.T) {
	srv := s3test.Start(t)
	_, err := New(bg, Options{Endpoint: srv.Endpoint, Region: "us-east-1", Bucket: "nosuchbucket", PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	want := "s3 bucket nosuchbucket does not exist at " + srv.Endpoint
	if err == nil || err.Error() != want {
		t.Fatalf("New on a missing bucket: %v, want %q", err, want)
	}
}

// TestCredentialSources: credentials from the environment and from a shared credentials
// file with a profile are used; none at all is a clear error; a wrong secret is refused;
// and no error or name shows the secret key.
func TestCredentialSources(t *testing.T) {
	srv := s3test.Start(t)
	base := Options{Endpoint: srv.Endpoint, Region: "us-east-1", Bucket: srv.Bucket, PathStyle: true}
	// No ~/.aws of the user running the tests may leak in, nor an instance role.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "none"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "none"))
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_PROFILE"} {
		t.Setenv(v, "")
	}
	var errs []error
	use := func(name string, o Options) *Store {
		t.Helper()
		s, err := New(bg, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := s.Put(bg, "creds/"+name, strings.NewReader(name)); err != nil {
			t.Fatalf("%s: put: %v", name, err)
		}
		if strings.Contains(s.String(), srv.SecretKey) || strings.Contains(fmt.Sprintf("%+v", *s), srv.SecretKey) {
			t.Fatalf("%s: the store's printed form shows the secret", name)
		}
		_, err = s.Stat(bg, "creds/missing")
		errs = append(errs, err)
		return s
	}

	t.Run("environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		use("env", base)
	})
	t.Run("file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "credentials")
		body := fmt.Sprintf("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[backup]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey)
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		o := base
		o.CredentialsFile, o.Profile = f, "backup"
		use("file", o)
		// The profile comes from AWS_PROFILE and the file from AWS_SHARED_CREDENTIALS_FILE too.
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", f)
		t.Setenv("AWS_PROFILE", "backup")
		use("file-from-env", base)
	})
	t.Run("wrong secret", func(t *testing.T) {
		o := base
		o.AccessKeyID, o.SecretAccessKey = srv.AccessKey, srv.SecretKey+"x"
		_, err := New(bg, o)
		if err == nil {
			t.Fatal("a wrong secret was accepted")
		}
		errs = append(errs, err)
		o.SecretAccessKey = srv.SecretKey
		s := use("static", o)
		// And an unreachable endpoint, a bad key.
		o.Endpoint = "http://127.0.0.1:1"
		o.MaxAttempts = 1
		_, err = New(bg, o)
		errs = append(errs, err)
		_, err = s.Put(bg, "../bad", strings.NewReader("x"))
		errs = append(errs, err)
	})
	t.Run("none", func(t *testing.T) {
		o := base
		o.Endpoint = srv.Endpoint
		// The chain ends with the instance role: point it nowhere so that it fails fast.
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds")
		_, err := New(bg, o)
		if err == nil || !strings.Contains(err.Error(), "no credentials") {
			t.Fatalf("New without credentials: %v", err)
		}
	})
	for _, err := range errs {
		if err == nil {
			continue
		}
		if strings.Contains(err.Error(), srv.SecretKey) || strings.Contains(fmt.Sprintf("%+v", err), srv.SecretKey) {
			t.Errorf("error shows the secret key: %v", err)
		}
	}
	if len(errs) < 5 {
		t.Fatalf("only %d errors collected", len(errs))
	}
}

// TestCAFile: an https endpoint whose certificate is signed by a private CA is reached
// with CAFile and refused without it.
func TestCAFile(t *testing.T) {
	srv := s3test.StartTLS(t)
	o := Options{Endpoint: srv.Endpoint, Region: "us-east-1", Bucket: srv.Bucket, PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, MaxAttempts: 1}
	if _, err := New(bg, o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("New without the CA file: %v, want a certificate error", err)
	}
	o.CAFile = srv.CAFile
	s, err := New(bg, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(bg, "wals/tls", strings.NewReader("over tls")); err != nil {
		t.Fatal(err)
	}
	if got := string(storetest.Get(t, s, "wals/tls")); got != "over tls" {
		t.Fatalf("get over tls: %q", got)
	}
	o.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := New(bg, o); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("New with a missing CA file: %v", err)
	}
}

// TestEndpointParsing covers the endpoint forms New accepts and refuses.
func TestEndpointParsing(t *testing.T) {
	for _, c := range []struct {
		in, out string
		secure  bool
		bad     bool
	}{
		{"http://127.0.0.1:7070", "http://127.0.0.1:7070", false, false},
		{"https://s3.eu-west-1.amazonaws.com", "https://s3.eu-west-1.amazonaws.com", true, false},
		{"https://s3.example.com/", "https://s3.example.com", true, false},
		{"s3.example.com:9000", "https://s3.example.com:9000", true, false},
		{"ftp://x", "", false, true},
		{"http://x/path", "", false, true},
		{"http://user:pw@x", "", false, true},
		{"", "", false, true},
	} {
		out, secure, err := parseEndpoint(c.in)
		if (err != nil) != c.bad || out != c.out || secure != c.secure {
			t.Errorf("parseEndpoint(%q) = %q %v %v", c.in, out, secure, err)
		}
	}
}

// genReader yields n pseudo-random bytes without holding them: a stand-in for a large
// backup stream.
type genReader struct{ left, x uint64 }

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := min(uint64(len(p)), g.left)
	for i := range p[:n] {
		g.x = g.x*6364136223846793005 + 1442695040888963407
		p[i] = byte(g.x >> 56)
	}
	g.left -= n
	return int(n), nil
}

// TestPutStreamsParts: a 60 MiB Put in 5 MiB parts allocates a small multiple of the part
// size, not the object's size: Put streams, it does not buffer the object.
func TestPutStreamsParts(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Endpoint, "stream", nil)
	const size = 60 << 20
	// Warm up (the part pool, the connection), then measure a second Put.
	if _, err := s.Put(bg, "base/warm", &genReader{left: 6 << 20, x: 1}); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := s.Put(bg, "base/big", &genReader{left: size, x: 2})
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("put: %d %v", n, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d MiB Put in %d MiB parts allocated %.1f MiB", size>>20, MinPartSize>>20, float64(alloc)/(1<<20))
	if alloc > size/2 {
		t.Fatalf("a %d MiB Put allocated %d MiB: it buffers the object", size>>20, alloc>>20)
	}
	fi, err := s.Stat(bg, "base/big")
	if err != nil || fi.Size != size {
		t.Fatalf("stat: %+v %v", fi, err)
	}
	r, err := s.Get(bg, "base/big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, r)
	r.Close()
	if err != nil || got != size {
		t.Fatalf("get: %d %v", got, err)
	}
}

// TestDeleteManyReportsFailures: a key the server cannot delete (its file made immutable)
// is reported by name; the batch's other keys are deleted.
func TestDeleteManyReportsFailures(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, srv, srv.Endpoint, "fail", nil)
	for _, k := range []string{"wals/a", "wals/b", "wals/c"} {
		if _, err := s.Put(bg, k, strings.NewReader(k)); err != nil {
			t.Fatal(err)
		}
	}
	stuck := srv.ObjectPath("fail/wals/b")
	if out, err := exec.Command("chattr", "+i", stuck).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i %s: %v: %s", stuck, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", stuck).Run() })
	err := s.DeleteMany(bg, []string{"wals/a", "wals/b", "wals/c", "wals/missing"})
	if err == nil || !strings.Contains(err.Error(), "wals/b") || strings.Contains(err.Error(), "wals/a") || strings.Contains(err.Error(), "missing") {
		t.Fatalf("DeleteMany with an undeletable key: %v, want an error naming wals/b only", err)
	}
	t.Logf("DeleteMany: %v", err)
	if left := storetest.Keys(t, s, ""); len(left) != 1 || left[0] != "wals/b" {
		t.Fatalf("left: %v, want only wals/b", left)
	}
}
