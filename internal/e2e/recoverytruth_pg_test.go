package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// Recovery truth (invariant 9 and issue 9): nothing PostgreSQL was told is archived may
// be lost, refused or unseen by a restore. Each test re-plays a DBA's day or one of
// PostgreSQL's own recovery tests against real PostgreSQL.

// truth is a primary archived by walkeeper with a table `rows`, the daemon running.
type truth struct {
	env    *wktest.Env
	pg     *pgtest.Cluster
	daemon *wktest.Daemon
}

func newTruth(t *testing.T, archiveCommand string, conf map[string]string) *truth {
	t.Helper()
	env := newEnv(t)
	if archiveCommand == "" {
		archiveCommand = env.ArchiveCommand("pg1")
	}
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: archiveCommand, Conf: conf})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	x := &truth{env: env, pg: pg, daemon: env.StartDaemon(t)}
	pg.Psql(t, "CREATE TABLE rows (id int PRIMARY KEY, note text)")
	return x
}

func (x *truth) backup(t *testing.T) string {
	t.Helper()
	var res struct {
		ID string `json:"id"`
	}
	x.env.JSON(t, &res, "backup", "pg1")
	return res.ID
}

// restoreTo restores backup id into a fresh directory and returns it with the
// command's outcome (stderr carries restore's warnings).
func restoreTo(t *testing.T, env *wktest.Env, id string, args ...string) (string, wktest.Result) {
	t.Helper()
	dest := filepath.Join(pgtest.TempDir(t), "data")
	r := env.Run(append([]string{"restore", "pg1", id, dest}, args...)...)
	if r.Code != 0 {
		t.Fatalf("restore %s %v: exit %d\n%s%s", id, args, r.Code, r.Stdout, r.Stderr)
	}
	return dest, r
}

// appendAuto appends settings to a restored cluster's postgresql.auto.conf, after what
// restore wrote, so they win whatever restore's defaults are.
func appendAuto(t *testing.T, dir string, settings ...string) {
	t.Helper()
	appendFile(t, filepath.Join(dir, "postgresql.auto.conf"), settings...)
}

