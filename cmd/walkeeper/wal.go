package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/switchwal"
)

// ArchiveWALCmd is archive_command's helper.
type ArchiveWALCmd struct {
	Server string `arg:"" help:"Server name."`
	Path   string `arg:"" help:"The WAL file PostgreSQL hands over (%p)."`
}

// Run implements the command.
func (c *ArchiveWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	if _, err := ingest.Drop(srv.IncomingDir(), c.Path); err != nil {
		return err
	}
	return nil
}

// SwitchWALCmd forces a WAL switch.
type SwitchWALCmd struct {
	Server  string        `arg:"" help:"Server name."`
	Wait    bool          `help:"Wait until the closed segment is archived."`
	Timeout time.Duration `default:"60s" help:"How long --wait waits."`
}

// Run implements the command.
func (c *SwitchWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	res, err := switchwal.Run(context.Background(), switchwal.Options{Server: srv.Name, Conninfo: srv.Conninfo, PrimaryConninfo: srv.PrimaryConninfo,
		IncomingDir: srv.IncomingDir(), Store: a.Store(), Wait: c.Wait, Timeout: c.Timeout,
		DaemonRunning: func() bool { return a.Daemon() != nil }})
	if err != nil {
		return err
	}
	if w := res.Warning(); w != "" {
		fmt.Fprintln(os.Stderr, w)
	}
	return a.output(res, func(w io.Writer) { fmt.Fprintln(w, res.Text()) })
}
