package check_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/check"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

type verifyOut struct {
	OK      bool `json:"ok"`
	Backups []struct {
		ID    string `json:"id"`
		Files *struct {
			Files    int `json:"files"`
			Problems []struct {
				Path, Problem, Expected, Got string
			} `json:"problems"`
		} `json:"files"`
		WAL *struct {
			Start, End string
			Gaps       []struct{ First, Last string }
		} `json:"wal"`
	} `json:"backups"`
	Problems []string `json:"problems"`
}

func checks(t *testing.T, env *wktest.Env, args ...string) (map[string]check.Result, wktest.Result) {
	t.Helper()
	r := env.Run(append([]string{"--json", "check"}, args...)...)
	var rs []check.Result
	if err := json.Unmarshal([]byte(r.Stdout), &rs); err != nil {
		t.Fatalf("check --json: exit %d: %v\n%s\n%s", r.Code, err, r.Stdout, r.Stderr)
	}
	m := map[string]check.Result{}
	for _, x := range rs {
		m[x.Check] = x
	}
	return m, r
}

// storedFiles lists the stored data objects of a backup (path relative to its data/ dir).
func storedFiles(t *testing.T, dir string) []string {
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestCheckAndVerify runs the real binary against a real PostgreSQL 15 with a tablespace:
// a healthy setup checks and verifies clean; a corrupted stored file (still decompressible,
// and not), a missing archived segment, a failing archive_command and a stopped daemon
// each fail with the cause named.
func TestCheckAndVerify(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{"min_free_disk": "1MB"}})
	pg := pgtest.New(t, "check", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	d := env.StartDaemon(t)

	pg.Tablespace(t, "ts1")
	pg.Psql(t, "CREATE TABLE t TABLESPACE ts1 AS SELECT g, md5(g::text) AS m FROM generate_series(1, 50000) g")
	pg.Psql(t, "CREATE TABLE u AS SELECT g, repeat(md5(g::text), 4) AS m FROM generate_series(1, 50000) g")
	env.MustRun(t, "switch-wal", "pg1", "--wait", "--timeout", "60s")
	env.MustRun(t, "backup", "pg1")
	for i := 0; i < 3; i++ {
		pg.Psql(t, "INSERT INTO u SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
		env.MustRun(t, "switch-wal", "pg1", "--wait", "--timeout", "60s")
	}

	// Healthy: every check passes, verify is clean.
	res, r := checks(t, env, "pg1")
	if r.Code != 0 {
		t.Fatalf("check on a healthy setup: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, name := range []string{check.CheckPostgreSQL, check.CheckReplication, check.CheckWALLevel, check.CheckArchiving,
		check.CheckArchiver, check.CheckWALRecent, check.CheckSystemID, check.CheckWALChain, check.CheckDisk, check.CheckDaemon,
		check.CheckErrors, check.CheckFailedBackup} {
		if x, ok := res[name]; !ok || !x.OK {
			t.Errorf("check %q: %+v", name, x)
		}
	}
	if !strings.Contains(res[check.CheckWALChain].Detail, "no gap") {
		t.Errorf("WAL chain: %+v", res[check.CheckWALChain])
	}
	text := env.MustRun(t, "check", "all")
	if !strings.Contains(text, "Server pg1:") || !strings.Contains(text, "  daemon running: OK (pid ") {
		t.Errorf("check all:\n%s", text)
	}
	out := env.MustRun(t, "verify", "pg1")
	if !strings.Contains(out, "verify: OK") || !strings.Contains(out, "files: OK") || !strings.Contains(out, "WAL: OK") {
		t.Fatalf("verify of a clean archive:\n%s", out)
	}
	var clean verifyOut
	env.JSON(t, &clean, "verify", "pg1", "latest", "--wal-checksums")
	if !clean.OK || len(clean.Backups) != 1 || clean.Backups[0].Files == nil || clean.Backups[0].Files.Files < 100 {
		t.Fatalf("verify --json: %+v", clean)
	}
	id := clean.Backups[0].ID
	begin := clean.Backups[0].WAL.Start

	// Corrupt two stored files: one re-encoded with a changed byte (decompresses fine,
	// checksum differs), one with garbage bytes (does not decompress).
	dataDir := filepath.Join(env.Home, "pg1", "base", id, "data")
	var rel, tsRel string
	for _, f := range storedFiles(t, dataDir) {
		fi, _ := os.Stat(filepath.Join(dataDir, f))
		switch {
		case rel == "" && strings.HasPrefix(f, "pgdata/base/") && fi.Size() > 2000:
			rel = f
		case tsRel == "" && !strings.HasPrefix(f, "pgdata/") && fi.Size() > 2000:
			tsRel = f
		}
	}
	if rel == "" || tsRel == "" {
		t.Fatalf("no stored relation files found in %s (data dir %q, tablespace %q)", dataDir, rel, tsRel)
	}
	p1, p2 := filepath.Join(dataDir, rel), filepath.Join(dataDir, tsRel)
	orig1, _ := os.ReadFile(p1)
	orig2, _ := os.ReadFile(p2)
	codec, _ := compress.FromName(p1)
	plain, err := compress.DecodeAll(codec, orig1, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain[len(plain)/2] ^= 0x5A
	changed, err := compress.EncodeAll(codec, 3, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeAs(t, p1, changed)
	garbage := append([]byte(nil), orig2...)
	for i := len(garbage) / 3; i < len(garbage)/3+64 && i < len(garbage); i++ {
		garbage[i] ^= 0xFF
	}
	writeAs(t, p2, garbage)

	// A missing segment between the backup's begin and the newest.
	bn, _ := segments.Parse(begin)
	missing := segments.SegmentFileName(bn.Timeline, bn.SegNo(16<<20)+2, 16<<20)
	walDir := filepath.Join(env.Home, "pg1", "wals", archive.Dir(missing))
	var walFile string
	es, _ := os.ReadDir(walDir)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), missing) {
			walFile = filepath.Join(walDir, e.Name())
		}
	}
	if walFile == "" {
		t.Fatalf("segment %s is not archived", missing)
	}
	aside := filepath.Join(env.Dir, "aside")
	if err := os.Rename(walFile, aside); err != nil {
		t.Fatal(err)
	}

	r = env.Run("verify", "pg1")
	if r.Code != 1 {
		t.Fatalf("verify of a damaged archive: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("verify of the damaged archive:\n%s", r.Stdout)
	manifestPath := func(stored string) string {
		s := strings.TrimSuffix(stored, compress.Suffix(codec))
		if after, ok := strings.CutPrefix(s, "pgdata/"); ok {
			return after
		}
		return "pg_tblspc/" + s
	}
	for _, want := range []string{manifestPath(rel) + ": checksum mismatch: manifest CRC32C ", manifestPath(tsRel) + ": unreadable",
		"missing WAL segment " + missing, "verify: FAILED"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("verify output does not say %q:\n%s", want, r.Stdout)
		}
	}
	var bad verifyOut
	_ = json.Unmarshal([]byte(env.Run("--json", "verify", "pg1", id).Stdout), &bad)
	if bad.OK || len(bad.Backups) != 1 || bad.Backups[0].Files == nil || len(bad.Backups[0].Files.Problems) != 2 ||
		len(bad.Backups[0].WAL.Gaps) != 1 || bad.Backups[0].WAL.Gaps[0].First != missing {
		t.Fatalf("verify --json of the damaged archive: %+v", bad)
	}
	pr := bad.Backups[0].Files.Problems[0]
	if pr.Problem != "checksum" && bad.Backups[0].Files.Problems[1].Problem != "checksum" {
		t.Errorf("no checksum problem: %+v", bad.Backups[0].Files.Problems)
	}
	res, r = checks(t, env, "pg1")
	if r.Code != 1 || res[check.CheckWALChain].OK || !strings.Contains(res[check.CheckWALChain].Detail, missing) {
		t.Fatalf("check with a missing segment: exit %d, %+v", r.Code, res[check.CheckWALChain])
	}

	// Repair: verify is clean again.
	if err := os.Rename(aside, walFile); err != nil {
		t.Fatal(err)
	}
	writeAs(t, p1, orig1)
	writeAs(t, p2, orig2)
	env.MustRun(t, "verify", "pg1", "--no-files")

	// --wal-checksums reads every archived file: one whose content changed is named.
	walOrig, _ := os.ReadFile(walFile)
	walCodec, _ := compress.FromName(walFile)
	walPlain, err := compress.DecodeAll(walCodec, walOrig, nil)
	if err != nil {
		t.Fatal(err)
	}
	walPlain[len(walPlain)-100] ^= 1
	walChanged, _ := compress.EncodeAll(walCodec, 1, walPlain, nil)
	writeAs(t, walFile, walChanged)
	if r := env.Run("verify", "pg1", "--no-files"); r.Code != 0 {
		t.Fatalf("verify without --wal-checksums reads no WAL content, yet: exit %d\n%s", r.Code, r.Stdout)
	}
	r = env.Run("verify", "pg1", "--no-files", "--wal-checksums")
	if r.Code != 1 || !strings.Contains(r.Stdout, "WAL "+missing+": content does not match the index: sha256 ") {
		t.Fatalf("verify --wal-checksums of a changed segment: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	writeAs(t, walFile, walOrig)
	env.MustRun(t, "verify", "pg1", "--no-files", "--wal-checksums")

	// archive_command failing: pg_stat_archiver names the failed WAL.
	pg.SetConf(t, map[string]string{"archive_command": "false"})
	pg.Psql(t, "INSERT INTO u SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
	pg.Psql(t, "SELECT pg_switch_wal()")
	pg.WaitFor(t, "SELECT failed_count > 0 FROM pg_stat_archiver", "t", 60*time.Second)
	failedWAL := pg.Psql(t, "SELECT last_failed_wal FROM pg_stat_archiver")
	res, r = checks(t, env, "pg1")
	if r.Code != 1 {
		t.Fatalf("check with archive_command = false: exit %d\n%s", r.Code, r.Stdout)
	}
	if x := res[check.CheckArchiver]; x.OK || !strings.Contains(x.Detail, failedWAL) || x.Hint == "" {
		t.Errorf("pg_stat_archiver check: %+v (want FAILED naming %s)", x, failedWAL)
	}
	if x := res[check.CheckArchiving]; x.OK || !strings.Contains(x.Detail, `"false"`) {
		t.Errorf("archive_command check: %+v", x)
	}
	r = env.Run("check", "pg1")
	t.Logf("check with archive_command = false:\n%s", r.Stdout)
	if r.Code != 1 || !strings.Contains(r.Stdout, "pg_stat_archiver: FAILED (archive_command failed") {
		t.Errorf("check text: exit %d\n%s", r.Code, r.Stdout)
	}
	// A backup whose WAL cannot arrive fails, and check names its error.
	if r := env.Run("backup", "pg1", "--wait-timeout", "3s"); r.Code != 1 {
		t.Fatalf("backup with archive_command = false: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	res, _ = checks(t, env, "pg1")
	if x := res[check.CheckFailedBackup]; x.OK || !strings.Contains(x.Detail, "1 FAILED backup(s) since the last DONE one") {
		t.Errorf("failed backups check: %+v", x)
	}
	pg.SetConf(t, map[string]string{"archive_command": env.ArchiveCommand("pg1")})
	// PostgreSQL 13's archiver, after failing, copies again only when a segment is
	// marked ready or 60 s after its last attempt (a reload does not wake it for that):
	// a new segment wakes it, on every major.
	pg.Psql(t, "CREATE TABLE wake_archiver (); SELECT pg_switch_wal()")
	pg.WaitFor(t, "SELECT last_archived_wal >= '"+failedWAL+"' FROM pg_stat_archiver", "t", 60*time.Second)

	// A file refused into errors/: check names it with its reason.
	junk := filepath.Join(env.Dir, "0000000100000000000000AA")
	writeAs(t, junk, []byte("not WAL at all"))
	env.MustRun(t, "archive-wal", "pg1", junk)
	wktest.Eventually(t, 30*time.Second, "the junk file to be quarantined", func() bool {
		es, _ := os.ReadDir(filepath.Join(env.Home, "pg1", "errors"))
		return len(es) >= 2
	})
	res, _ = checks(t, env, "pg1")
	if x := res[check.CheckErrors]; x.OK || !strings.Contains(x.Detail, "1 file(s) in ") || !strings.Contains(x.Detail, "0000000100000000000000AA") {
		t.Errorf("errors/ check: %+v", x)
	}
	if err := os.RemoveAll(filepath.Join(env.Home, "pg1", "errors")); err != nil {
		t.Fatal(err)
	}

	// The daemon stopped: the daemon check fails, the rest recovers.
	d.Stop(t)
	res, r = checks(t, env, "pg1")
	if r.Code != 1 || res[check.CheckDaemon].OK || !strings.Contains(res[check.CheckDaemon].Detail, "no `walkeeper watch` answers") {
		t.Fatalf("check without the daemon: exit %d, %+v", r.Code, res[check.CheckDaemon])
	}
	for name, x := range res {
		if name != check.CheckDaemon && name != check.CheckFailedBackup && !x.OK {
			t.Errorf("check %q failed after repair: %+v", name, x)
		}
	}

	// An archive that belongs to another cluster.
	idPath := filepath.Join(env.Home, "pg1", "identity.json")
	idOrig, err := os.ReadFile(idPath)
	if err != nil {
		t.Fatal(err)
	}
	sysid := strings.TrimSpace(pg.Psql(t, "SELECT system_identifier FROM pg_control_system()"))
	writeAs(t, idPath, []byte(strings.Replace(string(idOrig), sysid, "1234567890123456789", 1)))
	res, _ = checks(t, env, "pg1")
	if x := res[check.CheckSystemID]; x.OK || !strings.Contains(x.Detail, "the server's system identifier is "+sysid+", the archive's is 1234567890123456789") {
		t.Errorf("system identifier check: %+v", x)
	}
	writeAs(t, idPath, idOrig)
}

// writeAs replaces a stored file keeping its owner (the PostgreSQL user).
func writeAs(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Chown(p); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAcrossPromotion: a backup on timeline 1, then a clean failover to a promoted
// standby that archives into the same server. PostgreSQL archives the old timeline's last
// segment only as a .partial and the switch segment on timeline 2, so the chain crosses
// from timeline 1 to 2 at the switch segment without a gap; without the .history file
// the crossing cannot be made and verify says so.
func TestVerifyAcrossPromotion(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	pg := pgtest.New(t, "old", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)

	pg.Psql(t, "CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
	env.MustRun(t, "backup", "pg1")
	pg.Psql(t, "INSERT INTO t SELECT g FROM generate_series(1, 10000) g")
	env.MustRun(t, "switch-wal", "pg1", "--wait", "--timeout", "60s")

	sb := pgtest.NewStandby(t, "new", pg, nil)
	pg.Psql(t, "INSERT INTO t SELECT g FROM generate_series(1, 10000) g")
	lsn := pg.Psql(t, "SELECT pg_current_wal_lsn()")
	sb.WaitFor(t, "SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'", "t", 60*time.Second)
	pg.Stop(t, "fast")
	sb.Promote(t)
	env.Servers[0].Settings["conninfo"] = sb.ConnString("")
	env.WriteConfig(t)
	sb.Psql(t, "INSERT INTO t SELECT g FROM generate_series(1, 10000) g")
	env.MustRun(t, "switch-wal", "pg1", "--wait", "--timeout", "60s")
	sb.Psql(t, "INSERT INTO t SELECT g FROM generate_series(1, 10000) g")
	env.MustRun(t, "switch-wal", "pg1", "--wait", "--timeout", "60s")
	histFile := ""
	// 90 s: a rehearsal once waited more than 30 s here for the .partial below (cause
	// not found); 90 s also covers PostgreSQL's archiver's 60 s pause after a round of
	// three failed attempts.
	wktest.Eventually(t, 90*time.Second, "00000002.history to be archived", func() bool {
		es, _ := os.ReadDir(filepath.Join(env.Home, "pg1", "wals", "history"))
		for _, e := range es {
			if strings.HasPrefix(e.Name(), "00000002.history") {
				histFile = filepath.Join(env.Home, "pg1", "wals", "history", e.Name())
				return true
			}
		}
		return false
	})

	var rep verifyOut
	r := env.Run("--json", "verify", "pg1")
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || r.Code != 0 || !rep.OK {
		t.Fatalf("verify across the promotion: exit %d %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	var full struct {
		Backups []struct {
			WAL struct {
				Target uint32 `json:"target_timeline"`
				Spans  []struct {
					Timeline uint32
					From, To string
				}
			}
		}
	}
	_ = json.Unmarshal([]byte(r.Stdout), &full)
	if len(full.Backups) != 1 || full.Backups[0].WAL.Target != 2 || len(full.Backups[0].WAL.Spans) != 2 {
		t.Fatalf("chain does not cross to timeline 2: %s", r.Stdout)
	}
	sp := full.Backups[0].WAL.Spans
	// The old timeline's switch segment exists only as .partial; the chain takes it from
	// timeline 2.
	n1, _ := segments.Parse(sp[0].To)
	n2, _ := segments.Parse(sp[1].From)
	if n2.Timeline != 2 || n2.SegNo(16<<20) != n1.SegNo(16<<20)+1 {
		t.Fatalf("spans %+v", sp)
	}
	oldSwitch := segments.SegmentFileName(1, n2.SegNo(16<<20), 16<<20)
	tl1Dir := filepath.Join(env.Home, "pg1", "wals", archive.Dir(sp[0].To))
	// PostgreSQL archives the .partial after the history file: wait for it as well.
	wktest.Eventually(t, 90*time.Second, "the old timeline's switch segment archived as a .partial", func() bool {
		_, err := os.Stat(filepath.Join(tl1Dir, oldSwitch+".partial.zst"))
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(tl1Dir, oldSwitch+".zst")); err == nil {
		t.Errorf("the old timeline's switch segment %s is archived complete: the test does not show the crossing", oldSwitch)
	}
	res, cr := checks(t, env, "pg1")
	if x := res[check.CheckWALChain]; !x.OK || !strings.Contains(x.Detail, "timeline 2, no gap") {
		t.Fatalf("check after promotion: exit %d, %+v\n%s", cr.Code, x, cr.Stdout)
	}

	// Without the history file, the crossing is impossible: named.
	aside := filepath.Join(env.Dir, "hist")
	if err := os.Rename(histFile, aside); err != nil {
		t.Fatal(err)
	}
	r = env.Run("verify", "pg1", "--no-files")
	if r.Code != 1 || !strings.Contains(r.Stdout, "history file 00000002.history is not archived") {
		t.Fatalf("verify without 00000002.history: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if err := os.Rename(aside, histFile); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkVerifyBackup: `walkeeper verify SERVER ID` (files against the manifest, and
// the WAL chain) of a pgbench scale 20 cluster's backup; reports MB/s of data verified.
func BenchmarkVerifyBackup(b *testing.B) {
	env := wktest.New(b, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	pg := pgtest.New(b, "bench", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(b)
	env.StartDaemon(b)
	pg.PgBench(b, "-i", "-s", "20", "-q")
	env.MustRun(b, "backup", "pg1")
	var rep verifyOut
	env.JSON(b, &rep, "verify", "pg1", "latest")
	var size int64
	var sizes struct {
		Backups []struct {
			Files struct{ Bytes int64 } `json:"files"`
		} `json:"backups"`
	}
	_ = json.Unmarshal([]byte(env.MustRun(b, "--json", "verify", "pg1", "latest")), &sizes)
	size = sizes.Backups[0].Files.Bytes
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		env.MustRun(b, "verify", "pg1", "latest")
	}
}

// TestCheckStreaming: a server archived only by streaming (no archive_command) passes
// check with the receiver and slot checks, and the receiver check fails once the daemon
// that runs it stops.
func TestCheckStreaming(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{
		"streaming_archiver": "on", "create_slot": "auto", "min_free_disk": "1MB"}})
	pg := pgtest.New(t, "stream", pgtest.Options{})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	d := env.StartDaemon(t)
	wktest.Eventually(t, 60*time.Second, "the receiver to connect", func() bool {
		res, _ := checks(t, env, "pg1")
		return res[check.CheckReceiver].OK
	})
	env.MustRun(t, "switch-wal", "pg1", "--wait", "--timeout", "60s")
	res, r := checks(t, env, "pg1")
	if r.Code != 0 {
		t.Fatalf("check of a streaming-only server: exit %d\n%s", r.Code, r.Stdout)
	}
	if x := res[check.CheckArchiving]; !strings.Contains(x.Detail, "WAL arrives by streaming") {
		t.Errorf("archiving: %+v", x)
	}
	if x := res[check.CheckSlot]; !strings.Contains(x.Detail, `"walkeeper_pg1" exists (active)`) {
		t.Errorf("slot: %+v", x)
	}
	if _, ok := res[check.CheckArchiver]; ok {
		t.Errorf("pg_stat_archiver checked with archive_mode off: %+v", res[check.CheckArchiver])
	}
	d.Stop(t)
	res, r = checks(t, env, "pg1")
	if x := res[check.CheckReceiver]; r.Code != 1 || x.OK || !strings.Contains(x.Detail, "not running") {
		t.Errorf("receiver check without the daemon: exit %d %+v", r.Code, x)
	}
}
