package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/storage"
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
	var lsnText, walName string
	// pg_walfile_name maps a segment boundary to the segment that ends there: the one
	// the switch closed.
	if err := conn.QueryRow(ctx, `WITH s AS (SELECT pg_switch_wal() AS l) SELECT l::text, pg_walfile_name(l) FROM s`).Scan(&lsnText, &walName); err != nil {
		return fmt.Errorf("%s: pg_switch_wal: %w", srv.Name, err)
	}
	if !c.Wait {
		if a.g.JSON {
			return a.printJSON(map[string]string{"server": srv.Name, "switched_at": lsnText, "wal": walName})
		}
		fmt.Fprintf(a.out, "%s: switched WAL at %s, closed %s\n", srv.Name, lsnText, walName)
		return nil
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(c.Timeout)
	for {
		_, _, ferr := archive.Find(ctx, store, srv.Name, walName)
		if ferr == nil {
			if a.g.JSON {
				return a.printJSON(map[string]string{"server": srv.Name, "switched_at": lsnText, "wal": walName, "archived": "true"})
			}
			fmt.Fprintf(a.out, "%s: %s archived\n", srv.Name, walName)
			return nil
		}
		if !errors.Is(ferr, storage.ErrNotFound) {
			return ferr
		}
		if time.Now().After(deadline) {
			cause := "the daemon is not running (walkeeper watch)"
			if a.Daemon() != nil {
				cause = "the daemon runs but the file has not arrived in incoming/"
			}
			if st, err := pgutil.Archiver(ctx, conn); err == nil && st.Cause() != "" {
				cause = st.Cause()
			}
			return fmt.Errorf("%s: %s not archived after %s: %s", srv.Name, walName, c.Timeout, cause)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
