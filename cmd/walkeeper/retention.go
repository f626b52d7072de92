package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/retention"
	"github.com/walkeeper/walkeeper/internal/storage"
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

// lockWait is how long a command waits for another retention run (or keep) of the same
// server to finish.
const lockWait = 10 * time.Minute

// retentionSetup is what a retention run of one server needs; skip is set (and the
// applier nil) when there is nothing to do, with the reason.
func retentionSetup(ctx context.Context, cfg *config.Config, srv *config.Server, idx index.Index, store storage.Store, log *slog.Logger) (*retention.Applier, string, error) {
	rc, err := retention.ParseConfig(srv.RetentionPolicy, srv.WALRetentionPolicy, srv.MinimumRedundancy, srv.FailedBackupGrace)
	if err != nil {
		return nil, "", fmt.Errorf("%s [%s]: %w", cfg.File, srv.Name, err)
	}
	if rc.Policy.Kind == retention.None {
		return nil, "no retention_policy configured: nothing to do (every backup and all WAL are kept)", nil
	}
	id, err := archive.LoadIdentity(ctx, store, srv.Name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "no WAL archived yet (server identity unknown): nothing to do", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: identity: %w", srv.Name, err)
	}
	return &retention.Applier{Index: idx, Store: store, Server: srv.Name, ServerDir: srv.Dir(), SegSize: id.SegSize,
		Config: rc, Log: log}, "", nil
}

// Run implements the command.
func (c *RetentionCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	cfg, _ := a.Config()
	store, err := a.Store()
	if err != nil {
		return err
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	// SIGINT/SIGTERM stop the run between deletions (each one is crash-safe anyway).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ap, skip, err := retentionSetup(ctx, cfg, srv, idx, store, a.log)
	if err != nil {
		return err
	}
	if ap == nil {
		if a.g.JSON {
			return a.printJSON(map[string]any{"server": srv.Name, "dry_run": c.DryRun, "nothing_to_do": skip})
		}
		fmt.Fprintf(a.out, "%s: %s\n", srv.Name, skip)
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, lockWait)
	lock, err := retention.LockServer(lctx, srv.Dir())
	cancel()
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// Millions of records stream through a run: keep the garbage from piling up.
	defer retention.TuneGC()()
	var bar *progressbar.ProgressBar
	if !c.DryRun && interactive() && !a.g.JSON {
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
			printRetention(a, res)
		}
	}
	return err
}

