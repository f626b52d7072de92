// Package daemon is the local API of `walkeeper watch`: the lock that keeps one daemon
// per home, the unix socket (mode 0600) that serves the index and the daemon's state to
// the other commands, and the client side that falls back to opening the index directly
// when no daemon runs (invariant 5).
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/index"
)

// File names inside <home>.
const (
	SocketName = "walkeeper.sock"
	LockName   = "walkeeper.lock"
	IndexName  = "index"
)

// ErrNotRunning is returned by Dial when no daemon answers on the socket.
var ErrNotRunning = errors.New("no walkeeper daemon is running")

// SocketPath is the daemon's socket in home.
func SocketPath(home string) string { return filepath.Join(home, SocketName) }

// IndexDir is the badger directory in home.
func IndexDir(home string) string { return filepath.Join(home, IndexName) }

// PrepareHome creates home with mode 0700 (invariant 8) and tightens it if it is looser.
func PrepareHome(home string) error {
	if err := fsutil.MkdirAll(home, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(home)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(home, 0o700); err != nil {
			return fmt.Errorf("home %s: %w", home, err)
		}
	}
	return nil
}

// Lock takes the daemon lock of home; a second daemon gets an error naming the holder.
// The lock is released when the returned lock is closed or the process dies.
func Lock(home string) (*fsutil.Lock, error) {
	p := filepath.Join(home, LockName)
	l, err := fsutil.TryLock(p)
	var held *fsutil.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("another walkeeper watch (pid %s) is running on %s", held.Holder.PIDText(), home)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return l, nil
}

// Info is the daemon's own state, served at /v1/info.
type Info struct {
	PID       int                    `json:"pid"`
	Version   string                 `json:"version"`
	StartedAt time.Time              `json:"started_at"`
	Servers   map[string]ServerState `json:"servers"`
}

// ServerState is what the daemon knows about one server beyond the index.
type ServerState struct {
	Watching    bool      `json:"watching"`
	Archived    int64     `json:"archived"`
	Duplicates  int64     `json:"duplicates"`
	Quarantined int64     `json:"quarantined"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Receiver    any       `json:"receiver,omitempty"`
	Upload      any       `json:"upload,omitempty"` // the uploader's state (upload.Stats), with a repository
}

// API is the daemon's HTTP API on the unix socket.
type API struct {
	mux *http.ServeMux
	ln  net.Listener
	srv *http.Server
}

// Listen creates the socket (removing a stale one: the caller holds the lock) with mode
// 0600 and serves the index and info() on it; Handle adds more endpoints.
func Listen(home string, idx index.Index, info func() Info) (*API, error) {
	p := SocketPath(home)
	_ = os.Remove(p)
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", p)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/index/", index.Handler(idx))
	mux.HandleFunc("/v1/info", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(info())
	})
	s := &API{mux: mux, ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	return s, nil
}

// Handle adds an endpoint.
func (s *API) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Serve answers requests until Shutdown.
func (s *API) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops serving and removes the socket.
func (s *API) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	_ = os.Remove(s.ln.Addr().String())
	return err
}

// Client talks to a running daemon.
type Client struct {
	HTTP *http.Client
	home string
}

// Dial connects to the daemon of home, or returns ErrNotRunning.
func Dial(home string) (*Client, error) {
	p := SocketPath(home)
	if _, err := os.Stat(p); err != nil {
		return nil, ErrNotRunning
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p)
		},
		MaxIdleConns: 4,
	}}
	c := &Client{HTTP: hc, home: home}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.Info(ctx); err != nil {
		return nil, ErrNotRunning
	}
	return c, nil
}

// Info returns the daemon's state.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.Get(ctx, "/v1/info", &info)
	return info, err
}

// Get fetches a JSON document from the daemon.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://walkeeper"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon %s: HTTP %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Index returns the daemon's index.
func (c *Client) Index() index.Index { return index.NewRemote(c.HTTP) }

// OpenIndex gives a command the index: the daemon's over the socket when it runs, else
// the badger database opened directly (waiting briefly if a daemon is just starting or
// stopping). client is nil when the index was opened directly.
func OpenIndex(home string, log *slog.Logger) (idx index.Index, client *Client, err error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, derr := Dial(home); derr == nil {
			return c.Index(), c, nil
		}
		if err := PrepareHome(home); err != nil {
			return nil, nil, err
		}
		b, berr := OpenLocalIndex(home, log, 200*time.Millisecond)
		if berr == nil {
			return b, nil, nil
		}
		if !errors.Is(berr, index.ErrLocked) || time.Now().After(deadline) {
			return nil, nil, berr
		}
	}
}

// OpenLocalIndex opens home's badger index, waiting up to wait while another process
// holds it: a command that found no daemon keeps it only for a moment.
func OpenLocalIndex(home string, log *slog.Logger, wait time.Duration) (*index.Badger, error) {
	deadline := time.Now().Add(wait)
	for {
		b, err := index.OpenBadger(IndexDir(home), log)
		if err == nil || !errors.Is(err, index.ErrLocked) || time.Now().After(deadline) {
			return b, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// OpenLocalIndexRepairing is OpenLocalIndex for the index's owner (the daemon, `index
// rebuild`): a damaged index is moved aside to index.broken-<timestamp> and an empty
// one opened in its place, for the caller to rebuild from the archive (invariant 4).
// movedTo is where the damaged one went ("" when it was fine).
func OpenLocalIndexRepairing(home string, log *slog.Logger, wait time.Duration) (idx *index.Badger, movedTo string, err error) {
	idx, err = OpenLocalIndex(home, log, wait)
	if !errors.Is(err, index.ErrDamaged) {
		return idx, "", err
	}
	cause := err
	if movedTo, err = index.MoveAside(IndexDir(home)); err != nil {
		return nil, "", err
	}
	log.Error("the index is damaged: moved it aside, rebuilding it from the archive", "cause", cause, "moved_to", movedTo)
	idx, err = OpenLocalIndex(home, log, wait)
	return idx, movedTo, err
}
