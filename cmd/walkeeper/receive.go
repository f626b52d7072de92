package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// ReceiveWALCmd runs one server's streaming receiver in the foreground (Barman's
// receive-wal), or manages its replication slot.
type ReceiveWALCmd struct {
	Server     string `arg:"" help:"Server name."`
	CreateSlot bool   `name:"create-slot" help:"Create the server's physical replication slot (slot_name) and exit."`
	DropSlot   bool   `name:"drop-slot" help:"Drop the server's replication slot and exit."`
	Reset      bool   `help:"Discard the streaming state (streaming/*.partial) and start at the server's current position."`
}

func init() {
	daemonServices = append(daemonServices, daemonService{name: "receiver", run: runReceivers})
}

// receiverConfig maps a server's configuration to its receiver.
func receiverConfig(s *config.Server, log *slog.Logger) ingest.ReceiverConfig {
	return ingest.ReceiverConfig{
		Server:          s.Name,
		Conninfo:        s.StreamingConninfo,
		SlotName:        s.SlotName,
		CreateSlot:      s.CreateSlot == "auto",
		ApplicationName: s.ApplicationName,
		StreamingDir:    s.StreamingDir(),
		IncomingDir:     s.IncomingDir(),
		Log:             log,
	}
}

// archivedEndFromIndex names the newest complete segment the index knows.
func archivedEndFromIndex(idx index.Index, server string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		st, err := idx.WALStats(ctx, server)
		if err != nil {
			return "", err
		}
		return st.LastSegment, nil
	}
}

// archivedEndFromStore names the newest complete segment in storage, for a foreground
// receiver that must not open the index (the daemon would then find it locked).
func archivedEndFromStore(store storage.Store, server string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		return archive.NewestSegment(ctx, store, server)
	}
}

// systemIDFromStore gives the system identifier the server's archive was learned from.
func systemIDFromStore(store storage.Store, server string) func(context.Context) (uint64, bool) {
	return func(ctx context.Context) (uint64, bool) {
		id, err := archive.LoadIdentity(ctx, store, server)
		if err != nil || id.SystemID == 0 {
			return 0, false
		}
		return id.SystemID, true
	}
}

// runReceivers is the daemon service: one receiver per watched server with
// streaming_archiver = on, its state served in /v1/info.
func runReceivers(ctx context.Context, env *daemonEnv) error {
	var wg sync.WaitGroup
	for _, s := range env.servers {
		if !s.StreamingArchiver {
			continue
		}
		rc := receiverConfig(s, env.log)
		rc.ArchivedEnd = archivedEndFromIndex(env.idx, s.Name)
		rc.SystemID = systemIDFromStore(env.store, s.Name)
		name := s.Name
		rc.OnState = func(st ingest.ReceiverState) {
			env.state.update(name, func(ss *daemon.ServerState) { ss.Receiver = st })
		}
		rcv, err := ingest.NewReceiver(rc)
		if err != nil {
			env.log.Error("streaming receiver not started", "server", name, "err", err)
			env.state.update(name, func(ss *daemon.ServerState) {
				ss.Receiver = ingest.ReceiverState{Server: name, Slot: s.SlotName, LastError: err.Error(), LastErrorAt: time.Now().UTC()}
			})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Run only fails when another receiver holds the streaming directory; try
			// again now and then, as it may be a foreground receive-wal that stops.
			for {
				err := rcv.Run(ctx)
				if err == nil || ctx.Err() != nil {
					return
				}
				env.log.Error("streaming receiver", "server", name, "err", err)
				env.state.update(name, func(ss *daemon.ServerState) {
					st := rcv.State()
					st.LastError, st.LastErrorAt = err.Error(), time.Now().UTC()
					ss.Receiver = st
				})
				select {
				case <-ctx.Done():
					return
				case <-time.After(30 * time.Second):
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// Run implements the command.
func (c *ReceiveWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	n := 0
	for _, b := range []bool{c.CreateSlot, c.DropSlot, c.Reset} {
		if b {
			n++
		}
	}
	if n > 1 {
		return usageErr("receive-wal: --create-slot, --drop-slot and --reset exclude each other")
	}
	if err := ingest.ValidSlotName(srv.SlotName); err != nil {
		return fmt.Errorf("server %s: %w", srv.Name, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch {
	case c.CreateSlot:
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		created, err := ingest.CreateSlot(cctx, srv.StreamingConninfo, srv.SlotName)
		if err != nil {
			return fmt.Errorf("%s: %w", srv.Name, err)
		}
		if created {
			fmt.Fprintf(a.out, "Replication slot %s created on %s.\n", srv.SlotName, srv.Name)
		} else {
			fmt.Fprintf(a.out, "Replication slot %s already exists on %s.\n", srv.SlotName, srv.Name)
		}
		return nil
	case c.DropSlot:
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		dropped, err := ingest.DropSlot(cctx, srv.StreamingConninfo, srv.SlotName)
		if err != nil {
			return fmt.Errorf("%s: %w", srv.Name, err)
		}
		if dropped {
			fmt.Fprintf(a.out, "Replication slot %s dropped on %s.\n", srv.SlotName, srv.Name)
		} else {
			fmt.Fprintf(a.out, "Replication slot %s does not exist on %s.\n", srv.SlotName, srv.Name)
		}
		return nil
	}

	cfg, err := a.Config()
	if err != nil {
		return err
	}
	log := daemonLogger(cfg, a.g.Verbose)
	rc := receiverConfig(srv, log)
	rc.Reset = c.Reset
	store, err := a.Store()
	if err != nil {
		return err
	}
	rc.SystemID = systemIDFromStore(store, srv.Name)
	if d := a.Daemon(); d != nil {
		info, err := d.Info(ctx)
		if err == nil {
			if ss, ok := info.Servers[srv.Name]; ok && ss.Receiver != nil {
				return fmt.Errorf("%s: walkeeper watch (pid %d) already streams this server (streaming_archiver = on); stop it first", srv.Name, info.PID)
			}
		}
		rc.ArchivedEnd = archivedEndFromIndex(d.Index(), srv.Name)
	} else {
		rc.ArchivedEnd = archivedEndFromStore(store, srv.Name)
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

// receiverStatus is the receiver's state for status and check: the daemon's when it
// runs one for server, else what a receiver last wrote to streaming/receiver.state
// (marked not running when no receiver holds the streaming directory). ok is false
// when the server has never streamed.
func receiverStatus(a *App, server string) (any, bool) {
	srv, err := a.Server(server)
	if err != nil {
		return nil, false
	}
	if d := a.Daemon(); d != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if info, err := d.Info(ctx); err == nil {
			if ss, ok := info.Servers[server]; ok && ss.Receiver != nil {
				// /v1/info decodes the state as a map; give it its type back.
				var st ingest.ReceiverState
				if b, err := json.Marshal(ss.Receiver); err == nil && json.Unmarshal(b, &st) == nil {
					return st, true
				}
				return ss.Receiver, true
			}
		}
	}
	st, ok, err := ingest.ReadReceiverState(srv.StreamingDir())
	if err != nil || !ok {
		return nil, false
	}
	return st, true
}
