package basebackup_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
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