// appendFile appends settings to a configuration file, as a DBA editing it would.
func appendFile(t *testing.T, path string, settings ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + strings.Join(settings, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	writeFile(t, path, nil)
}

// switchWAL closes the current segment and returns its name.
func switchWAL(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	return c.Psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
}

// waitArchived waits until PostgreSQL's archiver reports name archived (archive-wal
// returned 0 for it): the archiver's own word, not walkeeper's.
func waitArchived(t *testing.T, c *pgtest.Cluster, name string) {
	t.Helper()
	c.WaitFor(t, fmt.Sprintf("SELECT last_archived_wal >= '%s' FROM pg_stat_archiver", name), "t", 60*time.Second)
}

func servedByGetWAL(env *wktest.Env, name string) ([]byte, bool) {
	dst := filepath.Join(os.TempDir(), fmt.Sprintf("wk-getwal-%d-%s", time.Now().UnixNano(), name))
	defer os.Remove(dst)
	if env.Run("get-wal", "pg1", name, dst).Code != 0 {
		return nil, false
	}
	b, err := os.ReadFile(dst)
	return b, err == nil
}

func rowsOf(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	return strings.ReplaceAll(c.Psql(t, "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM rows"), "\n", ",")
}

func timelineOf(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	return c.Psql(t, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
}

// TestRestoreWithDaemonDown: the daemon is down when the primary is lost; everything
// archive-wal accepted is in incoming/ only. A restore to the end has every committed
// row, and says the daemon was down.
func TestRestoreWithDaemonDown(t *testing.T) {
	x := newTruth(t, "", nil)
	id := x.backup(t)
	x.daemon.Stop(t)
	for i := 1; i <= 3; i++ {
		x.pg.Psql(t, fmt.Sprintf("INSERT INTO rows SELECT g, 'batch %d' FROM generate_series(%d, %d) g", i, i*1000, i*1000+999))
		switchWAL(t, x.pg)
	}
	x.pg.Psql(t, "INSERT INTO rows VALUES (1, 'the last commit')")
	waitArchived(t, x.pg, switchWAL(t, x.pg))
	want := x.pg.Psql(t, "SELECT count(*), sum(id) FROM rows")
	x.pg.Stop(t, "immediate") // the primary is lost
	if n := len(listDir(t, filepath.Join(x.env.Home, "pg1", "incoming"))); n < 4 {
		t.Fatalf("incoming/ holds %d files; the daemon was meant to be down", n)
	}
	dest, r := restoreTo(t, x.env, id)
	said := false
	for _, line := range strings.Split(r.Stderr, "\n") {
		said = said || strings.HasPrefix(line, "warning: pg1: the walkeeper daemon is not running and ") && strings.Contains(line, " WAL files ")
	}
	if !said {
		t.Errorf("restore did not say that the daemon is down with WAL waiting in incoming/: %q", r.Stderr)
	}
	c := pgtest.FromDataDir(t, "restored", dest)
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := c.Psql(t, "SELECT count(*), sum(id) FROM rows"); got != want {
		t.Fatalf("restored rows %q, want %q (committed and archived before the primary was lost)", got, want)
	}
}

// TestPromoteThenRestoreLatest: a promotion, then at once — from inside
// archive_command, right after archive-wal of the new history file returned — a
// restore with --target-tli latest. Started later, that restore must follow the new
// timeline and see the row written on it. Twenty promotions in a row: each restored
// cluster ends its recovery by promoting, which is the next round's promotion.
func TestPromoteThenRestoreLatest(t *testing.T) {
	work := pgtest.TempDir(t) // the postgres user's: restores land here
	env := newEnv(t)
	script := filepath.Join(work, "archive.sh")
	writeFile(t, script, []byte(fmt.Sprintf(`#!/bin/sh
set -e
%[1]s --config %[2]s archive-wal pg1 "$1"
case "$2" in
*.history)
	rc=0
	%[1]s --config %[2]s restore pg1 "$(cat %[3]s/backup_id)" "%[3]s/$2/data" --target-tli latest >"%[3]s/$2.log" 2>&1 || rc=$?
	# published by a rename: the test polls for the file and must never read it empty
	echo $rc >"%[3]s/$2.rc.tmp" && mv "%[3]s/$2.rc.tmp" "%[3]s/$2.rc" ;;
esac
`, env.Bin, env.Config, work)))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	archiveCmd := script + " %p %f"
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: archiveCmd})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	x := &truth{env: env, pg: pg}
	pg.Psql(t, "CREATE TABLE rows (id int PRIMARY KEY, note text)")
	id := x.backup(t)
	writeFile(t, filepath.Join(work, "backup_id"), []byte(id))
	pg.Psql(t, "INSERT INTO rows VALUES (0, 'timeline 1')")
	waitArchived(t, pg, switchWAL(t, pg))
	pg.Stop(t, "fast")

	dest, _ := restoreTo(t, env, id)
	cur := pgtest.Adopt(t, "tl2", dest)
	appendAuto(t, dest, "archive_mode = on", "archive_command = '"+archiveCmd+"'")
	cur.Start(t)
	want := "0"
	const rounds = 20
	for i := 1; i <= rounds; i++ {
		tli := uint32(i + 1)
		cur.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
		if got := rowsOf(t, cur); got != want {
			t.Fatalf("round %d: the cluster restored right after the promotion to timeline %d has rows %q, want %q", i, tli-1, got, want)
		}
		if got := timelineOf(t, cur); got != fmt.Sprintf("%08X", tli) {
			t.Fatalf("round %d: on timeline %s, want %d", i, got, tli)
		}
		hist := segments.HistoryFileName(tli)
		rcFile := filepath.Join(work, hist+".rc")
		wktest.Eventually(t, 60*time.Second, "the restore run from archive_command after "+hist, func() bool {
			_, err := os.Stat(rcFile)
			return err == nil
		})
		if rc, _ := os.ReadFile(rcFile); strings.TrimSpace(string(rc)) != "0" {
			log, _ := os.ReadFile(filepath.Join(work, hist+".log"))
			t.Fatalf("round %d: restore right after %s: exit %s\n%s", i, hist, rc, log)
		}
		// Written on the new timeline after the restore: only recovery that follows
		// the new timeline sees it.
		cur.Psql(t, fmt.Sprintf("INSERT INTO rows VALUES (%d, 'timeline %d')", i, tli))
		waitArchived(t, cur, switchWAL(t, cur))
		want += fmt.Sprintf(",%d", i)
		cur.Stop(t, "immediate") // all it wrote is archived: no shutdown checkpoint needed
		next := filepath.Join(work, hist, "data")
		cur = pgtest.Adopt(t, fmt.Sprintf("tl%d", tli+1), next)
		appendAuto(t, next, "archive_mode = on", "archive_command = '"+archiveCmd+"'")
		cur.Start(t)
	}
	cur.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := rowsOf(t, cur); got != want {
		t.Fatalf("after %d rounds: rows %q, want %q", rounds, got, want)
	}
}

