// Package verify answers "can this archive still restore?": it finds gaps in the WAL
// chain a backup needs (across timeline switches, as PostgreSQL's recovery follows them)
// and checks a stored backup's files against the backup_manifest PostgreSQL sent with it.
// The chain logic is pure, so it is tested table-driven and fuzzed; the I/O around it
// reads the archive through the storage layer, never trusting the derived index alone.
package verify

import (
	"fmt"
	"sort"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// ChainInput describes what the archive holds and where a chain starts.
type ChainInput struct {
	// SegSize is the server's wal_segment_size.
	SegSize uint64
	// Start is the segment the chain starts at (a backup's begin WAL).
	Start string
	// StartLSN is the exact start position (a backup's begin LSN); zero means the start
	// of the Start segment.
	StartLSN segments.LSN
	// EndLSN, if not zero, is the position the chain must at least reach (a backup's end
	// LSN: without the WAL up to it the backup never becomes consistent). It also decides
	// which timelines the chain may follow: one that branched off before EndLSN cannot be
	// reached from the backup (PostgreSQL refuses it too).
	EndLSN segments.LSN
	// Segments are the names of the complete archived segments (any order, any timeline).
	// .partial files are not complete segments and do not belong here.
	Segments []string
	// History holds the parsed history file of every timeline above 1 that the archive
	// has one for.
	History map[uint32][]segments.HistoryEntry
}

// Gap is a run of missing segments on one timeline.
type Gap struct {
	Timeline uint32 `json:"timeline"`
	First    string `json:"first"`
	Last     string `json:"last"`
	Count    uint64 `json:"count"`
}

// String names the missing files the way a DBA looks them up.
func (g Gap) String() string {
	if g.Count == 1 {
		return fmt.Sprintf("missing WAL segment %s", g.First)
	}
	return fmt.Sprintf("missing %d WAL segments %s .. %s", g.Count, g.First, g.Last)
}

// Span is the part of the chain that lies on one timeline: segments From..To inclusive.
type Span struct {
	Timeline uint32 `json:"timeline"`
	From     string `json:"from"`
	To       string `json:"to"`
}

// Chain is the answer for one starting point.
type Chain struct {
	// Target is the newest timeline the chain can follow from its start.
	Target uint32 `json:"target_timeline"`
	// Start and End name the first and last segment the chain needs; End is the newest
	// archived segment on the path (or the segment of EndLSN when that is later).
	Start string `json:"start"`
	End   string `json:"end"`
	// Spans is the path: per timeline, which segments are needed.
	Spans []Span `json:"spans"`
	// Needed counts the segments from Start to End on the path; Present how many of
	// them are archived.
	Needed  uint64 `json:"needed"`
	Present uint64 `json:"present"`
	// Gaps lists every missing run, in chain order.
	Gaps []Gap `json:"gaps,omitempty"`
	// Problems lists what prevents following the archive further than the chain does
	// (a timeline with segments but no history file, a backup end that is not on the
	// path). They are failures like gaps: a restore to the newest WAL would stop there.
	Problems []string `json:"problems,omitempty"`
}

// OK reports whether the chain has neither gaps nor problems.
func (c Chain) OK() bool { return len(c.Gaps) == 0 && len(c.Problems) == 0 }

// pos is a place on the chain: a segment number on a timeline.
type pos struct {
	tli   uint32
	segNo uint64
}

// span is a range of segment numbers [from, to] on a timeline; to may be open (maxSeg).
type span struct {
	tli      uint32
	from, to uint64
}

const openEnd = ^uint64(0)

// FindChain follows the WAL a restore from in.Start needs up to the newest archived
// segment it can reach, as PostgreSQL's recovery with recovery_target_timeline=latest
// would: on the start timeline up to the segment before the switch point of the next
// timeline on the path, then on that timeline from the switch point's segment on (the
// segment holding the switch point is read from the new timeline: PostgreSQL's
// XLogFileReadAnyTLI prefers the newest timeline whose start segment is not after it,
// and a promoted standby archives the old timeline's copy of it only as a .partial).
func FindChain(in ChainInput) (Chain, error) {
	if !segments.ValidSegSize(in.SegSize) {
		return Chain{}, fmt.Errorf("wal_segment_size %d is not valid", in.SegSize)
	}
	sn, err := segments.Parse(in.Start)
	if err != nil {
		return Chain{}, err
	}
	if sn.Kind != segments.KindSegment {
		return Chain{}, fmt.Errorf("chain start %q is not a WAL segment name", in.Start)
	}
	if err := sn.ValidFor(in.SegSize); err != nil {
		return Chain{}, err
	}
	startTLI, startSeg := sn.Timeline, sn.SegNo(in.SegSize)
	startLSN := in.StartLSN
	if startLSN == 0 || segments.SegNoOf(startLSN, in.SegSize) != startSeg {
		startLSN = segments.SegStart(startSeg, in.SegSize)
	}
	reachLSN := startLSN
	if in.EndLSN > startLSN {
		// An end position belongs to the timeline it was written on even when it equals
		// the switch point (CanReach's note).
		reachLSN = in.EndLSN - 1
	}

	// The archive's segments per timeline.
	have := map[uint32]map[uint64]bool{}
	for _, name := range in.Segments {
		n, err := segments.Parse(name)
		if err != nil || n.Kind != segments.KindSegment || n.ValidFor(in.SegSize) != nil {
			continue
		}
		m := have[n.Timeline]
		if m == nil {
			m = map[uint64]bool{}
			have[n.Timeline] = m
		}
		m[n.SegNo(in.SegSize)] = true
	}

	var ch Chain
	// Choose the target: the newest timeline reachable from the start.
	cands := map[uint32]bool{startTLI: true}
	for t := range have {
		if t > startTLI {
			cands[t] = true
		}
	}
	for t := range in.History {
		if t > startTLI {
			cands[t] = true
		}
	}
	order := make([]uint32, 0, len(cands))
	for t := range cands {
		order = append(order, t)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] > order[j] })
	target := startTLI
	for _, t := range order {
		if t == startTLI {
			break
		}
		h, ok := in.History[t]
		if !ok {
			if len(have[t]) > 0 {
				ch.Problems = append(ch.Problems, fmt.Sprintf("timeline %d has archived segments but its history file %s is not archived: cannot tell whether it continues timeline %d",
					t, segments.HistoryFileName(t), startTLI))
			}
			continue
		}
		if onPath(h, startTLI) && segments.CanReach(h, t, startTLI, reachLSN) {
			target = t
			break
		}
	}
	ch.Target = target

	// The path: spans per timeline from the start to the target.
	var spans []span
	cur := startSeg
	if target != startTLI {
		h := in.History[target]
		on := false
		for _, e := range h {
			if e.Timeline == startTLI {
				on = true
			}
			if !on {
				continue
			}
			sw := segments.SegNoOf(e.SwitchLSN, in.SegSize)
			if sw > cur {
				spans = append(spans, span{tli: e.Timeline, from: cur, to: sw - 1})
				cur = sw
			}
		}
	}
	spans = append(spans, span{tli: target, from: cur, to: openEnd})

	// The end: the newest archived segment on the path, or EndLSN's segment if later.
	var end pos
	haveEnd := false
	for i := len(spans) - 1; i >= 0 && !haveEnd; i-- {
		s := spans[i]
		best, found := uint64(0), false
		for seg := range have[s.tli] {
			if seg >= s.from && seg <= s.to && (!found || seg > best) {
				best, found = seg, true
			}
		}
		if found {
			end, haveEnd = pos{s.tli, best}, true
		}
	}
	if in.EndLSN > startLSN {
		endSeg := segments.SegNoOf(in.EndLSN-1, in.SegSize)
		endTLI, ok := spanOf(spans, endSeg)
		// The backup's end is on its own timeline; the path must still be on it then.
		if !ok {
			ch.Problems = append(ch.Problems, fmt.Sprintf("end LSN %s is not on the path to timeline %d", in.EndLSN, target))
		} else if !haveEnd || endSeg > end.segNo {
			end, haveEnd = pos{endTLI, endSeg}, true
		}
	}
	ch.Start = segments.SegmentFileName(startTLI, startSeg, in.SegSize)
	if !haveEnd {
		// Nothing archived on the path at all: the start segment itself is missing.
		end = pos{spans[0].tli, startSeg}
	}
	ch.End = segments.SegmentFileName(end.tli, end.segNo, in.SegSize)

	// Walk the path up to the end and collect the missing runs. Counting by the sorted
	// present segments keeps this linear in the archive's size, whatever the distances.
	for _, s := range spans {
		to := s.to
		last := false
		if s.tli == end.tli && end.segNo >= s.from && end.segNo <= s.to {
			to, last = end.segNo, true
		}
		ch.Spans = append(ch.Spans, Span{Timeline: s.tli,
			From: segments.SegmentFileName(s.tli, s.from, in.SegSize), To: segments.SegmentFileName(s.tli, to, in.SegSize)})
		var present []uint64
		for seg := range have[s.tli] {
			if seg >= s.from && seg <= to {
				present = append(present, seg)
			}
		}
		sort.Slice(present, func(i, j int) bool { return present[i] < present[j] })
		ch.Needed += to - s.from + 1
		ch.Present += uint64(len(present))
		next := s.from
		for _, seg := range append(present, to+1) {
			if seg > next {
				ch.Gaps = append(ch.Gaps, Gap{Timeline: s.tli, Count: seg - next,
					First: segments.SegmentFileName(s.tli, next, in.SegSize),
					Last:  segments.SegmentFileName(s.tli, seg-1, in.SegSize)})
			}
			next = seg + 1
		}
		if last {
			break
		}
	}
	return ch, nil
}

// onPath reports whether tli is an ancestor listed in history.
func onPath(history []segments.HistoryEntry, tli uint32) bool {
	for _, e := range history {
		if e.Timeline == tli {
			return true
		}
	}
	return false
}

// spanOf finds the timeline whose span holds segNo.
func spanOf(spans []span, segNo uint64) (uint32, bool) {
	for _, s := range spans {
		if segNo >= s.from && segNo <= s.to {
			return s.tli, true
		}
	}
	return 0, false
}
