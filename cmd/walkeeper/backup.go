package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/progress"
	"github.com/walkeeper/walkeeper/internal/repo"
	"github.com/walkeeper/walkeeper/internal/retention"
)

// BackupCmd takes a base backup.
type BackupCmd struct {
	Server      string        `arg:"" help:"Server name."`
	Name        string        `help:"A name for the backup, unique per server (usable wherever a backup id is)."`
	WaitTimeout time.Duration `name:"wait-timeout" placeholder:"DURATION" help:"How long to wait for the backup's WAL to be archived (default: backup_wait_timeout, 10m)."`
}

// Run implements the command.
func (c *BackupCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	if c.Name != "" {
		if err := basebackup.ValidName(c.Name); err != nil {
			return usageErr("--name: %v", err)
		}
	}
	if c.WaitTimeout < 0 {
		return usageErr("--wait-timeout %s: must not be negative", c.WaitTimeout)
	}
	cfg, _ := a.Config()
	ctx, cancel := signalContext()
	defer cancel()
	o := basebackup.ServerOptions(srv)
	if o.Store, err = repo.BackupStore(ctx, a.Store(), srv); err != nil {
		return err
	}
	o.Index, o.Name, o.Log = daemon.ShortIndex{Home: cfg.Home, Log: a.log}, c.Name, a.log
	if c.WaitTimeout > 0 {
		o.WaitTimeout = c.WaitTimeout
	}
	o.DaemonRunning = func() bool {
		d, err := daemon.Dial(cfg.Home)
		return err == nil && d != nil
	}
	o.Receiver = func() (ingest.ReceiverState, bool) { return receiverState(a, srv.Name) }
	o.Notify = func(msg string) { fmt.Fprintln(os.Stderr, msg) }
	if progress.Interactive() {
		o.Progress = func(total int64) func(int64) { return progress.Setter(srv.Name+": backup", total) }
	}
	fmt.Fprintf(os.Stderr, "%s: starting backup (%s)\n", srv.Name, config.RedactConninfo(o.StreamingConninfo))
	start := time.Now()
	b, err := basebackup.Take(ctx, o)
	if err != nil {
		return err
	}
	return a.output(b, func(w io.Writer) { basebackup.WriteDone(w, srv.Name, b, time.Since(start)) })
}

// ListBackupsCmd lists a server's backups.
type ListBackupsCmd struct {
	Server string `arg:"" help:"Server name."`
}

// Run implements the command.
func (c *ListBackupsCmd) Run(a *App) error {
	srv, idx, err := a.ServerIndex(c.Server)
	if err != nil {
		return err
	}
	rows, _, err := basebackup.ListRows(context.Background(), idx, srv.Dir(), srv.Name)
	if err != nil {
		return err
	}
	return a.output(rows, func(w io.Writer) { basebackup.WriteRows(w, srv.Name, rows) })
}

// ShowBackupCmd shows everything known about one backup.
type ShowBackupCmd struct {
	Server string `arg:"" help:"Server name."`
	ID     string `arg:"" help:"Backup id, name, latest or oldest."`
}

// Run implements the command.
func (c *ShowBackupCmd) Run(a *App) error {
	srv, idx, err := a.ServerIndex(c.Server)
	if err != nil {
		return err
	}
	d, err := basebackup.Describe(context.Background(), idx, a.Store(), srv.Dir(), srv.Name, c.ID, a.log)
	if err != nil {
		return err
	}
	return a.output(d, func(w io.Writer) { d.WriteText(w) })
}

// DeleteCmd removes a backup.
type DeleteCmd struct {
	Server   string        `arg:"" help:"Server name."`
	ID       string        `arg:"" help:"Backup id, name, latest or oldest."`
	Force    bool          `help:"Delete even if fewer DONE backups than minimum_redundancy would remain (a backup pinned with keep is never deleted)."`
	LockWait time.Duration `name:"lock-wait" default:"10m" help:"How long to wait for a retention run or keep of the same server to finish (delete takes the retention lock)."`
}

// Run implements the command.
func (c *DeleteCmd) Run(a *App) error {
	ctx := context.Background()
	srv, idx, b, err := a.resolveBackup(ctx, c.Server, c.ID)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, c.LockWait)
	defer cancel()
	if _, err := retention.DeleteBackup(ctx, lctx, retention.DeleteOptions{Index: idx, Store: a.Store(), Server: srv.Name, ServerDir: srv.Dir(),
		ID: b.ID, MinimumRedundancy: srv.MinimumRedundancy, Force: c.Force}); err != nil {
		return err
	}
	return a.output(map[string]string{"server": srv.Name, "deleted": b.ID},
		func(w io.Writer) { fmt.Fprintf(w, "%s: backup %s deleted\n", srv.Name, b.ID) })
}
