package restore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/sshtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// mark is one committed row of the marks table with everything a target can name.
type mark struct {
	id        int
	xid       string
	commitTS  string // pg_xact_commit_timestamp: the time in the commit record
	commitLSN string // start of the commit record (pg_waldump)
	afterLSN  string // pg_current_wal_insert_lsn() after the commit
}

// pitr is the shared fixture: one primary archived by walkeeper, two backups, six
// marks and restore points, the daemon running.
type pitr struct {
	env     *wktest.Env
	primary *pgtest.Cluster
	marks   []mark
	backups []string // ids, oldest first
}

func (p *pitr) backup(t *testing.T) string {
	t.Helper()
	var res struct {
		ID string `json:"id"`
	}
	p.env.JSON(t, &res, "backup", "pg1")
	if res.ID == "" {
		t.Fatal("backup --json gave no id")
	}
	return res.ID
}

func (p *pitr) addMark(t *testing.T, id int) mark {
	t.Helper()
	out := p.primary.Psql(t, fmt.Sprintf(`BEGIN;
INSERT INTO marks VALUES (%d, 'mark %d');
SELECT txid_current();
COMMIT;`, id, id))
	m := mark{id: id, xid: strings.TrimSpace(out)}
	m.afterLSN = p.primary.Psql(t, "SELECT pg_current_wal_insert_lsn()")
	m.commitTS = p.primary.Psql(t, fmt.Sprintf("SELECT to_char(pg_xact_commit_timestamp('%s'::xid) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'", m.xid))
	return m
}

// commitLSNs finds each mark's commit record in the primary's pg_wal with pg_waldump
// (an oracle nobody here wrote).
func (p *pitr) commitLSNs(t *testing.T, from string) {
	t.Helper()
	if !p.primary.ToolsMatch() {
		t.Logf("PostgreSQL %d: no pg_waldump of that major to find the commit records with: the LSN targets are skipped", p.primary.Major)
		return
	}
	out, _ := pgtest.RunPGErr("pg_waldump", "-p", filepath.Join(p.primary.Dir, "pg_wal"), "-s", from, "-r", "Transaction")
	re := regexp.MustCompile(`tx:\s+(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), .*desc: COMMIT`)
	byXID := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		byXID[m[1]] = m[2]
	}
	for i := range p.marks {
		l, ok := byXID[p.marks[i].xid]
		if !ok {
			t.Fatalf("pg_waldump shows no commit of xid %s (mark %d):\n%s", p.marks[i].xid, p.marks[i].id, out)
		}
		p.marks[i].commitLSN = l
	}
}

func newPITR(t *testing.T) *pitr {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	primary := pgtest.New(t, "primary", pgtest.Options{
		ArchiveCommand: env.ArchiveCommand("pg1"),
		Conf:           map[string]string{"track_commit_timestamp": "on", "wal_keep_size": "512MB"},
	})
	env.Servers[0].Settings["conninfo"] = primary.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	p := &pitr{env: env, primary: primary}
	primary.Tablespace(t, "ts1")
	primary.Psql(t, "CREATE TABLE marks (id int PRIMARY KEY, note text) TABLESPACE ts1")
	primary.Psql(t, "CREATE TABLE precious (id int, v text)")
	p.backups = append(p.backups, p.backup(t))
	start := primary.Psql(t, "SELECT pg_current_wal_insert_lsn()")
	for i := 1; i <= 3; i++ {
		p.marks = append(p.marks, p.addMark(t, i))
	}
	primary.Psql(t, "SELECT pg_create_restore_point('after_3')")
	p.backups = append(p.backups, p.backup(t))
	for i := 4; i <= 6; i++ {
		time.Sleep(20 * time.Millisecond) // distinct commit timestamps
		p.marks = append(p.marks, p.addMark(t, i))
	}
	primary.Psql(t, "SELECT pg_create_restore_point('after_6')")
	p.commitLSNs(t, start)
	p.env.MustRun(t, "switch-wal", "pg1", "--wait")
	return p
}

// restore runs `walkeeper restore` as the postgres user into a fresh directory and
// returns the data directory.
func (p *pitr) restore(t *testing.T, id string, args ...string) string {
	t.Helper()
	dir := pgtest.TempDir(t)
	dest := filepath.Join(dir, "data")
	full := append([]string{"restore", "pg1", id, dest, "--tablespace", "ts1:" + filepath.Join(dir, "ts1")}, args...)
	p.env.MustRun(t, full...)
	return dest
}

// startPaused starts a restored directory and waits until replay pauses at its target.
func startPaused(t *testing.T, name, dest string) *pgtest.Cluster {
	t.Helper()
	c := pgtest.FromDataDir(t, name, dest)
	c.WaitFor(t, "SELECT "+pausedSQL(c.Major), "paused", 60*time.Second)
	return c
}

