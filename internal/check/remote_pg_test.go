package check_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/check"
	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/sshtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// TestCheckRemoteServer: a server whose WAL comes from another host (walkeeper's home
// owned by the walkeeper OS user, PostgreSQL as postgres, archive_command through a
// real sshd). check says which side to look at: an ssh archive_command that fails is
// the database host's problem, quoted from its server log (ssh's own error line); an
// archive_command that succeeds without the file reaching this host (walkeeper
// archive-wal run on the database host with its own home: the README's old quick
// start followed literally) is named as delivering elsewhere, with the ssh put-wal
// form to paste.
func TestCheckRemoteServer(t *testing.T) {
	pgtest.SkipShort(t)
	sshd := sshtest.Start(t, pgtest.WalkeeperUser)
	toBackup := sshd.Command(t, pgtest.PGUser, pgtest.WalkeeperUser)
	env := wktest.NewRemote(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	// The database host's own walkeeper installation, the postgres user's.
	dbHost := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	pg := pgtest.New(t, "remote", pgtest.Options{
		ArchiveCommand: dbHost.ArchiveCommand("pg1"),
		Conf:           map[string]string{"logging_collector": "on", "log_directory": "log", "archive_timeout": "0"},
	})
	for _, e := range []*wktest.Env{env, dbHost} {
		e.Servers[0].Settings["conninfo"] = pg.ConnString("")
		e.WriteConfig(t)
	}
	ls := exec.Command("ls", env.Home)
	pgtest.RunAs(ls)
	if out, err := ls.CombinedOutput(); err == nil {
		t.Fatalf("the postgres user can read walkeeper's home %s: %s", env.Home, out)
	}

	// Archived on the database host's own disk: PostgreSQL counts it archived.
	pg.Psql(t, "CREATE TABLE w AS SELECT 1")
	seg := pg.Psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	waitLogged(t, pg, "SELECT last_archived_wal FROM pg_stat_archiver", seg)
	res, r := checks(t, env, "pg1")
	x := res[check.CheckArchiver]
	if r.Code != 1 || x.OK || !strings.Contains(x.Detail, seg+" never reached this host") ||
		!strings.Contains(x.Hint, "archive_command succeeds on the database host without delivering here") {
		t.Errorf("archive_command writing on the database host: exit %d, %+v", r.Code, x)
	}

	// Through ssh to a port where nothing listens: the failure and ssh's error.
	dead := strings.Replace(toBackup, "-p "+strconv.Itoa(sshd.Port), "-p "+strconv.Itoa(pgtest.FreePort(t)), 1)
	pg.SetConf(t, map[string]string{"archive_command": dead + " " + env.Bin + " --config " + env.Config + " put-wal pg1 %f < %p || exit 1"})
	pg.Psql(t, "CREATE TABLE x AS SELECT 1")
	failed := pg.Psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	waitLogged(t, pg, "SELECT last_failed_wal FROM pg_stat_archiver", failed)
	res, r = checks(t, env, "pg1")
	x = res[check.CheckArchiver]
	if r.Code != 1 || x.OK || !strings.Contains(x.Detail, "last for "+failed) || !strings.Contains(x.Detail, "Connection refused") ||
		!strings.Contains(x.Hint, "fails on the database host (PostgreSQL's side)") || !strings.Contains(x.Hint, "ssh's key") {
		t.Errorf("ssh archive_command failing: exit %d, %+v", r.Code, x)
	}
	if a := res[check.CheckArchiving]; !a.OK {
		t.Errorf("an archive_command running put-wal pg1 through ssh is not recognized: %+v", a)
	}
}

// waitLogged waits for sql to return want, and shows the server's own log directory
// (logging_collector = on) when it does not.
func waitLogged(t *testing.T, pg *pgtest.Cluster, sql, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := pg.PsqlErr(sql)
		if err == nil && strings.TrimSpace(got) == want {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := filepath.Glob(filepath.Join(pg.Dir, "log", "*"))
			var b strings.Builder
			for _, l := range logs {
				data, _ := os.ReadFile(l)
				b.Write(data)
			}
			t.Fatalf("%s: %q (%v), want %q; server log:\n%s", sql, got, err, want, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