// TestTimelinesFollowed: PostgreSQL's recovery tests 004/025 and 028 re-expressed.
// A standby restored from a backup follows a promotion made after it started
// (recovery_target_timeline = latest, re-read while it runs); then a PITR stopped on
// timeline 1 (at a restore point before timeline 2's switch) and promoted onto
// timeline 3 writes a history whose switch points go backwards; it is archived, and a
// later restore follows timeline 3 and sees its row.
func TestTimelinesFollowed(t *testing.T) {
	x := newTruth(t, "", map[string]string{"wal_keep_size": "256MB"})
	id := x.backup(t)
	s1 := pgtest.NewStandby(t, "s1", x.pg, map[string]string{"archive_mode": "on", "archive_command": x.env.ArchiveCommand("pg1")})
	x.pg.Psql(t, "INSERT INTO rows VALUES (1, 'before rp')")
	x.pg.Psql(t, "SELECT pg_create_restore_point('rp')")
	x.pg.Psql(t, "INSERT INTO rows VALUES (2, 'after rp')")
	waitArchived(t, x.pg, switchWAL(t, x.pg))

	dest, _ := restoreTo(t, x.env, id)
	// A default restore does not archive, and says so where a DBA who edits
	// postgresql.conf would look: the line that wins over it.
	if auto, err := os.ReadFile(filepath.Join(dest, "postgresql.auto.conf")); err != nil ||
		!strings.Contains(string(auto), "wins over postgresql.conf") || !strings.Contains(string(auto), "archive_mode = 'off'") {
		t.Fatalf("postgresql.auto.conf of a default restore does not explain its archive_mode = off (%v):\n%s", err, auto)
	}
	touch(t, filepath.Join(dest, "standby.signal"))
	sb := pgtest.Adopt(t, "archive-standby", dest)
	appendAuto(t, dest, "wal_retrieve_retry_interval = '200ms'")
	sb.Start(t)
	sb.WaitFor(t, "SELECT count(*) FROM rows", "2", 60*time.Second)

	// The primary is lost; s1 is promoted after the restored standby started.
	s1.WaitFor(t, "SELECT count(*) FROM rows", "2", 60*time.Second)
	x.pg.Stop(t, "fast")
	s1.Promote(t)
	s1.Psql(t, "INSERT INTO rows VALUES (3, 'on timeline 2')")
	waitArchived(t, s1, switchWAL(t, s1))
	sb.WaitFor(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows", "1,2,3", 60*time.Second)
	sb.Stop(t, "fast")
	s1.Stop(t, "fast")

	// 028: PITR to rp (on timeline 1, before timeline 2 began) along the latest
	// timeline, promoted: timeline 3. It becomes the new production, so it archives
	// into the same server (--archive: restored clusters do not archive by default).
	dest, _ = restoreTo(t, x.env, id, "--target-name", "rp", "--target-tli", "latest", "--target-action", "promote", "--archive")
	p3 := pgtest.FromDataDir(t, "pitr-tl3", dest)
	p3.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 60*time.Second)
	if got, tl := rowsOf(t, p3), timelineOf(t, p3); got != "1" || tl != "00000003" {
		t.Fatalf("PITR to rp: rows %q on timeline %s, want 1 on 00000003", got, tl)
	}
	p3.Psql(t, "INSERT INTO rows VALUES (4, 'on timeline 3')")
	waitArchived(t, p3, switchWAL(t, p3))
	hist, ok := servedByGetWAL(x.env, "00000003.history")
	if !ok {
		t.Fatal("00000003.history is not archived")
	}
	h, err := segments.ParseHistory(3, hist)
	if err != nil || len(h) != 2 || h[1].SwitchLSN >= h[0].SwitchLSN {
		t.Fatalf("00000003.history is not recovery test 028's shape (switch points going backwards): %v %q", err, hist)
	}
	p3.Stop(t, "fast")
	wktest.Eventually(t, 30*time.Second, "00000003.history ingested", func() bool {
		return len(listDir(t, filepath.Join(x.env.Home, "pg1", "incoming"))) == 0
	})
	if q := listDir(t, filepath.Join(x.env.Home, "pg1", "errors")); len(q) != 0 {
		t.Fatalf("files quarantined: %v", q)
	}

	dest, _ = restoreTo(t, x.env, id)
	last := pgtest.FromDataDir(t, "follow-tl3", dest)
	last.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 60*time.Second)
	if got := rowsOf(t, last); got != "1,4" {
		t.Fatalf("restore after the 028 PITR: rows %q, want 1,4 (timeline 3)", got)
	}
}

