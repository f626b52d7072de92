package restore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// standbyConf makes a restored standby look for new WAL every 200 ms instead of
// PostgreSQL's 5 s, so that following the archive takes test time in tenths.
func standbyConf(t *testing.T, dest string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dest, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\nwal_retrieve_retry_interval = '200ms'\n"); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreStandby: `restore --standby` brings the cluster up as a standby fed from
// the archive: in recovery, read-only, and the rows the primary commits afterwards
// appear on it once their segment is archived; with --primary-conninfo it streams
// them too, before any segment switch. The combinations that make no sense are
// refused with exit 2 and nothing written.
func TestRestoreStandby(t *testing.T) {
	pgtest.SkipShort(t)
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	primary := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = primary.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	primary.Psql(t, "CREATE TABLE follow (id int PRIMARY KEY)")
	primary.Psql(t, "INSERT INTO follow SELECT generate_series(1, 10)")
	env.MustRun(t, "backup", "pg1")

	dir := pgtest.TempDir(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--standby", "--target-time", "2026-11-24 15:04:05+00"}, "--standby with --target-time: a standby follows the archive with no end"},
		{[]string{"--standby", "--target-immediate"}, "--standby with --target-immediate"},
		{[]string{"--standby", "--copy-wal"}, "would never replay more"},
		{[]string{"--primary-conninfo", primary.ConnString("")}, "--primary-conninfo is for a standby"},
	} {
		r := env.Run(append([]string{"restore", "pg1", "latest", filepath.Join(dir, "refused")}, c.args...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, c.want) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", c.args, r.Code, r.Stderr, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "refused")); !os.IsNotExist(err) {
			t.Fatalf("%v: a refused restore wrote its DEST", c.args)
		}
	}

	var res struct {
		Standby        bool   `json:"standby"`
		RestoreCommand string `json:"restore_command"`
	}
	archiveOnly := filepath.Join(dir, "archive-only")
	env.JSON(t, &res, "restore", "pg1", "latest", archiveOnly, "--standby")
	if !res.Standby || !strings.Contains(res.RestoreCommand, " get-wal ") {
		t.Errorf("restore --standby --json: %+v", res)
	}
	streaming := filepath.Join(dir, "streaming")
	out := env.MustRun(t, "restore", "pg1", "latest", streaming, "--standby", "--primary-conninfo", primary.ConnString("")+" application_name=wkstandby")
	if !strings.Contains(out, "standby (standby.signal): follows the archive") || !strings.Contains(out, "streams from primary_conninfo") {
		t.Errorf("restore --standby output:\n%s", out)
	}
	for _, d := range []string{archiveOnly, streaming} {
		if _, err := os.Stat(filepath.Join(d, "standby.signal")); err != nil {
			t.Errorf("%s: no standby.signal: %v", d, err)
		}
		if _, err := os.Stat(filepath.Join(d, "recovery.signal")); err == nil {
			t.Errorf("%s: recovery.signal written with standby.signal", d)
		}
		standbyConf(t, d)
	}
	auto, _ := os.ReadFile(filepath.Join(streaming, "postgresql.auto.conf"))
	if !strings.Contains(string(auto), "primary_conninfo = '"+primary.ConnString("")+" application_name=wkstandby'") || regexp.MustCompile(`(?m)^recovery_target(_time|_xid|_name|_lsn|_action)? `).Match(auto) ||
		!strings.Contains(string(auto), "as a standby following the archive") {
		t.Errorf("postgresql.auto.conf of the streaming standby:\n%s", auto)
	}
	a := pgtest.FromDataDir(t, "standby-archive", archiveOnly)
	s := pgtest.FromDataDir(t, "standby-streaming", streaming)
	for _, c := range []*pgtest.Cluster{a, s} {
		c.WaitFor(t, "SELECT pg_is_in_recovery()", "t", 60*time.Second)
		c.WaitFor(t, "SELECT count(*) || ',' || max(id) FROM follow", "10,10", 60*time.Second)
		if _, err := c.PsqlErr("INSERT INTO follow VALUES (0)"); err == nil {
			t.Errorf("%s accepts writes", c.Name)
		}
	}

	// Streaming: a commit reaches the standby without a segment switch.
	primary.Psql(t, "INSERT INTO follow VALUES (11)")
	s.WaitFor(t, "SELECT count(*) || ',' || max(id) FROM follow", "11,11", 60*time.Second)
	if got := primary.Psql(t, "SELECT state FROM pg_stat_replication WHERE application_name = 'wkstandby'"); got != "streaming" {
		t.Errorf("pg_stat_replication of the standby: %q", got)
	}
	// The archive-only one sees it once the segment is archived, and goes on following.
	for round := 0; round < 2; round++ {
		primary.Psql(t, fmt.Sprintf("INSERT INTO follow SELECT generate_series(%d, %d)", 12+round*100, 111+round*100))
		env.MustRun(t, "switch-wal", "pg1", "--wait")
		want := primary.Psql(t, "SELECT count(*) || ',' || max(id) FROM follow")
		a.WaitFor(t, "SELECT count(*) || ',' || max(id) FROM follow", want, 60*time.Second)
	}
	if got := a.Psql(t, "SELECT count(*) FROM pg_stat_wal_receiver"); got != "0" {
		t.Errorf("the archive-only standby streams: pg_stat_wal_receiver has %s rows", got)
	}
}
