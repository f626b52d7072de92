package retention

import (
	"math/rand"
	"sort"
	"testing"
	"time"
)

// checkInvariants checks DESIGN.md invariant 6 and the plan's shape,
// independently of how Evaluate computes it.
func checkInvariants(t *testing.T, in Input, p Plan) {
	t.Helper()
	if len(p.Backups) != len(in.Backups) {
		t.Fatalf("%d decisions for %d backups", len(p.Backups), len(in.Backups))
	}
	var done []Backup
	kept := map[string]bool{}
	for i, b := range in.Backups {
		d := p.Backups[i]
		if d.ID != b.ID || d.Reason == "" {
			t.Fatalf("decision %d = %+v for backup %s", i, d, b.ID)
		}
		kept[b.ID] = d.Keep
		if b.Keep && !d.Keep {
			t.Errorf("pinned backup %s not kept", b.ID)
		}
		switch b.Status {
		case StatusDone:
			done = append(done, b)
		case StatusStarted, StatusWaitingWAL:
			if !d.Keep {
				t.Errorf("in-progress backup %s not kept", b.ID)
			}
		default:
			ref := b.EndTime
			if ref.IsZero() {
				ref = b.BeginTime
			}
			young := ref.IsZero() || in.Now.Sub(ref) < in.FailedGrace
			if young && !d.Keep {
				t.Errorf("failed backup %s deleted within grace", b.ID)
			}
			if !young && !b.Keep && d.Keep {
				t.Errorf("failed backup %s kept after grace", b.ID)
			}
		}
	}
	sort.Slice(done, func(i, j int) bool { return newer(&done[i], &done[j]) })
	nKept := 0
	for _, b := range done {
		if kept[b.ID] {
			nKept++
		}
	}
	if nKept < min(in.MinimumRedundancy, len(done)) {
		t.Errorf("%d DONE backups kept, minimum_redundancy %d", nKept, in.MinimumRedundancy)
	}
	// Backups the policy itself must keep (and, with WAL main, recover from).
	var must []Backup
	switch in.Policy.Kind {
	case None:
		must = done
	case Redundancy:
		must = done[:min(len(done), max(in.Policy.Redundancy, in.MinimumRedundancy))]
	case Window:
		start := in.Now.Add(-in.Policy.Window)
		base := false
		for i, b := range done {
			switch {
			case !b.EndTime.Before(start):
				must = append(must, b)
			case !base:
				base = true
				must = append(must, b)
			case i < in.MinimumRedundancy:
				must = append(must, b)
			}
		}
	}
	for _, b := range must {
		if !kept[b.ID] {
			t.Errorf("backup %s required by policy %q is obsolete", b.ID, in.Policy.Text)
		}
	}
	if !p.HasCutoff {
		if len(p.WAL) != 0 {
			t.Errorf("WAL ranges without a cutoff: %+v", p.WAL)
		}
		if len(done) > 0 {
			t.Errorf("no cutoff although there are DONE backups")
		}
		return
	}
	cutSeg := p.KeepFromLSN / in.SegSize
	for _, b := range in.Backups {
		if (b.Status == StatusStarted || b.Status == StatusWaitingWAL) && b.BeginLSN < p.KeepFromLSN {
			t.Errorf("in-progress backup %s begins before the cutoff", b.ID)
		}
	}
	if in.WALPolicy.Kind == Window {
		walStart := in.Now.Add(-in.WALPolicy.Window)
		for _, b := range done { // newest first
			if !kept[b.ID] {
				continue
			}
			if b.BeginLSN < p.KeepFromLSN {
				t.Errorf("kept backup %s needed for the WAL window begins before the cutoff", b.ID)
			}
			if b.EndTime.Before(walStart) {
				break // the base for the WAL window start: older ones need only islands
			}
		}
	} else {
		for _, b := range must {
			if b.BeginLSN < p.KeepFromLSN {
				t.Errorf("policy backup %s begins before the cutoff %X", b.ID, p.KeepFromLSN)
			}
		}
	}
	tls := map[uint32]Timeline{}
	for _, tl := range in.Timelines {
		tls[tl.ID] = tl
	}
	last := map[uint32]uint64{}
	for i, r := range p.WAL {
		if r.FromSegNo >= r.ToSegNo {
			t.Errorf("empty range %+v", r)
		}
		if r.ToSegNo > cutSeg {
			t.Errorf("range %+v reaches past the cutoff segment %d", r, cutSeg)
		}
		tl, ok := tls[r.Timeline]
		if !ok || !tl.HasSegments || r.FromSegNo < tl.MinSegNo || r.ToSegNo > tl.MaxSegNo+1 {
			t.Errorf("range %+v outside timeline %+v", r, tl)
		}
		if i > 0 && (p.WAL[i-1].Timeline > r.Timeline || p.WAL[i-1].Timeline == r.Timeline && last[r.Timeline] > r.FromSegNo) {
			t.Errorf("ranges not sorted / overlapping: %+v", p.WAL)
		}
		last[r.Timeline] = r.ToSegNo
		for _, b := range in.Backups {
			if b.Status != StatusDone || !kept[b.ID] || b.Timeline != r.Timeline {
				continue
			}
			bs, es := b.BeginLSN/in.SegSize, b.EndLSN/in.SegSize
			if r.FromSegNo <= es && bs < r.ToSegNo {
				t.Errorf("range %+v overlaps kept backup %s island [%d,%d]", r, b.ID, bs, es)
			}
		}
	}
}

var statuses = []string{StatusDone, StatusDone, StatusDone, StatusDone, StatusFailed, StatusStarted, StatusWaitingWAL, "WEIRD"}

