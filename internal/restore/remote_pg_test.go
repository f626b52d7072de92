package restore_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/restore"
	"github.com/walkeeper/walkeeper/internal/sshtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// TestTwoHostRestore: the backup host and the database host simulated honestly on one
// machine. walkeeper's home belongs to the walkeeper OS user (0700), which the postgres
// user cannot read; PostgreSQL archives through a real sshd into put-wal; `restore
// --remote-ssh-command` writes the cluster into a directory of the postgres user
// through ssh, and its restore_command fetches each WAL file back through ssh on
// demand (--wal-ssh-command; nothing is copied up front): a restore to a target time
// lands exactly there (rows checked), and a standby made with --standby follows the
// archive while the primary writes, once with ssh alone on the restored host and once
// with its own walkeeper binary (get-wal --ssh with prefetch).
func TestTwoHostRestore(t *testing.T) {
	pgtest.SkipShort(t)
	pgtest.RequireWalkeeperUser(t)
	sshd := sshtest.Start(t, pgtest.WalkeeperUser, pgtest.PGUser)
	toBackup := sshd.Command(t, pgtest.PGUser, pgtest.WalkeeperUser) // run by PostgreSQL
	toDB := sshd.Command(t, pgtest.WalkeeperUser, pgtest.PGUser)     // run by walkeeper restore
	env := wktest.NewRemote(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	if r := env.Run("put-wal", "--help"); r.Code != 0 {
		t.Skip("this walkeeper has no put-wal yet (branch h14a): the two-host restore needs it and get-wal's '-' destination")
	}
	remote := env.Bin + " --config " + env.Config
	primary := pgtest.New(t, "primary", pgtest.Options{
		ArchiveCommand: toBackup + " " + remote + " put-wal pg1 %f < %p || exit 1",
		Conf:           map[string]string{"track_commit_timestamp": "on"},
	})
	env.Servers[0].Settings["conninfo"] = primary.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	ls := exec.Command("ls", env.Home)
	pgtest.RunAs(ls)
	if out, err := ls.CombinedOutput(); err == nil {
		t.Fatalf("the postgres user reads walkeeper's home: %s", out)
	}

	primary.Psql(t, "CREATE TABLE marks (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
	var backup struct {
		ID string `json:"id"`
	}
	env.JSON(t, &backup, "backup", "pg1")
	// Marks 1..6 in commits of their own, with a segment switch between each pair so
	// that recovery needs several segments after the backup (all fetched through ssh).
	var commitTS []string
	for i := 1; i <= 6; i++ {
		primary.Psql(t, fmt.Sprintf("INSERT INTO marks (id) VALUES (%d)", i))
		commitTS = append(commitTS, primary.Psql(t, fmt.Sprintf(
			"SELECT to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' FROM marks WHERE id = %d", i)))
		if i%2 == 0 {
			primary.Psql(t, "SELECT pg_switch_wal()")
		}
		time.Sleep(20 * time.Millisecond)
	}
	env.MustRun(t, "switch-wal", "pg1", "--wait")

	dbHost := pgtest.TempDir(t) // the "database host"'s directory, the postgres user's
	var res struct {
		Remote         string `json:"remote"`
		WALMode        string `json:"wal_mode"`
		WALFiles       int    `json:"wal_files"`
		RestoreCommand string `json:"restore_command"`
		Standby        bool   `json:"standby"`
	}
	pitr := filepath.Join(dbHost, "pitr")
	env.JSON(t, &res, "restore", "pg1", backup.ID, pitr, "--remote-ssh-command", toDB, "--wal-ssh-command", toBackup,
		"--target-time", commitTS[3], "--target-action", "promote")
	if res.Remote == "" || res.WALMode != "get-wal" || res.WALFiles != 0 || !strings.Contains(res.RestoreCommand, " get-wal pg1 %f - > %p") {
		t.Errorf("remote restore with WAL through ssh: %+v", res)
	}
	if fi, err := os.Stat(filepath.Join(pitr, "PG_VERSION")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(pgUID()) {
		t.Fatalf("restored files are not the postgres user's (written through ssh as that user): %v", err)
	}
	if _, err := os.Stat(filepath.Join(pitr, "pg_wal", "walkeeper_wal")); !os.IsNotExist(err) {
		t.Errorf("WAL was copied up front: %v", err)
	}
	pg := pgtest.FromDataDir(t, "pitr", pitr)
	pg.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := pg.Psql(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM marks"); got != "1,2,3,4" {
		t.Errorf("restore to %s (mark 4's commit): marks %q, want 1,2,3,4", commitTS[3], got)
	}
	log, _ := os.ReadFile(pg.LogFile)
	if n := strings.Count(string(log), "restored log file"); n < 3 {
		t.Errorf("the restored cluster fetched %d WAL files through restore_command, want several:\n%s", n, log)
	}
	pg.Stop(t, "fast")

	// The same restore with walkeeper on the restored host: get-wal --ssh --prefetch, the
	// prefetcher reading the archive over one ssh session to send-wal. Paused at the
	// target, the spool it filled is still there to see.
	pitr = filepath.Join(dbHost, "pitr-prefetch")
	env.JSON(t, &res, "restore", "pg1", backup.ID, pitr, "--remote-ssh-command", toDB, "--wal-ssh-command", toBackup,
		"--remote-walkeeper", env.Bin, "--target-time", commitTS[3], "--target-action", "pause")
	if !strings.Contains(res.RestoreCommand, " get-wal --ssh ") || !strings.Contains(res.RestoreCommand, " --prefetch ") {
		t.Errorf("remote restore with --remote-walkeeper: restore_command %q, want get-wal --ssh with --prefetch", res.RestoreCommand)
	}
	pg = pgtest.FromDataDir(t, "pitr-prefetch", pitr)
	pg.WaitFor(t, "SELECT pg_is_wal_replay_paused()", "t", 120*time.Second)
	if got := pg.Psql(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM marks"); got != "1,2,3,4" {
		t.Errorf("restore through get-wal --ssh --prefetch to %s (mark 4's commit): marks %q, want 1,2,3,4", commitTS[3], got)
	}
	if _, err := os.Stat(filepath.Join(pitr, "pg_wal", restore.SpoolDirName)); err != nil {
		t.Errorf("no prefetch spool in the restored pg_wal: %v", err)
	}
	pg.Stop(t, "fast")

	// Standbys, without and with walkeeper on the restored host.
	standbys := map[string]*pgtest.Cluster{}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"ssh-only", nil, " get-wal --standby pg1 %f - > %p || exit 1"},
		{"with-binary", []string{"--remote-walkeeper", env.Bin}, " get-wal --ssh "},
	} {
		dest := filepath.Join(dbHost, c.name)
		args := append([]string{"restore", "pg1", "latest", dest, "--remote-ssh-command", toDB, "--wal-ssh-command", toBackup, "--standby"}, c.args...)
		env.JSON(t, &res, args...)
		if !res.Standby || !strings.Contains(res.RestoreCommand, c.want) {
			t.Errorf("%s: %+v, want a restore_command with %q", c.name, res, c.want)
		}
		standbyConf(t, dest)
		s := pgtest.FromDataDir(t, c.name, dest)
		s.WaitFor(t, "SELECT pg_is_in_recovery()", "t", 60*time.Second)
		standbys[c.name] = s
	}
	for round := 0; round < 2; round++ {
		primary.Psql(t, fmt.Sprintf("INSERT INTO marks (id) SELECT generate_series(%d, %d)", 100+round*100, 150+round*100))
		env.MustRun(t, "switch-wal", "pg1", "--wait")
		want := primary.Psql(t, "SELECT count(*) || ',' || max(id) FROM marks")
		for name, s := range standbys {
			s.WaitFor(t, "SELECT count(*) || ',' || max(id) FROM marks", want, 90*time.Second)
			t.Logf("%s follows: %s", name, want)
		}
	}
}

func pgUID() int {
	uid, _ := pgtest.PGUID()
	return uid
}
