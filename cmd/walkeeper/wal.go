package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/pgutil"
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
	ctx := context.Background()
	conn, err := pgutil.Connect(ctx, srv.Conninfo)
	if err != nil {
		return fmt.Errorf("%s: connect: %w", srv.Name, err)
	}
	defer conn.Close(ctx)
	lsnText, walName, err := pgutil.SwitchWAL(ctx, conn)
	if err != nil {
		return fmt.Errorf("%s: pg_switch_wal: %w", srv.Name, err)
	}
	if !c.Wait {
		return a.output(map[string]string{"server": srv.Name, "switched_at": lsnText, "wal": walName},
			func(w io.Writer) { fmt.Fprintf(w, "%s: switched WAL at %s, closed %s\n", srv.Name, lsnText, walName) })
	}
	// With the daemon running, --wait waits for it to archive the segment (the quick
	// start's end-to-end proof); without one, a valid copy in incoming/ is archived for
	// PostgreSQL already (invariant 9) and nothing would move it: say so at once.
	daemonDown := func() bool { return a.Daemon() == nil }
	where, err := archive.WaitDurable(ctx, a.Store(), srv.Name, walName, archive.WaitOptions{
		Timeout: c.Timeout, Poll: 100 * time.Millisecond, IncomingDir: srv.IncomingDir(), AcceptWaiting: daemonDown})
	if errors.Is(err, archive.ErrWaitTimeout) {
		cause := "the daemon is not running (walkeeper watch)"
		if a.Daemon() != nil {
			cause = "the daemon runs but the file has not arrived in incoming/"
		}
		if st, err := pgutil.Archiver(ctx, conn); err == nil && st.Cause() != "" {
			cause = st.Cause()
		}
		return fmt.Errorf("%s: %s not archived after %s: %s", srv.Name, walName, c.Timeout, cause)
	}
	if err != nil {
		return err
	}
	if where == archive.InIncoming {
		fmt.Fprintf(os.Stderr, "warning: %s: the walkeeper daemon is not running: %s waits in %s (durable; restore and get-wal read it there); start `walkeeper watch` to archive it\n",
			srv.Name, walName, srv.IncomingDir())
		return a.output(map[string]string{"server": srv.Name, "switched_at": lsnText, "wal": walName, "archived": "true", "waiting_in": srv.IncomingDir()},
			func(w io.Writer) {
				fmt.Fprintf(w, "%s: %s archived (waiting in incoming/ for the daemon)\n", srv.Name, walName)
			})
	}
	return a.output(map[string]string{"server": srv.Name, "switched_at": lsnText, "wal": walName, "archived": "true"},
		func(w io.Writer) { fmt.Fprintf(w, "%s: %s archived\n", srv.Name, walName) })
}
