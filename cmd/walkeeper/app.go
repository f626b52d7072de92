package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/walkeeper/walkeeper/internal/repo"
	"github.com/walkeeper/walkeeper/internal/runas"
	"github.com/walkeeper/walkeeper/internal/supervisor"

	"github.com/alecthomas/kong"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Globals are the flags every command takes.
type Globals struct {
	Config  string           `help:"Configuration file (else $WALKEEPER_CONFIG, ~/.walkeeper.conf, /etc/walkeeper.conf)." placeholder:"FILE"`
	JSON    bool             `help:"Print machine-readable JSON (read commands)."`
	Verbose bool             `short:"v" help:"Log more."`
	Version kong.VersionFlag `help:"Print the version and exit."`
}

// App is what every command's Run receives: lazily loaded configuration, logger, index.
type App struct {
	g      *Globals
	cfg    *config.Config
	log    *slog.Logger
	out    io.Writer
	idx    index.Index
	store  storage.Store
	client *daemon.Client
	// noReconcile: the command repairs the index itself (index rebuild), and must see
	// both tiers whole: a repository that cannot be listed is an error then.
	noReconcile bool
}

func newApp(g *Globals) *App {
	level := slog.LevelWarn
	if g.Verbose {
		level = slog.LevelDebug
	}
	return &App{g: g, out: os.Stdout, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
}

func (a *App) close() {
	if a.idx != nil {
		_ = a.idx.Close()
	}
	repo.LogRequests(a.store, a.log)
}

// Config loads the configuration once.
func (a *App) Config() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	// A configuration that cannot be found or loaded is bad usage (exit 2).
	path, err := config.Find(a.g.Config)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	for _, w := range cfg.Warnings {
		a.log.Warn(w)
	}
	if _, err := runas.OwnerOf(cfg.Home); err != nil {
		return nil, err
	}
	a.cfg = cfg
	return cfg, nil
}

// Server loads the configuration and returns one server's section.
func (a *App) Server(name string) (*config.Server, error) {
	cfg, err := a.Config()
	if err != nil {
		return nil, err
	}
	return cfg.Server(name)
}

// Store is the archive's storage, with each server's repository behind its local
// tier; the configuration is loaded (Config or Server was called).
func (a *App) Store() storage.Store {
	if a.store == nil {
		a.store = repo.HomeStore(a.cfg)
		if !a.noReconcile {
			repo.ReadLocalWhenDown(a.store, func(msg string) { fmt.Fprintln(os.Stderr, msg) })
		}
	}
	return a.store
}

// Index opens the index: the daemon's when it runs, else the local database.
func (a *App) Index() (index.Index, error) {
	if a.idx != nil {
		return a.idx, nil
	}
	cfg, err := a.Config()
	if err != nil {
		return nil, err
	}
	idx, client, err := supervisor.OpenIndex(context.Background(), cfg, a.Store(), a.log, !a.noReconcile)
	if err != nil {
		return nil, err
	}
	a.idx, a.client = idx, client
	return idx, nil
}

// ServerIndex loads a server's section and opens the index.
func (a *App) ServerIndex(name string) (*config.Server, index.Index, error) {
	srv, err := a.Server(name)
	if err != nil {
		return nil, nil, err
	}
	idx, err := a.Index()
	return srv, idx, err
}

// resolveBackup loads a server's section and finds one of its backups by id, name,
// latest or oldest, with the index: the prelude of every command that takes a backup
// ID.
func (a *App) resolveBackup(ctx context.Context, server, ref string) (*config.Server, index.Index, record.Backup, error) {
	srv, idx, err := a.ServerIndex(server)
	if err != nil {
		return nil, nil, record.Backup{}, err
	}
	b, err := basebackup.Find(ctx, idx, srv.Dir(), srv.Name, ref)
	return srv, idx, b, err
}

// Daemon returns a client of the running daemon, or nil.
func (a *App) Daemon() *daemon.Client {
	if a.client != nil {
		return a.client
	}
	cfg, err := a.Config()
	if err != nil {
		return nil
	}
	c, err := daemon.Dial(cfg.Home)
	if err != nil {
		return nil
	}
	a.client = c
	return c
}

// daemonInfo is the running daemon's /v1/info; false when no daemon answers.
func (a *App) daemonInfo(ctx context.Context) (daemon.Info, bool) {
	if d := a.Daemon(); d != nil {
		if info, err := d.Info(ctx); err == nil {
			return info, true
		}
	}
	return daemon.Info{}, false
}

// output prints v as JSON under --json, else has text render it.
func (a *App) output(v any, text func(w io.Writer)) error {
	if a.g.JSON {
		return a.printJSON(v)
	}
	text(a.out)
	return nil
}

// printJSON writes v as indented JSON.
func (a *App) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
