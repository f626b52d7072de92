package tier

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// Opener opens a server's repository. It runs at the first call that needs the
// repository (get-wal of a segment still on the local tier never pays for a
// connection, nor for unlocking an encrypted repository's key) and, until it succeeds,
// again at each later one: a repository unreachable when the daemon starts is used once
// it is back.
type Opener func(ctx context.Context) (storage.Store, error)

// Routed is the store of a home whose servers may each have a repository: a key's
// first element is its server (every key the archive layer spells is "<server>/..."),
// and a server with a repository is served by the tiered Store of its two tiers, the
// others by Local alone.
type Routed struct {
	Local storage.Store
	repos map[string]*lazy
	// Degraded is each tiered Store's (see Store.Degraded), with the server.
	Degraded func(server string, err error)
}

type lazy struct {
	open  Opener
	mu    sync.Mutex
	store storage.Store
}

func (l *lazy) get(ctx context.Context) (storage.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store != nil {
		return l.store, nil
	}
	s, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	l.store = s
	return s, nil
}

// NewRouted returns the store of local with the repositories of the servers in repos.
func NewRouted(local storage.Store, repos map[string]Opener) *Routed {
	r := &Routed{Local: local, repos: map[string]*lazy{}}
	for server, open := range repos {
		r.repos[server] = &lazy{open: open}
	}
	return r
}

func (r *Routed) degraded(server string) func(error) {
	if r.Degraded == nil {
		return nil
	}
	return func(err error) { r.Degraded(server, err) }
}

// Repository returns server's repository (nil, nil when it has none), opening it on
// first use.
func (r *Routed) Repository(ctx context.Context, server string) (storage.Store, error) {
	l, ok := r.repos[server]
	if !ok {
		return nil, nil
	}
	s, err := l.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("repository of %s: %w", server, err)
	}
	return s, nil
}

// forKey is the store serving key: the tiers of its server's repository, else Local.
// The repository is opened only when the local tier cannot answer alone (see Store).
func (r *Routed) forKey(key string) storage.Store {
	server, _, _ := strings.Cut(key, "/")
	l, ok := r.repos[server]
	if !ok {
		return r.Local
	}
	return &Store{Local: r.Local, Remote: lazyStore{l: l, server: server}, Degraded: r.degraded(server)}
}

// RemoteOf is server's repository as a store that opens it at first use (see Opener),
// nil when the server has none: the uploader's target.
func (r *Routed) RemoteOf(server string) storage.Store {
	l, ok := r.repos[server]
	if !ok {
		return nil
	}
	return lazyStore{l: l, server: server}
}

// RemoveStaleTemps passes to the local tier (only it has temporary files).
func (r *Routed) RemoveStaleTemps(prefix string, minAge time.Duration) ([]string, error) {
	if l, ok := r.Local.(interface {
		RemoveStaleTemps(string, time.Duration) ([]string, error)
	}); ok {
		return l.RemoveStaleTemps(prefix, minAge)
	}
	return nil, nil
}

// Path passes to the local tier (the path of a local copy, for show-backup).
func (r *Routed) Path(key string) (string, error) {
	if l, ok := r.Local.(interface{ Path(string) (string, error) }); ok {
		return l.Path(key)
	}
	return "", fmt.Errorf("storage key %q: no local path", key)
}

// LocalTier implements storage.Tiered.
func (r *Routed) LocalTier() storage.Store { return r.Local }

// Put implements storage.Store (always the local tier).
func (r *Routed) Put(ctx context.Context, key string, rd io.Reader) (int64, error) {
	return r.Local.Put(ctx, key, rd)
}

// Get implements storage.Store.
func (r *Routed) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return r.forKey(key).Get(ctx, key)
}

// Stat implements storage.Store.
func (r *Routed) Stat(ctx context.Context, key string) (storage.Info, error) {
	return r.forKey(key).Stat(ctx, key)
}

// Delete implements storage.Store.
func (r *Routed) Delete(ctx context.Context, key string) error {
	return r.forKey(key).Delete(ctx, key)
}

// List implements storage.Store. A prefix within one server lists its tiers; a
// shorter one (a part of a server name, or "") lists the local tier and every
// repository of a server it could match.
func (r *Routed) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if server, _, ok := strings.Cut(prefix, "/"); ok {
		return r.forKey(server+"/").List(ctx, prefix, fn)
	}
	var servers []string
	for s := range r.repos {
		if strings.HasPrefix(s, prefix) {
			servers = append(servers, s)
		}
	}
	if len(servers) == 0 {
		return r.Local.List(ctx, prefix, fn)
	}
	sort.Strings(servers)
	var st storage.Store = r.Local
	for _, s := range servers {
		st = &Store{Local: st, Remote: lazyStore{l: r.repos[s], server: s}, Degraded: r.degraded(s)}
	}
	return st.List(ctx, prefix, fn)
}

// lazyStore is a repository opened at its first use.
type lazyStore struct {
	l      *lazy
	server string
}

func (z lazyStore) store(ctx context.Context) (storage.Store, error) {
	s, err := z.l.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("repository of %s: %w", z.server, err)
	}
	return s, nil
}

func (z lazyStore) Put(ctx context.Context, key string, rd io.Reader) (int64, error) {
	s, err := z.store(ctx)
	if err != nil {
		return 0, err
	}
	return s.Put(ctx, key, rd)
}

func (z lazyStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	s, err := z.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, key)
}

func (z lazyStore) Stat(ctx context.Context, key string) (storage.Info, error) {
	s, err := z.store(ctx)
	if err != nil {
		return storage.Info{}, err
	}
	return s.Stat(ctx, key)
}

func (z lazyStore) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	s, err := z.store(ctx)
	if err != nil {
		return err
	}
	return s.List(ctx, prefix, fn)
}

func (z lazyStore) Delete(ctx context.Context, key string) error {
	s, err := z.store(ctx)
	if err != nil {
		return err
	}
	return s.Delete(ctx, key)
}

// Direct is a store whose writes go straight to the repository and whose reads go
// through the tiers: a backup taken with backup_local_copy = off, which streams to
// the repository and leaves no second full copy on the local disk.
type Direct struct {
	storage.Store               // the home's store, for reads and deletes
	To            storage.Store // the repository
}

// Put implements storage.Store: the repository only.
func (d Direct) Put(ctx context.Context, key string, rd io.Reader) (int64, error) {
	return d.To.Put(ctx, key, rd)
}

// Opened is server's repository if it was opened, else nil (it is not opened here).
func (r *Routed) Opened(server string) storage.Store {
	l, ok := r.repos[server]
	if !ok {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.store
}

// Servers are the servers with a repository, sorted.
func (r *Routed) Servers() []string {
	out := make([]string, 0, len(r.repos))
	for s := range r.repos {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
