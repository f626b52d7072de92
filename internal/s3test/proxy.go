package s3test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Faults says what share of requests the Proxy answers itself instead of the server.
type Faults struct {
	// Rate is the share (0..1) of requests answered with Status and an S3 XML error.
	Rate float64
	// Status is the HTTP status of an injected error: 503 (the default, with code
	// SlowDown), 500 (InternalError) or 429 (TooManyRequests).
	Status int
	// CutRate is the share (0..1) of the other requests whose response body is cut
	// after CutAfter bytes by closing the connection.
	CutRate float64
	// CutAfter is how much of a cut response body gets through (default 1000 bytes).
	CutAfter int64
	// CutUploadRate is the share (0..1) of the other requests whose connection is closed
	// after CutAfter bytes of the request body were read, as a reset in mid-upload.
	CutUploadRate float64
	// Match limits faults to the requests it returns true for (nil: all requests).
	Match func(*http.Request) bool
}

// Proxy is a fault-injecting reverse proxy in front of a Server. Its Endpoint takes the
// server's place in a store's options.
type Proxy struct {
	// Endpoint is "http://127.0.0.1:PORT" of the proxy.
	Endpoint string
	// Addr is "127.0.0.1:PORT".
	Addr string

	mu      sync.Mutex
	faults  Faults
	rnd     *rand.Rand
	srv     *http.Server
	rp      *httputil.ReverseProxy
	errors  atomic.Int64
	cuts    atomic.Int64
	proxied atomic.Int64
}

// NewProxy starts a proxy to target (a Server's Endpoint) on a free loopback port with no
// faults; t.Cleanup closes it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), rnd: rand.New(rand.NewPCG(1, 2))}
	p.Endpoint = "http://" + p.Addr
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// SigV4 signs the Host header: keep the client's.
			r.Out.Host = r.In.Host
		},
		ErrorLog: log.New(io.Discard, "", 0), // a killed server is the point of most tests
	}
	p.srv = &http.Server{Handler: p}
	go func() { _ = p.srv.Serve(l) }()
	t.Cleanup(func() { p.srv.Close() })
	return p
}

// SetFaults replaces the fault configuration.
func (p *Proxy) SetFaults(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
}

// Injected returns how many error answers and cut responses the proxy has injected, and
// how many requests it passed through whole.
func (p *Proxy) Injected() (errorsInjected, cuts, passed int64) {
	return p.errors.Load(), p.cuts.Load(), p.proxied.Load()
}

// decide picks what to do with r: 'e' inject an error, 'c' cut the response, 'u' cut the
// upload, 'p' pass.
func (p *Proxy) decide(r *http.Request) (byte, Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults
	if f.Match != nil && !f.Match(r) {
		return 'p', f
	}
	x := p.rnd.Float64()
	switch {
	case x < f.Rate:
		return 'e', f
	case x < f.Rate+f.CutRate:
		return 'c', f
	case x < f.Rate+f.CutRate+f.CutUploadRate:
		return 'u', f
	}
	return 'p', f
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	what, f := p.decide(r)
	switch what {
	case 'e':
		p.errors.Add(1)
		// Drain the request body, so that the client reads the answer rather than a
		// reset while it is still sending.
		_, _ = io.Copy(io.Discard, r.Body)
		status, code := f.Status, "SlowDown"
		switch status {
		case 0, http.StatusServiceUnavailable:
			status = http.StatusServiceUnavailable
		case http.StatusInternalServerError:
			code = "InternalError"
		case http.StatusTooManyRequests:
			code = "TooManyRequests"
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>%s</Code><Message>injected by s3test.Proxy</Message><Resource>%s</Resource><RequestId>s3test</RequestId></Error>`,
			code, r.URL.Path)
	case 'c':
		p.cuts.Add(1)
		after := f.CutAfter
		if after <= 0 {
			after = 1000
		}
		rw := &cutWriter{ResponseWriter: w, left: after}
		// ReverseProxy aborts the connection (http.ErrAbortHandler) when writing the body
		// fails: the client sees the body end early, as with a connection reset.
		p.rp.ServeHTTP(rw, r)
	case 'u':
		p.cuts.Add(1)
		after := f.CutAfter
		if after <= 0 {
			after = 1000
		}
		_, _ = io.CopyN(io.Discard, r.Body, after)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, not FIN: a reset
				}
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	default:
		p.proxied.Add(1)
		p.rp.ServeHTTP(w, r)
	}
}

// errCut is what cutWriter returns once its budget is spent.
var errCut = errors.New("s3test: connection cut")

// cutWriter passes at most left bytes of body, then fails every write.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(b)) > c.left {
		n, _ := c.ResponseWriter.Write(b[:c.left])
		c.left = 0
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		return n, errCut
	}
	n, err := c.ResponseWriter.Write(b)
	c.left -= int64(n)
	return n, err
}

// Flush forwards to the underlying writer so that the cut bytes reach the client.
func (c *cutWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
