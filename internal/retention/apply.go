package retention

// Applying a plan: the only code in walkeeper that deletes archived WAL and backups.
//
// Crash safety (issue 5, invariant 6):
//   - A backup goes through basebackup.Delete (as with `walkeeper delete`): first marked
//     FAILED "being deleted" in its backup.info (durably) and in the index, so a
//     half-deleted backup is never chosen for restore or counted by a policy; then its
//     content keys go, then backup.info, then the index record. A later run finds the
//     marked record (in the index, or in backup.info after an index rebuild) and
//     finishes the job at once, without waiting for failed_backup_grace.
//   - WAL goes in batches found by index range scans: each batch's files are deleted
//     (durably) before their index records, so an interruption leaves index records of
//     files already gone, never files the index forgot. The next run computes the same
//     range, finds those records, ignores the files' absence and drops them.
//   - Nothing is deleted that the index does not list, and the archive directory is
//     never walked: memory is bounded by the batch size, not by the archive.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// DefaultBatch is how many WAL records one scan-delete step handles (about 0.5 MB of
// names and keys in memory; one index write batch each).
const DefaultBatch = 4096

// TuneGC sets the garbage collector for a retention run and returns the function that
// restores the previous settings. A run turns millions of decoded index records into
// garbage at once; half the default GC headroom and a soft limit of 96 MiB on Go's own
// memory keep the peak RSS of `walkeeper retention` well under 200 MB at 1,000,000
// segments for a little CPU (BenchmarkRetention1M measures with the same settings).
// Badger's memory-mapped tables are outside Go's heap and not limited by it.
func TuneGC() (restore func()) {
	oldGC := debug.SetGCPercent(50)
	oldLimit := debug.SetMemoryLimit(96 << 20)
	return func() {
		debug.SetGCPercent(oldGC)
		debug.SetMemoryLimit(oldLimit)
	}
}

// Config is a server's retention configuration, parsed.
type Config struct {
	Policy            Policy
	WALPolicy         Policy
	MinimumRedundancy int
	FailedGrace       time.Duration
}

// ParseConfig parses the configuration strings of a server section.
func ParseConfig(policy, walPolicy string, minRedundancy int, failedGrace time.Duration) (Config, error) {
	p, err := ParsePolicy(policy)
	if err != nil {
		return Config{}, err
	}
	w, err := ParseWALPolicy(walPolicy)
	if err != nil {
		return Config{}, err
	}
	if minRedundancy < 0 {
		return Config{}, fmt.Errorf("minimum_redundancy %d: must be >= 0", minRedundancy)
	}
	if failedGrace < 0 {
		return Config{}, fmt.Errorf("failed_backup_grace %v: must be >= 0", failedGrace)
	}
	return Config{Policy: p, WALPolicy: w, MinimumRedundancy: minRedundancy, FailedGrace: failedGrace}, nil
}

// Applier applies retention to one server's archive.
type Applier struct {
	Index  index.Index
	Store  storage.Store
	Server string
	// ServerDir is <home>/<server> (the backup lock basebackup.Delete checks).
	ServerDir string
	SegSize   uint64 // the server's wal_segment_size (archive.LoadIdentity)
	Config    Config
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Batch is the number of WAL records per scan-delete step (DefaultBatch if 0).
	Batch int
	Log   *slog.Logger
	// Progress, if set, is called after each WAL batch with the files handled so far.
	Progress func(files int64)
	// failAfterFiles is a test hook: stop with errInjected once this many WAL files'
	// storage objects are deleted (before their index records), as a crash would.
	failAfterFiles int64
}

// BackupResult is the verdict on one backup and what was done about it.
type BackupResult struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Status   string    `json:"status"`
	Timeline uint32    `json:"timeline"`
	EndTime  time.Time `json:"end_time,omitzero"`
	Pinned   bool      `json:"pinned"`
	Keep     bool      `json:"keep"`
	PITR     bool      `json:"pitr"`
	Reason   string    `json:"reason"`
	// Deleted reports that the backup was deleted by this run (false in a dry run).
	Deleted bool `json:"deleted"`
	// Skipped explains why an obsolete backup was not deleted.
	Skipped string `json:"skipped,omitempty"`
}

// RangeResult is one WAL range of the plan with what the index holds in it.
type RangeResult struct {
	Timeline  uint32 `json:"timeline"`
	FromSegNo uint64 `json:"from_segno"`
	ToSegNo   uint64 `json:"to_segno"` // exclusive
	// First and Last are the first and last segment names of the range (inclusive).
	First  string `json:"first"`
	Last   string `json:"last"`
	Reason string `json:"reason"`
	// Files counts every archived file found in the range (segments, .partial, .backup),
	// Segments only the segments; Bytes is their stored size and RawBytes their size.
	Files    int64 `json:"files"`
	Segments int64 `json:"segments"`
	Bytes    int64 `json:"stored_bytes"`
	RawBytes int64 `json:"raw_bytes"`
}

