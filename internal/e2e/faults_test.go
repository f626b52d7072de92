package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/wktest"
)

// truncateTable cuts every table file of the index to half its size.
func truncateTable(t *testing.T, home string) {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(home, "index", "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("the index has no table file to damage")
	}
	for _, f := range ssts {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, st.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDamagedIndexRecovered: with a truncated index table, every command that reads the
// index gives a one-line error naming the index and the rebuild command (no panic);
// the daemon moves the damaged index aside and rebuilds it by itself, and `index
// rebuild` does the same without a daemon; status figures equal the ones before.
func TestDamagedIndexRecovered(t *testing.T) {
	env := newEnv(t)
	pg, segs := segmentsOf(t, 3)
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	for _, s := range segs {
		env.MustRun(t, "archive-wal", "pg1", s)
	}
	d := env.StartDaemon(t)
	wktest.Eventually(t, 30*time.Second, "incoming/ to drain", func() bool {
		return len(listDir(t, filepath.Join(env.Home, "pg1", "incoming"))) == 0
	})
	d.Stop(t)
	var before status
	env.JSON(t, &before, "status", "pg1")

	truncateTable(t, env.Home)
	for _, args := range [][]string{
		{"status", "pg1"}, {"status", "pg1", "--json"}, {"list-backups", "pg1"}, {"list-servers"},
		{"check", "pg1"}, {"show-backup", "pg1", "latest"}, {"retention", "pg1", "--dry-run"},
	} {
		r := env.Run(args...)
		msg := strings.TrimRight(r.Stderr, "\n")
		if strings.Contains(r.Stderr+r.Stdout, "panic") || strings.Contains(r.Stderr, "goroutine ") {
			t.Fatalf("%v panicked: %s", args, r.Stderr)
		}
		if r.Code == 0 {
			t.Fatalf("%v succeeded on a damaged index: %s", args, r.Stdout)
		}
		if args[0] == "check" {
			// check reports it as a failed check, on its one line.
			msg = ""
			for _, l := range strings.Split(r.Stdout, "\n") {
				if strings.Contains(l, "FAILED") && strings.Contains(l, "index") {
					msg = l
				}
			}
		}
		if strings.Contains(msg, "\n") || !strings.Contains(msg, filepath.Join(env.Home, "index")) ||
			!strings.Contains(msg, "walkeeper index rebuild SERVER") {
			t.Fatalf("%v: exit %d, want one line naming the index and the rebuild command, got %q", args, r.Code, r.Stderr)
		}
	}

	d = env.StartDaemon(t)
	if d.Exited() {
		t.Fatalf("the daemon did not start on a damaged index:\n%s", d.Output())
	}
	if !strings.Contains(d.Output(), "the index is damaged: moved it aside") {
		t.Fatalf("the daemon did not say it moved the damaged index aside:\n%s", d.Output())
	}
	d.Stop(t)
	var afterDaemon status
	env.JSON(t, &afterDaemon, "status", "pg1")
	if string(afterDaemon.Archive) != string(before.Archive) {
		t.Fatalf("status after the daemon's rebuild differs:\nbefore %s\nafter  %s", before.Archive, afterDaemon.Archive)
	}

	truncateTable(t, env.Home)
	out := env.MustRun(t, "index", "rebuild", "pg1")
	if !strings.Contains(out, "moved it aside to "+filepath.Join(env.Home, "index.broken-")) {
		t.Fatalf("index rebuild of a damaged index: %q", out)
	}
	var afterRebuild status
	env.JSON(t, &afterRebuild, "status", "pg1")
	if string(afterRebuild.Archive) != string(before.Archive) {
		t.Fatalf("status after index rebuild differs:\nbefore %s\nafter  %s", before.Archive, afterRebuild.Archive)
	}
	broken, _ := filepath.Glob(filepath.Join(env.Home, "index.broken-*"))
	if len(broken) != 2 {
		t.Fatalf("want the two damaged indexes kept aside, found %v", broken)
	}
}
