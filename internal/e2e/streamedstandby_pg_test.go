package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// Standbys restored from a backup of a primary that the receiver streams: the
// segment being written exists only as the receiver's .partial, which get-wal must
// not hand to a standby that follows the archive (issue 9, recovery truth).

// TestAlwaysStandbyOfStreamedServer: with the receiver streaming the primary, the
// segment being written exists only as a .partial. A standby restored with --archive
// and archive_mode = always, archiving also into the same server (production's
// archive_command), must not be handed that partial as the segment: PostgreSQL would
// archive it under the complete segment's name, the daemon would archive it, and the
// real segment would then be quarantined as a conflict, with the standby (and every
// later restore) stopped where the partial ended.
func TestAlwaysStandbyOfStreamedServer(t *testing.T) {
	x := newTruth(t, "", nil)
	x.stream(t)
	id := x.backup(t)

	dest, _ := restoreTo(t, x.env, id, "--archive")
	archived := pgtest.TempDir(t)
	touch(t, filepath.Join(dest, "standby.signal"))
	sb := pgtest.Adopt(t, "always-standby", dest)
	appendFile(t, filepath.Join(dest, "postgresql.conf"), "archive_mode = always", "wal_retrieve_retry_interval = '200ms'",
		fmt.Sprintf("archive_command = 'cp %%p %s/%%f && %s'", archived, x.env.ArchiveCommand("pg1")))
	sb.Start(t)

	// Rows the receiver has flushed into streaming/<segment>.partial, not archived yet.
	x.pg.Psql(t, "INSERT INTO rows SELECT g, 'streamed' FROM generate_series(1, 100) g")
	seg := x.streamedTo(t, sb)

	x.pg.Psql(t, "INSERT INTO rows VALUES (1000, 'after the partial')")
	waitArchived(t, x.pg, switchWAL(t, x.pg))
	sb.WaitFor(t, "SELECT count(*) FROM rows", "101", 60*time.Second)
	if q := listDir(t, filepath.Join(x.env.Home, "pg1", "errors")); len(q) != 0 {
		t.Fatalf("files quarantined: %v", q)
	}
	// errors/ is empty, so what the archive holds is the first copy that arrived.
	want, ok := servedByGetWAL(x.env, seg)
	if !ok {
		t.Fatalf("%s is not archived", seg)
	}
	wktest.Eventually(t, 30*time.Second, "the standby to archive "+seg, func() bool { return contains(listDir(t, archived), seg) })
	if got, _ := os.ReadFile(filepath.Join(archived, seg)); !bytes.Equal(got, want) {
		t.Fatalf("the standby archived a %s that is not the primary's (a partial under the segment's name)", seg)
	}
}

// stream restarts the daemon with the receiver streaming the primary.
func (x *truth) stream(t *testing.T) {
	t.Helper()
	x.daemon.Stop(t)
	x.env.Servers[0].Settings["streaming_archiver"] = "on"
	x.env.Servers[0].Settings["create_slot"] = "auto"
	x.env.WriteConfig(t)
	x.daemon = x.env.StartDaemon(t)
}

// streamedTo waits until the receiver has flushed everything the primary wrote so far
// and the standby sb has asked for the segment holding it at least twice since (so it
// was offered whatever get-wal would serve), and returns that segment's name.
func (x *truth) streamedTo(t *testing.T, sb *pgtest.Cluster) string {
	t.Helper()
	seg := x.pg.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	lsn := x.pg.Psql(t, "SELECT pg_current_wal_lsn()")
	x.pg.WaitFor(t, fmt.Sprintf("SELECT count(*) FROM pg_stat_replication WHERE application_name LIKE 'walkeeper%%' AND flush_lsn >= '%s'", lsn), "1", 60*time.Second)
	before := strings.Count(sb.Log(), seg)
	wktest.Eventually(t, 30*time.Second, "the standby to ask for "+seg, func() bool { return strings.Count(sb.Log(), seg) >= before+2 })
	return seg
}

// TestStandbyFollowsLaggingPromotion: the primary is streamed by the receiver and has
// an asynchronous replica that lags inside the current segment when the primary
// crashes; the replica is promoted. A standby restored from a backup (following the
// archive, no target) must follow the new timeline: had it replayed the receiver's
// live .partial, it would stand past the new timeline's fork point and never follow
// ("new timeline 2 forked off current database system timeline 1 before current
// recovery point"), as a PostgreSQL standby of a plain archive never does.
func TestStandbyFollowsLaggingPromotion(t *testing.T) {
	x := newTruth(t, "", map[string]string{"wal_keep_size": "256MB"})
	x.stream(t)
	id := x.backup(t)
	s2 := pgtest.NewStandby(t, "s2", x.pg, map[string]string{"archive_mode": "on", "archive_command": x.env.ArchiveCommand("pg1")})
	dest, _ := restoreTo(t, x.env, id)
	touch(t, filepath.Join(dest, "standby.signal"))
	sb := pgtest.Adopt(t, "archive-standby", dest)
	appendAuto(t, dest, "wal_retrieve_retry_interval = '200ms'")
	sb.Start(t)
	x.pg.Psql(t, "INSERT INTO rows VALUES (1, 'everywhere')")
	waitArchived(t, x.pg, switchWAL(t, x.pg))
	sb.WaitFor(t, "SELECT count(*) FROM rows", "1", 60*time.Second)
	s2.WaitFor(t, "SELECT count(*) FROM rows", "1", 60*time.Second)

	s2.Stop(t, "fast") // the replica falls behind inside the next segment
	x.pg.Psql(t, "INSERT INTO rows VALUES (2, 'only on the primary and in the receiver')")
	x.streamedTo(t, sb)
	x.pg.Stop(t, "immediate")
	s2.Start(t)
	s2.Promote(t)
	s2.Psql(t, "INSERT INTO rows VALUES (3, 'on timeline 2')")
	waitArchived(t, s2, switchWAL(t, s2))
	sb.WaitFor(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows", "1,3", 60*time.Second)
}
