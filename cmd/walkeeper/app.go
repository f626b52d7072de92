package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/alecthomas/kong"
	"github.com/dustin/go-humanize"
	"golang.org/x/term"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
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
	client *daemon.Client
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

// Store is the archive's storage.
func (a *App) Store() (*storage.Local, error) {
	cfg, err := a.Config()
	if err != nil {
		return nil, err
	}
	return storage.NewLocal(cfg.Home), nil
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
	idx, client, err := daemon.OpenIndex(cfg.Home, a.log)
	if err != nil {
		return nil, err
	}
	a.idx, a.client = idx, client
	return idx, nil
}

// resolveBackup loads a server's section and finds one of its backups by id, name,
// latest or oldest: the prelude of every command that takes a backup ID.
func (a *App) resolveBackup(ctx context.Context, server, ref string) (*config.Server, catalog.Backup, error) {
	srv, err := a.Server(server)
	if err != nil {
		return nil, catalog.Backup{}, err
	}
	idx, err := a.Index()
	if err != nil {
		return nil, catalog.Backup{}, err
	}
	bs, err := basebackup.ShowInterrupted(srv.Dir(), func() ([]catalog.Backup, error) { return idx.ListBackups(ctx, srv.Name) })
	if err != nil {
		return nil, catalog.Backup{}, err
	}
	b, err := basebackup.Resolve(bs, ref)
	if err != nil {
		return nil, catalog.Backup{}, fmt.Errorf("%s: %w", srv.Name, err)
	}
	return srv, b, nil
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

// printJSON writes v as indented JSON.
func (a *App) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table writes aligned columns.
func (a *App) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// interactive reports whether progress output should be drawn.
func interactive() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// humanBytes renders a byte count the way DBAs read it (1.5 GiB).
func humanBytes(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}
