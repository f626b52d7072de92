// Package supervisor is the daemon, `walkeeper watch`: it takes the daemon lock, opens
// the index (rebuilding a lost or damaged one from the archive, invariant 4), serves the
// local API, runs one ingest pipeline per watched server and the services its caller
// names (streaming receivers, the retention schedule) until it is told to stop. It sits
// above the packages it runs; the local API itself is package daemon, which commands
// use as clients.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/repo"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/upload"
)

// Service is a long-running part of the daemon besides ingest: the streaming receivers,
// the retention schedule. The caller of Run names every service it wants, so what a
// daemon runs is read in one place (no registration behind the caller's back).
type Service struct {
	Name string
	// Run returns when ctx ends; an error before that is logged and the service is
	// not restarted (a service retries its own failures).
	Run func(ctx context.Context, env *Env) error
}

// Env is what a service gets: the configuration, the servers this daemon watches, the
// index it owns, the archive, its logger and the state it reports at /v1/info.
type Env struct {
	Config  *config.Config
	Servers []*config.Server
	Index   index.Index
	Store   storage.Store
	Log     *slog.Logger
	State   *State
}

// Options are a daemon's: its configuration, the servers it watches and its services.
type Options struct {
	Config  *config.Config
	Servers []*config.Server
	Version string
	Log     *slog.Logger
	// Identity asks a server who it is; the first file of a server waits for it.
	// Default: pgutil.Identity, 5s at most per try.
	Identity func(ctx context.Context, conninfo string) (record.Identity, error)
	Services []Service
	// CloseWait bounds the index's close at exit (default 15s).
	CloseWait time.Duration
}

// Run is `walkeeper watch`: it takes the daemon lock, opens (and if need be rebuilds)
// the index, serves the local API, runs one ingest pipeline per server and every
// service until ctx ends, then finishes the files in flight. It returns the first
// watcher's failure, if any.
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Log
	if o.CloseWait <= 0 {
		o.CloseWait = 15 * time.Second
	}
	if o.Identity == nil {
		o.Identity = identityWithin(5 * time.Second)
	}
	if err := daemon.PrepareHome(cfg.Home); err != nil {
		return err
	}
	lock, err := daemon.Lock(cfg.Home)
	if err != nil {
		return err
	}
	defer lock.Close()
	store := repo.HomeStore(cfg)
	idx, err := openRebuilt(ctx, cfg, store, log)
	if err != nil {
		return err
	}
	defer closeBounded(idx, o.CloseWait, log)

	// Temporary files of writers killed before their rename (the daemon's own, in
	// wals/, and old ones of archive-wal in incoming/) are never renamed by anyone.
	for _, s := range o.Servers {
		ingest.RemoveStaleTemps(s.Name, s.IncomingDir(), store, log)
	}
	st := NewState(daemon.Info{PID: os.Getpid(), Version: o.Version, StartedAt: time.Now().UTC(), Servers: map[string]daemon.ServerState{}})
	api, err := daemon.Listen(cfg.Home, idx, st.Snapshot)
	if err != nil {
		return err
	}
	go func() {
		if err := api.Serve(); err != nil {
			log.Error("local API", "err", err)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, len(o.Servers))
	ups := startUploaders(ctx, o, store, st, &wg)
	if err := startPipelines(ctx, o, store, idx, st, ups, &wg, errs); err != nil {
		return err
	}
	env := &Env{Config: cfg, Servers: o.Servers, Index: idx, Store: store, Log: log, State: st}
	for _, svc := range o.Services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Run(ctx, env); err != nil && ctx.Err() == nil {
				log.Error("daemon service stopped", "service", svc.Name, "err", err)
			}
		}()
	}
	log.Info("walkeeper watch started", "home", cfg.Home, "servers", len(o.Servers), "pid", os.Getpid())
	<-ctx.Done()
	log.Info("stopping: finishing files in flight")
	wg.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = api.Shutdown(sctx)
	close(errs)
	for err := range errs {
		return err
	}
	log.Info("walkeeper watch stopped")
	return nil
}

// openRebuilt opens the daemon's index. Invariant 4: a lost index is rebuilt from the
// archive before anything else; a damaged one (it does not open, or opens but cannot be
// read) is moved aside and rebuilt whole.
func openRebuilt(ctx context.Context, cfg *config.Config, store storage.Store, log *slog.Logger) (*index.Badger, error) {
	idx, _, err := daemon.OpenLocalIndexRepairing(cfg.Home, log, 15*time.Second)
	if err != nil {
		return nil, err
	}
	err = RebuildLost(ctx, cfg.Servers, idx, store, log)
	if errors.Is(err, index.ErrDamaged) {
		_ = idx.Close()
		moved, merr := index.MoveAside(daemon.IndexDir(cfg.Home))
		if merr != nil {
			return nil, merr
		}
		log.Error("the index is damaged: moved it aside, rebuilding it from the archive", "cause", err, "moved_to", moved)
		if idx, err = daemon.OpenLocalIndex(cfg.Home, log, 15*time.Second); err != nil {
			return nil, err
		}
		err = RebuildLost(ctx, cfg.Servers, idx, store, log)
	}
	if err != nil {
		_ = idx.Close()
		return nil, err
	}
	return idx, nil
}

