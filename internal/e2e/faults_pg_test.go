package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// TestHugeIncomingFileQuarantined: a 4 GiB file (sparse) under a segment's name dropped
// into incoming/ is quarantined by its size alone, with the reason, while the daemon's
// peak RSS stays under 200 MB; the daemon goes on archiving.
func TestHugeIncomingFileQuarantined(t *testing.T) {
	env, segs := envWithSegments(t, 2)
	env.MustRun(t, "archive-wal", "pg1", segs[0])
	d := env.StartDaemon(t)
	incoming := filepath.Join(env.Home, "pg1", "incoming")
	drained(t, env, 30*time.Second)

	const huge = "0000000100000000000000F0"
	tmp := filepath.Join(incoming, ".wk-tmp-huge")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := pgtest.Chown(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(incoming, huge)); err != nil {
		t.Fatal(err)
	}
	var st status
	wktest.Eventually(t, 60*time.Second, "the 4 GiB file to be quarantined", func() bool {
		env.JSON(t, &st, "status", "pg1")
		return st.ErrorFiles == 1
	})
	if len(st.Errors) != 1 || !strings.HasPrefix(st.Errors[0].File, huge+".") || !strings.Contains(st.Errors[0].Reason, "size 4294967296 bytes is larger than") {
		t.Fatalf("quarantine: %+v", st.Errors)
	}
	// The daemon still archives.
	env.MustRun(t, "archive-wal", "pg1", segs[1])
	drained(t, env, 30*time.Second)
	hwm := vmHWM(t, d.PID())
	if hwm >= 200<<20 {
		t.Fatalf("daemon peak RSS %d MB, want < 200 MB", hwm>>20)
	}
	t.Logf("daemon peak RSS (VmHWM) %d MB after a 4 GiB file in incoming/", hwm>>20)
	d.Stop(t)

	// With the daemon stopped, 4 GiB files wait in incoming/ under a segment's, a
	// .partial's and a history file's name. get-wal (invariant 9 reads incoming/)
	// does not serve them and does not read them: it took 11 GiB before. The daemon
	// started afterwards quarantines them all, its memory bounded the same way.
	waiting := []string{"0000000100000000000000F2", "0000000100000000000000F3.partial", "00000002.history"}
	for _, n := range waiting {
		p := filepath.Join(incoming, n)
		writeFile(t, p, nil)
		if err := os.Truncate(p, 4<<30); err != nil {
			t.Fatal(err)
		}
	}
	if err := pgtest.Chown(incoming); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(env.Dir, "RECOVERYXLOG")
	// Linux counts the forking test binary's own peak into an exec'd child's maxrss
	// (exec records the old mm's high-water mark), so the bound is over a baseline:
	// a command that reads nothing, started the same way.
	base := env.Run("--version").MaxRSS
	for _, n := range []string{"0000000100000000000000F2", "0000000100000000000000F3", "00000002.history"} {
		r := env.Run("get-wal", "pg1", n, dest)
		if r.Code != 1 || r.MaxRSS-base >= 200<<20 {
			t.Errorf("get-wal %s with a 4 GiB file waiting: exit %d, peak RSS %d MB over the %d MB of `walkeeper --version` (want 1, < 200 MB): %s", n, r.Code, (r.MaxRSS-base)>>20, base>>20, r.Stderr)
		}
	}
	d = env.StartDaemon(t)
	wktest.Eventually(t, 60*time.Second, "the waiting 4 GiB files to be quarantined", func() bool {
		env.JSON(t, &st, "status", "pg1")
		return st.ErrorFiles == 1+len(waiting)
	})
	if hwm := vmHWM(t, d.PID()); hwm >= 200<<20 {
		t.Fatalf("daemon started with 4 GiB files waiting: peak RSS %d MB, want < 200 MB", hwm>>20)
	}
	d.Stop(t)
}

