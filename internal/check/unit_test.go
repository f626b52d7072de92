package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

func TestArchivesToUs(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want bool
	}{
		{"/usr/bin/walkeeper archive-wal pg1 %p", true},
		{"/usr/bin/walkeeper --config /etc/wk.conf archive-wal pg1 %p", true},
		{"walkeeper archive-wal -v pg1 %p", true},
		{"'/opt/wk/walkeeper' archive-wal 'pg1' '%p'", true},
		{"test ! -f /x/%f && cp %p /x/%f && walkeeper archive-wal pg1 %p", true},
		{"walkeeper archive-wal pg2 %p", false},
		{"walkeeper archive-wal pg10 %p", false},
		{"walkeeper archive-wal", false},
		{"barman-wal-archive backup pg1 %p", false},
		{"ssh walkeeper@backup walkeeper put-wal pg1 %f < %p || exit 1", true},
		{"ssh -i /k walkeeper@backup '/opt/wk/walkeeper --config /etc/wk.conf put-wal pg1 %f' <%p||exit 1", true},
		{"ssh walkeeper@backup walkeeper put-wal pg2 %f < %p", false},
		{`walkeeper archive-wal --ssh "ssh -p 2222 walkeeper@backup" pg1 %p`, true},
		{`walkeeper archive-wal --ssh "ssh walkeeper@backup" --remote-command '/opt/wk --config /c' pg1 %p`, true},
		{`walkeeper archive-wal --ssh "ssh walkeeper@pg1" pg2 %p`, false},
		{"false", false},
		{"", false},
	} {
		if got := archivesToUs(tc.cmd, "pg1"); got != tc.want {
			t.Errorf("archivesToUs(%q) = %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

// rig is a home with a real badger index and local storage, and a server whose
// PostgreSQL is unreachable (a closed port): the archive- and index-side checks run
// on their own.
type rig struct {
	srv   *config.Server
	store *storage.Local
	idx   index.Index
	now   time.Time
}

func newRig(t *testing.T) *rig {
	home := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf("[walkeeper]\nhome = %s\n[pg1]\nconninfo = host=127.0.0.1 port=1 user=nobody password=secret connect_timeout=2 sslmode=disable\nminimum_redundancy = 2\nlast_backup_maximum_age = 1 day\n", home)), "test.conf")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := cfg.Server("pg1")
	idx, err := index.OpenBadger(filepath.Join(home, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return &rig{srv: srv, store: storage.NewLocal(home), idx: idx, now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
}

func (r *rig) put(t *testing.T, name string, data []byte) {
	t.Helper()
	if _, err := r.store.Put(context.Background(), archive.WALKey("pg1", name, "none"), strings.NewReader(string(data))); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) backup(t *testing.T, id, status, errText string, tli uint32, begin segments.LSN, end time.Time) {
	t.Helper()
	b := record.Backup{ID: id, Server: "pg1", Status: status, Error: errText, Timeline: tli, BeginLSN: begin, EndLSN: begin + 0x1000,
		BeginWAL: segments.SegmentForLSN(tli, begin, 16<<20), SegSize: 16 << 20, BeginTime: end.Add(-time.Minute), EndTime: end}
	if err := r.idx.PutBackup(context.Background(), "pg1", b); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) run(t *testing.T) map[string]Result {
	t.Helper()
	rs := Run(context.Background(), Deps{Server: r.srv, Store: r.store, Index: r.idx, Now: func() time.Time { return r.now }})
	m := map[string]Result{}
	for _, x := range rs {
		if x.Server != "pg1" {
			t.Errorf("result for server %q", x.Server)
		}
		if _, dup := m[x.Check]; dup {
			t.Errorf("check %q reported twice", x.Check)
		}
		if strings.Contains(x.Detail+x.Hint, "secret") {
			t.Errorf("check %q shows the password: %+v", x.Check, x)
		}
		m[x.Check] = x
	}
	return m
}

func TestChecksWithoutPostgres(t *testing.T) {
	r := newRig(t)
	const seg = 16 << 20
	// Timeline 1 segments 1..6, timeline 2 from segment 5 (switch in the middle of 5),
	// with segment 7 of timeline 2 missing.
	for s := uint64(1); s <= 6; s++ {
		r.put(t, segments.SegmentFileName(1, s, seg), []byte("x"))
	}
	for s := uint64(5); s <= 9; s++ {
		if s != 7 {
			r.put(t, segments.SegmentFileName(2, s, seg), []byte("x"))
		}
	}
	r.put(t, "00000002.history", []byte("1\t0/5000100\tno recovery target specified\n"))
	r.backup(t, "20261120T000000", record.StatusDone, "", 1, 0x2000028, r.now.Add(-72*time.Hour))
	r.backup(t, "20261121T000000", record.StatusFailed, "old failure, superseded", 1, 0x3000028, r.now.Add(-60*time.Hour))
	r.backup(t, "20261122T000000", record.StatusDone, "", 1, 0x4000028, r.now.Add(-48*time.Hour))
	r.backup(t, "20261123T000000", record.StatusFailed, "WAL 000000020000000000000009 never arrived", 2, 0x9000028, r.now.Add(-1*time.Hour))

	errDir := r.srv.ErrorsDir()
	if err := os.MkdirAll(errDir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(errDir, "000000010000000000000003"), []byte("a"), 0o600)
	os.WriteFile(filepath.Join(errDir, "000000010000000000000003.reason"), []byte("old reason\n"), 0o600)
	os.WriteFile(filepath.Join(errDir, "0000000100000000000000AA"), []byte("b"), 0o600)
	os.WriteFile(filepath.Join(errDir, "0000000100000000000000AA.reason"), []byte("not a WAL segment: bad magic\n"), 0o600)
	old := r.now.Add(-time.Hour)
	os.Chtimes(filepath.Join(errDir, "000000010000000000000003"), old, old)

	m := r.run(t)
	expect := func(name string, ok bool, substr ...string) {
		t.Helper()
		x, found := m[name]
		if !found {
			t.Errorf("check %q missing; have %v", name, m)
			return
		}
		if x.OK != ok {
			t.Errorf("check %q: ok=%v, want %v: %+v", name, x.OK, ok, x)
		}
		for _, s := range substr {
			if !strings.Contains(x.Detail, s) {
				t.Errorf("check %q detail %q does not say %q", name, x.Detail, s)
			}
		}
		if !x.OK && x.Hint == "" && name != CheckWALChain {
			t.Errorf("check %q failed without a hint", name)
		}
	}
	expect(CheckPostgreSQL, false, "cannot connect", "password=********")
	expect(CheckReplication, false, "cannot open a replication connection")
	expect(CheckWALChain, false, "missing WAL segment 000000020000000000000007", "from backup 20261120T000000's begin 000000010000000000000002 to 000000020000000000000009")
	expect(CheckBackupAge, false, "20261122T000000 ended 48h0m0s ago, more than last_backup_maximum_age 24h0m0s")
	expect(CheckRedundancy, true, "2 DONE backup(s), minimum 2")
	expect(CheckFailedBackup, false, "1 FAILED backup(s) since the last DONE one; newest 20261123T000000: WAL 000000020000000000000009 never arrived")
	expect(CheckDaemon, false, "no `walkeeper watch` answers")
	expect(CheckErrors, false, "2 file(s) in", "newest 0000000100000000000000AA: not a WAL segment: bad magic")
	expect(CheckDisk, true, "free on")
	for _, name := range []string{CheckWALLevel, CheckArchiving, CheckArchiver, CheckSystemID, CheckReceiver, CheckSlot} {
		if x, found := m[name]; found {
			t.Errorf("check %q should not run without a server connection or streaming: %+v", name, x)
		}
	}
	// The index holds no WAL record (only storage does, in this rig).
	expect(CheckWALRecent, false, "no WAL segment has been archived yet")
	// A file waiting in incoming/ with no daemon is archived for restore: said so.
	incoming := r.srv.IncomingDir()
	if err := os.MkdirAll(incoming, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(incoming, segments.SegmentFileName(2, 10, seg)), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	m = r.run(t)
	expect(CheckWALRecent, false, "no WAL segment moved into the archive yet; 1 files (1 B) wait in "+incoming+" (restore reads them there)")
	expect(CheckDaemon, false, "no `walkeeper watch` answers")
	if h := m[CheckDaemon].Hint; !strings.Contains(h, "without it WAL waits in incoming/ (restore reads it there)") {
		t.Errorf("daemon hint %q", h)
	}
	os.RemoveAll(incoming)

	// Fill the gap, a newer DONE backup, clean errors/: those checks pass.
	r.put(t, segments.SegmentFileName(2, 7, seg), []byte("x"))
	r.backup(t, "20261124T000000", record.StatusDone, "", 2, 0x9000028, r.now.Add(-time.Hour))
	os.RemoveAll(errDir)
	r.srv.MinimumRedundancy = 4
	r.srv.MinFreeDisk = 1 << 62
	m = r.run(t)
	expect(CheckWALChain, true, "8 segments from 000000010000000000000002", "to 000000020000000000000009, timeline 2, no gap")
	expect(CheckBackupAge, true, "20261124T000000 ended 1h0m0s ago")
	expect(CheckRedundancy, false, "3 DONE backup(s), minimum_redundancy is 4")
	expect(CheckFailedBackup, true)
	expect(CheckErrors, true)
	expect(CheckDisk, false, "less than min_free_disk")

	// WAL that stopped arriving: the newest archived file is older than an hour.
	if err := r.idx.PutWAL(context.Background(), "pg1", record.WALFile{Name: segments.SegmentFileName(2, 9, seg), Kind: "segment",
		Timeline: 2, SegNo: 9, ArrivedAt: r.now.Add(-3 * time.Hour), Key: archive.WALKey("pg1", segments.SegmentFileName(2, 9, seg), "none")}); err != nil {
		t.Fatal(err)
	}
	m = r.run(t)
	expect(CheckWALRecent, false, "last archived segment 000000020000000000000009 arrived 3h0m0s ago: older than 1h0m0s")

	// A timeline whose history file is missing stops the chain, and says so.
	r.put(t, segments.SegmentFileName(3, 9, seg), []byte("x"))
	m = r.run(t)
	expect(CheckWALChain, false, "timeline 3 has archived segments but its history file 00000003.history is not archived")

	// No index: the checks that read it say why instead of passing.
	rs := Run(context.Background(), Deps{Server: r.srv, Store: r.store, IndexErr: fmt.Errorf("badger: locked")})
	found := false
	for _, x := range rs {
		if x.Check == CheckIndex && !x.OK && strings.Contains(x.Detail, "badger: locked") {
			found = true
		}
		if x.Check == CheckWALChain || x.Check == CheckFailedBackup {
			t.Errorf("index check ran without an index: %+v", x)
		}
	}
	if !found || !Failed(rs) {
		t.Errorf("no index: %+v", rs)
	}
}

func TestViaSSHAndRemoteServer(t *testing.T) {
	for cmd, want := range map[string]bool{
		"ssh wk@backup walkeeper put-wal pg1 %f < %p || exit 1": true,
		"/usr/bin/ssh wk@b 'walkeeper put-wal pg1 %f' < %p":     true,
		`walkeeper archive-wal --ssh "ssh wk@b" pg1 %p`:         true,
		"walkeeper --config /etc/wk.conf archive-wal pg1 %p":    false,
		"cp %p /mnt/server/archivedir/%f":                       false,
	} {
		if got := viaSSH(cmd); got != want {
			t.Errorf("viaSSH(%q) = %v", cmd, got)
		}
	}
	for conninfo, want := range map[string]bool{
		"host=db1 user=walkeeper":                true,
		"postgres://walkeeper@10.0.0.5/postgres": true,
		"host=/var/run/postgresql dbname=x":      false,
		"host=127.0.0.1 port=5432":               false,
		"host=localhost":                         false,
		"host=::1":                               false,
	} {
		if _, got := remoteServer(conninfo); got != want {
			t.Errorf("remoteServer(%q) = %v", conninfo, got)
		}
	}
}

// TestLogFailureLines: the archive command's own output just above PostgreSQL's last
// "archive command failed" line, not PostgreSQL's lines and not an older failure's.
func TestLogFailureLines(t *testing.T) {
	log := `2026-12-01 10:00:00.000 UTC [10] LOG:  checkpoint starting: time
ssh: connect to host backup port 22: Connection refused
2026-12-01 10:00:01.000 UTC [11] LOG:  archive command failed with exit code 1
2026-12-01 10:00:01.000 UTC [11] DETAIL:  The failed archive command was: ssh walkeeper@backup walkeeper put-wal pg1 000000010000000000000003 < pg_wal/000000010000000000000003 || exit 1
2026-12-01 10:00:02.000 UTC [10] LOG:  checkpoint complete
Warning: Permanently added 'backup' (ED25519) to the list of known hosts.
walkeeper@backup: Permission denied (publickey).
2026-12-01 10:00:03.000 UTC [11] LOG:  archive command failed with exit code 1
2026-12-01 10:00:03.000 UTC [11] DETAIL:  The failed archive command was: ...
`
	got := logFailureLines(log)
	want := []string{"Warning: Permanently added 'backup' (ED25519) to the list of known hosts.", "walkeeper@backup: Permission denied (publickey)."}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("logFailureLines = %q, want %q", got, want)
	}
	if got := logFailureLines("2026-12-01 LOG:  archive command failed with exit code 1\n"); len(got) != 0 {
		t.Errorf("no output before the failure: %q", got)
	}
	if got := logFailureLines("ssh: nothing failed\n"); got != nil {
		t.Errorf("no failure line: %q", got)
	}
}