// randomInput builds a plausible set of backups and WAL: time and LSN grow together,
// timelines branch forward, backups lie on the timeline current at their LSN.
func randomInput(r *rand.Rand) Input {
	in := Input{Now: now, SegSize: seg << r.Intn(3), MinimumRedundancy: r.Intn(4),
		FailedGrace: time.Duration(r.Intn(10)) * Day}
	switch r.Intn(3) {
	case 0:
		in.Policy = Policy{Kind: Redundancy, Redundancy: 1 + r.Intn(4), Text: "REDUNDANCY"}
	case 1:
		in.Policy = Policy{Kind: Window, Window: time.Duration(1+r.Intn(60)) * Day, Text: "WINDOW"}
	}
	if r.Intn(2) == 0 {
		in.WALPolicy = Policy{Kind: Window, Window: time.Duration(1+r.Intn(60)) * Day, Text: "WINDOW"}
	} else {
		in.WALPolicy = Policy{Kind: Main}
	}
	// timelines: switch points in increasing segments
	ntl := 1 + r.Intn(4)
	switches := []uint64{0}
	sw := uint64(0)
	for i := 1; i < ntl; i++ {
		sw += uint64(1 + r.Intn(400))
		switches = append(switches, sw)
	}
	maxSeg := sw + uint64(1+r.Intn(400))
	tlOf := func(segNo uint64) uint32 {
		t := uint32(1)
		for i, s := range switches {
			if segNo >= s {
				t = uint32(i + 1)
			}
		}
		return t
	}
	for i := range ntl {
		lo := switches[i]
		hi := maxSeg
		if i+1 < ntl && r.Intn(3) > 0 {
			hi = switches[i+1] // archived up to the switch segment
		}
		if r.Intn(4) == 0 && lo+5 < hi {
			lo += uint64(r.Intn(5)) // some old segments already removed
		}
		in.Timelines = append(in.Timelines, Timeline{ID: uint32(i + 1), Parent: uint32(i), SwitchLSN: switches[i] * in.SegSize,
			MinSegNo: lo, MaxSegNo: hi, HasSegments: r.Intn(8) > 0})
	}
	nb := r.Intn(12)
	segNo := uint64(r.Intn(5))
	tm := now.Add(-time.Duration(r.Intn(200)) * Day)
	for i := range nb {
		segNo += uint64(r.Intn(int(maxSeg/uint64(nb+1)) + 1))
		tm = tm.Add(time.Duration(r.Int63n(int64(20 * Day))))
		if r.Intn(10) == 0 {
			tm = tm.Add(-time.Duration(r.Int63n(int64(Day)))) // clocks are not always monotonic
		}
		length := uint64(r.Intn(3))
		st := statuses[r.Intn(len(statuses))]
		b := Backup{ID: string(rune('a' + i)), Status: st, Timeline: tlOf(segNo),
			BeginLSN: segNo*in.SegSize + uint64(r.Intn(int(in.SegSize))), BeginTime: tm.Add(-time.Hour), EndTime: tm, Keep: r.Intn(5) == 0}
		b.EndLSN = (segNo+length)*in.SegSize + uint64(r.Intn(int(in.SegSize)))
		if b.EndLSN < b.BeginLSN {
			b.EndLSN = b.BeginLSN
		}
		if st != StatusDone && r.Intn(2) == 0 {
			b.EndTime, b.EndLSN = time.Time{}, 0
		}
		if r.Intn(6) == 0 { // exactly on a boundary
			b.EndTime = now.Add(-in.Policy.Window)
		}
		in.Backups = append(in.Backups, b)
	}
	return in
}

func TestEvaluateProperties(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := range 20000 {
		in := randomInput(r)
		p, err := Evaluate(in)
		if err != nil {
			t.Fatalf("case %d: %v\n%+v", i, err, in)
		}
		checkInvariants(t, in, p)
		if t.Failed() {
			t.Fatalf("case %d: input %+v\nplan %+v", i, in, p)
		}
	}
}

func FuzzEvaluate(f *testing.F) {
	for _, s := range []int64{0, 1, 2, 42, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		in := randomInput(rand.New(rand.NewSource(seed)))
		p, err := Evaluate(in)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, in, p)
	})
}

func BenchmarkEvaluate(b *testing.B) {
	// 1000 daily backups over 10 timelines holding 1,000,000 segments.
	in := Input{Now: now, Policy: Policy{Kind: Window, Window: 90 * Day}, WALPolicy: Policy{Kind: Window, Window: 30 * Day},
		MinimumRedundancy: 3, FailedGrace: 7 * Day, SegSize: seg}
	const perTL = 100_000
	for i := range uint64(10) {
		in.Timelines = append(in.Timelines, Timeline{ID: uint32(i + 1), Parent: uint32(i), SwitchLSN: i * perTL * seg,
			MinSegNo: i * perTL, MaxSegNo: (i+1)*perTL - 1, HasSegments: true})
	}
	for i := range 1000 {
		s := uint64(i) * 1000
		st := StatusDone
		if i%50 == 0 {
			st = StatusFailed
		}
		in.Backups = append(in.Backups, Backup{ID: time.Duration(i).String(), Status: st, Timeline: uint32(s/perTL) + 1,
			BeginLSN: s * seg, EndLSN: (s + 2) * seg, BeginTime: now.Add(-time.Duration(1000-i) * Day),
			EndTime: now.Add(-time.Duration(1000-i)*Day + time.Hour), Keep: i%100 == 7})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Evaluate(in); err != nil {
			b.Fatal(err)
		}
	}
}
