package restore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Timelines is what the archive knows about a server's timelines: every archived
// .history file, read through storage (no index needed, like get-wal).
type Timelines struct {
	// History maps a timeline above 1 to its parsed history file.
	History map[uint32][]segments.HistoryEntry
	// Raw keeps each history file's bytes (restore --copy-wal ships them).
	Raw map[uint32][]byte
}

// LoadTimelines reads every archived history file of server, and those waiting in the
// given incoming/ directories (validated; invariant 9: a history file archive-wal made
// durable is known at once, daemon or not).
func LoadTimelines(ctx context.Context, store storage.Store, server string, incoming ...string) (*Timelines, error) {
	tl := &Timelines{History: map[uint32][]segments.HistoryEntry{}, Raw: map[uint32][]byte{}}
	var keys []archive.Key
	var objs []string
	if err := archive.ListHistory(ctx, store, server, func(i storage.Info, k archive.Key) error {
		keys, objs = append(keys, k), append(objs, i.Key)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("timelines of %s: %w", server, err)
	}
	for j, k := range keys {
		n := k.WAL
		data, err := archive.Read(ctx, store, objs[j], k.Codec)
		if err != nil {
			return nil, fmt.Errorf("timelines of %s: %w", server, err)
		}
		h, err := segments.ParseHistory(n.Timeline, data)
		if err != nil {
			return nil, fmt.Errorf("timelines of %s: %s: %w", server, objs[j], err)
		}
		tl.History[n.Timeline] = h
		tl.Raw[n.Timeline] = data
	}
	if err := tl.addWaiting(ctx, store, server, incoming); err != nil {
		return nil, err
	}
	return tl, nil
}

// addWaiting adds the history files waiting in incoming/ that the archive lacks.
func (tl *Timelines) addWaiting(ctx context.Context, store storage.Store, server string, dirs []string) error {
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		for _, t := range archive.PendingHistories(dir) {
			if _, ok := tl.History[t]; ok {
				continue
			}
			name := segments.HistoryFileName(t)
			w, err := archive.FindPending(ctx, store, server, dir, name)
			if errors.Is(err, storage.ErrNotFound) {
				// Invalid (ingest will quarantine it), or archived since the listing.
				key, codec, ferr := archive.Find(ctx, store, server, name)
				if ferr != nil {
					continue
				}
				if w.Data, err = archive.Read(ctx, store, key, codec); err != nil {
					return fmt.Errorf("timelines of %s: %w", server, err)
				}
			} else if err != nil {
				return fmt.Errorf("timelines of %s: %w", server, err)
			}
			h, err := segments.ParseHistory(t, w.Data)
			if err != nil {
				continue
			}
			tl.History[t] = h
			tl.Raw[t] = w.Data
		}
	}
	return nil
}

// LeftBy returns a timeline whose history says tli was left before lsn (so
// PostgreSQL recovering through tli switches away from it there), or 0 when none is
// known.
func (tl *Timelines) LeftBy(tli uint32, lsn segments.LSN) uint32 {
	for t, h := range tl.History {
		for _, e := range h {
			if e.Timeline == tli && e.SwitchLSN < lsn {
				return t
			}
		}
	}
	return 0
}

// Newest is the highest timeline the archive has a history file for (1 when none).
func (tl *Timelines) Newest() uint32 {
	newest := uint32(1)
	for t := range tl.History {
		newest = max(newest, t)
	}
	return newest
}

