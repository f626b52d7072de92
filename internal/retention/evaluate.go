package retention

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Backup statuses as recorded in backup.info.
const (
	StatusDone       = "DONE"
	StatusFailed     = "FAILED"
	StatusStarted    = "STARTED"
	StatusWaitingWAL = "WAITING_WAL"
)

// Backup is one backup of the index snapshot.
type Backup struct {
	ID       string
	Status   string // StatusDone, StatusFailed, StatusStarted, StatusWaitingWAL
	Timeline uint32 // timeline the backup was taken on
	// BeginLSN and EndLSN are the backup's start and stop WAL locations;
	// restoring it needs the WAL of Timeline from BeginLSN to EndLSN.
	BeginLSN, EndLSN   uint64
	BeginTime, EndTime time.Time
	Keep               bool // pinned with `walkeeper keep`
}

// Timeline is what the index knows about one timeline: its parent and the
// LSN where it branched (from its history file; 0 for timeline 1) and the
// range of WAL segment numbers archived on it. Only MinSegNo/MaxSegNo are
// needed, never the list of segments.
type Timeline struct {
	ID, Parent  uint32
	SwitchLSN   uint64
	MinSegNo    uint64
	MaxSegNo    uint64 // inclusive
	HasSegments bool   // false: no segment archived on this timeline (only a history file)
}

// Input is the index snapshot and configuration Evaluate works on.
type Input struct {
	Now               time.Time
	Policy            Policy // backup policy (Kind None, Redundancy or Window)
	WALPolicy         Policy // Kind Main (or zero value, treated as Main) or Window
	MinimumRedundancy int    // never fewer DONE backups than this (>= 0)
	// FailedGrace: a failed backup is obsolete once Now - (its EndTime, or
	// BeginTime when EndTime is zero) >= FailedGrace; 0 means at once.
	FailedGrace time.Duration
	SegSize     uint64 // wal_segment_size, a power of two (1 MiB .. 1 GiB)
	Backups     []Backup
	Timelines   []Timeline
}

// Decision is the verdict on one backup.
type Decision struct {
	ID     string
	Keep   bool
	Reason string
	// PITR reports that all WAL from the backup's begin onward is kept, so it
	// can be recovered to any later point; a kept backup with PITR false keeps
	// only its begin..end WAL and restores to its end point.
	PITR bool
}

// Range is a run of WAL segments to delete on one timeline: segment numbers
// FromSegNo (inclusive) to ToSegNo (exclusive).
type Range struct {
	Timeline  uint32
	FromSegNo uint64
	ToSegNo   uint64
	Reason    string
}

// Plan is the result of Evaluate.
type Plan struct {
	Backups []Decision // one per input backup, in input order
	WAL     []Range    // sorted by timeline then FromSegNo, non-overlapping
	// KeepFromLSN is the PITR cutoff: on every timeline, WAL at or after the
	// segment holding this LSN is kept. HasCutoff is false when no WAL is
	// deleted for lack of an anchor (no DONE backup).
	KeepFromLSN   uint64
	HasCutoff     bool
	KeepHistory   []uint32 // timelines whose .history file stays (all of them)
	DeleteHistory []uint32 // always empty: history files are never deleted
	Notes         []string
}

