// Package s3test starts a real S3 server for tests: versitygw's posix backend on a loopback
// port, a temporary directory and random keys, with one bucket created. It is the S3
// counterpart of pgtest and sshtest: no mock, a real server speaking the real protocol,
// always stopped by t.Cleanup. Kill and Restart simulate a server crash for fault tests;
// Proxy (proxy.go) injects 5xx/429 answers and cut connections in front of it.
//
// The versitygw binary is built once from the Go module proxy into a cache (BinaryPath);
// scripts/setup.sh builds it, and a test builds it itself when it is missing.
package s3test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Module is the versitygw command the harness builds; keep in step with scripts/setup.sh.
const Module = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Version is the versitygw version in Module, used as the cache subdirectory.
const Version = "v1.8.0"

// CacheDir is where scripts/setup.sh and the harness cache the versitygw binary:
// $WALKEEPER_TOOLS_CACHE/versitygw/<version>, else /var/cache/walkeeper/versitygw/<version>
// as root (beside pgtest's /var/cache/walkeeper/pg), else
// ${XDG_CACHE_HOME:-~/.cache}/walkeeper/versitygw/<version>.
func CacheDir() string {
	base := os.Getenv("WALKEEPER_TOOLS_CACHE")
	switch {
	case base != "":
	case os.Geteuid() == 0:
		base = "/var/cache/walkeeper"
	case os.Getenv("XDG_CACHE_HOME") != "":
		base = filepath.Join(os.Getenv("XDG_CACHE_HOME"), "walkeeper")
	default:
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache", "walkeeper")
	}
	return filepath.Join(base, "versitygw", Version)
}

// BinaryPath is the cached versitygw binary ($WALKEEPER_VERSITYGW overrides it).
func BinaryPath() string {
	if p := os.Getenv("WALKEEPER_VERSITYGW"); p != "" {
		return p
	}
	return filepath.Join(CacheDir(), "versitygw")
}

// BuildCommand is the shell command that builds the binary into the cache, for messages.
func BuildCommand() string {
	return fmt.Sprintf("GOFLAGS=-mod=mod GOBIN=%s go install %s", CacheDir(), Module)
}

// Binary returns the versitygw binary, building it into the cache when it is missing (under
// a lock, so that test packages running in parallel build it once). A build failure fails
// the test in one line naming the command; -short skips, as pgtest does.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("s3test: needs the versitygw S3 server (not in -short mode)")
	}
	p := BinaryPath()
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p
	}
	if os.Getenv("WALKEEPER_VERSITYGW") != "" {
		t.Fatalf("s3test: WALKEEPER_VERSITYGW=%s: no such file", p)
	}
	if err := build(); err != nil {
		t.Fatalf("s3test: versitygw is not built and building it failed (run scripts/setup.sh, or: %s): %v", BuildCommand(), err)
	}
	return p
}

// build runs BuildCommand under an exclusive flock on CacheDir()/.lock.
func build() error {
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "versitygw")); err == nil {
		return nil // another package built it while we waited
	}
	gobin, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(gobin)
	cmd := exec.Command("go", "install", Module)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOBIN="+gobin)
	if out, err := cmd.CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("%v: %s", err, lines[len(lines)-1])
	}
	// Rename into place: a half-written binary is never found by BinaryPath.
	return os.Rename(filepath.Join(gobin, "versitygw"), filepath.Join(dir, "versitygw"))
}

// Server is one running versitygw.
type Server struct {
	// Endpoint is "http://127.0.0.1:PORT".
	Endpoint string
	// Addr is "127.0.0.1:PORT".
	Addr string
	// AccessKey and SecretKey are the root account's random credentials.
	AccessKey, SecretKey string
	// Bucket exists when Start returns.
	Bucket string
	// Dir is the posix backend's root; the bucket's objects are files under Dir/Bucket.
	Dir string
	// CAFile is the PEM file of the CA that signed the server's certificate (StartTLS).
	CAFile string

	certFile, keyFile string

	t      testing.TB
	bin    string
	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's result once
	log    *os.File
}

// Start runs versitygw on a free loopback port with a fresh directory and creates a bucket
// named "walkeeper-test". t.Cleanup kills it.
func Start(t testing.TB) *Server { t.Helper(); return start(t, false) }

// StartTLS is Start serving https with a certificate for 127.0.0.1 signed by a private CA
// made for the test, whose PEM file is Server.CAFile.
func StartTLS(t testing.TB) *Server { t.Helper(); return start(t, true) }

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{
		t: t, bin: bin,
		AccessKey: "AK" + randHex(8),
		SecretKey: randHex(20),
		Bucket:    "walkeeper-test",
		Dir:       filepath.Join(t.TempDir(), "s3"),
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	l.Close()
	s.Endpoint = "http://" + s.Addr
	if useTLS {
		if err := s.makeCerts(filepath.Dir(s.Dir)); err != nil {
			t.Fatal(err)
		}
		s.Endpoint = "https://" + s.Addr
	}
	t.Cleanup(s.Kill)
	s.start()
	cl := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", s.Bucket, err)
	}
	return s
}

// start runs the process and waits until it accepts connections on Addr.
func (s *Server) start() {
	t := s.t
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(s.Dir), "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--access", s.AccessKey, "--secret", s.SecretKey, "--port", s.Addr, "--quiet"}
	if s.certFile != "" {
		args = append(args, "--cert", s.certFile, "--key", s.keyFile)
	}
	cmd := exec.Command(s.bin, append(args, "posix", s.Dir)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that Kill reaches it even if it forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("s3test: start %s: %v", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.cmd, s.log, s.exited = cmd, logf, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			s.cmd = nil
			logf.Close()
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("s3test: versitygw exited before listening on %s: %v: %s", s.Addr, err, lastLine(string(b)))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			t.Fatalf("s3test: versitygw did not listen on %s within 30s", s.Addr)
		}
	}
}

// Kill stops the server at once (SIGKILL to its process group), as a crash would.
// It is safe to call twice.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	// Reaped, so that its port is free for Restart.
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
	s.cmd = nil
	s.log.Close()
}

// Restart starts the server again on the same port and directory after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Client is a minio-go client with the root credentials, for tests that look behind the
// store under test (creating buckets, reading what was stored).
func (s *Server) Client() *minio.Client {
	o := &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	}
	if s.CAFile != "" {
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			s.t.Fatal(err)
		}
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			s.t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		o.Secure, o.Transport = true, tr
	}
	cl, err := minio.New(s.Addr, o)
	if err != nil {
		s.t.Fatal(err)
	}
	return cl
}

// ObjectPath is the file that holds key in the posix backend.
func (s *Server) ObjectPath(key string) string {
	return filepath.Join(s.Dir, s.Bucket, filepath.FromSlash(key))
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