// Result is a retention run: the plan, and what was (or, in a dry run, would be) deleted.
type Result struct {
	Server            string         `json:"server"`
	DryRun            bool           `json:"dry_run"`
	Now               time.Time      `json:"now"`
	Policy            string         `json:"retention_policy"`
	WALPolicy         string         `json:"wal_retention_policy"`
	MinimumRedundancy int            `json:"minimum_redundancy"`
	Backups           []BackupResult `json:"backups"`
	// Resumed lists backups whose interrupted deletion this run completed (or would).
	Resumed     []string      `json:"resumed,omitempty"`
	WAL         []RangeResult `json:"wal"`
	HasCutoff   bool          `json:"has_cutoff"`
	KeepFromLSN string        `json:"keep_from_lsn,omitempty"`
	KeepHistory []uint32      `json:"keep_history,omitempty"`
	Notes       []string      `json:"notes,omitempty"`
	// Totals of the WAL ranges.
	WALFiles    int64 `json:"wal_files"`
	WALSegments int64 `json:"wal_segments"`
	WALBytes    int64 `json:"wal_stored_bytes"`
}

var errInjected = errors.New("injected failure (test)")

func (a *Applier) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Applier) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// BuildInput reads the snapshot Evaluate needs from the index: the backups (without
// those being deleted, returned separately) and each timeline's segment span (a few
// seeks per timeline, whatever the archive's size).
func (a *Applier) BuildInput(ctx context.Context) (Input, []record.Backup, []record.Backup, error) {
	in := Input{
		Now:               a.now(),
		Policy:            a.Config.Policy,
		WALPolicy:         a.Config.WALPolicy,
		MinimumRedundancy: a.Config.MinimumRedundancy,
		FailedGrace:       a.Config.FailedGrace,
		SegSize:           a.SegSize,
	}
	all, err := a.Index.ListBackups(ctx, a.Server)
	if err != nil {
		return in, nil, nil, fmt.Errorf("retention %s: list backups: %w", a.Server, err)
	}
	var live, deleting []record.Backup
	for _, b := range all {
		if beingDeleted(b) {
			deleting = append(deleting, b)
			continue
		}
		live = append(live, b)
		in.Backups = append(in.Backups, Backup{
			ID: b.ID, Status: b.Status, Timeline: b.Timeline,
			BeginLSN: uint64(b.BeginLSN), EndLSN: uint64(b.EndLSN),
			BeginTime: b.BeginTime, EndTime: b.EndTime, Keep: b.Keep,
		})
	}
	spans, err := a.Index.WALTimelines(ctx, a.Server)
	if err != nil {
		return in, nil, nil, fmt.Errorf("retention %s: %w", a.Server, err)
	}
	for _, sp := range spans {
		t := Timeline{ID: sp.Timeline}
		if sp.MinName != "" && sp.MaxName != "" {
			lo, err1 := segments.Parse(sp.MinName)
			hi, err2 := segments.Parse(sp.MaxName)
			if err := errors.Join(err1, err2); err != nil {
				return in, nil, nil, fmt.Errorf("retention %s: index: %w", a.Server, err)
			}
			t.MinSegNo, t.MaxSegNo, t.HasSegments = lo.SegNo(a.SegSize), hi.SegNo(a.SegSize), true
		}
		if sp.History {
			t.Parent, t.SwitchLSN = a.historyParent(ctx, sp.Timeline)
		}
		in.Timelines = append(in.Timelines, t)
	}
	return in, live, deleting, nil
}

// historyParent reads a timeline's parent and switch point from its archived history
// file (best effort: the policy does not depend on them).
func (a *Applier) historyParent(ctx context.Context, tli uint32) (uint32, uint64) {
	name := segments.HistoryFileName(tli)
	key, codec, err := archive.Find(ctx, a.Store, a.Server, name)
	if err != nil {
		return 0, 0
	}
	data, err := archive.Read(ctx, a.Store, key, codec)
	if err != nil {
		return 0, 0
	}
	h, err := segments.ParseHistory(tli, data)
	if err != nil || len(h) == 0 {
		return 0, 0
	}
	last := h[len(h)-1]
	return last.Timeline, uint64(last.SwitchLSN)
}

