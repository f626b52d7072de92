package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

// vmHWM is a process's peak resident set size, from /proc/PID/status.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return l[len(l)-1]
}

// TestConfigContract: configuration errors are bad usage (exit 2) on one line; a
// [index] section is refused; a group-readable file holding a password is warned about
// in one line.
func TestConfigContract(t *testing.T) {
	env := newEnv(t)
	write := func(body string, mode os.FileMode) {
		t.Helper()
		writeFile(t, env.Config, []byte(fmt.Sprintf("[walkeeper]\nhome = %s\n", env.Home)+body))
		if err := os.Chmod(env.Config, mode); err != nil {
			t.Fatal(err)
		}
	}
	oneLine := func(what string, r wktest.Result, code int, want string) {
		t.Helper()
		msg := strings.TrimRight(r.Stderr, "\n")
		if r.Code != code || strings.Contains(msg, "\n") || !strings.Contains(msg, want) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want one line with %q)", what, r.Code, code, r.Stderr, want)
		}
	}
	write("[pg1\nconninfo = host=x\n", 0o600)
	oneLine("INI syntax error", env.Run("status", "pg1"), 2, "unclosed section")
	write("[pg1]\nconninfo = host=x\ncompresion = zstd\n", 0o600)
	oneLine("unknown option", env.Run("list-backups", "pg1"), 2, `unknown option "compresion"`)
	write("[index]\nconninfo = host=x\n", 0o600)
	oneLine("[index] section", env.Run("status", "index"), 2, "[index]: the name is reserved")
	oneLine("[index] section, watch", env.Run("watch"), 2, "[index]: the name is reserved")
	r := env.Run("--config", filepath.Join(env.Dir, "nosuch.conf"), "status", "pg1")
	oneLine("missing config file", r, 2, "nosuch.conf")
	write("[pg1]\nconninfo = host=127.0.0.1 port=1 password=s3cret\n", 0o640)
	r = env.Run("list-backups", "pg1")
	if r.Code != 0 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "chmod 600 "+env.Config) || strings.Contains(r.Stderr, "s3cret") {
		t.Errorf("group-readable config with a password: exit %d, stderr %q", r.Code, r.Stderr)
	}
	write("[pg1]\nconninfo = host=127.0.0.1 port=1 password=s3cret\n", 0o600)
	if r := env.Run("list-backups", "pg1"); r.Code != 0 || r.Stderr != "" {
		t.Errorf("0600 config: exit %d, stderr %q", r.Code, r.Stderr)
	}
	oneLine("unknown flag", env.Run("status", "pg1", "--nosuch"), 2, "unknown flag --nosuch")
}

// TestSIGTERMWithFilesInFlight: files made visible in incoming/ all at once, and the
// daemon sent SIGTERM right after: it exits 0 having finished what it was working on;
// every file is then either archived (byte-identical through get-wal) or still in
// incoming/, none quarantined; after a restart all are archived.
func TestSIGTERMWithFilesInFlight(t *testing.T) {
	env := newEnv(t)
	pg, segs := segmentsOf(t, 8)
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	incoming := filepath.Join(env.Home, "pg1", "incoming")
	d := env.StartDaemon(t)
	// The daemon makes incoming/ as it sets up its watch, which may come after
	// StartDaemon returned.
	wktest.Eventually(t, 30*time.Second, "the daemon made incoming/", func() bool {
		fi, err := os.Stat(incoming)
		return err == nil && fi.IsDir()
	})
	var tmps []string
	for _, s := range segs {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(incoming, ".wk-tmp-"+filepath.Base(s))
		writeFile(t, tmp, data)
		tmps = append(tmps, tmp)
	}
	for i, tmp := range tmps {
		if err := os.Rename(tmp, filepath.Join(incoming, filepath.Base(segs[i]))); err != nil {
			t.Fatal(err)
		}
	}
	d.Stop(t) // SIGTERM; fails the test unless the daemon exits 0
	left := map[string]bool{}
	for _, n := range listDir(t, incoming) {
		left[n] = true
	}
	archivedAtStop := 0
	for _, s := range segs {
		name := filepath.Base(s)
		found, _ := filepath.Glob(filepath.Join(env.Home, "pg1", "wals", "*", name+"*"))
		if len(found) == 0 && !left[name] {
			t.Fatalf("%s is neither archived nor in incoming/ after SIGTERM", name)
		}
		if len(found) == 1 {
			archivedAtStop++
			want, _ := os.ReadFile(s)
			if got := getWAL(t, env, name); !bytes.Equal(got, want) {
				t.Fatalf("%s: archived copy differs after SIGTERM", name)
			}
		}
	}
	if errs := listDir(t, filepath.Join(env.Home, "pg1", "errors")); len(errs) != 0 {
		t.Fatalf("files quarantined by a SIGTERM: %v", errs)
	}
	env.StartDaemon(t)
	wktest.Eventually(t, 60*time.Second, "incoming/ to drain after the restart", func() bool { return len(listDir(t, incoming)) == 0 })
	for _, s := range segs {
		want, _ := os.ReadFile(s)
		if got := getWAL(t, env, filepath.Base(s)); !bytes.Equal(got, want) {
			t.Fatalf("%s: archived copy differs from the original", filepath.Base(s))
		}
	}
	var st status
	env.JSON(t, &st, "status", "pg1")
	var arch struct{ Files int64 }
	_ = json.Unmarshal(st.Archive, &arch)
	if arch.Files != int64(len(segs)) || st.ErrorFiles != 0 {
		t.Fatalf("after the restart: %d files indexed (want %d), %d quarantined", arch.Files, len(segs), st.ErrorFiles)
	}
	t.Logf("at SIGTERM: %d of %d archived, %d left in incoming/", archivedAtStop, len(segs), len(left))
}
