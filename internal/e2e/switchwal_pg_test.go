package e2e

import (
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// TestSwitchWALOnStandby: a server section whose conninfo is a standby (archive_mode =
// always, archiving into walkeeper). pg_switch_wal works only on a primary: without
// primary_conninfo switch-wal says which setting is missing; with it, it switches on
// the primary and --wait sees the standby archive the closed segment (it failed with
// "recovery is in progress" whatever the configuration said).
func TestSwitchWALOnStandby(t *testing.T) {
	env := newEnv(t)
	pg := pgtest.New(t, "primary", pgtest.Options{})
	standby := pgtest.NewStandby(t, "standby", pg, map[string]string{
		"archive_mode": "always", "archive_command": env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = standby.ConnString("")
	env.WriteConfig(t)
	d := env.StartDaemon(t)
	defer d.Stop(t)

	r := env.Run("switch-wal", "pg1")
	if r.Code != 1 || !strings.Contains(r.Stderr, "standby") || !strings.Contains(r.Stderr, "primary_conninfo") {
		t.Fatalf("switch-wal on a standby without primary_conninfo: exit %d, stderr %q (want 1 naming primary_conninfo)", r.Code, r.Stderr)
	}
	pg.Psql(t, "CREATE TABLE written_since_the_backup()") // else pg_switch_wal closes nothing new
	env.Servers[0].Settings["primary_conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	r = env.Run("switch-wal", "pg1", "--wait", "--timeout", "20s")
	if r.Code != 0 {
		t.Fatalf("switch-wal --wait through primary_conninfo: exit %d, %s\nstandby log:\n%s", r.Code, r.Stderr, standby.LogTail(20))
	}
	out := r.Stdout
	if !strings.Contains(out, "archived") {
		t.Fatalf("switch-wal --wait through primary_conninfo: %q", out)
	}
}