// Sorted lists the timelines with a history file, ascending.
func (tl *Timelines) Sorted() []uint32 {
	out := make([]uint32, 0, len(tl.History))
	for t := range tl.History {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Reachable explains why backup b cannot be recovered onto timeline tli, or returns nil
// when it can: tli is b's timeline, or b's timeline is an ancestor of tli and tli branched
// off after the backup ended (PostgreSQL refuses a timeline that left before the backup
// became consistent).
func (tl *Timelines) Reachable(b record.Backup, tli uint32) error {
	if tli == b.Timeline {
		return nil
	}
	if tli < b.Timeline {
		return fmt.Errorf("timeline %d is older than backup %s's timeline %d", tli, b.ID, b.Timeline)
	}
	h, ok := tl.History[tli]
	if !ok {
		return fmt.Errorf("timeline %d: %s is not in the archive (timelines known: %s)", tli, segments.HistoryFileName(tli), tl.describe())
	}
	end := b.EndLSN
	if end > 0 {
		end-- // WAL ending exactly at the switch point still belongs to the old timeline
	}
	if segments.CanReach(h, tli, b.Timeline, end) {
		return nil
	}
	for _, e := range h {
		if e.Timeline == b.Timeline {
			return fmt.Errorf("timeline %d branched off timeline %d at %s, before backup %s ended at %s: that backup cannot reach it",
				tli, b.Timeline, e.SwitchLSN, b.ID, b.EndLSN)
		}
	}
	return fmt.Errorf("timeline %d does not descend from backup %s's timeline %d", tli, b.ID, b.Timeline)
}

func (tl *Timelines) describe() string {
	s := "1"
	for _, t := range tl.Sorted() {
		s += ", " + strconv.FormatUint(uint64(t), 10)
	}
	return s
}

// Resolve turns --target-tli into a timeline number for backup b and checks b can reach
// it: "current" is b's timeline, "latest" the archive's newest timeline, a number itself,
// and "" (the default) the newest timeline b can reach — PostgreSQL's own default,
// "latest", minus timelines that branched before the backup, which PostgreSQL would
// reject at startup.
func (tl *Timelines) Resolve(flag string, b record.Backup) (uint32, error) {
	switch flag {
	case "current":
		return b.Timeline, nil
	case "latest":
		t := tl.Newest()
		if t < b.Timeline {
			t = b.Timeline
		}
		if err := tl.Reachable(b, t); err != nil {
			return 0, fmt.Errorf("--target-tli latest: %w", err)
		}
		return t, nil
	case "":
		sorted := tl.Sorted()
		for i := len(sorted) - 1; i >= 0; i-- {
			if sorted[i] > b.Timeline && tl.Reachable(b, sorted[i]) == nil {
				return sorted[i], nil
			}
		}
		return b.Timeline, nil
	}
	n, err := strconv.ParseUint(flag, 10, 32)
	if err != nil || n == 0 {
		return 0, usage("--target-tli %q: want a timeline number, current or latest", flag)
	}
	if err := tl.Reachable(b, uint32(n)); err != nil {
		return 0, fmt.Errorf("--target-tli %d: %w", n, err)
	}
	return uint32(n), nil
}

// SegmentTimeline is the timeline whose file PostgreSQL reads first for segment segNo
// when recovering along timeline tli: the newest timeline on tli's path that had begun
// by that segment (a switch segment is read from the new timeline, which holds the old
// timeline's part too).
func (tl *Timelines) SegmentTimeline(tli uint32, segNo, segSize uint64) uint32 {
	return tl.SegmentCandidates(tli, segNo, segSize)[0]
}

// SegmentCandidates lists, in PostgreSQL's order (XLogFileReadAnyTLI), the timelines
// whose file of segment segNo recovery along tli tries: every timeline of the path,
// newest first, whose span begins at or before that segment. A timeline begins where
// the one before it on the path was left (its history line's switch point), so in a
// history whose switch points go backwards (recovery test 028) a timeline may begin
// after the next one: it is still tried, as PostgreSQL tries it.
func (tl *Timelines) SegmentCandidates(tli uint32, segNo, segSize uint64) []uint32 {
	h := tl.History[tli]
	out := make([]uint32, 0, len(h)+1)
	for i := len(h); i >= 0; i-- {
		t := tli
		if i < len(h) {
			t = h[i].Timeline
		}
		if i > 0 && segNo < segments.SegNoOf(h[i-1].SwitchLSN, segSize) {
			continue
		}
		out = append(out, t)
	}
	return out
}
