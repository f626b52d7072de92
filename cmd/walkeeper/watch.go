package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// daemonService is a long-running part of the daemon besides ingest: streaming
// receivers, the retention schedule. Each file that adds one registers it in init(), so
// the daemon's wiring stays in one loop.
type daemonService struct {
	name string
	run  func(ctx context.Context, env *daemonEnv) error
}

var daemonServices []daemonService

// daemonEnv is what a daemon service gets: the configuration, the servers this daemon
// watches, the index it owns, the archive, its logger and the state it reports.
type daemonEnv struct {
	cfg     *config.Config
	servers []*config.Server
	idx     index.Index
	store   *storage.Local
	log     *slog.Logger
	state   *daemonState
	api     *daemon.Server
}

// WatchCmd is the daemon.
type WatchCmd struct {
	Servers []string `arg:"" optional:"" help:"Servers to watch (default: every active one)."`
}

// daemonLogger is the daemon's structured log at the configured level.
func daemonLogger(cfg *config.Config, verbose bool) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Run implements the command.
func (c *WatchCmd) Run(a *App) error {
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	log := daemonLogger(cfg, a.g.Verbose)
	servers, err := selectServers(cfg, c.Servers)
	if err != nil {
		return err
	}
	if err := daemon.PrepareHome(cfg.Home); err != nil {
		return err
	}
	lock, err := daemon.Lock(cfg.Home)
	if err != nil {
		return err
	}
	defer lock.Close()

	// A damaged index is moved aside here; the empty one is then rebuilt below.
	idx, _, err := daemon.OpenLocalIndexRepairing(cfg.Home, log, 15*time.Second)
	if err != nil {
		return err
	}
	store := storage.NewLocal(cfg.Home)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Invariant 4: a lost index is rebuilt from the archive before anything else; one
	// that opened but cannot be read is moved aside and rebuilt whole.
	if err := rebuildLost(ctx, cfg, idx, store, log); errors.Is(err, index.ErrDamaged) {
		_ = idx.Close()
		moved, merr := index.MoveAside(daemon.IndexDir(cfg.Home))
		if merr != nil {
			return merr
		}
		log.Error("the index is damaged: moved it aside, rebuilding it from the archive", "cause", err, "moved_to", moved)
		if idx, err = daemon.OpenLocalIndex(cfg.Home, log, 15*time.Second); err != nil {
			return err
		}
		if err := rebuildLost(ctx, cfg, idx, store, log); err != nil {
			_ = idx.Close()
			return err
		}
	} else if err != nil {
		_ = idx.Close()
		return err
	}
	defer func() {
		// Every index write is already synced (SyncWrites); a close that hangs (its
		// directory removed under it) must not keep the daemon from exiting.
		done := make(chan struct{})
		go func() { _ = idx.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			log.Error("index close did not finish in 15s; exiting anyway")
		}
	}()

	// Temporary files of writers killed before their rename (the daemon's own, in
	// wals/, and old ones of archive-wal in incoming/) are never renamed by anyone.
	for _, s := range servers {
		ingest.RemoveStaleTemps(s.Name, s.IncomingDir(), store, log)
	}

	st := &daemonState{info: daemon.Info{PID: os.Getpid(), Version: buildVersion(), StartedAt: time.Now().UTC(), Servers: map[string]daemon.ServerState{}}}
	api, err := daemon.Listen(cfg.Home, idx, st.snapshot)
	if err != nil {
		return err
	}
	go func() {
		if err := api.Serve(); err != nil {
			log.Error("local API", "err", err)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, len(servers))
	for _, s := range servers {
		p, err := ingest.NewPipeline(ingest.Server{
			Name:             s.Name,
			IncomingDir:      s.IncomingDir(),
			ErrorsDir:        s.ErrorsDir(),
			Compression:      s.Compression,
			CompressionLevel: s.CompressionLevel,
			Workers:          s.ParallelJobs,
			LearnIdentity: func(ctx context.Context) (catalog.Identity, error) {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				return pgutil.Identity(ctx, s.Conninfo)
			},
		}, store, idx, log)
		if err != nil {
			return err
		}
		st.update(s.Name, func(ss *daemon.ServerState) { ss.Watching = true })
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			// Ask the server who it is before the first file is judged; files wait in
			// incoming/ meanwhile, and other servers are not held up.
			p.EnsureIdentity(ctx)
			err := p.Run(ctx, func(r ingest.Result) { st.record(name, r) })
			st.update(name, func(ss *daemon.ServerState) { ss.Watching = false })
			if err != nil {
				log.Error("watcher stopped", "server", name, "err", err)
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}(s.Name)
	}
	env := &daemonEnv{cfg: cfg, servers: servers, idx: idx, store: store, log: log, state: st, api: api}
	for _, svc := range daemonServices {
		wg.Add(1)
		go func(svc daemonService) {
			defer wg.Done()
			if err := svc.run(ctx, env); err != nil && ctx.Err() == nil {
				log.Error("daemon service stopped", "service", svc.name, "err", err)
			}
		}(svc)
	}
	log.Info("walkeeper watch started", "home", cfg.Home, "servers", len(servers), "pid", os.Getpid())
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

// rebuildLost rebuilds the index of every server whose records are missing.
func rebuildLost(ctx context.Context, cfg *config.Config, idx index.Index, store storage.Store, log *slog.Logger) error {
	for _, s := range cfg.Servers {
		lost, err := indexLost(ctx, idx, store, s.Name)
		if err != nil {
			return err
		}
		if lost {
			log.Warn("the index holds nothing for a server whose archive is not empty: rebuilding it", "server", s.Name)
			if err := rebuildServer(ctx, idx, store, s.Name, log); err != nil {
				return err
			}
		}
	}
	return nil
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// indexLost reports whether the index has no WAL record of a server whose archive holds
// files: the index was deleted, or recreated empty by a command run without the daemon.
func indexLost(ctx context.Context, idx index.Index, store storage.Store, server string) (bool, error) {
	err := idx.ScanWAL(ctx, server, index.WALRange{}, func(catalog.WALFile) error { return errStop })
	if errors.Is(err, errStop) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return archive.HasWAL(ctx, store, server)
}

func selectServers(cfg *config.Config, names []string) ([]*config.Server, error) {
	if len(names) == 0 {
		var out []*config.Server
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
	var out []*config.Server
	for _, n := range names {
		s, err := cfg.Server(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// daemonState is the daemon's own counters, served at /v1/info.
type daemonState struct {
	mu   sync.Mutex
	info daemon.Info
}

func (d *daemonState) snapshot() daemon.Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.info
	out.Servers = make(map[string]daemon.ServerState, len(d.info.Servers))
	for k, v := range d.info.Servers {
		out.Servers[k] = v
	}
	return out
}

func (d *daemonState) update(server string, f func(*daemon.ServerState)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.info.Servers[server]
	f(&s)
	d.info.Servers[server] = s
}

func (d *daemonState) record(server string, r ingest.Result) {
	d.update(server, func(s *daemon.ServerState) {
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
