package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// LockWait is how long a run waits for another retention run (or keep, or delete) of
// the same server to finish.
const LockWait = 10 * time.Minute

// NewApplier is what a retention run of one server needs, from its configuration
// section (cfgFile names the file in errors). When there is nothing to do the applier
// is nil and skip says why: no retention_policy, or no identity archived yet.
func NewApplier(ctx context.Context, cfgFile string, srv *config.Server, idx index.Index, store storage.Store, log *slog.Logger) (ap *Applier, skip string, err error) {
	rc, err := ParseConfig(srv.RetentionPolicy, srv.WALRetentionPolicy, srv.MinimumRedundancy, srv.FailedBackupGrace)
	if err != nil {
		return nil, "", fmt.Errorf("%s [%s]: %w", cfgFile, srv.Name, err)
	}
	if rc.Policy.Kind == None {
		return nil, "no retention_policy configured: nothing to do (every backup and all WAL are kept)", nil
	}
	id, err := archive.LoadIdentity(ctx, store, srv.Name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "no WAL archived yet (server identity unknown): nothing to do", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: identity: %w", srv.Name, err)
	}
	return &Applier{Index: idx, Store: store, Server: srv.Name, ServerDir: srv.Dir(), SegSize: id.SegSize,
		Config: rc, Log: log}, "", nil
}

// SchedulePoll is how often the daemon looks for a newly finished backup.
const SchedulePoll = 30 * time.Second

// Schedule decides when the daemon applies one server's retention: every Interval,
// and soon after a new DONE backup appears. Its clock is injected (Now and Ticks), so
// a test drives it without waiting.
type Schedule struct {
	Interval time.Duration    // retention_interval (default 1h)
	Now      func() time.Time // the start-up time
	// Ticks are the looks, each at the time it carries (every SchedulePoll in the
	// daemon: a time.Ticker's channel).
	Ticks <-chan time.Time
	// NewestDone is the id of the server's newest DONE backup ("" if none).
	NewestDone func(ctx context.Context) (string, error)
	// Apply is one run; why names its trigger.
	Apply func(ctx context.Context, why string)
	Log   *slog.Logger
}

// scheduleState is what a Schedule remembers between ticks.
type scheduleState struct {
	interval time.Duration
	next     time.Time // when the interval next falls due
	lastSeen string    // the newest DONE backup at the previous look
}

// decide is one tick: the trigger of a run now, or "" for none. A new backup wins over
// the interval; either way the next interval run counts from now.
func (st *scheduleState) decide(now time.Time, newest string, listErr error) string {
	why := ""
	if listErr == nil && newest != st.lastSeen {
		st.lastSeen, why = newest, "new backup "+newest
	}
	if why == "" && !now.Before(st.next) {
		why = "retention_interval " + st.interval.String()
	}
	if why != "" {
		st.next = now.Add(st.interval)
	}
	return why
}

// Run looks at every tick until ctx ends. The first interval run comes a minute after
// start-up at most (not at once: ingest catches up first).
func (s *Schedule) Run(ctx context.Context) {
	interval := s.Interval
	if interval <= 0 {
		interval = time.Hour
	}
	st := scheduleState{interval: interval, next: s.Now().Add(min(interval, time.Minute))}
	var err error
	if st.lastSeen, err = s.NewestDone(ctx); err != nil {
		s.Log.Warn("cannot list backups", "err", err)
	}
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-s.Ticks:
		}
		newest, err := s.NewestDone(ctx)
		if err != nil {
			s.Log.Warn("cannot list backups", "err", err)
		}
		if why := st.decide(now, newest, err); why != "" {
			s.Apply(ctx, why)
		}
	}
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

// RunSchedules is the daemon's retention service: one Schedule per server on the wall
// clock, each run applied as applyScheduled does. It returns when ctx ends.
func RunSchedules(ctx context.Context, cfgFile string, servers []*config.Server, idx index.Index, store storage.Store, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("service", "retention", "server", s.Name)
			interval := s.RetentionInterval
			if interval <= 0 {
				interval = time.Hour
			}
			t := time.NewTicker(min(SchedulePoll, interval))
			defer t.Stop()
			sch := Schedule{Interval: interval, Now: time.Now, Ticks: t.C, Log: l,
				NewestDone: func(ctx context.Context) (string, error) { return newestDone(ctx, idx, s.Name) },
				Apply: func(ctx context.Context, why string) {
					applyScheduled(ctx, cfgFile, s, idx, store, why, l)
				}}
			sch.Run(ctx)
		}()
	}
	wg.Wait()
}

// applyScheduled is one daemon run for one server; failures are logged and retried at
// the next occasion (every step is crash-safe and idempotent).
func applyScheduled(ctx context.Context, cfgFile string, s *config.Server, idx index.Index, store storage.Store, why string, log *slog.Logger) {
	ap, skip, err := NewApplier(ctx, cfgFile, s, idx, store, log)
	if err != nil {
		log.Error("retention not applied", "err", err)
		return
	}
	if ap == nil {
		log.Debug("retention skipped", "reason", skip)
		return
	}
	lock, err := LockServerWait(ctx, s.Dir())
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
