package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"

	"github.com/walkeeper/walkeeper/internal/progress"
	"github.com/walkeeper/walkeeper/internal/retention"
)

// RetentionCmd applies (or, with --dry-run, shows) a server's retention policies.
type RetentionCmd struct {
	Server string `arg:"" help:"Server name."`
	DryRun bool   `name:"dry-run" help:"Print the plan and what it would delete; change nothing."`
}

// KeepCmd pins a backup so that retention never deletes it (or releases the pin).
type KeepCmd struct {
	Server  string `arg:"" help:"Server name."`
	ID      string `arg:"" help:"Backup id, name, latest or oldest."`
	Release bool   `help:"Remove the pin: the backup falls under the retention policy again."`
}

// Run implements the command.
func (c *RetentionCmd) Run(a *App) error {
	srv, idx, err := a.ServerIndex(c.Server)
	if err != nil {
		return err
	}
	// SIGINT/SIGTERM stop the run between deletions (each one is crash-safe anyway).
	ctx, stop := signalContext()
	defer stop()
	ap, skip, err := retention.NewApplier(ctx, a.cfg.File, srv, idx, a.Store(), a.log)
	if err != nil {
		return err
	}
	if ap == nil {
		return a.output(map[string]any{"server": srv.Name, "dry_run": c.DryRun, "nothing_to_do": skip},
			func(w io.Writer) { fmt.Fprintf(w, "%s: %s\n", srv.Name, skip) })
	}
	lock, err := retention.LockServerWait(ctx, srv.Dir())
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// Millions of records stream through a run: keep the garbage from piling up.
	defer retention.TuneGC()()
	var bar *progressbar.ProgressBar
	if !c.DryRun && progress.Interactive() && !a.g.JSON {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("deleting WAL"),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
		ap.Progress = func(n int64) { _ = bar.Set64(n) }
	}
	res, err := ap.Run(ctx, c.DryRun)
	if bar != nil {
		_ = bar.Finish()
	}
	if res != nil {
		if a.g.JSON {
			if perr := a.printJSON(res); perr != nil && err == nil {
				err = perr
			}
		} else {
			res.WriteText(a.out)
		}
	}
	return err
}

// Run implements the command.
func (c *KeepCmd) Run(a *App) error {
	ctx := context.Background()
	srv, idx, b, err := a.resolveBackup(ctx, c.Server, c.ID)
	if err != nil {
		return err
	}
	info, err := retention.Keep(ctx, idx, a.Store(), srv.Dir(), srv.Name, b.ID, !c.Release)
	if err != nil {
		return err
	}
	return a.output(map[string]any{"server": srv.Name, "id": info.ID, "keep": info.Keep, "status": info.Status},
		func(w io.Writer) { retention.WriteKeepText(w, srv.Name, info) })
}
