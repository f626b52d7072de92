package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// TestDamagedSegmentStopsRecovery: an archived segment is damaged (a bad disk, a bad
// copy) before a restore to the end of the archive. get-wal cannot read it, and must
// not answer "no such file" (exit 1): PostgreSQL would end recovery at the damage and
// promote a cluster that lacks every commit after it. Recovery stops there instead,
// get-wal's error in the server log; with the segment mended and the cluster started
// again, it recovers every row.
func TestDamagedSegmentStopsRecovery(t *testing.T) {
	x := newTruth(t, "", nil)
	id := x.backup(t)
	var names []string
	for i := 1; i <= 3; i++ {
		x.pg.Psql(t, fmt.Sprintf("INSERT INTO rows SELECT g, 'batch %d' FROM generate_series(%d, %d) g", i, i*1000, i*1000+999))
		names = append(names, switchWAL(t, x.pg))
	}
	waitArchived(t, x.pg, names[2])
	want := x.pg.Psql(t, "SELECT count(*), sum(id) FROM rows")
	drained(t, x.env, 60*time.Second)
	x.pg.Stop(t, "immediate")

	objs, _ := filepath.Glob(filepath.Join(x.env.Home, "pg1", "wals", "*", names[1]+"*"))
	if len(objs) != 1 {
		t.Fatalf("archived copies of %s: %v", names[1], objs)
	}
	good, err := os.ReadFile(objs[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	for i := len(bad) / 3; i < len(bad)/3+64 && i < len(bad); i++ {
		bad[i] ^= 0x5a
	}
	if err := os.WriteFile(objs[0], bad, 0o600); err != nil {
		t.Fatal(err)
	}

	dest, _ := restoreTo(t, x.env, id)
	c := pgtest.Adopt(t, "restored", dest)
	_ = c.TryStart(t) // consistent before the damage, pg_ctl may see it ready first
	deadline := time.Now().Add(120 * time.Second)
	for c.Running() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	log := c.Log()
	if c.Running() {
		t.Fatalf("the restored cluster is running past a damaged segment %s (rows %s)\n%s", names[1], c.Psql(t, "SELECT count(*), sum(id) FROM rows"), c.LogTail(30))
	}
	if !strings.Contains(log, "walkeeper: ") || !strings.Contains(log, names[1]) {
		t.Errorf("the server log does not carry get-wal's error for %s:\n%s", names[1], c.LogTail(30))
	}
	for _, s := range []string{"archive recovery complete", "selected new timeline ID"} {
		if strings.Contains(log, s) {
			t.Fatalf("recovery ended at the damaged segment (%q in the log):\n%s", s, c.LogTail(30))
		}
	}

	if err := os.WriteFile(objs[0], good, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Start(t)
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := c.Psql(t, "SELECT count(*), sum(id) FROM rows"); got != want {
		t.Fatalf("restored rows %q after the segment was mended, want %q", got, want)
	}
}