// pausedSQL says "paused" when replay is paused: pg_get_wal_replay_pause_state() is 14+.
func pausedSQL(major int) string {
	if major == 13 {
		return "CASE WHEN pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END"
	}
	return "pg_get_wal_replay_pause_state()"
}

// sandboxArgs gives the sandbox the primary's server binaries when they are not the
// default ones that walkeeper finds by itself.
func (p *pitr) sandboxArgs(args ...string) []string {
	if p.primary.BinDir != pgtest.DefaultBinDir {
		args = append(args, "--pg-bin", p.primary.BinDir)
	}
	return args
}

func marksOf(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	return strings.ReplaceAll(c.Psql(t, "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM marks"), "\n", ",")
}

func upTo(n int) string {
	var s []string
	for i := 1; i <= n; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return strings.Join(s, ",")
}

// TestPITR: every target kind lands exactly, inclusive and exclusive, checked row by
// row; then timelines, a remote restore through a real sshd and the dropped-table
// rescue with a sandbox, all on one primary and its backups.
func TestPITR(t *testing.T) {
	p := newPITR(t)
	m := p.marks
	b1, b2 := p.backups[0], p.backups[1]

	cases := []struct {
		name string
		id   string
		args []string
		want string
	}{
		{"time-inclusive", b1, []string{"--target-time", m[2].commitTS}, upTo(3)},
		{"time-exclusive", b1, []string{"--target-time", m[2].commitTS, "--target-exclusive"}, upTo(2)},
		{"xid-inclusive", b1, []string{"--target-xid", m[3].xid}, upTo(4)},
		{"xid-exclusive", b2, []string{"--target-xid", m[3].xid, "--target-exclusive"}, upTo(3)},
		{"lsn-inclusive", b1, []string{"--target-lsn", m[1].commitLSN}, upTo(2)},
		{"lsn-exclusive", b1, []string{"--target-lsn", m[1].commitLSN, "--target-exclusive"}, upTo(1)},
		{"lsn-after-commit", b2, []string{"--target-lsn", m[4].afterLSN, "--copy-wal"}, upTo(5)},
		{"name", b1, []string{"--target-name", "after_3"}, upTo(3)},
		{"immediate", b1, []string{"--target-immediate"}, ""},
		{"auto-time-early", "auto", []string{"--target-time", m[1].commitTS}, upTo(2)},
		{"auto-time-late", "auto", []string{"--target-time", m[4].commitTS, "--target-exclusive"}, upTo(4)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if slices.Contains(c.args, "") { // a commit LSN that pg_waldump could not find
				t.Skipf("PostgreSQL %d: no commit record LSN (pg_waldump of that major)", p.primary.Major)
			}
			dest := p.restore(t, c.id, c.args...)
			pg := startPaused(t, c.name, dest)
			if got := marksOf(t, pg); got != c.want {
				t.Errorf("marks after %v: %q, want %q", c.args, got, c.want)
			}
			if c.id == "auto" {
				auto, _ := os.ReadFile(filepath.Join(dest, "postgresql.auto.conf"))
				wantID := b1
				if c.name == "auto-time-late" {
					wantID = b2
				}
				if !strings.Contains(string(auto), "backup "+wantID) {
					t.Errorf("auto chose another backup than %s:\n%s", wantID, auto)
				}
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		dir := pgtest.TempDir(t)
		for _, c := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{b2, "--target-time", m[0].commitTS}, 2, "is before backup " + b2 + " ended"},
			{[]string{b1, "--target-time", "2026-11-24 15:04:05"}, 2, "has no time zone"},
			{[]string{b1, "--target-xid", m[0].xid, "--target-name", "after_3"}, 2, "give one recovery target"},
			{[]string{b1, "--target-tli", "7"}, 1, "00000007.history is not in the archive"},
			{[]string{b1, "--tablespace", "nope:/tmp/x"}, 2, `no tablespace "nope" (its tablespaces: ts1)`},
			{[]string{"nosuch"}, 1, `backup "nosuch" not found`},
		} {
			args := append([]string{"restore", "pg1", c.args[0], filepath.Join(dir, "data")}, c.args[1:]...)
			r := p.env.Run(args...)
			if r.Code != c.code || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, r.Code, r.Stderr, c.code, c.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
				t.Fatalf("%v: a refused restore wrote %s", c.args, dir)
			}
		}
	})

	t.Run("verifybackup-relocated", func(t *testing.T) {
		dest := p.restore(t, "oldest", "--copy-wal")
		var out string
		switch {
		case p.primary.ToolsMatch():
			out = pgtest.RunPG(t, "pg_verifybackup", "-w", filepath.Join(dest, "pg_wal", "walkeeper_wal"), dest)
		case p.primary.Major < 17: // 15's pg_verifybackup reads their version 1 manifest, not their WAL
			out = pgtest.RunPG(t, "pg_verifybackup", "-n", dest)
		default:
			t.Logf("PostgreSQL %d: its version 2 manifest needs a newer pg_verifybackup (walkeeper verify checks it in TestCheckAndVerify)", p.primary.Major)
		}
		if out != "" && !strings.Contains(out, "successfully verified") {
			t.Errorf("pg_verifybackup: %s", out)
		}
		if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("DEST mode: %v %v", fi.Mode(), err)
		}
		r := p.env.Run("restore", "pg1", "oldest", dest, "--tablespace", "ts1:"+filepath.Join(filepath.Dir(dest), "ts-other"))
		if r.Code != 2 || !strings.Contains(r.Stderr, "is not empty") {
			t.Errorf("restore into non-empty DEST: exit %d %s", r.Code, r.Stderr)
		}
	})

	t.Run("remote-ssh", func(t *testing.T) {
		sshCmd := startSSHD(t)
		dir := pgtest.TempDir(t)
		dest := filepath.Join(dir, "data")
		r := p.env.Run("restore", "pg1", b2, dest, "--remote-ssh-command", sshCmd, "--get-wal")
		if r.Code != 2 || !strings.Contains(r.Stderr, "use --copy-wal") {
			t.Errorf("remote --get-wal: exit %d %s", r.Code, r.Stderr)
		}
		var res struct {
			Remote   string `json:"remote"`
			WALMode  string `json:"wal_mode"`
			WALFiles int    `json:"wal_files"`
		}
		p.env.JSON(t, &res, "restore", "pg1", b2, dest, "--remote-ssh-command", sshCmd,
			"--tablespace", "ts1:"+filepath.Join(dir, "ts1"), "--target-name", "after_6")
		if res.Remote == "" || res.WALMode != "copy-wal" || res.WALFiles == 0 {
			t.Errorf("remote restore result: %+v", res)
		}
		pg := startPaused(t, "remote", dest)
		if got := marksOf(t, pg); got != upTo(6) {
			t.Errorf("marks after remote restore: %q", got)
		}
		// The same target again is refused: the remote DEST is not empty.
		r = p.env.Run("restore", "pg1", b2, dest, "--remote-ssh-command", sshCmd, "--tablespace", "ts1:"+filepath.Join(dir, "ts2"))
		if r.Code == 0 || !strings.Contains(r.Stderr, "running PostgreSQL") {
			t.Errorf("remote restore over a running cluster: exit %d %s", r.Code, r.Stderr)
		}
	})

	t.Run("sandbox-rescue", func(t *testing.T) {
		p.primary.Psql(t, "INSERT INTO precious SELECT g, md5(g::text) FROM generate_series(1, 500) g")
		want := p.primary.Psql(t, "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM precious")
		before := p.primary.Psql(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
		time.Sleep(50 * time.Millisecond)
		p.primary.Psql(t, "DROP TABLE precious")
		p.env.MustRun(t, "switch-wal", "pg1", "--wait")
		t.Cleanup(func() { p.env.Run("sandbox", "stop", "pg1") })
		// Paused at a restore point: read-only, paused, the marks up to it.
		var paused struct {
			Conninfo string   `json:"conninfo"`
			Locked   []string `json:"locked_relations"`
		}
		p.env.JSON(t, &paused, p.sandboxArgs("sandbox", "pg1", b1, "--target-name", "after_6")...)
		out, err := pgtest.RunPGErr("psql", "-X", "-A", "-t", "-d", paused.Conninfo, "-c", "SELECT "+pausedSQL(p.primary.Major)+", string_agg(id::text, ',' ORDER BY id) FROM marks")
		if err != nil || strings.TrimSpace(out) != "paused|"+upTo(6) {
			t.Errorf("paused sandbox: %q %v", out, err)
		}
		var st []struct {
			Running bool   `json:"running"`
			Replay  string `json:"replay_state"`
		}
		p.env.JSON(t, &st, "sandbox", "status")
		if len(st) != 1 || !st[0].Running || st[0].Replay != "paused" {
			t.Errorf("sandbox status: %+v", st)
		}
		r := p.env.Run(p.sandboxArgs("sandbox", "pg1", "--target-time", before)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "already has a sandbox") {
			t.Errorf("second sandbox: exit %d %s", r.Code, r.Stderr)
		}
		p.env.MustRun(t, "sandbox", "stop", "pg1")

		// The rescue: just before the DROP's commit. The DROP's lock record is replayed
		// before its commit, so a paused copy would keep the table locked: end recovery
		// at the target instead (the copy stays read-only).
		var sb struct {
			Conninfo string `json:"conninfo"`
			Sandbox  struct {
				Root string `json:"root"`
			} `json:"sandbox"`
		}
		p.env.JSON(t, &sb, p.sandboxArgs("sandbox", "pg1", "--target-time", before, "--target-action", "promote")...)
		if _, err := pgtest.RunPGErr("psql", "-X", "-d", sb.Conninfo, "-c", "CREATE TABLE w()"); err == nil {
			t.Error("the promoted sandbox accepts writes")
		}
		if cm := pgtest.ClientMajor(); p.primary.Major <= cm {
			dump, err := pgtest.RunPGErr("pg_dump", "--lock-wait-timeout=20s", "-d", sb.Conninfo, "-t", "precious")
			if err != nil {
				t.Fatalf("pg_dump from the sandbox: %v\n%s", err, dump)
			}
			p.primary.Psql(t, dump)
		} else {
			// pg_dump refuses a server newer than itself: COPY the rows out and back in.
			rows, err := pgtest.RunPGErr("psql", "-X", "-d", sb.Conninfo, "-c", "COPY precious TO STDOUT")
			if err != nil {
				t.Fatalf("COPY from the sandbox: %v\n%s", err, rows)
			}
			p.primary.Psql(t, "CREATE TABLE precious (id int, v text);\nCOPY precious FROM STDIN;\n"+rows+"\\.\n")
		}
		if got := p.primary.Psql(t, "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM precious"); got != want {
			t.Errorf("rescued table: %q, want %q", got, want)
		}
		p.env.MustRun(t, "sandbox", "stop", "pg1")
		if _, err := os.Stat(sb.Sandbox.Root); !os.IsNotExist(err) {
			t.Errorf("sandbox stop left %s", sb.Sandbox.Root)
		}
		if out := p.env.MustRun(t, "sandbox", "status"); !strings.Contains(out, "no sandbox") {
			t.Errorf("status after stop: %s", out)
		}
	})

	t.Run("timelines", func(t *testing.T) {
		// A restored cluster promoted at after_6 goes onto timeline 2 and, with
		// --archive, archives into the same walkeeper server (its archive_command came
		// with the backup).
		dest := p.restore(t, b2, "--target-name", "after_6", "--target-action", "promote", "--archive")
		tl2 := pgtest.FromDataDir(t, "tl2", dest)
		tl2.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 60*time.Second)
		tl2.Psql(t, "INSERT INTO marks VALUES (100, 'on timeline 2')")
		tl2.Psql(t, "SELECT pg_create_restore_point('p_tl2')")
		if got := tl2.Psql(t, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"); got != "00000002" {
			t.Fatalf("promoted cluster is on timeline %s", got)
		}
		seg := tl2.Psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
		for _, f := range []string{"00000002.history", seg} {
			wktest.Eventually(t, 60*time.Second, f+" of timeline 2 archived", func() bool {
				return p.env.Run("get-wal", "pg1", f, filepath.Join(pgtest.TempDir(t), "x")).Code == 0
			})
		}
		tl2.Stop(t, "fast")
		// Timeline 1 goes on.
		p.primary.Psql(t, "INSERT INTO marks VALUES (7, 'mark 7')")
		p.primary.Psql(t, "SELECT pg_create_restore_point('p7')")
		p.env.MustRun(t, "switch-wal", "pg1", "--wait")

		dest = p.restore(t, b2, "--target-tli", "latest", "--target-name", "p_tl2")
		pg := startPaused(t, "follow-latest", dest)
		if got := marksOf(t, pg); got != upTo(6)+",100" {
			t.Errorf("--target-tli latest: marks %q", got)
		}
		dest = p.restore(t, b2, "--target-tli", "1", "--target-name", "p7")
		pg = startPaused(t, "stay-on-1", dest)
		if got := marksOf(t, pg); got != upTo(7) {
			t.Errorf("--target-tli 1: marks %q", got)
		}
		// A backup taken on timeline 1 after the branch cannot reach timeline 2.
		b3 := p.backup(t)
		dir := pgtest.TempDir(t)
		r := p.env.Run("restore", "pg1", b3, filepath.Join(dir, "data"), "--target-tli", "2")
		if r.Code != 1 || !strings.Contains(r.Stderr, "timeline 2 branched off timeline 1 at") || !strings.Contains(r.Stderr, "before backup "+b3+" ended") {
			t.Errorf("unreachable timeline: exit %d %s", r.Code, r.Stderr)
		}
		r = p.env.Run("restore", "pg1", b3, filepath.Join(dir, "data"), "--target-tli", "latest")
		if r.Code != 1 || !strings.Contains(r.Stderr, "timeline 2 branched off") {
			t.Errorf("latest unreachable: exit %d %s", r.Code, r.Stderr)
		}
	})
}

// startSSHD runs a private sshd letting the postgres user in as itself, and returns
// the ssh command to reach it.
func startSSHD(t *testing.T) string {
	t.Helper()
	return sshtest.Start(t, pgtest.PGUser).Command(t, pgtest.PGUser, pgtest.PGUser)
}
