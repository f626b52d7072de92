package verify

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

const mb16 = 16 << 20

func seg(tli uint32, segNo uint64) string { return segments.SegmentFileName(tli, segNo, mb16) }

// segs names segments from..to on a timeline.
func segs(tli uint32, from, to uint64) []string {
	var out []string
	for s := from; s <= to; s++ {
		out = append(out, seg(tli, s))
	}
	return out
}

func join(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func hist(entries ...segments.HistoryEntry) []segments.HistoryEntry { return entries }

func sw(tli uint32, lsn segments.LSN) segments.HistoryEntry {
	return segments.HistoryEntry{Timeline: tli, SwitchLSN: lsn, Reason: "no recovery target specified"}
}

func at(segNo uint64, off uint64) segments.LSN {
	return segments.SegStart(segNo, mb16) + segments.LSN(off)
}

func gap(tli uint32, from, to uint64) Gap {
	return Gap{Timeline: tli, First: seg(tli, from), Last: seg(tli, to), Count: to - from + 1}
}

func TestFindChain(t *testing.T) {
	tests := []struct {
		name     string
		in       ChainInput
		target   uint32
		end      string
		gaps     []Gap
		problems []string // substrings, in order
		needed   uint64
		spans    int
	}{
		{
			name:   "single timeline complete",
			in:     ChainInput{Start: seg(1, 3), Segments: segs(1, 1, 9)},
			target: 1, end: seg(1, 9), needed: 7, spans: 1,
		},
		{
			name:   "gap at start",
			in:     ChainInput{Start: seg(1, 3), Segments: segs(1, 5, 9)},
			target: 1, end: seg(1, 9), needed: 7, spans: 1,
			gaps: []Gap{gap(1, 3, 4)},
		},
		{
			name:   "gap in the middle",
			in:     ChainInput{Start: seg(1, 3), Segments: join(segs(1, 3, 5), segs(1, 7, 9))},
			target: 1, end: seg(1, 9), needed: 7, spans: 1,
			gaps: []Gap{gap(1, 6, 6)},
		},
		{
			name:   "several gaps",
			in:     ChainInput{Start: seg(1, 1), Segments: []string{seg(1, 2), seg(1, 5), seg(1, 9)}},
			target: 1, end: seg(1, 9), needed: 9, spans: 1,
			gaps: []Gap{gap(1, 1, 1), gap(1, 3, 4), gap(1, 6, 8)},
		},
		{
			name:   "gap at the end: the backup's end WAL is not archived",
			in:     ChainInput{Start: seg(1, 3), StartLSN: at(3, 0x28), EndLSN: at(6, 0x100), Segments: segs(1, 3, 4)},
			target: 1, end: seg(1, 6), needed: 4, spans: 1,
			gaps: []Gap{gap(1, 5, 6)},
		},
		{
			name:   "end LSN exactly at a segment boundary belongs to the segment before",
			in:     ChainInput{Start: seg(1, 3), StartLSN: at(3, 0x28), EndLSN: at(6, 0), Segments: segs(1, 3, 4)},
			target: 1, end: seg(1, 5), needed: 3, spans: 1,
			gaps: []Gap{gap(1, 5, 5)},
		},
		{
			name:   "nothing archived",
			in:     ChainInput{Start: seg(1, 3)},
			target: 1, end: seg(1, 3), needed: 1, spans: 1,
			gaps: []Gap{gap(1, 3, 3)},
		},
		{
			name:   "segments across a log boundary",
			in:     ChainInput{Start: seg(1, 0xFD), Segments: join(segs(1, 0xFD, 0xFF), segs(1, 0x101, 0x102))},
			target: 1, end: "000000010000000100000002", needed: 6, spans: 1,
			gaps: []Gap{{Timeline: 1, First: "000000010000000100000000", Last: "000000010000000100000000", Count: 1}},
		},
		{
			name: "timeline switch mid-segment: the switch segment comes from the new timeline",
			in: ChainInput{Start: seg(1, 2),
				// The old timeline's copy of segment 5 exists only as a .partial (ignored).
				Segments: join(segs(1, 1, 4), []string{seg(1, 5) + ".partial"}, segs(2, 5, 8)),
				History:  map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(5, 0x2000)))}},
			target: 2, end: seg(2, 8), needed: 7, spans: 2,
		},
		{
			name: "timeline switch at a segment boundary",
			in: ChainInput{Start: seg(1, 2), Segments: join(segs(1, 1, 4), segs(2, 5, 6)),
				History: map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(5, 0)))}},
			target: 2, end: seg(2, 6), needed: 5, spans: 2,
		},
		{
			name: "new timeline's switch segment missing",
			in: ChainInput{Start: seg(1, 2), Segments: join(segs(1, 1, 5), segs(2, 6, 8)),
				History: map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(5, 0x2000)))}},
			target: 2, end: seg(2, 8), needed: 7, spans: 2,
			gaps: []Gap{gap(2, 5, 5)},
		},
		{
			name: "old timeline's last segments before the switch missing",
			in: ChainInput{Start: seg(1, 2), Segments: join(segs(1, 2, 3), segs(2, 6, 8)),
				History: map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(6, 0x2000)))}},
			target: 2, end: seg(2, 8), needed: 7, spans: 2,
			gaps: []Gap{gap(1, 4, 5)},
		},
		{
			name: "three timelines, backup on the middle one",
			in: ChainInput{Start: seg(2, 6), StartLSN: at(6, 0x28),
				Segments: join(segs(1, 1, 5), segs(2, 5, 9), segs(3, 10, 11), segs(3, 13, 14)),
				History: map[uint32][]segments.HistoryEntry{
					2: hist(sw(1, at(5, 0x100))),
					3: hist(sw(1, at(5, 0x100)), sw(2, at(10, 0x80))),
				}},
			target: 3, end: seg(3, 14), needed: 9, spans: 2,
			gaps: []Gap{gap(3, 12, 12)},
		},
		{
			name:   "history missing: the chain cannot cross to the timeline",
			in:     ChainInput{Start: seg(1, 2), Segments: join(segs(1, 1, 6), segs(2, 6, 9))},
			target: 1, end: seg(1, 6), needed: 5, spans: 1,
			problems: []string{"timeline 2 has archived segments but its history file 00000002.history is not archived"},
		},
		{
			name: "newest history missing, the one before present",
			in: ChainInput{Start: seg(1, 2), Segments: join(segs(1, 2, 5), segs(2, 5, 7), segs(3, 7, 9)),
				History: map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(5, 0x100)))}},
			target: 2, end: seg(2, 7), needed: 6, spans: 2,
			problems: []string{"timeline 3 has archived segments but its history file 00000003.history"},
		},
		{
			name: "a timeline that branched off before the backup is not followed",
			in: ChainInput{Start: seg(1, 6), StartLSN: at(6, 0x28), EndLSN: at(6, 0x500),
				Segments: join(segs(1, 1, 9), segs(2, 4, 12)),
				History:  map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(4, 0x100)))}},
			target: 1, end: seg(1, 9), needed: 4, spans: 1,
		},
		{
			name: "a timeline that branched off before the backup ended is not followed",
			in: ChainInput{Start: seg(1, 3), StartLSN: at(3, 0x28), EndLSN: at(5, 0x500),
				Segments: join(segs(1, 1, 7), segs(2, 4, 12)),
				History:  map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(4, 0x100)))}},
			target: 1, end: seg(1, 7), needed: 5, spans: 1,
		},
		{
			name: "a sibling branch without our timeline in its history is ignored",
			in: ChainInput{Start: seg(2, 6), Segments: join(segs(2, 6, 8), segs(3, 5, 9)),
				History: map[uint32][]segments.HistoryEntry{
					2: hist(sw(1, at(5, 0x100))),
					3: hist(sw(1, at(5, 0x80))),
				}},
			target: 2, end: seg(2, 8), needed: 3, spans: 1,
		},
		{
			name: "new timeline has a history file but no segment yet",
			in: ChainInput{Start: seg(1, 2), Segments: segs(1, 2, 6),
				History: map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(7, 0x100)))}},
			target: 2, end: seg(1, 6), needed: 5, spans: 1,
		},
		{
			name: "backup started in the segment where the next timeline begins",
			in: ChainInput{Start: seg(1, 5), StartLSN: at(5, 0x28), EndLSN: at(5, 0x300),
				Segments: join(segs(1, 4, 5), segs(2, 5, 6)),
				History:  map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(5, 0x1000)))}},
			target: 2, end: seg(2, 6), needed: 2, spans: 1,
		},
		{
			name: "junk names are ignored",
			in: ChainInput{Start: seg(1, 1), Segments: join(segs(1, 1, 2), []string{"00000002.history", "garbage",
				seg(1, 3) + ".00000028.backup", "000000010000000000000100" /* invalid for 16 MiB */})},
			target: 1, end: seg(1, 2), needed: 2, spans: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.SegSize = mb16
			ch, err := FindChain(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Target != tc.target || ch.End != tc.end || ch.Needed != tc.needed || len(ch.Spans) != tc.spans {
				t.Errorf("target %d end %s needed %d spans %d; want %d %s %d %d\n%+v",
					ch.Target, ch.End, ch.Needed, len(ch.Spans), tc.target, tc.end, tc.needed, tc.spans, ch)
			}
			if !reflect.DeepEqual(ch.Gaps, tc.gaps) {
				t.Errorf("gaps %+v, want %+v", ch.Gaps, tc.gaps)
			}
			if len(ch.Problems) != len(tc.problems) {
				t.Fatalf("problems %q, want %q", ch.Problems, tc.problems)
			}
			for i, p := range tc.problems {
				if !strings.Contains(ch.Problems[i], p) {
					t.Errorf("problem %q does not say %q", ch.Problems[i], p)
				}
			}
			var missing uint64
			for _, g := range ch.Gaps {
				missing += g.Count
			}
			if ch.Present+missing != ch.Needed {
				t.Errorf("present %d + missing %d != needed %d", ch.Present, missing, ch.Needed)
			}
			if ch.OK() != (len(tc.gaps) == 0 && len(tc.problems) == 0) {
				t.Errorf("OK() = %v", ch.OK())
			}
		})
	}
}

