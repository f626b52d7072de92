package retention_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/retention"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// TestDeleteRespectsRedundancyAndLock: with minimum_redundancy 2 and two DONE backups
// of a real primary, `delete` refuses and changes nothing; while the retention lock
// is held, `delete --force` gives up after --lock-wait, and without a short wait it
// waits for the lock and deletes only once it is released.
func TestDeleteRespectsRedundancyAndLock(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{"minimum_redundancy": "2"}})
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	var ids []string
	for i := 0; i < 2; i++ {
		var b struct {
			ID string `json:"id"`
		}
		env.JSON(t, &b, "backup", "pg1")
		ids = append(ids, b.ID)
	}
	listed := func() string {
		var bs []backupRow
		env.JSON(t, &bs, "list-backups", "pg1")
		var out []string
		for _, b := range bs {
			out = append(out, b.ID+":"+b.Status)
		}
		return strings.Join(out, ",")
	}
	before, treeBefore := listed(), tree(t, filepath.Join(env.Home, "pg1", "base"))
	if _, err := os.Stat(filepath.Join(env.Home, "pg1", "base", ids[0])); err != nil {
		t.Fatal(err)
	}

	r := env.Run("delete", "pg1", "oldest")
	if r.Code != 1 || !strings.Contains(r.Stderr, "would leave 1 DONE backup(s), below minimum_redundancy 2") || !strings.Contains(r.Stderr, "--force") {
		t.Errorf("delete below minimum_redundancy: exit %d %q", r.Code, r.Stderr)
	}
	if got := listed(); got != before {
		t.Errorf("refused delete changed the list of backups: %s, was %s", got, before)
	}
	if after := tree(t, filepath.Join(env.Home, "pg1", "base")); len(after) != len(treeBefore) {
		t.Errorf("refused delete changed base/: %d files, was %d", len(after), len(treeBefore))
	}

	// The retention lock, held here as a retention run would hold it.
	lockFile := filepath.Join(env.Home, "pg1", retention.LockName)
	lock, err := retention.LockServer(context.Background(), filepath.Join(env.Home, "pg1"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	if err := pgtest.Chown(lockFile); err != nil {
		t.Fatal(err)
	}
	r = env.Run("delete", "pg1", ids[0], "--force", "--lock-wait", "1s")
	if r.Code != 1 || !strings.Contains(r.Stderr, "retention lock") || !strings.Contains(r.Stderr, "another retention run, keep or delete holds it") {
		t.Errorf("delete under a held lock: exit %d %q", r.Code, r.Stderr)
	}
	if got := listed(); got != before {
		t.Errorf("delete under a held lock changed the list of backups: %s", got)
	}

	cmd := exec.Command(env.Bin, "--config", env.Config, "delete", "pg1", ids[0], "--force")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	pgtest.RunAs(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("delete finished while the retention lock was held: %v %s", err, out.String())
	case <-time.After(2 * time.Second):
	}
	if got := listed(); got != before {
		t.Errorf("a waiting delete changed the list of backups: %s", got)
	}
	lock.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("delete after the lock was released: %v %s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("delete did not finish after the lock was released")
	}
	if got := listed(); strings.Contains(got, ids[0]) || !strings.Contains(got, ids[1]) {
		t.Errorf("after the forced delete: %s", got)
	}
	if _, err := os.Stat(filepath.Join(env.Home, "pg1", "base", ids[0])); !os.IsNotExist(err) {
		t.Errorf("backup directory left: %v", err)
	}
}
