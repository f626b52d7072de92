package e2e

import (
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// ownedBy fails the test for the first entry under dir that uid does not own.
func ownedBy(t *testing.T, dir string, uid int, when string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if got := int(fi.Sys().(*syscall.Stat_t).Uid); got != uid {
			t.Errorf("%s: %s belongs to uid %d, want %d", when, p, got, uid)
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRootActsAsHomeOwner: a DBA's `sudo walkeeper backup`, `list-backups` with the
// daemon down and `restore` leave nothing in the postgres-owned home that the postgres
// daemon could not open (a root backup left a retention.lock it could not flock), and
// the restored cluster belongs to postgres and starts.
func TestRootActsAsHomeOwner(t *testing.T) {
	if !pgtest.IsRoot() {
		t.Skip("needs root: it runs walkeeper as root beside a postgres-owned home")
	}
	env := newEnv(t)
	pg, _ := primary(t, env, nil)
	d := env.StartDaemon(t)
	pg.Psql(t, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i")
	uid, _ := pgtest.PGUID()

	if r := env.RunAsCaller("backup", "pg1", "--wait-timeout", "60s"); r.Code != 0 {
		t.Fatalf("backup as root: exit %d: %s", r.Code, r.Stderr)
	}
	ownedBy(t, env.Home, uid, "after a root backup")
	d.Stop(t)
	if r := env.RunAsCaller("list-backups", "pg1"); r.Code != 0 || !strings.Contains(r.Stdout, "DONE") {
		t.Fatalf("list-backups as root with the daemon down: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := env.RunAsCaller("retention", "pg1"); r.Code != 0 {
		t.Fatalf("retention as root: exit %d: %s", r.Code, r.Stderr)
	}
	ownedBy(t, env.Home, uid, "after root's list-backups and retention opened the index")
	d = env.StartDaemon(t)
	env.MustRun(t, "retention", "pg1") // as postgres: the lock root used is still its own

	dest := filepath.Join(pgtest.TempDir(t), "restored")
	r := env.RunAsCaller("restore", "pg1", "latest", dest, "--target-immediate", "--target-action", "promote")
	if r.Code != 0 {
		t.Fatalf("restore as root: exit %d: %s", r.Code, r.Stderr)
	}
	ownedBy(t, dest, uid, "restored by root")
	rc := pgtest.FromDataDir(t, "restored", dest)
	rc.WaitFor(t, "SELECT count(*) FROM t", "1000", time.Minute)
	d.Stop(t)
}