// TestSameNameWhileDaemonDown: two standbys of one primary, promoted one after the
// other while the daemon is down, both pick timeline 2 (neither sees the other) and
// archive files of the same names with different content. When the daemon starts, the
// first arrival of each name is archived and the other lands in errors/ with the
// reason; nothing either cluster archived is lost.
func TestSameNameWhileDaemonDown(t *testing.T) {
	x := newTruth(t, "", map[string]string{"wal_keep_size": "256MB"})
	copies := map[string]string{}
	var standbys []*pgtest.Cluster
	for _, name := range []string{"s1", "s2"} {
		dir := pgtest.TempDir(t)
		copies[name] = dir
		standbys = append(standbys, pgtest.NewStandby(t, name, x.pg, map[string]string{"archive_mode": "on",
			"archive_command": fmt.Sprintf("cp %%p %s/%%f && %s", dir, x.env.ArchiveCommand("pg1"))}))
	}
	x.daemon.Stop(t)
	for i, s := range standbys {
		x.pg.Psql(t, fmt.Sprintf("INSERT INTO rows VALUES (%d, 'before promotion %d')", i+1, i+1))
		s.WaitFor(t, "SELECT count(*) FROM rows", fmt.Sprint(i+1), 60*time.Second)
		s.Promote(t)
		s.Psql(t, fmt.Sprintf("INSERT INTO rows VALUES (100, 'written on %s')", s.Name))
		waitArchived(t, s, switchWAL(t, s))
		if tl := timelineOf(t, s); tl != "00000002" {
			t.Fatalf("%s promoted onto %s, want 00000002", s.Name, tl)
		}
	}
	incoming := filepath.Join(x.env.Home, "pg1", "incoming")
	if got := listDir(t, incoming); !contains(got, "00000002.history") || !containsPrefix(got, "00000002.history.wk-dup-") {
		t.Fatalf("incoming/ %v: want both 00000002.history files, the second beside the first", got)
	}
	x.env.StartDaemon(t)
	wktest.Eventually(t, 60*time.Second, "incoming/ drained", func() bool { return len(listDir(t, incoming)) == 0 })

	first, _ := os.ReadFile(filepath.Join(copies["s1"], "00000002.history"))
	second, _ := os.ReadFile(filepath.Join(copies["s2"], "00000002.history"))
	if bytes.Equal(first, second) {
		t.Fatal("both histories are the same: the scenario did not happen")
	}
	if got, ok := servedByGetWAL(x.env, "00000002.history"); !ok || !bytes.Equal(got, first) {
		t.Fatalf("archived 00000002.history is not the first arrival's:\n%s", got)
	}
	errDir := filepath.Join(x.env.Home, "pg1", "errors")
	quarantined := map[string][][]byte{}
	for _, f := range listDir(t, errDir) {
		if strings.HasSuffix(f, ".reason") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(errDir, f))
		name := stampRe.ReplaceAllString(f, "") // errors/<name>.<UTC stamp>
		quarantined[name] = append(quarantined[name], b)
		reason, _ := os.ReadFile(filepath.Join(errDir, f+".reason"))
		if !strings.Contains(string(reason), "already archived with different content") {
			t.Errorf("%s: reason %q", f, reason)
		}
	}
	// None lost: every file either cluster archived is archived as is, or quarantined.
	for _, s := range []string{"s1", "s2"} {
		for _, f := range listDir(t, copies[s]) {
			want, _ := os.ReadFile(filepath.Join(copies[s], f))
			if got, ok := servedByGetWAL(x.env, f); ok && bytes.Equal(got, want) {
				continue
			}
			found := false
			for _, q := range quarantined[f] {
				found = found || bytes.Equal(q, want)
			}
			if !found {
				t.Errorf("%s's %s is neither archived nor in errors/: lost", s, f)
			}
		}
	}
	if len(quarantined["00000002.history"]) != 1 || !bytes.Equal(quarantined["00000002.history"][0], second) {
		t.Errorf("errors/ does not hold the second 00000002.history")
	}
}

var stampRe = regexp.MustCompile(`\.\d{8}T\d{6}\.\d{9}$`)

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func containsPrefix(list []string, p string) bool {
	for _, e := range list {
		if strings.HasPrefix(e, p) {
			return true
		}
	}
	return false
}

