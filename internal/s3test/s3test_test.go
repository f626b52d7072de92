package s3test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// TestStartKillRestart: the server serves the bucket, Kill stops the process (its port
// refuses connections), Restart serves the same data on the same port.
func TestStartKillRestart(t *testing.T) {
	t0 := time.Now()
	s := Start(t)
	t.Logf("started (with the bucket created) in %v", time.Since(t0))
	ctx := context.Background()
	cl := s.Client()
	if _, err := cl.PutObject(ctx, s.Bucket, "a/b", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	pid := s.cmd.Process.Pid
	s.Kill()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("versitygw pid %d still exists after Kill: %v", pid, err)
	}
	if _, err := http.Get(s.Endpoint); err == nil {
		t.Fatal("the port still answers after Kill")
	}
	t0 = time.Now()
	s.Restart()
	t.Logf("restarted in %v", time.Since(t0))
	o, err := cl.GetObject(ctx, s.Bucket, "a/b", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(o)
	if err != nil || string(b) != "hello" {
		t.Fatalf("after restart: %q %v", b, err)
	}
	if fi, err := cl.StatObject(ctx, s.Bucket, "a/b", minio.StatObjectOptions{}); err != nil || fi.Size != 5 {
		t.Fatalf("stat: %+v %v", fi, err)
	}
}

// TestProxyFaults: the proxy answers S3 XML errors with the configured status and code,
// and cuts response bodies; with no faults it passes requests through.
func TestProxyFaults(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if _, err := s.Client().PutObject(ctx, s.Bucket, "big", bytes.NewReader(big), int64(len(big)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	p := NewProxy(t, s.Endpoint)
	for _, c := range []struct {
		status int
		code   string
	}{{503, "SlowDown"}, {500, "InternalError"}, {429, "TooManyRequests"}} {
		p.SetFaults(Faults{Rate: 1, Status: c.status})
		resp, err := http.Get(p.Endpoint + "/" + s.Bucket + "/big")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), "<Code>"+c.code+"</Code>") {
			t.Fatalf("fault %d: got %d %s", c.status, resp.StatusCode, body)
		}
	}
	// A minio-go client through the proxy: cut bodies fail the read.
	p.SetFaults(Faults{CutRate: 1, CutAfter: 4096})
	cl, err := minio.New(p.Addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	o, err := cl.GetObject(ctx, s.Bucket, "big", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, o)
	if err == nil || n >= int64(len(big)) {
		t.Fatalf("cut response: read %d bytes, err %v; want a short read and an error", n, err)
	}
	p.SetFaults(Faults{})
	o, err = cl.GetObject(ctx, s.Bucket, "big", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("through the proxy without faults: %d bytes, %v", len(got), err)
	}
	if e, c, passed := p.Injected(); e != 3 || c != 1 || passed != 1 {
		t.Fatalf("injected %d errors, %d cuts, passed %d", e, c, passed)
	}
}
