package sshtest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// TestBothWays: each client user logs in as the other with its own key, and as no
// user the sshd was not started for.
func TestBothWays(t *testing.T) {
	pgtest.SkipShort(t)
	pgtest.RequireWalkeeperUser(t)
	s := Start(t, pgtest.PGUser, pgtest.WalkeeperUser)
	for _, c := range []struct{ from, to string }{{pgtest.WalkeeperUser, pgtest.PGUser}, {pgtest.PGUser, pgtest.WalkeeperUser}} {
		cmd := exec.Command("sh", "-c", s.Command(t, c.from, c.to)+" id -un")
		if err := pgtest.RunAsUser(cmd, c.from); err != nil {
			t.Fatal(err)
		}
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != c.to {
			t.Errorf("%s -> %s: %q %v", c.from, c.to, out, err)
		}
	}
	cmd := exec.Command("sh", "-c", strings.Replace(s.Command(t, pgtest.PGUser, pgtest.WalkeeperUser), pgtest.WalkeeperUser+"@", "root@", 1)+" true")
	pgtest.RunAs(cmd)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("root let in: %s", out)
	}
}
