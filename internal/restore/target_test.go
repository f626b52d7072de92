package restore

import (
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

func TestParseTargetTime(t *testing.T) {
	want := time.Date(2026, 11, 24, 15, 4, 5, 0, time.UTC)
	for _, s := range []string{
		"2026-11-24 15:04:05+00", "2026-11-24 15:04:05+00:00", "2026-11-24 16:04:05+01",
		"2026-11-24T15:04:05Z", "2026-11-24T17:04:05+02:00", "2026-11-24 15:04:05 UTC",
		"2026-11-24 10:04:05-0500",
	} {
		got, err := ParseTargetTime(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("%q: got %v, want %v", s, got, want)
		}
	}
	got, err := ParseTargetTime("2026-11-24 15:04:05.123456+00")
	if err != nil || got.Nanosecond() != 123456000 {
		t.Errorf("fractional: %v %v", got, err)
	}
	for _, s := range []string{"2026-11-24 15:04:05", "2026-11-24T15:04:05", "2026-11-24"} {
		_, err := ParseTargetTime(s)
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "no time zone") {
			t.Errorf("%q: want a 'no time zone' usage error, got %v", s, err)
		}
	}
	for _, s := range []string{"yesterday", "2026-13-24 15:04:05+00", "2026-11-24 15:04:05 CEST"} {
		if _, err := ParseTargetTime(s); err == nil || !IsUsage(err) {
			t.Errorf("%q: want a usage error, got %v", s, err)
		}
	}
}

func TestParseTarget(t *testing.T) {
	bad := []struct {
		f    TargetFlags
		want string
	}{
		{TargetFlags{Time: "2026-11-24 15:04:05+00", XID: "1234"}, "--target-time and --target-xid"},
		{TargetFlags{Name: "x", Immediate: true}, "--target-name and --target-immediate"},
		{TargetFlags{LSN: "0/1", XID: "5"}, "give one recovery target"},
		{TargetFlags{XID: "abc"}, "not a transaction id"},
		{TargetFlags{XID: "2"}, "below 3"},
		{TargetFlags{LSN: "0/"}, "--target-lsn"},
		{TargetFlags{Name: strings.Repeat("n", 64)}, "63-byte"},
		{TargetFlags{Exclusive: true}, "--target-exclusive applies"},
		{TargetFlags{Name: "rp", Exclusive: true}, "--target-exclusive applies"},
		{TargetFlags{Immediate: true, Exclusive: true}, "--target-exclusive applies"},
		{TargetFlags{Action: "promote"}, "needs a recovery target"},
		{TargetFlags{XID: "10", Action: "stop"}, "want pause, promote or shutdown"},
		{TargetFlags{TLI: "two"}, "--target-tli"},
		{TargetFlags{TLI: "0"}, "--target-tli"},
		{TargetFlags{Time: "2026-11-24 15:04:05"}, "no time zone"},
	}
	for _, c := range bad {
		_, err := ParseTarget(c.f)
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: want usage error containing %q, got %v", c.f, c.want, err)
		}
	}
	tg, err := ParseTarget(TargetFlags{XID: "1234", Exclusive: true, TLI: "latest"})
	if err != nil || tg.XID != "1234" || !tg.Exclusive || tg.Action != ActionPause || tg.TLI != "latest" {
		t.Fatalf("%+v %v", tg, err)
	}
	tg, err = ParseTarget(TargetFlags{LSN: "0/3000060", Action: "promote", TLI: "2"})
	if err != nil || !tg.HasLSN || tg.LSN != 0x3000060 || tg.Action != ActionPromote {
		t.Fatalf("%+v %v", tg, err)
	}
	tg, err = ParseTarget(TargetFlags{})
	if err != nil || tg.IsSet() || tg.Action != "" {
		t.Fatalf("no target: %+v %v", tg, err)
	}
}

func settingsMap(s []Setting) map[string]string {
	m := map[string]string{}
	for _, x := range s {
		m[x.Name] = x.Value
	}
	return m
}