// Run evaluates the policy and, unless dryRun, applies it: first the deletions left
// unfinished by an interrupted run, then obsolete backups, then WAL ranges. A dry run
// reads the index (to count what would go) and changes nothing.
func (a *Applier) Run(ctx context.Context, dryRun bool) (*Result, error) {
	if !segments.ValidSegSize(a.SegSize) {
		return nil, fmt.Errorf("retention %s: invalid wal segment size %d", a.Server, a.SegSize)
	}
	in, live, deleting, err := a.BuildInput(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := Evaluate(in)
	if err != nil {
		return nil, fmt.Errorf("retention %s: %w", a.Server, err)
	}
	res := &Result{
		Server: a.Server, DryRun: dryRun, Now: in.Now.UTC(),
		Policy: a.Config.Policy.Text, WALPolicy: a.Config.WALPolicy.Text, MinimumRedundancy: a.Config.MinimumRedundancy,
		HasCutoff: plan.HasCutoff, KeepHistory: plan.KeepHistory, Notes: plan.Notes,
	}
	if res.WALPolicy == "" {
		res.WALPolicy = "MAIN"
	}
	if plan.HasCutoff {
		res.KeepFromLSN = segments.LSN(plan.KeepFromLSN).String()
	}
	for i, d := range plan.Backups {
		b := live[i]
		res.Backups = append(res.Backups, BackupResult{ID: b.ID, Name: b.Name, Status: b.Status, Timeline: b.Timeline,
			EndTime: b.EndTime, Pinned: b.Keep, Keep: d.Keep, PITR: d.PITR, Reason: d.Reason})
	}
	for _, r := range plan.WAL {
		res.WAL = append(res.WAL, RangeResult{Timeline: r.Timeline, FromSegNo: r.FromSegNo, ToSegNo: r.ToSegNo,
			First:  segments.SegmentFileName(r.Timeline, r.FromSegNo, a.SegSize),
			Last:   segments.SegmentFileName(r.Timeline, r.ToSegNo-1, a.SegSize),
			Reason: r.Reason})
	}

	// 1. Deletions an interrupted run left half done.
	for _, b := range deleting {
		res.Resumed = append(res.Resumed, b.ID)
		if dryRun {
			continue
		}
		if err := a.deleteBackup(ctx, b, "resuming an interrupted deletion"); err != nil {
			return res, err
		}
	}
	// 2. Obsolete backups, oldest first.
	for i := range res.Backups {
		br := &res.Backups[i]
		if br.Keep || dryRun {
			continue
		}
		skip, err := a.checkStillObsolete(ctx, br.ID, br.Status)
		if err != nil {
			return res, err
		}
		if skip != "" {
			br.Skipped = skip
			res.Notes = append(res.Notes, "backup "+br.ID+" not deleted: "+skip)
			continue
		}
		if err := a.deleteBackup(ctx, live[i], br.Reason); err != nil {
			return res, err
		}
		br.Deleted = true
	}
	// 3. WAL. A range the index holds nothing in (deleted by an earlier run: the plan
	// keeps naming the gap between the oldest archived segment and the cutoff) is not
	// reported.
	var handled atomic.Int64
	ranges := res.WAL
	res.WAL = nil
	for i := range ranges {
		r := &ranges[i]
		err := a.walRange(ctx, r, dryRun, &handled)
		if r.Files > 0 || err != nil {
			res.WAL = append(res.WAL, *r)
		}
		res.WALFiles += r.Files
		res.WALSegments += r.Segments
		res.WALBytes += r.Bytes
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// checkStillObsolete re-reads backup.info, the durable truth, just before a deletion:
// a backup pinned there (or whose state moved on) since the index was read is skipped.
func (a *Applier) checkStillObsolete(ctx context.Context, id, indexedStatus string) (string, error) {
	info, err := basebackup.LoadInfo(ctx, a.Store, a.Server, id)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil // backup.info already gone: finish removing what is left
	}
	if err != nil {
		return "", fmt.Errorf("retention %s: %w", a.Server, err)
	}
	switch {
	case info.Keep:
		return "pinned in backup.info (the index is stale: run `walkeeper index rebuild`)", nil
	case info.Status != indexedStatus:
		return fmt.Sprintf("backup.info says %s, the index %s (run `walkeeper index rebuild`)", info.Status, indexedStatus), nil
	}
	return "", nil
}

// deleteBackup removes one backup with basebackup.Delete, the code `walkeeper delete`
// uses: it marks the backup FAILED "being deleted" in backup.info and the index, then
// deletes the content, backup.info and the index record, in that order.
func (a *Applier) deleteBackup(ctx context.Context, b record.Backup, why string) error {
	a.log().Info("deleting backup", "server", a.Server, "backup", b.ID, "reason", why)
	if err := basebackup.Delete(ctx, a.Store, a.Index, a.ServerDir, a.Server, b); err != nil {
		return fmt.Errorf("retention %s: %w", a.Server, err)
	}
	return nil
}

// beingDeleted reports a backup whose deletion was interrupted: basebackup.Delete
// rewrites it as FAILED with an error starting "being deleted" before removing anything.
// Retention completes such a deletion at once instead of keeping it as a failed backup
// for failed_backup_grace.
func beingDeleted(b record.Backup) bool {
	return b.Status == record.StatusFailed && strings.HasPrefix(b.Error, deletingMarker)
}

// deletingMarker is how basebackup.Delete starts the error of a backup it is deleting.
const deletingMarker = "being deleted"