// closeBounded closes the index, giving up after wait: every index write is already
// synced (SyncWrites), and a close that hangs (its directory removed under it) must not
// keep the daemon from exiting.
func closeBounded(idx index.Index, wait time.Duration, log *slog.Logger) {
	done := make(chan struct{})
	go func() { _ = idx.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		log.Error(fmt.Sprintf("index close did not finish in %s; exiting anyway", wait))
	}
}

// localTier is the local archive of store: ingest writes there and judges new files
// against it and the index alone, so that a repository that cannot be reached never
// holds up archiving (what the repository alone holds is in the index).
func localTier(store storage.Store) storage.Store {
	if t, ok := store.(storage.Tiered); ok {
		return t.LocalTier()
	}
	return store
}

// startPipelines starts one ingest pipeline per server; a watcher that stops with an
// error reports it on errs.
func startPipelines(ctx context.Context, o Options, store storage.Store, idx index.Index, st *State, ups map[string]*upload.Uploader,
	wg *sync.WaitGroup, errs chan<- error) error {
	for _, s := range o.Servers {
		conninfo := s.Conninfo
		p, err := ingest.NewPipeline(ingest.PipelineConfig{
			Name:             s.Name,
			IncomingDir:      s.IncomingDir(),
			ErrorsDir:        s.ErrorsDir(),
			Compression:      s.Compression,
			CompressionLevel: s.CompressionLevel,
			Workers:          s.ParallelJobs,
			LearnIdentity:    func(ctx context.Context) (record.Identity, error) { return o.Identity(ctx, conninfo) },
		}, localTier(store), idx, o.Log)
		if err != nil {
			return err
		}
		name := s.Name
		st.Update(name, func(ss *daemon.ServerState) { ss.Watching = true })
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ask the server who it is before the first file is judged; files wait in
			// incoming/ meanwhile, and other servers are not held up.
			p.EnsureIdentity(ctx)
			up := ups[name]
			err := p.Run(ctx, func(r ingest.Result) {
				st.Record(name, r)
				if up != nil && r.Outcome == ingest.Archived {
					up.Archived(r.Record.Key)
				}
			})
			st.Update(name, func(ss *daemon.ServerState) { ss.Watching = false })
			if err != nil {
				o.Log.Error("watcher stopped", "server", name, "err", err)
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	return nil
}

// SelectServers is the servers a daemon watches: the named ones, else every active one.
func SelectServers(cfg *config.Config, names []string) ([]*config.Server, error) {
	var out []*config.Server
	if len(names) == 0 {
		for _, s := range cfg.Servers {
			if s.Active {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: no active server configured", cfg.File)
		}
		return out, nil
	}
	for _, n := range names {
		s, err := cfg.Server(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// State is the daemon's own counters, served at /v1/info; safe for concurrent use.
type State struct {
	mu   sync.Mutex
	info daemon.Info
}

// NewState starts the counters at info.
func NewState(info daemon.Info) *State {
	if info.Servers == nil {
		info.Servers = map[string]daemon.ServerState{}
	}
	return &State{info: info}
}

// Snapshot is a copy of the state.
func (d *State) Snapshot() daemon.Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.info
	out.Servers = make(map[string]daemon.ServerState, len(d.info.Servers))
	for k, v := range d.info.Servers {
		out.Servers[k] = v
	}
	return out
}

// Update changes one server's state under the lock.
func (d *State) Update(server string, f func(*daemon.ServerState)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.info.Servers[server]
	f(&s)
	d.info.Servers[server] = s
}

// Record counts one ingest outcome.
func (d *State) Record(server string, r ingest.Result) {
	d.Update(server, func(s *daemon.ServerState) {
		switch r.Outcome {
		case ingest.Archived:
			s.Archived++
		case ingest.Duplicate:
			s.Duplicates++
		case ingest.Quarantined:
			s.Quarantined++
			s.LastError = r.Name + ": " + r.Reason
			s.LastErrorAt = time.Now().UTC()
		}
	})
}

// identityWithin is pgutil.Identity bounded by timeout.
func identityWithin(timeout time.Duration) func(ctx context.Context, conninfo string) (record.Identity, error) {
	return func(ctx context.Context, conninfo string) (record.Identity, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return pgutil.Identity(ctx, conninfo)
	}
}