// TestStaleTempsRemoved: the daemon's start removes temp files of killed writers: in
// wals/ all of them (only the daemon writes there), in incoming/ those older than ten
// minutes; a fresh one in incoming/ (archive-wal may be writing it) stays.
func TestStaleTempsRemoved(t *testing.T) {
	env := newEnv(t)
	env.Servers[0].Settings["conninfo"] = "host=127.0.0.1 port=1 user=postgres dbname=postgres sslmode=disable connect_timeout=1"
	env.WriteConfig(t)
	old := time.Now().Add(-time.Hour)
	mk := func(rel string, mtime time.Time) string {
		p := filepath.Join(env.Home, "pg1", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, []byte("partial copy"))
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	staleWAL := mk("wals/0000000100000000/.wk-tmp-000000010000000000000003.zst-0a1b2c", time.Now())
	staleIn := mk("incoming/.wk-tmp-000000010000000000000004-0a1b2c", old)
	freshIn := mk("incoming/.wk-tmp-000000010000000000000005-0a1b2c", time.Now())
	if err := pgtest.Chown(env.Home); err != nil {
		t.Fatal(err)
	}
	d := env.StartDaemon(t)
	for p, want := range map[string]bool{staleWAL: false, staleIn: false, freshIn: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", p, err == nil, want)
		}
	}
	if !strings.Contains(d.Output(), "removed temporary files of interrupted writes") {
		t.Errorf("the daemon did not log what it removed:\n%s", d.Output())
	}
	d.Stop(t)
}

