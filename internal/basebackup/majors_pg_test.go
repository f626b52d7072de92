package basebackup_test

import (
	"strconv"
	"testing"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// TestBackupOldProtocol: on PostgreSQL 13 and 14 (the old BASE_BACKUP syntax; one COPY
// stream of plain tar per tablespace, then one for the manifest), a backup of a cluster
// with an extra tablespace, taken while pgbench writes, reads back with the tablespace
// relocated, passes pg_verifybackup (15's reads their version 1 manifest; -n: not their
// WAL), and recovers from the archive with that major's binaries to a consistent state
// holding a row written after the backup. Skipped, naming the command that fetches them,
// when the major's server binaries are not cached (scripts/pg-majors.sh).
func TestBackupOldProtocol(t *testing.T) {
	for _, major := range []int{13, 14} {
		t.Run(strconv.Itoa(major), func(t *testing.T) {
			pgtest.RequireMajor(t, major)
			env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
			pg := pgtest.New(t, "primary", pgtest.Options{Major: major, ArchiveCommand: env.ArchiveCommand("pg1")})
			env.Servers[0].Settings["conninfo"] = pg.ConnString("")
			env.WriteConfig(t)
			env.StartDaemon(t)
			b := backupUnderLoad(t, env, pg, "old", 2, 50000, 5)
			if b.Status != record.StatusDone || b.PGVersion/10000 != major || b.EndLSN <= b.BeginLSN {
				t.Fatalf("backup record: %+v", b)
			}
			if len(b.Tablespaces) != 1 || b.Tablespaces[0].Name != "ts1" || b.Tablespaces[0].Size < 20<<20 || b.Tablespaces[0].Location == "" {
				t.Fatalf("tablespaces: %+v", b.Tablespaces)
			}
			if b.Files < 900 {
				t.Fatalf("only %d files in the backup", b.Files)
			}
			data := rebuild(t, env, b.ID)
			t.Log(pgtest.RunPG(t, "pg_verifybackup", "-n", data))
			r := startRestored(t, env, data)
			if r.Major != major {
				t.Fatalf("restored cluster is PostgreSQL %d", r.Major)
			}
			if got := r.Psql(t, "SELECT current_setting('server_version_num')::int / 10000"); got != strconv.Itoa(major) {
				t.Fatalf("restored server runs PostgreSQL %s, want %d", got, major)
			}
			checkRestoredUnderLoad(t, r, 50000)
		})
	}
}
