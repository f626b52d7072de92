package basebackup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// setup makes a walkeeper env with server pg1 and a primary archiving into it.
func setup(t *testing.T, archiveCommand string, settings map[string]string) (*wktest.Env, *pgtest.Cluster) {
	t.Helper()
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	if archiveCommand == "" {
		archiveCommand = env.ArchiveCommand("pg1")
	}
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: archiveCommand})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	for k, v := range settings {
		env.Servers[0].Settings[k] = v
	}
	env.WriteConfig(t)
	return env, pg
}

// rebuild writes a stored backup back into a fresh data directory, only through the
// reader API (Contents, OpenEntry), with its tablespaces relocated into new directories,
// the backup_manifest beside it, and returns the data directory.
func rebuild(t *testing.T, env *wktest.Env, id string) string {
	t.Helper()
	ctx := context.Background()
	store := storage.NewLocal(env.Home)
	entries, err := basebackup.Contents(ctx, store, "pg1", id)
	if err != nil {
		t.Fatal(err)
	}
	root := pgtest.TempDir(t)
	data := filepath.Join(root, "data")
	rootOf := func(ts uint32) string {
		if ts == 0 {
			return data
		}
		return filepath.Join(root, fmt.Sprintf("ts-%d", ts))
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	seenDir := map[string]bool{data: true}
	for _, e := range entries {
		p := filepath.Join(rootOf(e.Tablespace), filepath.FromSlash(e.Path))
		if !seenDir[filepath.Dir(p)] && e.Tablespace == 0 {
			t.Fatalf("entry %s comes before its directory", e.Path)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		switch e.Type {
		case basebackup.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(e.Mode)); err != nil {
				t.Fatal(err)
			}
			seenDir[p] = true
		case basebackup.TypeSymlink:
			target := e.Link
			if e.Tablespace == 0 && path.Dir(e.Path) == "pg_tblspc" {
				var oid uint32
				fmt.Sscan(path.Base(e.Path), &oid)
				target = rootOf(oid)
				if err := os.MkdirAll(target, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		case basebackup.TypeFile:
			r, err := basebackup.OpenEntry(ctx, store, e)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(e.Mode))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, r); err != nil {
				t.Fatalf("%s: %v", e.Path, err)
			}
			r.Close()
			f.Close()
		}
	}
	mr, err := store.Get(ctx, archive.BackupManifestKey("pg1", id))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(mr)
	mr.Close()
	if err := os.WriteFile(filepath.Join(data, "backup_manifest"), m, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Chown(root); err != nil {
		t.Fatal(err)
	}
	return data
}

// startRestored sets up recovery from the archive (get-wal) and starts the cluster; it
// returns once recovery has replayed the archive and the cluster accepts writes.
func startRestored(t *testing.T, env *wktest.Env, data string) *pgtest.Cluster {
	t.Helper()
	conf := fmt.Sprintf("\nrestore_command = '%s'\narchive_mode = off\n", env.RestoreCommand("pg1"))
	f, err := os.OpenFile(filepath.Join(data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(conf)
	f.Close()
	// A backup of a standby carries its standby.signal: recover, do not follow a primary.
	if err := os.Remove(filepath.Join(data, "standby.signal")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := pgtest.FromDataDir(t, "restored", data)
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	return c
}

// verifyRebuilt checks a rebuilt backup with pg_verifybackup -n where 15's reads its
// manifest (version 1: PostgreSQL 13 to 16), else (17 and later write version 2) with
// walkeeper's own verify of the stored backup.
func verifyRebuilt(t *testing.T, env *wktest.Env, pg *pgtest.Cluster, id, data string) {
	t.Helper()
	if pg.Major < 17 {
		t.Log(pgtest.RunPG(t, "pg_verifybackup", "-n", data))
		return
	}
	out := env.MustRun(t, "verify", "pg1", id)
	if !strings.Contains(out, "verify: OK") || !strings.Contains(out, "files: OK") {
		t.Fatalf("walkeeper verify of a PostgreSQL %d backup (its version 2 manifest is beyond pg_verifybackup 15):\n%s", pg.Major, out)
	}
	t.Logf("PostgreSQL %d: verified with walkeeper verify (pg_verifybackup 15 reads version 1 manifests only)", pg.Major)
}

// runPgbench runs pgbench as the postgres user (safe in a goroutine: no t.Fatal).
func runPgbench(pg *pgtest.Cluster, args ...string) (string, error) {
	full := append([]string{"-h", pg.Host, "-p", fmt.Sprint(pg.Port), "-U", pgtest.PGUser}, args...)
	return pgtest.RunPGErr("pgbench", full...)
}

// TestBackupFromStandby: a backup taken from a streaming standby of an idle primary
// completes (walkeeper asks the primary to switch WAL) and reads back into a cluster
// that pg_verifybackup accepts and that starts.
func TestBackupFromStandby(t *testing.T) {
	env, pg := setup(t, "", nil)
	pg.Psql(t, "CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 1000)")
	standby := pgtest.NewStandby(t, "standby", pg, nil)
	standby.WaitFor(t, "SELECT count(*) FROM t", "1000", 60*time.Second)
	env.Servers[0].Settings["conninfo"] = standby.ConnString("")
	env.Servers[0].Settings["primary_conninfo"] = pg.ConnString("")
	env.Servers[0].Settings["backup_compression"] = "gzip" // the other codecs go the same way
	env.WriteConfig(t)
	env.StartDaemon(t)
	// Let the primary go idle, everything so far archived.
	closed := pg.Psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	pg.WaitFor(t, "SELECT last_archived_wal >= '"+closed+"' FROM pg_stat_archiver", "t", 30*time.Second)
	// Then a write, replayed by the standby, in a segment the primary does not close by
	// itself (archive_timeout is off): only walkeeper's switch on the primary gets it archived.
	pg.Psql(t, "INSERT INTO t SELECT generate_series(1001, 2000)")
	standby.WaitFor(t, "SELECT count(*) FROM t", "2000", 60*time.Second)

	start := time.Now()
	r := env.Run("backup", "pg1", "--wait-timeout", "30s")
	if r.Code != 0 {
		t.Fatalf("backup from standby: exit %d\n%s%s\n--- primary log ---\n%s", r.Code, r.Stdout, r.Stderr, pg.LogTail(20))
	}
	t.Logf("backup from standby took %s: %s", time.Since(start), r.Stdout)
	b := showBackup(t, env, "latest")
	if !b.FromStandby || b.Status != record.StatusDone || b.EndWAL <= closed || b.Compression != "gzip" {
		t.Fatalf("backup: %+v", b)
	}
	data := rebuild(t, env, b.ID)
	pgtest.RunPG(t, "pg_verifybackup", "-n", data)
	rc := startRestored(t, env, data)
	if got := rc.Psql(t, "SELECT count(*) FROM t"); got != "2000" {
		t.Fatalf("restored t has %s rows", got)
	}
}

// TestBackupTablespaceUnderLoad: a backup of a cluster with an extra tablespace holding
// the pgbench tables, taken while pgbench writes, read back through the reader API with
// the tablespace relocated: pg_verifybackup passes, and the cluster recovers from the
// archive (get-wal) to a consistent state holding the data, including a row written
// after the backup.
func TestBackupTablespaceUnderLoad(t *testing.T) {
	env, pg := setup(t, "", nil)
	env.StartDaemon(t)
	b := backupUnderLoad(t, env, pg, "loaded", 5, 100000, 8)
	if b.Status != record.StatusDone || b.BeginLSN == 0 || b.EndLSN <= b.BeginLSN || b.BeginWAL == "" || b.EndWAL < b.BeginWAL {
		t.Fatalf("backup record: %+v", b)
	}
	if len(b.Tablespaces) != 1 || b.Tablespaces[0].Name != "ts1" || b.Tablespaces[0].Size < 50<<20 || b.Tablespaces[0].Location == "" {
		t.Fatalf("tablespaces: %+v", b.Tablespaces)
	}
	if b.StoredSize <= 0 || b.StoredSize >= b.Size || b.Compression != "zstd" || b.Files < 900 {
		t.Fatalf("sizes: size %d stored %d files %d compression %s", b.Size, b.StoredSize, b.Files, b.Compression)
	}
	rows := listBackups(t, env)
	if len(rows) != 1 || rows[0]["id"] != b.ID || rows[0]["status"] != "DONE" || rows[0]["wal_count"].(float64) < 1 || rows[0]["wal_bytes"].(float64) < 16<<20 {
		t.Fatalf("list-backups: %v", rows)
	}
	for _, f := range []string{"id", "name", "status", "begin_time", "end_time", "begin_lsn", "end_lsn", "timeline", "size_bytes", "stored_bytes", "wal_count", "wal_bytes"} {
		if _, ok := rows[0][f]; !ok {
			t.Errorf("list-backups --json lacks %s", f)
		}
	}

	data := rebuild(t, env, b.ID)
	verifyRebuilt(t, env, pg, b.ID, data)
	r := startRestored(t, env, data)
	checkRestoredUnderLoad(t, r, 100000)
}

// TestBackupWALNeverArrives: archive_command = 'false' and no daemon: the backup fails
// after --wait-timeout with the causes named (pg_stat_archiver's failure and the
// missing daemon), and is recorded FAILED, never latest.
func TestBackupWALNeverArrives(t *testing.T) {
	env, pg := setup(t, "false", nil)
	_ = pg
	start := time.Now()
	r := env.Run("backup", "pg1", "--wait-timeout", "10s")
	took := time.Since(start)
	if r.Code != 1 {
		t.Fatalf("backup: exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if took > 60*time.Second {
		t.Fatalf("backup took %s with --wait-timeout 10s", took)
	}
	for _, want := range []string{"not archived within 10s", "archive_command failed", "daemon is not running"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	if strings.Count(strings.TrimSpace(r.Stderr), "\n") < 1 || !strings.Contains(r.Stderr, "waiting up to") {
		t.Errorf("no waiting message:\n%s", r.Stderr)
	}
	rows := listBackups(t, env)
	if len(rows) != 1 || rows[0]["status"] != "FAILED" {
		t.Fatalf("list-backups: %v", rows)
	}
	b := showBackup(t, env, rows[0]["id"].(string))
	if !strings.Contains(b.Error, "archive_command failed") {
		t.Fatalf("backup.info error: %q", b.Error)
	}
	if r := env.Run("show-backup", "pg1", "latest"); r.Code != 1 || !strings.Contains(r.Stderr, "no DONE backup") {
		t.Fatalf("latest must not resolve to a FAILED backup: exit %d %s", r.Code, r.Stderr)
	}
	// A FAILED backup can be deleted; its files go.
	env.MustRun(t, "delete", "pg1", b.ID)
	if rows := listBackups(t, env); len(rows) != 0 {
		t.Fatalf("after delete: %v", rows)
	}
	if _, err := os.Stat(filepath.Join(env.Home, "pg1", "base", b.ID)); !os.IsNotExist(err) {
		t.Fatalf("backup directory left behind: %v", err)
	}
}

// TestConcurrentBackupsRefused: while one backup of pg1 runs (slowed by
// bandwidth_limit), a second one refuses with a clear error; the first completes.
func TestConcurrentBackupsRefused(t *testing.T) {
	env, pg := setup(t, "", map[string]string{"bandwidth_limit": "4MB", "backup_compression": "none", "backup_compression_level": "0"})
	env.StartDaemon(t)
	pg.PgBench(t, "-i", "-s", "1", "-q")
	first := make(chan wktest.Result, 1)
	go func() { first <- env.Run("backup", "pg1", "--name", "slow", "--wait-timeout", "60s") }()
	wktest.Eventually(t, 30*time.Second, "the first backup to start", func() bool {
		var rows []map[string]any
		r := env.Run("--json", "list-backups", "pg1")
		select {
		case res := <-first:
			t.Fatalf("first backup ended early: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
		default:
		}
		return r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &rows) == nil && len(rows) == 1 && rows[0]["status"] == "STARTED"
	})
	r := env.Run("backup", "pg1")
	if r.Code != 1 || !strings.Contains(r.Stderr, "another backup of this server is running") {
		t.Fatalf("second backup: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// Deleting the running backup is refused too.
	if r := env.Run("delete", "pg1", "slow"); r.Code != 1 || !strings.Contains(r.Stderr, "another backup of this server is running") {
		t.Fatalf("delete of a running backup: exit %d, stderr %q", r.Code, r.Stderr)
	}
	started := time.Now()
	var res wktest.Result
	select {
	case res = <-first:
	case <-time.After(120 * time.Second):
		t.Fatal("first backup did not finish")
	}
	if res.Code != 0 {
		t.Fatalf("first backup: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	// bandwidth_limit holds: the stream (about the data size) cannot have gone faster.
	b := showBackup(t, env, "slow")
	if min := time.Duration(float64(b.Size) / 4e6 * 0.8 * float64(time.Second)); time.Since(started) < min {
		t.Errorf("backup of %d bytes at bandwidth_limit 4MB/s finished within %s (at least %s expected)", b.Size, time.Since(started), min)
	}
	// A name is unique per server.
	if r := env.Run("backup", "pg1", "--name", "slow"); r.Code != 1 || !strings.Contains(r.Stderr, "already used") {
		t.Fatalf("duplicate name: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// TestBackupConnectionLost: the walsender is terminated mid-stream; the backup exits 1
// promptly, recorded FAILED with the server's error, and the next backup works.
func TestBackupConnectionLost(t *testing.T) {
	env, pg := setup(t, "", map[string]string{"bandwidth_limit": "2MB"})
	env.StartDaemon(t)
	done := make(chan wktest.Result, 1)
	go func() { done <- env.Run("backup", "pg1", "--wait-timeout", "60s") }()
	wktest.Eventually(t, 30*time.Second, "the backup's walsender", func() bool {
		out, err := pg.PsqlErr("SELECT count(*) FROM pg_stat_replication WHERE state = 'backup'")
		return err == nil && out == "1"
	})
	time.Sleep(500 * time.Millisecond)
	pg.Psql(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE state = 'backup'")
	var r wktest.Result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("backup did not end after its connection was terminated")
	}
	if r.Code != 1 || !strings.Contains(r.Stderr, "BASE_BACKUP stream") {
		t.Fatalf("backup: exit %d, stderr %q", r.Code, r.Stderr)
	}
	rows := listBackups(t, env)
	if len(rows) != 1 || rows[0]["status"] != "FAILED" {
		t.Fatalf("list-backups: %v", rows)
	}
	env.Servers[0].Settings["bandwidth_limit"] = "0"
	env.WriteConfig(t)
	env.MustRun(t, "backup", "pg1", "--wait-timeout", "60s")
	if b := showBackup(t, env, "latest"); b.Status != record.StatusDone {
		t.Fatalf("next backup: %+v", b)
	}
}

// backupUnderLoad fills a tablespace ts1 (pgbench at scale, a table t of rows rows),
// takes backup name while pgbench writes for secs seconds, then writes a row (-1) after
// the backup, switches WAL until it is archived, and returns the backup's record.
func backupUnderLoad(t *testing.T, env *wktest.Env, pg *pgtest.Cluster, name string, scale, rows, secs int) record.Backup {
	t.Helper()
	pg.Tablespace(t, "ts1")
	pg.PgBench(t, "-i", "-s", strconv.Itoa(scale), "-q", "--tablespace=ts1")
	pg.Psql(t, fmt.Sprintf("CREATE TABLE t (i int) TABLESPACE ts1; INSERT INTO t SELECT generate_series(1, %d)", rows))
	var wg sync.WaitGroup
	var benchOut string
	var benchErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		benchOut, benchErr = runPgbench(pg, "-c", "2", "-T", strconv.Itoa(secs), "-n")
	}()
	time.Sleep(time.Second) // pgbench is writing
	t.Log(env.MustRun(t, "backup", "pg1", "--name", name, "--wait-timeout", "60s"))
	wg.Wait()
	if benchErr != nil {
		t.Fatalf("pgbench: %v\n%s", benchErr, benchOut)
	}
	pg.Psql(t, "INSERT INTO t VALUES (-1)")
	env.MustRun(t, "switch-wal", "pg1", "--wait")
	return showBackup(t, env, name)
}

// checkRestoredUnderLoad checks a cluster restored from backupUnderLoad: t holds its
// rows plus the one written after the backup, pgbench's data is consistent and not
// empty, and ts1 was relocated.
func checkRestoredUnderLoad(t *testing.T, r *pgtest.Cluster, rows int) {
	t.Helper()
	if got, want := r.Psql(t, "SELECT count(*) FROM t"), strconv.Itoa(rows+1); got != want {
		t.Fatalf("restored t has %s rows, want %s (%d before the backup, 1 after)", got, want, rows)
	}
	// pgbench's own invariant: every transaction adds the same delta to an account and
	// to the history, so the sums agree in any consistent state.
	got := r.Psql(t, "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT coalesce(sum(delta),0) FROM pgbench_history), (SELECT count(*) > 0 FROM pgbench_history)")
	if got != "t|t" {
		t.Fatalf("restored pgbench data inconsistent or empty: %s", got)
	}
	if loc := r.Psql(t, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'"); !strings.Contains(loc, "ts-") {
		t.Fatalf("tablespace not relocated: %s", loc)
	}
}
