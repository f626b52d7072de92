package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/supervisor"
)

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
	servers, err := supervisor.SelectServers(cfg, c.Servers)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return supervisor.Run(ctx, supervisor.Options{Config: cfg, Servers: servers, Version: buildVersion(), Log: daemonLogger(cfg, a.g.Verbose),
		Services: []supervisor.Service{supervisor.Receivers, supervisor.Retention}})
}

// ReceiveWALCmd runs one server's streaming receiver in the foreground (Barman's
// receive-wal), or manages its replication slot.
type ReceiveWALCmd struct {
	Server     string `arg:"" help:"Server name."`
	CreateSlot bool   `name:"create-slot" help:"Create the server's physical replication slot (slot_name) and exit."`
	DropSlot   bool   `name:"drop-slot" help:"Drop the server's replication slot and exit."`
	Reset      bool   `help:"Discard the streaming state (streaming/*.partial) and start at the server's current position."`
}

// Run implements the command.
func (c *ReceiveWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	if btoi(c.CreateSlot)+btoi(c.DropSlot)+btoi(c.Reset) > 1 {
		return usageErr("receive-wal: --create-slot, --drop-slot and --reset exclude each other")
	}
	if err := ingest.ValidSlotName(srv.SlotName); err != nil {
		return fmt.Errorf("server %s: %w", srv.Name, err)
	}
	ctx, stop := signalContext()
	defer stop()
	if c.CreateSlot || c.DropSlot {
		return c.slot(ctx, a, srv)
	}
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	log := daemonLogger(cfg, a.g.Verbose)
	rc := supervisor.ReceiverConfig(srv, log)
	rc.Reset = c.Reset
	store := a.Store()
	rc.SystemID = supervisor.SystemIDFromStore(store, srv.Name)
	if d := a.Daemon(); d != nil {
		info, err := d.Info(ctx)
		if err == nil {
			if ss, ok := info.Servers[srv.Name]; ok && ss.Receiver != nil {
				return fmt.Errorf("%s: walkeeper watch (pid %d) already streams this server (streaming_archiver = on); stop it first", srv.Name, info.PID)
			}
		}
		rc.ArchivedEnd = supervisor.ArchivedEndFromIndex(d.Index(), srv.Name)
	} else {
		rc.ArchivedEnd = func(ctx context.Context) (string, error) { return archive.NewestSegment(ctx, store, srv.Name) }
		log.Warn("no walkeeper watch is running: streamed segments wait in incoming/ until it starts", "server", srv.Name)
	}
	rcv, err := ingest.NewReceiver(rc)
	if err != nil {
		return err
	}
	log.Info("receive-wal started; stop with SIGINT or SIGTERM", "server", srv.Name, "slot", srv.SlotName,
		"conninfo", config.RedactConninfo(srv.StreamingConninfo))
	return rcv.Run(ctx)
}

// slot creates or drops the server's replication slot.
func (c *ReceiveWALCmd) slot(ctx context.Context, a *App, srv *config.Server) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	op, done, notDone := ingest.CreateSlot, "created", "already exists"
	if c.DropSlot {
		op, done, notDone = ingest.DropSlot, "dropped", "does not exist"
	}
	changed, err := op(ctx, srv.StreamingConninfo, srv.SlotName)
	if err != nil {
		return fmt.Errorf("%s: %w", srv.Name, err)
	}
	if !changed {
		done = notDone
	}
	fmt.Fprintf(a.out, "Replication slot %s %s on %s.\n", srv.SlotName, done, srv.Name)
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
