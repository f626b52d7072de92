package basebackup_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

func listBackups(t *testing.T, env *wktest.Env) []map[string]any {
	t.Helper()
	var rows []map[string]any
	env.JSON(t, &rows, "list-backups", "pg1")
	return rows
}

func showBackup(t *testing.T, env *wktest.Env, id string) record.Backup {
	t.Helper()
	var b record.Backup
	env.JSON(t, &b, "show-backup", "pg1", id)
	return b
}

// TestBackupTablespaceUnderLoad: a backup of a cluster with an extra tablespace holding
// the pgbench tables, taken while pgbench writes, read back through the reader API with
// the tablespace relocated: pg_verifybackup passes, and the cluster recovers from the
// archive (get-wal) to a consistent state holding the data, including a row written
// after the backup.
func TestBackupTablespaceUnderLoad(t *testing.T) {
	env, pg := setup(t, "", nil)
	env.StartDaemon(t)
	pg.Tablespace(t, "ts1")
	pg.PgBench(t, "-i", "-s", "5", "-q", "--tablespace=ts1")
	pg.Psql(t, "CREATE TABLE t (i int) TABLESPACE ts1; INSERT INTO t SELECT generate_series(1, 100000)")

	var wg sync.WaitGroup
	var benchOut string
	var benchErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		benchOut, benchErr = runPgbench(pg, "-c", "2", "-T", "8", "-n")
	}()
	time.Sleep(time.Second) // pgbench is writing
	out := env.MustRun(t, "backup", "pg1", "--name", "loaded", "--wait-timeout", "60s")
	t.Log(out)
	wg.Wait()
	if benchErr != nil {
		t.Fatalf("pgbench: %v\n%s", benchErr, benchOut)
	}
	pg.Psql(t, "INSERT INTO t VALUES (-1)")
	env.MustRun(t, "switch-wal", "pg1", "--wait")

	b := showBackup(t, env, "loaded")
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
	if got := r.Psql(t, "SELECT count(*) FROM t"); got != "100001" {
		t.Fatalf("restored t has %s rows, want 100001 (100000 before the backup, 1 after)", got)
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
