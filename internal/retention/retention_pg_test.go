package retention_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/retention"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

type backupRow struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Keep     bool   `json:"keep"`
	BeginLSN string `json:"begin_lsn"`
	EndLSN   string `json:"end_lsn"`
	Timeline uint32 `json:"timeline"`
}

type backupInfo struct {
	ID       string `json:"id"`
	Keep     bool   `json:"keep"`
	BeginWAL string `json:"begin_wal"`
	EndWAL   string `json:"end_wal"`
}

// tree hashes every file under dir, skipping nothing: the archive, the backups,
// identity.json.
func tree(t *testing.T, dir string) map[string]string { return wktest.HashTree(t, dir) }

// archivedSegments lists the 24-character segment names archived for pg1.
func archivedSegments(t *testing.T, home string) []string {
	t.Helper()
	var out []string
	for rel := range tree(t, filepath.Join(home, "pg1", "wals")) {
		base := filepath.Base(rel)
		name, _, _ := strings.Cut(base, ".")
		if len(name) == 24 && len(strings.TrimSuffix(strings.TrimSuffix(base, ".zst"), ".gz")) == 24 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func readInfo(t *testing.T, home, id string) backupInfo {
	t.Helper()
	var bi backupInfo
	b, err := os.ReadFile(filepath.Join(home, "pg1", "base", id, "backup.info"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &bi); err != nil {
		t.Fatal(err)
	}
	return bi
}

// indexView is what the index answers through the CLI: the archive's figures and the
// backups.
func indexView(t *testing.T, env *wktest.Env) string {
	t.Helper()
	var st struct {
		Archive json.RawMessage `json:"archive"`
	}
	env.JSON(t, &st, "status", "pg1")
	var bs json.RawMessage
	env.JSON(t, &bs, "list-backups", "pg1")
	return string(st.Archive) + "\n" + string(bs)
}

// TestRetentionRealPostgres is the must-show: four backups with writes between
// them, REDUNDANCY 2, the oldest pinned. --dry-run changes nothing; the run keeps three
// backups and frees the WAL between the pinned backup's end and the next kept backup's
// begin; a run whose range was half deleted by hand finishes without error; the pinned
// backup restores to consistency and the newest to the end of the WAL, with their data.
// Finally the daemon applies the policy by itself once the pin is released.
func TestRetentionRealPostgres(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	// The daemon starts without a policy (it applies none); the CLI runs below read the
	// policy written afterwards.
	d := env.StartDaemon(t)

	pg.Psql(t, "CREATE TABLE phases (phase int, filler text)")
	phase := func(n int) {
		pg.Psql(t, fmt.Sprintf("INSERT INTO phases SELECT %d, repeat('x', 200) FROM generate_series(1, 20000)", n))
		pg.Psql(t, "SELECT pg_switch_wal()")
		pg.Psql(t, fmt.Sprintf("INSERT INTO phases VALUES (%d, 'marker')", n))
		pg.Psql(t, "SELECT pg_switch_wal()")
	}
	var ids []string
	for i := 1; i <= 4; i++ {
		phase(i)
		var b struct {
			ID string `json:"id"`
		}
		env.JSON(t, &b, "backup", "pg1")
		if b.ID == "" {
			t.Fatal("backup --json gave no id")
		}
		ids = append(ids, b.ID)
	}
	phase(5)
	env.MustRun(t, "switch-wal", "pg1", "--wait", "--timeout", "60s")
	wktest.Eventually(t, 60*time.Second, "incoming/ to drain", func() bool {
		es, _ := os.ReadDir(filepath.Join(env.Home, "pg1", "incoming"))
		return len(es) == 0
	})

	// Pin the oldest: durably in backup.info and in the index.
	out := env.MustRun(t, "keep", "pg1", "oldest")
	if !strings.Contains(out, ids[0]+" pinned") {
		t.Fatalf("keep: %q", out)
	}
	if !readInfo(t, env.Home, ids[0]).Keep {
		t.Fatal("keep did not set keep in backup.info")
	}
	var rows []backupRow
	env.JSON(t, &rows, "list-backups", "pg1")
	if len(rows) != 4 || rows[0].ID != ids[0] || !rows[0].Keep {
		t.Fatalf("list-backups after keep: %+v", rows)
	}

	// No policy configured: nothing to do, exit 0.
	if out := env.MustRun(t, "retention", "pg1"); !strings.Contains(out, "no retention_policy configured: nothing to do") {
		t.Fatalf("retention without a policy: %q", out)
	}
	env.Servers[0].Settings["retention_policy"] = "REDUNDANCY 2"
	env.WriteConfig(t)

	segsBefore := archivedSegments(t, env.Home)
	filesBefore := tree(t, env.Home+"/pg1")
	delete(filesBefore, "retention.lock")
	indexBefore := indexView(t, env)

	dryText := env.MustRun(t, "retention", "pg1", "--dry-run")
	var dry retention.Result
	env.JSON(t, &dry, "retention", "pg1", "--dry-run")
	filesAfter := tree(t, env.Home+"/pg1")
	delete(filesAfter, "retention.lock")
	if fmt.Sprint(filesAfter) != fmt.Sprint(filesBefore) {
		t.Fatal("retention --dry-run changed files under the server's home")
	}
	if got := indexView(t, env); got != indexBefore {
		t.Fatalf("retention --dry-run changed the index:\nbefore %s\nafter  %s", indexBefore, got)
	}
	for _, want := range []string{ids[0], "KEEP (pinned)", ids[1], "OBSOLETE (would be deleted)", "outside redundancy 2", "WAL to delete", "total to delete"} {
		if !strings.Contains(dryText, want) {
			t.Fatalf("dry run output lacks %q:\n%s", want, dryText)
		}
	}
	t.Logf("retention --dry-run:\n%s", dryText)
	if !dry.DryRun || dry.WALSegments == 0 || len(dry.Backups) != 4 || dry.Backups[1].Keep {
		t.Fatalf("dry run plan: %+v", dry)
	}

	// The WAL that must go: before the pinned backup's begin, and from after its end up
	// to the next kept backup's begin (ids[2]).
	pinned, next := readInfo(t, env.Home, ids[0]), readInfo(t, env.Home, ids[2])
	var gone, kept []string
	for _, s := range segsBefore {
		if s < pinned.BeginWAL || (s > pinned.EndWAL && s < next.BeginWAL) {
			gone = append(gone, s)
		} else {
			kept = append(kept, s)
		}
	}
	if len(gone) < 4 || int64(len(gone)) != dry.WALSegments {
		t.Fatalf("dry run would delete %d segments, the rule gives %d: %v", dry.WALSegments, len(gone), gone)
	}

	// An earlier run died half way through the range: half of its files are gone.
	for _, s := range gone[:len(gone)/2] {
		matches, _ := filepath.Glob(filepath.Join(env.Home, "pg1", "wals", s[:16], s+"*"))
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	text := env.MustRun(t, "retention", "pg1")
	t.Logf("retention:\n%s", text)

	env.JSON(t, &rows, "list-backups", "pg1")
	if len(rows) != 3 || rows[0].ID != ids[0] || rows[1].ID != ids[2] || rows[2].ID != ids[3] {
		t.Fatalf("backups after retention: %+v, want %s %s %s", rows, ids[0], ids[2], ids[3])
	}
	if _, err := os.Stat(filepath.Join(env.Home, "pg1", "base", ids[1])); !os.IsNotExist(err) {
		t.Fatalf("obsolete backup %s still on disk: %v", ids[1], err)
	}
	segsAfter := archivedSegments(t, env.Home)
	if len(segsAfter) < len(kept) || fmt.Sprint(segsAfter[:len(kept)]) != fmt.Sprint(kept) {
		t.Fatalf("segments after retention:\n%v\nwant the kept ones first:\n%v", segsAfter, kept)
	}
	for _, s := range segsAfter {
		for _, g := range gone {
			if s == g {
				t.Fatalf("segment %s survived retention", s)
			}
		}
	}
	var st struct {
		Archive struct {
			Segments int64 `json:"segments"`
		} `json:"archive"`
	}
	env.JSON(t, &st, "status", "pg1")
	if st.Archive.Segments != int64(len(segsAfter)) {
		t.Fatalf("index counts %d segments, %d are archived", st.Archive.Segments, len(segsAfter))
	}
	// A second run finds nothing more.
	var again retention.Result
	env.JSON(t, &again, "retention", "pg1")
	if again.WALFiles != 0 || len(again.Backups) != 3 {
		t.Fatalf("second run: %+v", again)
	}

	// The pinned backup restores to consistency, the newest to the end of the WAL.
	restore := func(id string, args ...string) *pgtest.Cluster {
		dest := filepath.Join(pgtest.TempDir(t), "data")
		env.MustRun(t, append([]string{"restore", "pg1", id, dest}, args...)...)
		c := pgtest.Adopt(t, "restored-"+id, dest)
		c.SetConf(t, map[string]string{"archive_mode": "off"}) // keep pg1's archive to the primary
		c.Start(t)
		return c
	}
	phasesOf := func(c *pgtest.Cluster) string {
		return strings.ReplaceAll(c.Psql(t, "SELECT string_agg(phase::text, ',' ORDER BY phase) FROM phases WHERE filler = 'marker'"), "\n", "")
	}
	old := restore(ids[0], "--target-immediate")
	old.WaitFor(t, "SELECT pg_get_wal_replay_pause_state()", "paused", 60*time.Second)
	if got := phasesOf(old); got != "1" {
		t.Fatalf("pinned backup %s restored to consistency shows phases %q, want 1", ids[0], got)
	}
	if n := old.Psql(t, "SELECT count(*) FROM phases"); n != "20001" {
		t.Fatalf("pinned backup: %s rows, want 20001", n)
	}
	old.Stop(t, "fast")
	newest := restore(ids[3])
	newest.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := phasesOf(newest); got != "1,2,3,4,5" {
		t.Fatalf("newest backup %s restored to the end of WAL shows phases %q, want 1,2,3,4,5", ids[3], got)
	}
	newest.Stop(t, "fast")

	// The daemon applies retention by itself: release the pin, restart it with the
	// policy and a short retention_interval; the released backup goes.
	env.MustRun(t, "keep", "pg1", ids[0], "--release")
	if readInfo(t, env.Home, ids[0]).Keep {
		t.Fatal("keep --release left keep set in backup.info")
	}
	d.Stop(t)
	env.Servers[0].Settings["retention_interval"] = "1s"
	env.WriteConfig(t)
	d = env.StartDaemon(t)
	wktest.Eventually(t, 60*time.Second, "the daemon to delete the released backup", func() bool {
		var rs []backupRow
		env.JSON(t, &rs, "list-backups", "pg1")
		return len(rs) == 2 && rs[0].ID == ids[2]
	})
	// The deletion shows in list-backups before the run that made it logs its end.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(d.Output(), "retention applied"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon log has no retention run:\n%s", d.Output())
		}
	}
	if segs := archivedSegments(t, env.Home); len(segs) == 0 || segs[0] < next.BeginWAL {
		t.Fatalf("after the daemon's run the archive starts at %v, want %s", segs[:1], next.BeginWAL)
	}
}