func TestRecoverySettings(t *testing.T) {
	tm := time.Date(2026, 11, 24, 16, 4, 5, 500000000, time.FixedZone("x", 3600))
	m := settingsMap(RecoverySettings("cmd %f %p", "rm x", Target{Time: tm, Exclusive: true, Action: ActionPromote}, "2"))
	want := map[string]string{"restore_command": "cmd %f %p", "recovery_end_command": "rm x",
		"recovery_target_time": "2026-11-24 15:04:05.5+00", "recovery_target_inclusive": "false",
		"recovery_target_timeline": "2", "recovery_target_action": "promote"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	m = settingsMap(RecoverySettings("c", "", Target{Name: "before drop"}, "1"))
	if m["recovery_target_name"] != "before drop" || m["recovery_target_action"] != "pause" {
		t.Errorf("name target: %v", m)
	}
	if _, ok := m["recovery_target_inclusive"]; ok {
		t.Errorf("recovery_target_inclusive written for a name target: %v", m)
	}
	m = settingsMap(RecoverySettings("c", "", Target{Immediate: true}, "1"))
	if m["recovery_target"] != "immediate" {
		t.Errorf("immediate: %v", m)
	}
	m = settingsMap(RecoverySettings("c", "", Target{}, "latest"))
	if _, ok := m["recovery_target_action"]; ok || m["recovery_target_timeline"] != "latest" {
		t.Errorf("no target: %v", m)
	}
	m = settingsMap(RecoverySettings("c", "", Target{LSN: 0x1000028, HasLSN: true}, "current"))
	if m["recovery_target_lsn"] != "0/1000028" || m["recovery_target_inclusive"] != "true" {
		t.Errorf("lsn: %v", m)
	}
	out := RenderSettings("hdr", []Setting{{"restore_command", `cp '/a b'/%f %p \x`}})
	if !strings.Contains(out, `restore_command = 'cp ''/a b''/%f %p \\x'`) {
		t.Errorf("quoting: %s", out)
	}
}

func TestShellQuoteAndSplit(t *testing.T) {
	if ShellQuote("/usr/bin/walkeeper") != "/usr/bin/walkeeper" {
		t.Error("plain path quoted")
	}
	if ShellQuote("/a b/it's") != `'/a b/it'\''s'` {
		t.Errorf("got %s", ShellQuote("/a b/it's"))
	}
	got, err := SplitCommand(`ssh -p 2222 -o "UserKnownHostsFile /tmp/k h" 'postgres@db 2' a\ b`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ssh", "-p", "2222", "-o", "UserKnownHostsFile /tmp/k h", "postgres@db 2", "a b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
	for _, s := range []string{"", "  ", `ssh "x`} {
		if _, err := SplitCommand(s); err == nil {
			t.Errorf("%q: want error", s)
		}
	}
	cmd := GetWALCommand("/opt/wk bin/walkeeper", "/etc/wk.conf", "pg1", 8)
	if cmd != `read -r b </proc/sys/kernel/random/boot_id && read -r s 2>/dev/null <pg_wal/walkeeper_spool/.boot && [ "$b" = "$s" ] && [ pg_wal/walkeeper_spool/%f -ef pg_wal/%f ] && [ ! -h pg_wal/%f ] && echo %f >pg_wal/walkeeper_spool/.wanted && exit 1; exec '/opt/wk bin/walkeeper' --config /etc/wk.conf get-wal --prefetch 8 pg1 %f %p` {
		t.Errorf("get-wal command: %s", cmd)
	}
}

func hist(t *testing.T, tli uint32, text string) []segments.HistoryEntry {
	t.Helper()
	h, err := segments.ParseHistory(tli, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Timeline 2 branched from 1 at 0/5000000; timeline 3 branched from 1 at 0/2000000
// (before the backups that end later); timeline 4 from 2 at 0/9000000.
func testTimelines(t *testing.T) *Timelines {
	return &Timelines{History: map[uint32][]segments.HistoryEntry{
		2: hist(t, 2, "1\t0/5000000\tno recovery target specified\n"),
		3: hist(t, 3, "1\t0/2000000\tbefore 2026-11-24\n"),
		4: hist(t, 4, "1\t0/5000000\tx\n2\t0/9000000\ty\n"),
	}, Raw: map[uint32][]byte{}}
}

func TestTimelineResolve(t *testing.T) {
	tl := testTimelines(t)
	b := record.Backup{ID: "B1", Status: record.StatusDone, Timeline: 1, BeginLSN: 0x3000028, EndLSN: 0x3000100}
	cases := []struct {
		flag string
		want uint32
		err  string
	}{
		{"", 4, ""},
		{"latest", 4, ""},
		{"current", 1, ""},
		{"1", 1, ""},
		{"2", 2, ""},
		{"3", 0, "branched off timeline 1 at 0/2000000, before backup B1 ended at 0/3000100"},
		{"5", 0, "00000005.history is not in the archive"},
	}
	for _, c := range cases {
		got, err := tl.Resolve(c.flag, b)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: want error %q, got %d %v", c.flag, c.err, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %d %v, want %d", c.flag, got, err, c.want)
		}
	}
	// A backup on timeline 2 ending after timeline 4 left it cannot reach 4, and
	// "latest" says so while the default falls back to its own timeline.
	b2 := record.Backup{ID: "B2", Status: record.StatusDone, Timeline: 2, BeginLSN: 0x9100000, EndLSN: 0x9200000}
	if _, err := tl.Resolve("latest", b2); err == nil || !strings.Contains(err.Error(), "branched off timeline 2") {
		t.Errorf("latest from B2: %v", err)
	}
	if got, err := tl.Resolve("", b2); err != nil || got != 2 {
		t.Errorf("default from B2: %d %v", got, err)
	}
	if _, err := tl.Resolve("1", b2); err == nil || !strings.Contains(err.Error(), "older than") {
		t.Errorf("tli 1 from B2: %v", err)
	}
	// Backup ending exactly at the switch point still reaches the new timeline.
	b3 := record.Backup{ID: "B3", Status: record.StatusDone, Timeline: 1, EndLSN: 0x5000000}
	if err := tl.Reachable(b3, 2); err != nil {
		t.Errorf("end at switch: %v", err)
	}
	// Segment timelines along timeline 4's path.
	for _, c := range []struct {
		seg  uint64
		want uint32
	}{{4, 1}, {5, 2}, {8, 2}, {9, 4}, {20, 4}} {
		if got := tl.SegmentTimeline(4, c.seg, 16<<20); got != c.want {
			t.Errorf("segment %d on path to 4: timeline %d, want %d", c.seg, got, c.want)
		}
	}
}

func TestChooseBackup(t *testing.T) {
	tl := testTimelines(t)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	backups := []record.Backup{
		{ID: "A", Status: record.StatusDone, Timeline: 1, BeginLSN: 0x1000028, EndLSN: 0x1000100, EndTime: t0},
		{ID: "B", Status: record.StatusDone, Timeline: 1, BeginLSN: 0x3000028, EndLSN: 0x3000100, EndTime: t0.Add(time.Hour)},
		{ID: "C", Status: record.StatusFailed, Timeline: 1, BeginLSN: 0x4000028, EndLSN: 0x4000100, EndTime: t0.Add(2 * time.Hour), Error: "WAL never arrived"},
		{ID: "D", Status: record.StatusDone, Timeline: 2, BeginLSN: 0x6000028, EndLSN: 0x6000100, EndTime: t0.Add(3 * time.Hour)},
	}
	c, err := ChooseAuto(backups, Target{Time: t0.Add(150 * time.Minute), TLI: "1"}, tl)
	if err != nil || c.Backup.ID != "B" || c.TLI != 1 {
		t.Errorf("time between B and D on tli 1: %+v %v", c, err)
	}
	c, err = ChooseAuto(backups, Target{Time: t0.Add(4 * time.Hour)}, tl)
	if err != nil || c.Backup.ID != "D" || c.TLI != 4 {
		t.Errorf("time after D: %s tli %d %v", c.Backup.ID, c.TLI, err)
	}
	c, err = ChooseAuto(backups, Target{Time: t0.Add(4 * time.Hour), TLI: "3"}, tl)
	if err != nil || c.Backup.ID != "A" || c.TLI != 3 {
		t.Errorf("tli 3 (branched at 0/2000000): %s %v", c.Backup.ID, err)
	}
	c, err = ChooseAuto(backups, Target{LSN: 0x3500000, HasLSN: true}, tl)
	if err != nil || c.Backup.ID != "B" {
		t.Errorf("lsn: %s %v", c.Backup.ID, err)
	}
	if _, err = ChooseAuto(backups, Target{Time: t0.Add(-time.Hour)}, tl); err == nil || !strings.Contains(err.Error(), "no DONE backup can reach") {
		t.Errorf("time before every backup: %v", err)
	}
	if _, err = ChooseAuto(backups, Target{XID: "100"}, tl); err == nil || !IsUsage(err) {
		t.Errorf("auto with xid: %v", err)
	}
	if _, err = CheckBackup(backups[1], Target{Time: t0.Add(30 * time.Minute)}, tl); err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "before backup B ended") {
		t.Errorf("time before backup end: %v", err)
	}
	if _, err = CheckBackup(backups[1], Target{LSN: 0x3000000, HasLSN: true}, tl); err == nil || !strings.Contains(err.Error(), "--target-lsn 0/3000000 is before backup B ended (0/3000100)") {
		t.Errorf("lsn before backup end: %v", err)
	}
	if _, err = CheckBackup(backups[2], Target{}, tl); err == nil || !strings.Contains(err.Error(), "FAILED") || !strings.Contains(err.Error(), "WAL never arrived") {
		t.Errorf("failed backup: %v", err)
	}
}
