// Package switchwal is `walkeeper switch-wal`: force a WAL switch on a server and,
// optionally, wait until the closed segment is archived, naming why when it is not.
package switchwal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Options configures one switch.
type Options struct {
	Server, Conninfo, IncomingDir string
	// PrimaryConninfo reaches the primary when Conninfo is a standby: pg_switch_wal
	// works only on a primary, and the standby archives the closed segment after it.
	PrimaryConninfo string
	Store           storage.Store
	Wait            bool
	Timeout         time.Duration
	// DaemonRunning reports whether `walkeeper watch` answers.
	DaemonRunning func() bool
}

// Result is what the switch did; WaitingIn is set when the wait ended on a valid copy
// in incoming/ because no daemon runs (archived for PostgreSQL: invariant 9).
type Result struct {
	Server     string `json:"server"`
	SwitchedAt string `json:"switched_at"`
	WAL        string `json:"wal"`
	Archived   string `json:"archived,omitempty"` // "true" (a string, as switch-wal always printed it)
	WaitingIn  string `json:"waiting_in,omitempty"`
}

// Run switches WAL and, with o.Wait, waits: with the daemon running, until it archived
// the segment (the quick start's end-to-end proof); without one, until a valid copy
// waits in incoming/, since nothing would move it.
func Run(ctx context.Context, o Options) (Result, error) {
	conn, err := pgutil.Connect(ctx, o.Conninfo)
	if err != nil {
		return Result{}, fmt.Errorf("%s: connect: %w", o.Server, err)
	}
	defer conn.Close(ctx)
	res := Result{Server: o.Server}
	on, server := conn, "the server"
	var standby bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return res, fmt.Errorf("%s: pg_is_in_recovery: %w", o.Server, err)
	}
	if standby {
		if o.PrimaryConninfo == "" {
			return res, fmt.Errorf("%s: the server is a standby and pg_switch_wal works only on a primary: set primary_conninfo in [%s]", o.Server, o.Server)
		}
		if on, err = pgutil.Connect(ctx, o.PrimaryConninfo); err != nil {
			return res, fmt.Errorf("%s: connect to the primary (primary_conninfo): %w", o.Server, err)
		}
		defer on.Close(ctx)
		server = "the primary"
	}
	if res.SwitchedAt, res.WAL, err = pgutil.SwitchWAL(ctx, on); err != nil {
		return res, fmt.Errorf("%s: pg_switch_wal on %s: %w", o.Server, server, err)
	}
	if !o.Wait {
		return res, nil
	}
	down := func() bool { return !o.DaemonRunning() }
	where, err := archive.WaitDurable(ctx, o.Store, o.Server, res.WAL, archive.WaitOptions{Timeout: o.Timeout,
		Poll: 100 * time.Millisecond, IncomingDir: o.IncomingDir, AcceptWaiting: down})
	if errors.Is(err, archive.ErrWaitTimeout) {
		cause := "the daemon is not running (walkeeper watch)"
		if o.DaemonRunning() {
			cause = "the daemon runs but the file has not arrived in incoming/"
		}
		if st, err := pgutil.Archiver(ctx, conn); err == nil && st.Cause() != "" {
			cause = st.Cause()
		}
		return res, fmt.Errorf("%s: %s not archived after %s: %s", o.Server, res.WAL, o.Timeout, cause)
	} else if err != nil {
		return res, err
	}
	res.Archived = "true"
	if where == archive.InIncoming {
		res.WaitingIn = o.IncomingDir
	}
	return res, nil
}

// Warning is the line to print when the wait ended in incoming/ ("" otherwise).
func (r Result) Warning() string {
	if r.WaitingIn == "" {
		return ""
	}
	return fmt.Sprintf("warning: %s: the walkeeper daemon is not running: %s waits in %s (durable; restore and get-wal read it there); start `walkeeper watch` to archive it",
		r.Server, r.WAL, r.WaitingIn)
}

// Text is the one line switch-wal prints on success.
func (r Result) Text() string {
	switch {
	case r.WaitingIn != "":
		return fmt.Sprintf("%s: %s archived (waiting in incoming/ for the daemon)", r.Server, r.WAL)
	case r.Archived != "":
		return fmt.Sprintf("%s: %s archived", r.Server, r.WAL)
	}
	return fmt.Sprintf("%s: switched WAL at %s, closed %s", r.Server, r.SwitchedAt, r.WAL)
}