// TestAlwaysStandbyArchivesPrefetched: a standby restored with get-wal's prefetch and
// archive_mode = always archives every segment it replayed, those the prefetcher put
// into pg_wal included (PostgreSQL marks a restored file .ready under always).
func TestAlwaysStandbyArchivesPrefetched(t *testing.T) {
	x := newTruth(t, "", nil)
	id := x.backup(t)
	startSeg := x.pg.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	for i := 1; i <= 6; i++ {
		x.pg.Psql(t, fmt.Sprintf("INSERT INTO rows VALUES (%d, 'segment %d')", i, i))
		switchWAL(t, x.pg)
	}
	x.pg.Psql(t, "INSERT INTO rows VALUES (7, 'last')")
	last := switchWAL(t, x.pg)
	waitArchived(t, x.pg, last)

	// As the README tells a DBA: restore with --archive (else walkeeper's
	// archive_mode = off in postgresql.auto.conf wins), set archive_mode = always and
	// the standby's own archive_command in postgresql.conf, standby.signal, start.
	dest, r := restoreTo(t, x.env, id, "--archive")
	if !strings.Contains(r.Stdout, "--prefetch") {
		t.Fatalf("restore did not set up get-wal with prefetch:\n%s", r.Stdout)
	}
	archived := pgtest.TempDir(t)
	touch(t, filepath.Join(dest, "standby.signal"))
	sb := pgtest.Adopt(t, "always-standby", dest)
	appendFile(t, filepath.Join(dest, "postgresql.conf"), "archive_mode = always", fmt.Sprintf("archive_command = 'cp %%p %s/%%f'", archived))
	sb.Start(t)
	if got := sb.Psql(t, "SHOW archive_mode"); got != "always" {
		t.Fatalf("archive_mode = always in postgresql.conf of a --archive restore: the server runs with %q", got)
	}
	sb.WaitFor(t, "SELECT count(*) FROM rows", "7", 60*time.Second)
	start, err := segments.Parse(startSeg)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := segments.Parse(last)
	const segSize = 16 << 20
	var want []string
	for n := start.SegNo(segSize); n <= end.SegNo(segSize); n++ {
		want = append(want, segments.SegmentFileName(1, n, segSize))
	}
	wktest.Eventually(t, 60*time.Second, "the standby archived every segment it replayed", func() bool {
		got := listDir(t, archived)
		for _, w := range want {
			if !contains(got, w) {
				return false
			}
		}
		return true
	})
}

// TestDaemonNeverRan: a server whose daemon never ran (the systemd unit failed from
// the start). What archive-wal made durable is archived (invariant 9), so
// `switch-wal --wait` says so at once instead of timing out, a backup is DONE, and a
// restore of it after the primary is lost has every committed row; each command says
// the daemon is not running.
func TestDaemonNeverRan(t *testing.T) {
	env := newEnv(t)
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	pg.Psql(t, "CREATE TABLE rows (id int PRIMARY KEY, note text)")

	r := env.Run("switch-wal", "pg1", "--wait", "--timeout", "30s")
	if r.Code != 0 || !strings.Contains(r.Stdout, " archived (waiting in incoming/ for the daemon)") ||
		!strings.HasPrefix(r.Stderr, "warning: pg1: the walkeeper daemon is not running: ") {
		t.Fatalf("switch-wal --wait without a daemon: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = env.Run("backup", "pg1", "--wait-timeout", "30s")
	if r.Code != 0 || !strings.Contains(r.Stderr, "durable and read from there by restore, but the walkeeper daemon is NOT running") {
		t.Fatalf("backup without a daemon: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	pg.Psql(t, "INSERT INTO rows SELECT g, 'after the backup' FROM generate_series(1, 1000) g")
	waitArchived(t, pg, switchWAL(t, pg))
	want := pg.Psql(t, "SELECT count(*), sum(id) FROM rows")
	pg.Stop(t, "immediate") // the primary is lost
	if n := len(listDir(t, filepath.Join(env.Home, "pg1", "wals"))); n != 0 {
		t.Fatalf("wals/ holds %d entries; no daemon ever ran", n)
	}
	dest, r := restoreTo(t, env, "latest")
	if !strings.Contains(r.Stderr, "warning: pg1: the walkeeper daemon is not running and ") {
		t.Errorf("restore did not say that the daemon is down: %q", r.Stderr)
	}
	c := pgtest.FromDataDir(t, "restored", dest)
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := c.Psql(t, "SELECT count(*), sum(id) FROM rows"); got != want {
		t.Fatalf("restored rows %q, want %q", got, want)
	}
}
