package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// primary starts a cluster whose archive_command first keeps a plain copy of every file
// in copies/ (the oracle) and then hands it to walkeeper.
func primary(t *testing.T, env *wktest.Env, extra map[string]string) (*pgtest.Cluster, string) {
	copies := pgtest.TempDir(t)
	pg := pgtest.New(t, "primary", pgtest.Options{
		ArchiveCommand: fmt.Sprintf("cp %%p %s/%%f && %s", copies, env.ArchiveCommand("pg1")),
		Conf:           extra,
	})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	return pg, copies
}

func getWAL(t *testing.T, env *wktest.Env, name string) []byte {
	t.Helper()
	dst := filepath.Join(pgtest.TempDir(t), name)
	env.MustRun(t, "get-wal", "pg1", name, dst)
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestArchiveRoundTrip: archive_command = walkeeper archive-wal, pgbench writing many
// segments; every file PostgreSQL archived comes back byte-identical through get-wal,
// and a deleted index rebuilt from disk gives the same status figures.
func TestArchiveRoundTrip(t *testing.T) {
	env := newEnv(t)
	pg, copies := primary(t, env, nil)
	d := env.StartDaemon(t)

	pg.PgBench(t, "-i", "-s", "8", "-q")
	pg.PgBench(t, "-n", "-c", "2", "-t", "1500")
	out := env.MustRun(t, "switch-wal", "pg1", "--wait", "--timeout", "60s")
	f := strings.Fields(out) // "pg1: <segment> archived": the segment it closed
	if len(f) < 3 || f[2] != "archived" {
		t.Fatalf("switch-wal --wait: %q", out)
	}
	// Not the segment of the insert position: under load the bgwriter may have logged
	// into the next one already, which nothing will close.
	last := f[1]
	pg.WaitFor(t, "SELECT last_archived_wal >= '"+last+"' FROM pg_stat_archiver", "t", 60*time.Second)

	files := listDir(t, copies)
	if len(files) < 6 {
		t.Fatalf("expected pgbench to fill many segments, PostgreSQL archived %d files", len(files))
	}
	drained(t, env, 60*time.Second)
	for _, f := range files {
		want, err := os.ReadFile(filepath.Join(copies, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := getWAL(t, env, f); !bytes.Equal(got, want) {
			t.Fatalf("%s: get-wal returned %d bytes that differ from the %d bytes PostgreSQL archived", f, len(got), len(want))
		}
	}
	if r := env.Run("get-wal", "pg1", "0000000100000000000000FE", filepath.Join(pgtest.TempDir(t), "x")); r.Code != 1 {
		t.Fatalf("get-wal of a file that is not archived: exit %d (want 1), stderr %q", r.Code, r.Stderr)
	}

	var before status
	env.JSON(t, &before, "status", "pg1")
	if !before.DaemonRunning || before.ErrorFiles != 0 {
		t.Fatalf("status: %+v", before)
	}
	var arch struct {
		Files, Segments       int64
		RawBytes, StoredBytes int64 `json:"-"`
	}
	_ = json.Unmarshal(before.Archive, &arch)
	if arch.Files != int64(len(files)) {
		t.Fatalf("status counts %d archived files, PostgreSQL archived %d", arch.Files, len(files))
	}

	// Invariant 4: the index is derived data.
	d.Stop(t)
	var stopped status
	env.JSON(t, &stopped, "status", "pg1")
	if err := os.RemoveAll(filepath.Join(env.Home, "index")); err != nil {
		t.Fatal(err)
	}
	env.MustRun(t, "index", "rebuild", "pg1")
	var rebuilt status
	env.JSON(t, &rebuilt, "status", "pg1")
	if string(rebuilt.Archive) != string(stopped.Archive) {
		t.Fatalf("status after index rebuild differs:\nbefore %s\nafter  %s", stopped.Archive, rebuilt.Archive)
	}
	// And a daemon that finds no index at all rebuilds it by itself.
	if err := os.RemoveAll(filepath.Join(env.Home, "index")); err != nil {
		t.Fatal(err)
	}
	d2 := env.StartDaemon(t)
	var auto status
	env.JSON(t, &auto, "status", "pg1")
	if string(auto.Archive) != string(stopped.Archive) {
		t.Fatalf("status after the daemon's own rebuild differs:\nbefore %s\nafter  %s", stopped.Archive, auto.Archive)
	}
	d2.Stop(t)
}

// envWithSegments is newEnv for a server pg1 whose conninfo is a cluster that wrote n
// segments (segmentsOf), with copies of them as archived.
func envWithSegments(t *testing.T, n int) (*wktest.Env, []string) {
	env := newEnv(t)
	pg, segs := segmentsOf(t, n)
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	return env, segs
}

// drained waits until pg1's incoming/ is empty: the daemon ingested every file.
func drained(t *testing.T, env *wktest.Env, timeout time.Duration) {
	t.Helper()
	wktest.Eventually(t, timeout, "incoming/ to drain", func() bool {
		return len(listDir(t, filepath.Join(env.Home, "pg1", "incoming"))) == 0
	})
}

// segmentsOf makes a cluster write n segments and returns copies of them as archived.
func segmentsOf(t *testing.T, n int) (*pgtest.Cluster, []string) {
	copies := pgtest.TempDir(t)
	pg := pgtest.New(t, "source", pgtest.Options{ArchiveCommand: fmt.Sprintf("cp %%p %s/%%f", copies)})
	pg.Psql(t, "CREATE TABLE t (v text)")
	last := ""
	for i := 0; i < n; i++ {
		pg.Psql(t, fmt.Sprintf("INSERT INTO t SELECT repeat('x', 100) FROM generate_series(1, %d)", 2000+i))
		last = pg.Psql(t, "SELECT pg_walfile_name(pg_switch_wal())") // the segment it closed
	}
	pg.WaitFor(t, "SELECT last_archived_wal >= '"+last+"' FROM pg_stat_archiver", "t", 60*time.Second)
	var out []string
	for _, f := range listDir(t, copies) {
		if len(f) == 24 {
			out = append(out, filepath.Join(copies, f))
		}
	}
	if len(out) < n {
		t.Fatalf("got %d segments, want %d", len(out), n)
	}
	return pg, out
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Chown(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBadInputsQuarantined: each bad file goes to errors/ with its reason while the
// daemon keeps running and the archive is unchanged; the same file twice is accepted.
func TestBadInputsQuarantined(t *testing.T) {
	env, segs := envWithSegments(t, 3)
	other := pgtest.New(t, "other", pgtest.Options{})
	d := env.StartDaemon(t)

	good := segs[0]
	env.MustRun(t, "archive-wal", "pg1", good)
	// get-wal serves a file from incoming/ at once (invariant 9): wait for the daemon
	// to have moved it into the archive.
	wktest.Eventually(t, 30*time.Second, "first segment archived", func() bool {
		return len(listDir(t, filepath.Join(env.Home, "pg1", "incoming"))) == 0 &&
			env.Run("get-wal", "pg1", filepath.Base(good), filepath.Join(env.Dir, "probe")).Code == 0
	})
	snap := archiveSnapshot(t, env)
	scratch := pgtest.TempDir(t)
	goodData, _ := os.ReadFile(good)

	random := make([]byte, 16<<20)
	_, _ = rand.Read(random)
	truncated, _ := os.ReadFile(segs[1])
	otherSeg := filepath.Join(other.Dir, "pg_wal", "000000010000000000000001") // same name as ours: only the identity differs
	otherData, err := os.ReadFile(otherSeg)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(goodData)
	changed[len(changed)/2] ^= 0xff

	cases := []struct {
		file, want string
		data       []byte
	}{
		{"000000010000000000000077", "magic", random},
		{filepath.Base(segs[1]), "size", truncated[:len(truncated)/2]},
		{"000000010000000000000001", "system identifier", otherData},
		{"notes.txt", "not a WAL file name", []byte("hello\n")},
		{filepath.Base(good), "different content", changed},
	}
	for _, c := range cases {
		dir := filepath.Join(scratch, fmt.Sprint(len(c.file)), c.want)
		_ = os.MkdirAll(dir, 0o755)
		_ = pgtest.Chown(filepath.Join(scratch, fmt.Sprint(len(c.file))))
		_ = pgtest.Chown(dir)
		env.MustRun(t, "archive-wal", "pg1", writeFile(t, filepath.Join(dir, c.file), c.data))
	}
	// The same name with the same content is accepted silently.
	env.MustRun(t, "archive-wal", "pg1", good)

	var st status
	wktest.Eventually(t, 30*time.Second, "five quarantined files", func() bool {
		env.JSON(t, &st, "status", "pg1")
		return st.ErrorFiles >= len(cases) && st.IncomingBacklog == 0
	})
	if st.ErrorFiles != len(cases) {
		t.Fatalf("errors/ holds %d files, want %d: %+v", st.ErrorFiles, len(cases), st.Errors)
	}
	for _, c := range cases {
		found := false
		for _, e := range st.Errors {
			if strings.HasPrefix(e.File, c.file+".") && strings.Contains(e.Reason, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no quarantine reason mentioning %q in %+v", c.file, c.want, st.Errors)
		}
	}
	if !st.DaemonRunning || d.Exited() {
		t.Fatalf("daemon stopped: %s", d.Output())
	}
	after := archiveSnapshot(t, env)
	if len(after) != len(snap) {
		t.Fatalf("archive changed: %d files before, %d after", len(snap), len(after))
	}
	for k, v := range snap {
		if after[k] != v {
			t.Fatalf("archive file %s changed", k)
		}
	}
	if got := getWAL(t, env, filepath.Base(good)); !bytes.Equal(got, goodData) {
		t.Fatal("archived segment no longer matches the original")
	}
	// The quarantined file itself is kept intact beside its reason.
	for _, e := range st.Errors {
		if strings.HasPrefix(e.File, "notes.txt.") {
			b, err := os.ReadFile(filepath.Join(env.Home, "pg1", "errors", e.File))
			if err != nil || string(b) != "hello\n" {
				t.Fatalf("quarantined notes.txt: %q %v", b, err)
			}
		}
	}
}

// TestArchiveOtherKinds: .backup labels (from a real pg_basebackup), .history and .partial
// files are archived and come back through get-wal.
func TestArchiveOtherKinds(t *testing.T) {
	env := newEnv(t)
	pg, copies := primary(t, env, nil)
	env.StartDaemon(t)
	pgtest.RunPG(t, "pg_basebackup", "-h", pg.Host, "-p", fmt.Sprint(pg.Port), "-U", "postgres", "-D", filepath.Join(pgtest.TempDir(t), "bb"), "-X", "none", "-c", "fast")
	var label string
	wktest.Eventually(t, 30*time.Second, "a .backup label archived by PostgreSQL", func() bool {
		for _, f := range listDir(t, copies) {
			if strings.HasSuffix(f, ".backup") {
				label = f
				return true
			}
		}
		return false
	})
	scratch := pgtest.TempDir(t)
	history := writeFile(t, filepath.Join(scratch, "00000002.history"), []byte("1\t0/3000000\tno recovery target specified\n"))
	env.MustRun(t, "archive-wal", "pg1", history)
	seg := listDir(t, copies)[0]
	segData, _ := os.ReadFile(filepath.Join(copies, seg))
	partial := writeFile(t, filepath.Join(scratch, seg+".partial"), segData[:1<<20])
	env.MustRun(t, "archive-wal", "pg1", partial)

	want := map[string][]byte{"00000002.history": []byte("1\t0/3000000\tno recovery target specified\n"), seg + ".partial": segData[:1<<20]}
	want[label], _ = os.ReadFile(filepath.Join(copies, label))
	for name, data := range want {
		wktest.Eventually(t, 30*time.Second, name+" archived", func() bool {
			return len(listDir(t, filepath.Join(env.Home, "pg1", "incoming"))) == 0 &&
				env.Run("get-wal", "pg1", name, filepath.Join(scratch, "probe")).Code == 0
		})
		if got := getWAL(t, env, name); !bytes.Equal(got, data) {
			t.Fatalf("%s: get-wal content differs", name)
		}
	}
	var st status
	env.JSON(t, &st, "status", "pg1")
	if st.ErrorFiles != 0 {
		t.Fatalf("quarantined: %+v", st.Errors)
	}
}

// lastSwitchedSegment names the segment holding the byte before the current WAL position
// (after a switch: the segment just completed). The arithmetic is done here: pg_lsn - int
// is PostgreSQL 14+.
func lastSwitchedSegment(t *testing.T, pg *pgtest.Cluster) string {
	t.Helper()
	lsn, err := segments.ParseLSN(pg.Psql(t, "SELECT pg_current_wal_lsn()"))
	if err != nil {
		t.Fatal(err)
	}
	return pg.Psql(t, fmt.Sprintf("SELECT pg_walfile_name('%s')", lsn-1))
}

// TestCrashDuringIngest: the daemon killed (SIGKILL, by a failpoint) between each pair of
// durable steps and restarted: nothing lost, no conflict for a file it had stored. Each
// point is a distinct crash state, checked on disk before the restart: the file in
// incoming/ or not, its archived object there or not, its index record there or not.
func TestCrashDuringIngest(t *testing.T) {
	env, segs := envWithSegments(t, 4)
	points := []struct {
		name                        string
		incoming, archived, indexed bool
	}{
		{"after-compress", true, false, false},
		{"after-write", true, true, false},
		{"after-index", true, true, true},
		{"after-unlink", false, true, true},
	}
	for i, p := range points {
		fp := p.name
		seg := segs[i]
		env.MustRun(t, "archive-wal", "pg1", seg)
		d := env.StartDaemon(t, "WALKEEPER_FAILPOINT="+fp)
		if _, ok := d.Wait(30 * time.Second); !ok {
			t.Fatalf("%s: daemon did not hit the failpoint; log:\n%s", fp, d.Output())
		}
		name := filepath.Base(seg)
		_, ierr := os.Stat(filepath.Join(env.Home, "pg1", "incoming", name))
		archived, _ := filepath.Glob(filepath.Join(env.Home, "pg1", "wals", "*", name+"*"))
		// Read from a copy: a command opening the index without the daemon would
		// reconcile it with the archive first and so change the state under test.
		indexed := indexedFiles(t, env.Home) == int64(i+1)
		if (ierr == nil) != p.incoming || (len(archived) == 1) != p.archived || indexed != p.indexed {
			t.Fatalf("%s: crash state: in incoming/ %v (want %v), archived %v (want %v), indexed %v (want %v)",
				fp, ierr == nil, p.incoming, archived, p.archived, indexed, p.indexed)
		}
		d = env.StartDaemon(t)
		wktest.Eventually(t, 30*time.Second, fp+": incoming/ to drain\n"+d.Output(), func() bool {
			return len(listDir(t, filepath.Join(env.Home, "pg1", "incoming"))) == 0
		})
		want, _ := os.ReadFile(seg)
		if got := getWAL(t, env, filepath.Base(seg)); !bytes.Equal(got, want) {
			t.Fatalf("%s: archived copy differs from the original", fp)
		}
		var st status
		env.JSON(t, &st, "status", "pg1")
		if st.ErrorFiles != 0 {
			t.Fatalf("%s: a file was quarantined after the crash: %+v", fp, st.Errors)
		}
		var arch struct{ Files int64 }
		_ = json.Unmarshal(st.Archive, &arch)
		if arch.Files != int64(i+1) {
			t.Fatalf("%s: index holds %d files, want %d", fp, arch.Files, i+1)
		}
		d.Stop(t)
	}
}

// indexedFiles counts pg1's WAL records in a copy of the index of home (no daemon runs).
func indexedFiles(t *testing.T, home string) int64 {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "index")
	if err := os.Mkdir(cp, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(home, "index"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "LOCK" || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(home, "index", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	x, err := index.OpenBadger(cp, nil)
	if err != nil {
		t.Fatalf("open a copy of the crashed index: %v", err)
	}
	defer x.Close()
	st, err := x.WALStats(context.Background(), "pg1")
	if err != nil {
		t.Fatal(err)
	}
	return int64(st.Files)
}