// printRetention renders a run for the DBA: backups with their verdicts, WAL ranges,
// totals and notes.
func printRetention(a *App, r *retention.Result) {
	mode := "applied"
	if r.DryRun {
		mode = "dry run: nothing deleted"
	}
	fmt.Fprintf(a.out, "%s: retention_policy %s, wal_retention_policy %s, minimum_redundancy %d (%s)\n",
		r.Server, r.Policy, r.WALPolicy, r.MinimumRedundancy, mode)
	for _, id := range r.Resumed {
		verb := "finished"
		if r.DryRun {
			verb = "would finish"
		}
		fmt.Fprintf(a.out, "%s the interrupted deletion of backup %s\n", verb, id)
	}
	if len(r.Backups) == 0 {
		fmt.Fprintln(a.out, "no backups")
	} else {
		rows := make([][]string, 0, len(r.Backups))
		for _, b := range r.Backups {
			decision := "KEEP"
			switch {
			case b.Keep && b.Pinned:
				decision = "KEEP (pinned)"
			case !b.Keep && b.Deleted:
				decision = "OBSOLETE, deleted"
			case !b.Keep && b.Skipped != "":
				decision = "OBSOLETE, not deleted: " + b.Skipped
			case !b.Keep && r.DryRun:
				decision = "OBSOLETE (would be deleted)"
			case !b.Keep:
				decision = "OBSOLETE"
			}
			end := "-"
			if !b.EndTime.IsZero() {
				end = b.EndTime.UTC().Format("2006-01-02 15:04:05Z")
			}
			id := b.ID
			if b.Name != "" {
				id += " (" + b.Name + ")"
			}
			rows = append(rows, []string{id, b.Status, end, strconv.FormatUint(uint64(b.Timeline), 10), decision, b.Reason})
		}
		a.table([]string{"BACKUP", "STATUS", "END TIME", "TL", "DECISION", "REASON"}, rows)
	}
	fmt.Fprintln(a.out)
	if !r.HasCutoff {
		fmt.Fprintln(a.out, "WAL: nothing deleted (no DONE backup anchors WAL retention)")
	} else {
		verb := "deleted"
		if r.DryRun {
			verb = "to delete"
		}
		if len(r.WAL) == 0 {
			fmt.Fprintf(a.out, "WAL: nothing %s (WAL from LSN %s is kept on every timeline)\n", verb, r.KeepFromLSN)
		} else {
			fmt.Fprintf(a.out, "WAL %s (WAL from LSN %s is kept on every timeline):\n", verb, r.KeepFromLSN)
			rows := make([][]string, 0, len(r.WAL))
			for _, w := range r.WAL {
				rows = append(rows, []string{strconv.FormatUint(uint64(w.Timeline), 10), w.First, w.Last,
					strconv.FormatInt(w.Segments, 10), strconv.FormatInt(w.Files, 10), humanBytes(w.Bytes), w.Reason})
			}
			a.table([]string{"TL", "FROM", "TO", "SEGMENTS", "FILES", "STORED", "REASON"}, rows)
			fmt.Fprintf(a.out, "total %s: %d segments, %d files, %s stored\n", verb, r.WALSegments, r.WALFiles, humanBytes(r.WALBytes))
		}
	}
	if len(r.KeepHistory) > 0 {
		var tl []string
		for _, t := range r.KeepHistory {
			tl = append(tl, strconv.FormatUint(uint64(t), 10))
		}
		fmt.Fprintf(a.out, "history files kept (never deleted): timelines %s\n", strings.Join(tl, ", "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(a.out, "note: %s\n", n)
	}
}

// Run implements the command.
func (c *KeepCmd) Run(a *App) error {
	ctx := context.Background()
	srv, b, err := a.resolveBackup(ctx, c.Server, c.ID)
	if err != nil {
		return err
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, lockWait)
	lock, err := retention.LockServer(lctx, srv.Dir())
	cancel()
	if err != nil {
		return err
	}
	defer lock.Unlock()
	info, err := retention.SetKeep(ctx, idx, store, srv.Name, b.ID, !c.Release)
	if err != nil {
		return fmt.Errorf("%s: %w", srv.Name, err)
	}
	if a.g.JSON {
		return a.printJSON(map[string]any{"server": srv.Name, "id": info.ID, "keep": info.Keep, "status": info.Status})
	}
	if info.Keep {
		fmt.Fprintf(a.out, "%s: backup %s pinned: retention keeps it and the WAL it needs to reach consistency\n", srv.Name, info.ID)
	} else {
		fmt.Fprintf(a.out, "%s: backup %s released: the retention policy applies to it again\n", srv.Name, info.ID)
	}
	if info.Status != catalog.StatusDone {
		fmt.Fprintf(a.out, "note: backup %s is %s, not DONE: it cannot be restored\n", info.ID, info.Status)
	}
	return nil
}

// The daemon applies retention for every watched server every retention_interval and
// soon after a new DONE backup appears.
func init() {
	daemonServices = append(daemonServices, daemonService{name: "retention", run: runRetentionService})
}

// retentionPoll is how often the daemon looks for a newly finished backup.
const retentionPoll = 30 * time.Second

func runRetentionService(ctx context.Context, env *daemonEnv) error {
	done := make(chan struct{}, len(env.servers))
	for _, s := range env.servers {
		go func(s *config.Server) {
			defer func() { done <- struct{}{} }()
			retentionLoop(ctx, env, s)
		}(s)
	}
	for range env.servers {
		<-done
	}
	return nil
}

// newestDone is the id of the newest DONE backup ("" if none).
func newestDone(ctx context.Context, idx index.Index, server string) (string, error) {
	bs, err := idx.ListBackups(ctx, server)
	if err != nil {
		return "", err
	}
	newest := ""
	for _, b := range bs {
		if b.Done() && b.ID > newest {
			newest = b.ID
		}
	}
	return newest, nil
}

func retentionLoop(ctx context.Context, env *daemonEnv, s *config.Server) {
	log := env.log.With("service", "retention", "server", s.Name)
	interval := s.RetentionInterval
	if interval <= 0 {
		interval = time.Hour
	}
	poll := min(retentionPoll, interval)
	lastSeen, err := newestDone(ctx, env.idx, s.Name)
	if err != nil {
		log.Warn("cannot list backups", "err", err)
	}
	// The first run comes soon after start-up (not at once: ingest catches up first).
	next := time.Now().Add(min(interval, time.Minute))
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		why := ""
		if newest, err := newestDone(ctx, env.idx, s.Name); err != nil {
			log.Warn("cannot list backups", "err", err)
		} else if newest != lastSeen {
			lastSeen, why = newest, "new backup "+newest
		}
		if why == "" && !time.Now().Before(next) {
			why = "retention_interval " + interval.String()
		}
		if why == "" {
			continue
		}
		next = time.Now().Add(interval)
		applyRetention(ctx, env, s, why, log)
	}
}

// applyRetention is one daemon run for one server; failures are logged and retried at
// the next occasion (every step is crash-safe and idempotent).
func applyRetention(ctx context.Context, env *daemonEnv, s *config.Server, why string, log *slog.Logger) {
	ap, skip, err := retentionSetup(ctx, env.cfg, s, env.idx, env.store, log)
	if err != nil {
		log.Error("retention not applied", "err", err)
		return
	}
	if ap == nil {
		log.Debug("retention skipped", "reason", skip)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, lockWait)
	lock, err := retention.LockServer(lctx, s.Dir())
	cancel()
	if err != nil {
		log.Warn("retention not applied", "err", err)
		return
	}
	defer lock.Unlock()
	start := time.Now()
	res, err := ap.Run(ctx, false)
	if err != nil {
		log.Error("retention run failed (the next run finishes it)", "trigger", why, "err", err)
		return
	}
	var deleted []string
	for _, b := range res.Backups {
		if b.Deleted {
			deleted = append(deleted, b.ID)
		}
	}
	level := slog.LevelDebug
	if len(deleted) > 0 || res.WALFiles > 0 || len(res.Resumed) > 0 {
		level = slog.LevelInfo
	}
	log.Log(ctx, level, "retention applied", "trigger", why, "policy", res.Policy, "backups_deleted", strings.Join(deleted, ","),
		"deletions_resumed", strings.Join(res.Resumed, ","), "wal_files_deleted", res.WALFiles, "wal_bytes_deleted", res.WALBytes,
		"took", time.Since(start).Round(time.Millisecond))
	for _, n := range res.Notes {
		log.Info("retention note", "note", n)
	}
}
