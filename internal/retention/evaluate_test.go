package retention

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const seg = 16 << 20

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// bk builds a backup on tli whose WAL runs from segment bs to segment es and
// which ended at end (began an hour earlier).
func bk(id, status string, tli uint32, bs, es uint64, end time.Time, keep bool) Backup {
	return Backup{ID: id, Status: status, Timeline: tli, BeginLSN: bs*seg + 0x28, EndLSN: es*seg + 0x100,
		BeginTime: end.Add(-time.Hour), EndTime: end, Keep: keep}
}

func days(n int) time.Time { return now.Add(-time.Duration(n) * Day) }

func tl(id, parent uint32, sw, min, max uint64) Timeline {
	return Timeline{ID: id, Parent: parent, SwitchLSN: sw, MinSegNo: min, MaxSegNo: max, HasSegments: true}
}

func mustPolicy(t *testing.T, s string) Policy {
	t.Helper()
	p, err := ParsePolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustWAL(t *testing.T, s string) Policy {
	t.Helper()
	p, err := ParseWALPolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type want struct {
	keep     map[string]string // id -> reason substring
	obsolete map[string]string // id -> reason substring
	wal      [][3]uint64       // {timeline, from, to}
	noCut    bool
	note     string
	pitr     []string // ids that must have PITR
	noPITR   []string // kept ids that must not
}

func TestEvaluate(t *testing.T) {
	cases := []struct {
		name   string
		policy string
		wal    string
		minRed int
		grace  time.Duration
		bks    []Backup
		tls    []Timeline
		want   want
	}{
		{
			name: "no backups keeps all WAL", policy: "REDUNDANCY 2",
			tls:  []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{noCut: true, note: "no DONE backup"},
		},
		{
			name: "only failed backups: grace boundary", policy: "REDUNDANCY 1", grace: 168 * time.Hour,
			bks: []Backup{
				bk("f-exact", StatusFailed, 1, 10, 11, now.Add(-168*time.Hour), false),
				bk("f-young", StatusFailed, 1, 20, 21, now.Add(-168*time.Hour+time.Second), false),
				{ID: "f-nobegin", Status: StatusFailed, BeginTime: now.Add(-200 * time.Hour)},
				bk("f-pinned", StatusFailed, 1, 5, 6, days(100), true),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{
				keep:     map[string]string{"f-young": "failed backup within grace 168h", "f-pinned": "pinned"},
				obsolete: map[string]string{"f-exact": "failed backup older than grace 168h", "f-nobegin": "older than grace"},
				noCut:    true, note: "no DONE backup",
			},
		},
		{
			name: "recovery window boundary to the second", policy: "RECOVERY WINDOW OF 30 DAYS",
			bks: []Backup{
				bk("old", StatusDone, 1, 10, 11, days(40), false),
				bk("base", StatusDone, 1, 20, 21, days(30).Add(-time.Second), false),
				bk("edge", StatusDone, 1, 30, 31, days(30), false),
				bk("new", StatusDone, 1, 40, 41, days(1), false),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{
				keep: map[string]string{
					"edge": "within recovery window 30 days (window starts 2026-10-25T12:00:00Z)",
					"new":  "within recovery window 30 days",
					"base": "needed as base for recovery window start",
				},
				obsolete: map[string]string{"old": "obsolete: outside recovery window 30 days"},
				wal:      [][3]uint64{{1, 0, 20}},
				pitr:     []string{"base", "edge", "new"},
			},
		},
		{
			name: "minimum_redundancy above the policy", policy: "REDUNDANCY 1", minRed: 3,
			bks: []Backup{
				bk("b1", StatusDone, 1, 10, 11, days(4), false),
				bk("b2", StatusDone, 1, 20, 21, days(3), false),
				bk("b3", StatusDone, 1, 30, 31, days(2), false),
				bk("b4", StatusDone, 1, 40, 41, days(1), false),
				bk("failed", StatusFailed, 1, 45, 45, days(0), false),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{
				keep:     map[string]string{"b4": "within redundancy 1", "b3": "minimum_redundancy 3", "b2": "minimum_redundancy 3"},
				obsolete: map[string]string{"b1": "outside redundancy 1", "failed": "older than grace 0s"},
				wal:      [][3]uint64{{1, 0, 20}},
			},
		},
		{
			name: "minimum_redundancy above a recovery window", policy: "RECOVERY WINDOW OF 1 DAY", minRed: 2,
			bks: []Backup{
				bk("b1", StatusDone, 1, 10, 11, days(9), false),
				bk("b2", StatusDone, 1, 20, 21, days(8), false),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{
				keep:     map[string]string{"b2": "needed as base", "b1": "minimum_redundancy 2"},
				obsolete: map[string]string{},
				wal:      [][3]uint64{{1, 0, 10}},
			},
		},
		{
			name: "REDUNDANCY 2, 4 backups, oldest pinned: 3 remain, WAL between islands deleted", policy: "REDUNDANCY 2",
			bks: []Backup{
				bk("pinned", StatusDone, 1, 10, 12, days(4), true),
				bk("b2", StatusDone, 1, 20, 21, days(3), false),
				bk("b3", StatusDone, 1, 30, 31, days(2), false),
				bk("b4", StatusDone, 1, 40, 41, days(1), false),
			},
			tls: []Timeline{tl(1, 0, 0, 5, 99)},
			want: want{
				keep:     map[string]string{"pinned": "pinned", "b3": "within redundancy 2", "b4": "within redundancy 2"},
				obsolete: map[string]string{"b2": "obsolete: outside redundancy 2"},
				// island of pinned: segments 10..12; PITR from b3 (segment 30).
				wal:    [][3]uint64{{1, 5, 10}, {1, 13, 30}},
				pitr:   []string{"b3", "b4"},
				noPITR: []string{"pinned"},
			},
		},
		{
			name: "pinned backup among the newest counts toward redundancy", policy: "REDUNDANCY 2",
			bks: []Backup{
				bk("b1", StatusDone, 1, 10, 11, days(3), false),
				bk("b2", StatusDone, 1, 20, 21, days(2), false),
				bk("p3", StatusDone, 1, 30, 31, days(1), true),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{
				keep:     map[string]string{"p3": "pinned; within redundancy 2", "b2": "within redundancy 2"},
				obsolete: map[string]string{"b1": "outside redundancy 2"},
				wal:      [][3]uint64{{1, 0, 20}},
			},
		},
		{
			name: "several timelines: older timeline wholly before the cutoff", policy: "REDUNDANCY 1",
			bks: []Backup{
				bk("t1", StatusDone, 1, 10, 12, days(3), false),
				bk("t2", StatusDone, 2, 120, 121, days(1), false),
			},
			// timeline 2 branched from 1 in segment 50; timeline 3 branched
			// from 2 in segment 150 (after the cutoff): nothing of 3 goes.
			tls: []Timeline{tl(1, 0, 0, 0, 50), tl(2, 1, 50*seg+0x500, 50, 200), tl(3, 2, 150*seg, 150, 160)},
			want: want{
				keep:     map[string]string{"t2": "within redundancy 1"},
				obsolete: map[string]string{"t1": "outside redundancy 1"},
				wal:      [][3]uint64{{1, 0, 51}, {2, 50, 120}},
			},
		},
		{
			name: "several timelines: backup on timeline 1 reaches timeline 2", policy: "REDUNDANCY 2",
			bks: []Backup{
				bk("t1", StatusDone, 1, 10, 12, days(3), false),
				bk("t2", StatusDone, 2, 120, 121, days(1), false),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 50), tl(2, 1, 50*seg+0x500, 50, 200)},
			want: want{
				keep: map[string]string{"t1": "within redundancy 2", "t2": "within redundancy 2"},
				wal:  [][3]uint64{{1, 0, 10}},
				pitr: []string{"t1", "t2"},
			},
		},
		{
			name: "WAL policy shorter than the backup policy", policy: "RECOVERY WINDOW OF 12 MONTHS", wal: "RECOVERY WINDOW OF 30 DAYS",
			bks: []Backup{
				bk("w400", StatusDone, 1, 5, 6, days(400), false),
				bk("w300", StatusDone, 1, 10, 12, days(300), false),
				bk("w100", StatusDone, 1, 100, 101, days(100), false),
				bk("w40", StatusDone, 1, 200, 202, days(40), false),
				bk("w20", StatusDone, 1, 300, 301, days(20), false),
				bk("w1", StatusDone, 1, 400, 401, days(1), false),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 450)},
			want: want{
				keep: map[string]string{"w400": "needed as base", "w300": "within recovery window 372 days", "w100": "within",
					"w40": "within", "w20": "within", "w1": "within"},
				// 12 months = 372 days: w400 is the base. w400, w300 and w100
				// keep their islands; PITR from w40 (newest ended before now-30d).
				wal:    [][3]uint64{{1, 0, 5}, {1, 7, 10}, {1, 13, 100}, {1, 102, 200}},
				pitr:   []string{"w40", "w20", "w1"},
				noPITR: []string{"w400", "w300", "w100"},
			},
		},
		{
			name: "WAL window covers a pinned backup outside the backup policy", policy: "REDUNDANCY 1", wal: "RECOVERY WINDOW OF 30 DAYS",
			bks: []Backup{
				bk("p", StatusDone, 1, 10, 12, days(10), true),
				bk("b", StatusDone, 1, 20, 21, days(5), false),
				bk("n", StatusDone, 1, 30, 31, days(1), false),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{
				keep:     map[string]string{"p": "pinned", "n": "within redundancy 1"},
				obsolete: map[string]string{"b": "outside redundancy 1"},
				wal:      [][3]uint64{{1, 0, 10}},
				pitr:     []string{"p", "n"},
			},
		},
		{
			name: "WAL window longer than the kept backups", policy: "REDUNDANCY 1", wal: "RECOVERY WINDOW OF 30 DAYS",
			bks: []Backup{
				bk("b", StatusDone, 1, 20, 21, days(5), false),
				bk("n", StatusDone, 1, 30, 31, days(1), false),
			},
			tls: []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{
				keep:     map[string]string{"n": "within redundancy 1"},
				obsolete: map[string]string{"b": "outside"},
				wal:      [][3]uint64{{1, 0, 30}},
				note:     "no earlier point is recoverable",
			},
		},
		{
			name: "in-progress backups are kept, never count, and hold their WAL", policy: "REDUNDANCY 1",
			bks: []Backup{
				bk("b1", StatusDone, 1, 10, 11, days(3), false),
				bk("b2", StatusDone, 1, 30, 31, days(2), false),
				{ID: "running", Status: StatusStarted, Timeline: 1, BeginLSN: 25 * seg, BeginTime: days(2).Add(-2 * time.Hour)},
				{ID: "waiting", Status: StatusWaitingWAL, Timeline: 1, BeginLSN: 40 * seg, EndLSN: 41 * seg, BeginTime: days(0), EndTime: days(0)},
			},
			tls: []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{
				keep:     map[string]string{"b2": "within redundancy 1", "running": "in progress (STARTED)", "waiting": "in progress (WAITING_WAL)"},
				obsolete: map[string]string{"b1": "outside redundancy 1"},
				wal:      [][3]uint64{{1, 0, 25}},
			},
		},
		{
			name: "only in-progress backups keep all WAL", policy: "REDUNDANCY 1",
			bks:  []Backup{{ID: "running", Status: StatusStarted, Timeline: 1, BeginLSN: 25 * seg, BeginTime: days(0)}},
			tls:  []Timeline{tl(1, 0, 0, 0, 99)},
			want: want{keep: map[string]string{"running": "in progress"}, noCut: true, note: "no DONE backup"},
		},
		{
			name: "no policy keeps every backup; WAL before the oldest goes",
			bks: []Backup{
				bk("b1", StatusDone, 1, 10, 11, days(900), false),
				bk("b2", StatusDone, 1, 30, 31, days(2), false),
			},
			tls:  []Timeline{tl(1, 0, 0, 3, 99)},
			want: want{keep: map[string]string{"b1": "no retention policy", "b2": "no retention policy"}, wal: [][3]uint64{{1, 3, 10}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := Input{Now: now, Policy: mustPolicy(t, c.policy), WALPolicy: mustWAL(t, c.wal), MinimumRedundancy: c.minRed,
				FailedGrace: c.grace, SegSize: seg, Backups: c.bks, Timelines: c.tls}
			p, err := Evaluate(in)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, in, p)
			got := map[string]Decision{}
			for _, d := range p.Backups {
				got[d.ID] = d
			}
			if len(p.Backups) != len(c.bks) {
				t.Fatalf("%d decisions for %d backups", len(p.Backups), len(c.bks))
			}
			for id, r := range c.want.keep {
				if d := got[id]; !d.Keep || !strings.Contains(d.Reason, r) {
					t.Errorf("%s: got %+v, want kept with reason containing %q", id, d, r)
				}
			}
			for id, r := range c.want.obsolete {
				if d := got[id]; d.Keep || !strings.Contains(d.Reason, r) {
					t.Errorf("%s: got %+v, want obsolete with reason containing %q", id, d, r)
				}
			}
			if n := len(c.want.keep) + len(c.want.obsolete); n != len(c.bks) {
				t.Fatalf("test case lists %d of %d backups", n, len(c.bks))
			}
			var wal [][3]uint64
			for _, r := range p.WAL {
				wal = append(wal, [3]uint64{uint64(r.Timeline), r.FromSegNo, r.ToSegNo})
				if r.Reason == "" {
					t.Errorf("range %+v without reason", r)
				}
			}
			if !reflect.DeepEqual(wal, c.want.wal) {
				t.Errorf("WAL ranges = %v, want %v", wal, c.want.wal)
			}
			if p.HasCutoff == c.want.noCut {
				t.Errorf("HasCutoff = %v", p.HasCutoff)
			}
			if c.want.note != "" && !strings.Contains(strings.Join(p.Notes, "\n"), c.want.note) {
				t.Errorf("notes %q lack %q", p.Notes, c.want.note)
			}
			for _, id := range c.want.pitr {
				if !got[id].PITR {
					t.Errorf("%s: want PITR: %+v", id, got[id])
				}
			}
			for _, id := range c.want.noPITR {
				if d := got[id]; d.PITR || !strings.Contains(d.Reason, "end point only") {
					t.Errorf("%s: want end point only: %+v", id, d)
				}
			}
			var obs []string
			for _, b := range c.bks {
				if !got[b.ID].Keep {
					obs = append(obs, b.ID)
				}
			}
			if !reflect.DeepEqual(p.Obsolete(), obs) {
				t.Errorf("Obsolete() = %v, want %v", p.Obsolete(), obs)
			}
		})
	}
}

func TestHistoryFilesAreNeverDeleted(t *testing.T) {
	in := Input{Now: now, Policy: mustPolicy(t, "REDUNDANCY 1"), SegSize: seg,
		Backups:   []Backup{bk("b", StatusDone, 3, 300, 301, days(1), false)},
		Timelines: []Timeline{tl(1, 0, 0, 0, 50), tl(2, 1, 50*seg, 50, 100), tl(3, 2, 100*seg, 100, 400), {ID: 4, Parent: 2, SwitchLSN: 90 * seg}},
	}
	p, err := Evaluate(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.KeepHistory, []uint32{2, 3, 4}) || len(p.DeleteHistory) != 0 {
		t.Errorf("KeepHistory %v DeleteHistory %v", p.KeepHistory, p.DeleteHistory)
	}
	// Timelines 1 and 2 lie wholly before the cutoff: all their segments go.
	want := []Range{{1, 0, 51, ""}, {2, 50, 101, ""}, {3, 100, 300, ""}}
	if len(p.WAL) != len(want) {
		t.Fatalf("WAL %+v", p.WAL)
	}
	for i := range want {
		if p.WAL[i].Timeline != want[i].Timeline || p.WAL[i].FromSegNo != want[i].FromSegNo || p.WAL[i].ToSegNo != want[i].ToSegNo {
			t.Errorf("WAL[%d] = %+v, want %+v", i, p.WAL[i], want[i])
		}
	}
}

func TestEvaluateErrors(t *testing.T) {
	good := Input{Now: now, SegSize: seg}
	cases := map[string]func(*Input){
		"zero now":          func(in *Input) { in.Now = time.Time{} },
		"bad segsize":       func(in *Input) { in.SegSize = 1000 },
		"negative minred":   func(in *Input) { in.MinimumRedundancy = -1 },
		"negative grace":    func(in *Input) { in.FailedGrace = -time.Second },
		"redundancy 0":      func(in *Input) { in.Policy = Policy{Kind: Redundancy} },
		"window 0":          func(in *Input) { in.Policy = Policy{Kind: Window} },
		"main as backup":    func(in *Input) { in.Policy = Policy{Kind: Main} },
		"redundancy as WAL": func(in *Input) { in.WALPolicy = Policy{Kind: Redundancy, Redundancy: 1} },
		"duplicate id": func(in *Input) {
			in.Backups = []Backup{bk("a", StatusDone, 1, 1, 2, now, false), bk("a", StatusDone, 1, 1, 2, now, false)}
		},
		"empty id":           func(in *Input) { in.Backups = []Backup{bk("", StatusDone, 1, 1, 2, now, false)} },
		"end before begin":   func(in *Input) { in.Backups = []Backup{bk("a", StatusDone, 1, 5, 2, now, false)} },
		"done without end":   func(in *Input) { in.Backups = []Backup{{ID: "a", Status: StatusDone}} },
		"timeline min > max": func(in *Input) { in.Timelines = []Timeline{tl(1, 0, 0, 9, 3)} },
	}
	if _, err := Evaluate(good); err != nil {
		t.Fatal(err)
	}
	for name, mut := range cases {
		in := good
		mut(&in)
		if _, err := Evaluate(in); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}
