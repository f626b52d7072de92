package main

import (
	"context"
	"io"
	"time"

	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/status"
)

// StatusCmd shows one server's state.
type StatusCmd struct {
	Server string `arg:"" help:"Server name."`
}

// Run implements the command.
func (c *StatusCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	st, err := status.Gather(context.Background(), srv, status.Sources{
		Daemon: a.daemonInfo, Store: a.Store(), Index: a.Index,
		Receiver: func(server string) (ingest.ReceiverState, bool) { return receiverState(a, server) },
	})
	if err != nil {
		return err
	}
	return a.output(st, func(w io.Writer) { st.WriteText(w, time.Now()) })
}

// ListServersCmd lists the configured servers.
type ListServersCmd struct{}

// Run implements the command.
func (c *ListServersCmd) Run(a *App) error {
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	rows, err := status.Summaries(context.Background(), cfg.Servers, idx, time.Now())
	if err != nil {
		return err
	}
	return a.output(rows, func(w io.Writer) { status.WriteSummaries(w, rows, time.Now()) })
}

// receiverState is a server's receiver state for status, check and backup: the
// daemon's when it runs one for the server, else the state file's.
func receiverState(a *App, server string) (ingest.ReceiverState, bool) {
	srv, err := a.Server(server)
	if err != nil {
		return ingest.ReceiverState{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	info, _ := a.daemonInfo(ctx)
	return ingest.CurrentReceiverState(info.Servers[server].Receiver, srv.StreamingDir())
}