// Obsolete returns the IDs of the backups to delete, in input order.
func (p Plan) Obsolete() []string {
	var ids []string
	for _, d := range p.Backups {
		if !d.Keep {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

func validSegSize(s uint64) bool {
	return s >= 1<<20 && s <= 1<<30 && s&(s-1) == 0
}

func validate(in Input) error {
	if in.Now.IsZero() {
		return errors.New("retention: Now is not set")
	}
	if !validSegSize(in.SegSize) {
		return fmt.Errorf("retention: invalid wal segment size %d (a power of two from 1MB to 1GB)", in.SegSize)
	}
	switch in.Policy.Kind {
	case None:
	case Redundancy:
		if in.Policy.Redundancy < 1 {
			return fmt.Errorf("retention: REDUNDANCY %d: must be >= 1", in.Policy.Redundancy)
		}
	case Window:
		if in.Policy.Window <= 0 {
			return fmt.Errorf("retention: recovery window %v: must be > 0", in.Policy.Window)
		}
	default:
		return fmt.Errorf("retention: backup policy kind %v not allowed (none, redundancy or window)", in.Policy.Kind)
	}
	switch in.WALPolicy.Kind {
	case Main, None:
	case Window:
		if in.WALPolicy.Window <= 0 {
			return fmt.Errorf("retention: WAL recovery window %v: must be > 0", in.WALPolicy.Window)
		}
	default:
		return fmt.Errorf("retention: WAL policy kind %v not allowed (main or window)", in.WALPolicy.Kind)
	}
	if in.MinimumRedundancy < 0 {
		return fmt.Errorf("retention: minimum_redundancy %d: must be >= 0", in.MinimumRedundancy)
	}
	if in.FailedGrace < 0 {
		return fmt.Errorf("retention: failed backup grace %v: must be >= 0", in.FailedGrace)
	}
	seen := make(map[string]bool, len(in.Backups))
	for _, b := range in.Backups {
		if b.ID == "" {
			return errors.New("retention: backup with empty ID")
		}
		if seen[b.ID] {
			return fmt.Errorf("retention: duplicate backup ID %q", b.ID)
		}
		seen[b.ID] = true
		if b.Status == StatusDone {
			if b.EndLSN < b.BeginLSN {
				return fmt.Errorf("retention: backup %s: end LSN %X before begin LSN %X", b.ID, b.EndLSN, b.BeginLSN)
			}
			if b.EndTime.IsZero() {
				return fmt.Errorf("retention: DONE backup %s has no end time", b.ID)
			}
		}
	}
	for _, t := range in.Timelines {
		if t.HasSegments && (t.MinSegNo > t.MaxSegNo || t.MaxSegNo >= 1<<62) {
			return fmt.Errorf("retention: timeline %d: min segment %d > max segment %d", t.ID, t.MinSegNo, t.MaxSegNo)
		}
	}
	return nil
}

type state struct {
	b      *Backup
	keep   bool
	policy bool // kept by the backup policy or minimum_redundancy (not only pinned)
	reason string
}

// Evaluate decides which backups are kept and which WAL may be deleted.
//
// Backups: DONE backups are ordered newest first by EndTime (then EndLSN,
// then ID). REDUNDANCY n keeps the newest n. RECOVERY WINDOW keeps every
// backup whose EndTime >= Now-Window (a backup ending exactly at the window
// start is inside) plus the newest one ending before it (the base needed to
// recover to the window start). No policy keeps all. minimum_redundancy then
// tops the kept DONE backups up with the newest ones. A pinned backup is always
// kept; it counts as a DONE backup when it is among the newest n, but a
// backup kept only because it is pinned keeps only its begin..end WAL.
// In-progress backups (STARTED, WAITING_WAL) are always kept and never count;
// other statuses are failed: kept until FailedGrace has passed, never
// counted, and their WAL is not protected.
//
// WAL: the PITR cutoff is the lowest begin LSN of the backups that must be
// recoverable to any later point: with WAL policy main, every backup kept by
// the backup policy or minimum_redundancy (not those kept only because they
// are pinned); with a WAL recovery window, every kept DONE backup (pinned
// ones included) that ended inside Now-WALWindow..Now plus the newest kept
// one that ended before Now-WALWindow (the base for PITR to the WAL window
// start). In-progress backups pull the cutoff back to their begin.
// On every timeline, segments wholly before the cutoff's segment are deleted
// except each kept DONE backup's begin..end segments on its timeline. With
// no DONE backup no WAL is deleted. History files are never deleted.
func Evaluate(in Input) (Plan, error) {
	if err := validate(in); err != nil {
		return Plan{}, err
	}
	if in.WALPolicy.Kind == None {
		in.WALPolicy = Policy{Kind: Main, Text: "MAIN"}
	}
	var plan Plan
	st := make([]state, len(in.Backups))
	var done []*state
	var inProgress []*state
	for i := range in.Backups {
		b := &in.Backups[i]
		s := &st[i]
		s.b = b
		switch b.Status {
		case StatusDone:
			done = append(done, s)
		case StatusStarted, StatusWaitingWAL:
			s.keep, s.reason = true, "in progress ("+b.Status+")"
			inProgress = append(inProgress, s)
		default:
			ref := b.EndTime
			if ref.IsZero() {
				ref = b.BeginTime
			}
			switch {
			case b.Keep:
				s.keep, s.reason = true, "pinned (failed backup)"
			case ref.IsZero():
				s.keep, s.reason = true, "failed backup without begin or end time: kept"
			case in.Now.Sub(ref) >= in.FailedGrace:
				s.reason = fmt.Sprintf("failed backup older than grace %v", in.FailedGrace)
			default:
				s.keep, s.reason = true, fmt.Sprintf("failed backup within grace %v", in.FailedGrace)
			}
		}
	}
	sort.SliceStable(done, func(i, j int) bool { return newer(done[i].b, done[j].b) })

	// Backup policy.
	switch in.Policy.Kind {
	case None:
		for _, s := range done {
			s.keep, s.policy, s.reason = true, true, "no retention policy"
		}
	case Redundancy:
		n := in.Policy.Redundancy
		for i, s := range done {
			if i < n {
				s.keep, s.policy, s.reason = true, true, fmt.Sprintf("within redundancy %d", n)
			} else {
				s.reason = fmt.Sprintf("obsolete: outside redundancy %d", n)
			}
		}
	case Window:
		start := in.Now.Add(-in.Policy.Window)
		baseFound := false
		for _, s := range done {
			switch {
			case !s.b.EndTime.Before(start):
				s.keep, s.policy = true, true
				s.reason = fmt.Sprintf("within recovery window %s (window starts %s)", in.Policy.describe(), start.UTC().Format(time.RFC3339))
			case !baseFound:
				baseFound = true
				s.keep, s.policy = true, true
				s.reason = fmt.Sprintf("needed as base for recovery window start %s", start.UTC().Format(time.RFC3339))
			default:
				s.reason = fmt.Sprintf("obsolete: outside recovery window %s (window starts %s)", in.Policy.describe(), start.UTC().Format(time.RFC3339))
			}
		}
	}
	// minimum_redundancy.
	kept := 0
	for _, s := range done {
		if s.keep {
			kept++
		}
	}
	for _, s := range done {
		if kept >= in.MinimumRedundancy {
			break
		}
		if !s.keep {
			s.keep, s.policy, kept = true, true, kept+1
			s.reason = fmt.Sprintf("minimum_redundancy %d", in.MinimumRedundancy)
		}
	}
	// Pins win over everything.
	for _, s := range done {
		if s.b.Keep {
			s.keep = true
			if s.policy {
				s.reason = "pinned; " + s.reason
			} else {
				s.reason = "pinned"
			}
		}
	}

	// WAL.
	// need holds the backups that must be recoverable to any later point;
	// the cutoff is the lowest begin LSN among them.
	var need []*state
	if in.WALPolicy.Kind == Window {
		// Every kept DONE backup (pinned ones too) that ended inside the WAL
		// window, plus the newest kept one that ended before its start (the
		// base for PITR to the window start).
		walStart := in.Now.Add(-in.WALPolicy.Window)
		for _, s := range done { // newest first
			if !s.keep {
				continue
			}
			need = append(need, s)
			if s.b.EndTime.Before(walStart) {
				break
			}
		}
		if len(need) > 0 {
			last := need[len(need)-1]
			if !last.b.EndTime.Before(walStart) && last.b.BeginTime.After(walStart) {
				plan.Notes = append(plan.Notes, fmt.Sprintf("WAL recovery window starts %s but the oldest retained backup %s begins %s: no earlier point is recoverable",
					walStart.UTC().Format(time.RFC3339), last.b.ID, last.b.BeginTime.UTC().Format(time.RFC3339)))
			}
		}
	} else {
		// WAL policy main: PITR from every backup the policy keeps; a
		// backup kept only because it is pinned keeps only begin..end.
		for _, s := range done {
			if s.policy {
				need = append(need, s)
			}
		}
	}
	var anchor *state
	for _, s := range need {
		if anchor == nil || s.b.BeginLSN < anchor.b.BeginLSN {
			anchor = s
		}
	}
	pitr := map[*state]bool{}
	if anchor == nil {
		plan.Notes = append(plan.Notes, "no DONE backup to anchor WAL retention: no WAL is deleted")
	} else {
		cut, by := anchor.b.BeginLSN, "backup "+anchor.b.ID
		for _, s := range inProgress {
			if s.b.BeginLSN < cut {
				cut, by = s.b.BeginLSN, "backup in progress "+s.b.ID
			}
		}
		plan.KeepFromLSN, plan.HasCutoff = cut, true
		for _, s := range done {
			if s.keep && s.b.BeginLSN >= cut {
				pitr[s] = true
			}
		}
		plan.WAL = walRanges(in, done, cut, by)
	}
	for _, s := range done {
		if s.keep && !pitr[s] && anchor != nil {
			s.reason += "; restores to its end point only"
		}
	}
	plan.Backups = make([]Decision, len(st))
	for i := range st {
		s := &st[i]
		plan.Backups[i] = Decision{ID: s.b.ID, Keep: s.keep, Reason: s.reason, PITR: pitr[s] || (s.keep && s.b.Status == StatusDone && anchor == nil)}
	}

	// History files are never deleted: PostgreSQL's recovery_target_timeline
	// = latest probes N+1.history, N+2.history... and stops at the first
	// missing one, so a hole would hide every newer timeline.
	seenTL := map[uint32]bool{}
	for _, t := range in.Timelines {
		if t.ID > 1 && !seenTL[t.ID] {
			seenTL[t.ID] = true
			plan.KeepHistory = append(plan.KeepHistory, t.ID)
		}
	}
	sort.Slice(plan.KeepHistory, func(i, j int) bool { return plan.KeepHistory[i] < plan.KeepHistory[j] })
	return plan, nil
}

// newer reports whether a sorts before b in newest-first order.
func newer(a, b *Backup) bool {
	if !a.EndTime.Equal(b.EndTime) {
		return a.EndTime.After(b.EndTime)
	}
	if a.EndLSN != b.EndLSN {
		return a.EndLSN > b.EndLSN
	}
	return a.ID > b.ID
}

type island struct{ from, to uint64 } // [from, to)

// walRanges computes deletable segment ranges: on each timeline, segments
// below the cutoff's segment, minus the begin..end islands of kept DONE
// backups on that timeline.
func walRanges(in Input, done []*state, cut uint64, by string) []Range {
	cutSeg := cut / in.SegSize
	islands := map[uint32][]island{}
	for _, s := range done {
		if !s.keep {
			continue
		}
		b := s.b
		islands[b.Timeline] = append(islands[b.Timeline], island{b.BeginLSN / in.SegSize, b.EndLSN/in.SegSize + 1})
	}
	tls := append([]Timeline(nil), in.Timelines...)
	sort.SliceStable(tls, func(i, j int) bool { return tls[i].ID < tls[j].ID })
	var out []Range
	done1 := map[uint32]bool{}
	for _, t := range tls {
		if !t.HasSegments || done1[t.ID] {
			continue
		}
		done1[t.ID] = true
		hi := t.MaxSegNo + 1
		if hi > cutSeg {
			hi = cutSeg
		}
		if t.MinSegNo >= hi {
			continue
		}
		is := islands[t.ID]
		sort.Slice(is, func(i, j int) bool { return is[i].from < is[j].from })
		pos := t.MinSegNo
		reason := fmt.Sprintf("before WAL needed by retained backups (keep from LSN %X/%X, %s)", cut>>32, uint32(cut), by)
		for _, isl := range is {
			if isl.to <= pos {
				continue
			}
			if isl.from >= hi {
				break
			}
			if isl.from > pos {
				out = append(out, Range{Timeline: t.ID, FromSegNo: pos, ToSegNo: isl.from, Reason: reason})
			}
			pos = isl.to
			if pos >= hi {
				break
			}
		}
		if pos < hi {
			out = append(out, Range{Timeline: t.ID, FromSegNo: pos, ToSegNo: hi, Reason: reason})
		}
	}
	return out
}