// TestKilledBackupInterrupted: a backup killed with SIGKILL while it runs shows as
// FAILED (interrupted) at once in list-backups and check, not STARTED until the next
// backup.
func TestKilledBackupInterrupted(t *testing.T) {
	env := newEnv(t)
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.Servers[0].Settings["bandwidth_limit"] = "1MB" // slow enough to be caught running
	env.WriteConfig(t)
	pg.PgBench(t, "-i", "-s", "2", "-q")
	env.StartDaemon(t)

	cmd := exec.Command(env.Bin, "--config", env.Config, "backup", "pg1")
	pgtest.RunAs(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	type row struct{ ID, Status, Error string }
	var rows []row
	wktest.Eventually(t, 30*time.Second, "the backup to be STARTED", func() bool {
		env.JSON(t, &rows, "list-backups", "pg1")
		return len(rows) == 1 && rows[0].Status == "STARTED"
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	env.JSON(t, &rows, "list-backups", "pg1")
	if len(rows) != 1 || rows[0].Status != "FAILED" || !strings.Contains(rows[0].Error, "interrupted: no process holds the backup lock") {
		t.Fatalf("list-backups after the backup process was killed: %+v", rows)
	}
	r := env.Run("check", "pg1")
	if r.Code != 1 || !strings.Contains(r.Stdout, "FAILED backup(s) since the last DONE one; newest "+rows[0].ID+": interrupted") {
		t.Fatalf("check after the backup process was killed: exit %d\n%s", r.Code, r.Stdout)
	}
}

// TestBackupWaitNamesReceiver: on a streaming-only server (archive_mode off,
// streaming_archiver on) whose receiver is not running, a backup that times out
// waiting for WAL names the receiver, not archive_command.
func TestBackupWaitNamesReceiver(t *testing.T) {
	env := newEnv(t)
	pg := pgtest.New(t, "primary", pgtest.Options{})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.Servers[0].Settings["streaming_archiver"] = "on"
	env.WriteConfig(t)
	r := env.Run("backup", "pg1", "--wait-timeout", "2s")
	if r.Code != 1 {
		t.Fatalf("backup without a receiver: exit %d\n%s", r.Code, r.Stderr)
	}
	last := lastLine(r.Stderr)
	if !strings.Contains(last, "the streaming receiver of pg1 is not running") || strings.Contains(last, "archive_command") {
		t.Fatalf("backup timeout on a streaming-only server: %q", last)
	}
}

// TestDamagedIndexRecovered: with a truncated index table, every command that reads the
// index gives a one-line error naming the index and the rebuild command (no panic);
// the daemon moves the damaged index aside and rebuilds it by itself, and `index
// rebuild` does the same without a daemon; status figures equal the ones before.
func TestDamagedIndexRecovered(t *testing.T) {
	env, segs := envWithSegments(t, 3)
	for _, s := range segs {
		env.MustRun(t, "archive-wal", "pg1", s)
	}
	d := env.StartDaemon(t)
	drained(t, env, 30*time.Second)
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

// TestSIGTERMWithFilesInFlight: files made visible in incoming/ all at once, and the
// daemon sent SIGTERM right after: it exits 0 having finished what it was working on;
// every file is then either archived (byte-identical through get-wal) or still in
// incoming/, none quarantined; after a restart all are archived.
func TestSIGTERMWithFilesInFlight(t *testing.T) {
	env, segs := envWithSegments(t, 8)
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

// TestTruncatedMemtableLogRepaired: after the daemon is killed (SIGKILL), its newest
// index records live only in badger's memtable log (*.mem). Truncated, badger opens
// without a word and without them; the daemon's start compares the index with the
// archive, says so, and restores the records: status figures equal the ones before.
func TestTruncatedMemtableLogRepaired(t *testing.T) {
	env, segs := envWithSegments(t, 3)
	env.MustRun(t, "archive-wal", "pg1", segs[0])
	d := env.StartDaemon(t)
	drained(t, env, 30*time.Second)
	d.Stop(t) // the first record is in a table file now
	d = env.StartDaemon(t)
	for _, s := range segs[1:] {
		env.MustRun(t, "archive-wal", "pg1", s)
	}
	drained(t, env, 30*time.Second)
	var before status
	env.JSON(t, &before, "status", "pg1")
	d.Kill()
	mems, _ := filepath.Glob(filepath.Join(env.Home, "index", "*.mem"))
	if len(mems) == 0 {
		t.Fatal("no memtable log after the daemon was killed")
	}
	for _, m := range mems {
		if err := os.Truncate(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A command run before the daemon starts either says the index is damaged (in one
	// line naming the rebuild) or repairs it and shows the figures of before: badger's
	// cleanup of a failed open used to leave an index that the next command opened
	// without a word and without the lost records.
	for i := 0; i < 2; i++ {
		r := env.Run("--json", "status", "pg1")
		var st status
		_ = json.Unmarshal([]byte(r.Stdout), &st)
		switch {
		case r.Code != 0:
			if msg := strings.TrimSpace(r.Stderr); strings.Contains(msg, "\n") || !strings.Contains(msg, "walkeeper index rebuild") {
				t.Fatalf("status %d with the memtable log truncated: exit %d, not one line naming the rebuild: %q", i, r.Code, r.Stderr)
			}
		case string(st.Archive) != string(before.Archive):
			t.Fatalf("status %d with the memtable log truncated (no daemon): exit 0 with other figures, no error:\nbefore %s\nnow    %s", i, before.Archive, st.Archive)
		}
	}

	d = env.StartDaemon(t)
	if out := d.Output(); !strings.Contains(out, "the index did not match the archive: repaired it") && !strings.Contains(out, "the index is damaged: moved it aside") {
		t.Errorf("the daemon did not say it repaired the index:\n%s", out)
	}
	var after status
	env.JSON(t, &after, "status", "pg1")
	d.Stop(t)
	if string(after.Archive) != string(before.Archive) {
		t.Fatalf("status after the daemon's repair differs:\nbefore %s\nafter  %s", before.Archive, after.Archive)
	}
	// A matching index is left alone on the next start.
	d = env.StartDaemon(t)
	d.Stop(t)
	if strings.Contains(d.Output(), "did not match") {
		t.Fatalf("a matching index was repaired again:\n%s", d.Output())
	}
}