func TestFindChainSpans(t *testing.T) {
	ch, err := FindChain(ChainInput{SegSize: mb16, Start: seg(1, 2), Segments: join(segs(1, 1, 4), segs(2, 5, 8)),
		History: map[uint32][]segments.HistoryEntry{2: hist(sw(1, at(5, 0x2000)))}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Span{{1, seg(1, 2), seg(1, 4)}, {2, seg(2, 5), seg(2, 8)}}
	if !reflect.DeepEqual(ch.Spans, want) {
		t.Fatalf("spans %+v, want %+v", ch.Spans, want)
	}
}

func TestFindChainOtherSegmentSize(t *testing.T) {
	const mb1 = 1 << 20 // 4096 segments per log
	names := []string{}
	for s := uint64(0xFFE); s <= 0x1001; s++ {
		if s != 0x1000 {
			names = append(names, segments.SegmentFileName(1, s, mb1))
		}
	}
	ch, err := FindChain(ChainInput{SegSize: mb1, Start: segments.SegmentFileName(1, 0xFFE, mb1), Segments: names})
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Gaps) != 1 || ch.Gaps[0].First != "000000010000000100000000" || ch.End != "000000010000000100000001" {
		t.Fatalf("%+v", ch)
	}
}

func TestFindChainBadInput(t *testing.T) {
	for _, in := range []ChainInput{
		{SegSize: 3, Start: seg(1, 1)},
		{SegSize: mb16, Start: "00000002.history"},
		{SegSize: mb16, Start: "nonsense"},
		{SegSize: mb16, Start: "000000010000000000000100"},
	} {
		if _, err := FindChain(in); err == nil {
			t.Errorf("FindChain(%+v) accepted bad input", in)
		}
	}
}

func TestGapString(t *testing.T) {
	if s := gap(1, 3, 3).String(); s != "missing WAL segment 000000010000000000000003" {
		t.Error(s)
	}
	if s := gap(2, 3, 5).String(); s != "missing 3 WAL segments 000000020000000000000003 .. 000000020000000000000005" {
		t.Error(s)
	}
}

// FuzzFindChain builds an archive from arbitrary bytes and checks the answer's
// arithmetic: every needed segment is either present or in exactly one gap, gaps name
// only missing files, and the chain starts where asked.
func FuzzFindChain(f *testing.F) {
	f.Add([]byte{1, 3, 1, 5, 2, 7, 2, 9}, uint16(3), uint32(0x2000), false)
	f.Add([]byte{1, 1, 1, 2, 1, 4, 2, 4, 3, 6}, uint16(1), uint32(0), true)
	f.Add([]byte{}, uint16(0), uint32(0), false)
	f.Fuzz(func(t *testing.T, data []byte, start uint16, switchOff uint32, endLSN bool) {
		have := map[string]bool{}
		var names []string
		for i := 0; i+1 < len(data); i += 2 {
			tli := uint32(data[i]%4) + 1
			n := seg(tli, uint64(data[i+1]))
			names = append(names, n)
			have[n] = true
		}
		hist := map[uint32][]segments.HistoryEntry{}
		if len(data) >= 4 {
			s1 := uint64(binary.LittleEndian.Uint16(data[0:2]) % 300)
			hist[2] = []segments.HistoryEntry{sw(1, at(s1, uint64(switchOff)%mb16))}
			if data[2]%2 == 0 {
				s2 := s1 + uint64(data[3])
				hist[3] = []segments.HistoryEntry{sw(1, at(s1, uint64(switchOff)%mb16)), sw(2, at(s2, 0x100))}
			}
		}
		in := ChainInput{SegSize: mb16, Start: seg(uint32(start%3)+1, uint64(start>>2)), Segments: names, History: hist}
		if endLSN {
			in.EndLSN = at(uint64(start>>2)+uint64(switchOff%7), 0x200)
		}
		ch, err := FindChain(in)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Start != in.Start {
			t.Fatalf("start %s, want %s", ch.Start, in.Start)
		}
		var missing uint64
		for _, g := range ch.Gaps {
			missing += g.Count
			fn, _ := segments.Parse(g.First)
			ln, _ := segments.Parse(g.Last)
			if fn.Timeline != g.Timeline || ln.Timeline != g.Timeline || ln.SegNo(mb16)-fn.SegNo(mb16)+1 != g.Count {
				t.Fatalf("inconsistent gap %+v", g)
			}
			for s := fn.SegNo(mb16); s <= ln.SegNo(mb16); s++ {
				if have[seg(g.Timeline, s)] {
					t.Fatalf("gap %+v names archived segment %s", g, seg(g.Timeline, s))
				}
			}
		}
		if ch.Present+missing != ch.Needed {
			t.Fatalf("present %d + missing %d != needed %d: %+v", ch.Present, missing, ch.Needed, ch)
		}
		if !ch.OK() && len(ch.Gaps) == 0 && len(ch.Problems) == 0 {
			t.Fatal("not OK without a reason")
		}
		_ = fmt.Sprint(ch)
	})
}

func TestWALRangeMismatch(t *testing.T) {
	b := record.Backup{Timeline: 1, BeginLSN: 0x2000028, EndLSN: 0x2000100}
	ok := []ManifestWAL{{Timeline: 1, StartLSN: "0/2000028", EndLSN: "0/2000100"}}
	if m := walRangeMismatch(b, ok); m != "" {
		t.Fatal(m)
	}
	if m := walRangeMismatch(b, nil); m != "" {
		t.Fatal(m)
	}
	for _, bad := range [][]ManifestWAL{
		{{Timeline: 1, StartLSN: "0/2000060", EndLSN: "0/2000100"}},
		{{Timeline: 2, StartLSN: "0/2000028", EndLSN: "0/2000100"}},
		{{Timeline: 1, StartLSN: "0/2000028", EndLSN: "0/3000100"}},
		{{Timeline: 1, StartLSN: "x", EndLSN: "0/2000100"}},
	} {
		if m := walRangeMismatch(b, bad); m == "" {
			t.Errorf("%+v accepted", bad)
		}
	}
}
