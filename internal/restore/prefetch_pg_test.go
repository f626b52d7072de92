package restore_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// TestPrefetchThroughPGWAL replays several full segments through the restore_command
// a restore writes (get-wal --prefetch): segments the prefetcher linked into pg_wal are
// read there by PostgreSQL (no "restored log file" line for them), the cluster lands on
// its target with all the data, and after promotion none of the timeline 1 segments is
// archived again (each was marked .done like a restored one).
func TestPrefetchThroughPGWAL(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	primary := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = primary.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	var b struct {
		ID       string `json:"id"`
		BeginWAL string `json:"begin_wal"`
	}
	env.JSON(t, &b, "backup", "pg1")
	primary.Psql(t, "CREATE TABLE big (id int, pad text)")
	// About a segment of WAL per insert: replay takes long enough per segment for the
	// prefetcher to stay ahead of it even on a loaded machine.
	const rounds = 8
	for i := 0; i < rounds; i++ {
		primary.Psql(t, "INSERT INTO big SELECT g, repeat('x', 60) FROM generate_series(1, 100000) g")
	}
	endLSN := primary.Psql(t, "SELECT pg_create_restore_point('filled')")
	endSeg := primary.Psql(t, "SELECT pg_walfile_name('"+endLSN+"')")
	env.MustRun(t, "switch-wal", "pg1", "--wait")

	dir := pgtest.TempDir(t)
	dest := filepath.Join(dir, "data")
	env.MustRun(t, "restore", "pg1", b.ID, dest, "--target-name", "filled", "--target-action", "promote")
	// Record what the restored cluster archives once promoted.
	list := filepath.Join(dir, "archived.txt")
	f, err := os.OpenFile(filepath.Join(dest, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("archive_mode = on\narchive_command = 'echo %f >> " + list + "'\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := pgtest.FromDataDir(t, "restored", dest)
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := c.Psql(t, "SELECT count(*) FROM big"); got != strconv.Itoa(rounds*100000) {
		t.Fatalf("restored cluster has %s rows, want %d", got, rounds*100000)
	}

	first, err1 := strconv.ParseUint(b.BeginWAL[16:], 16, 32)
	last, err2 := strconv.ParseUint(endSeg[16:], 16, 32)
	if err1 != nil || err2 != nil || !strings.HasPrefix(b.BeginWAL, "00000001") || !strings.HasPrefix(endSeg, "00000001") {
		t.Fatalf("segments %s .. %s", b.BeginWAL, endSeg)
	}
	replayed := int(last - first + 1)
	restored := len(regexp.MustCompile(`restored log file "00000001[0-9A-F]{16}" from archive`).FindAllString(c.Log(), -1))
	t.Logf("%d segments replayed, %d of them through restore_command's %%p:\n%s", replayed, restored, strings.Join(regexp.MustCompile(`restored log file "[^"]+"`).FindAllString(c.Log(), -1), "\n"))
	// The first ones may come before the prefetcher has started, and the last one is
	// asked for again at the end of recovery; on a loaded machine a nice'd prefetcher can
	// fall behind, so one read from pg_wal is what must hold.
	if replayed-restored < 1 {
		t.Errorf("only %d of %d segments were read from pg_wal after the prefetcher placed them", replayed-restored, replayed)
	}

	c.Psql(t, "CHECKPOINT")
	seg := c.Psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	wktest.Eventually(t, 60*time.Second, seg+" archived by the restored cluster", func() bool {
		b, _ := os.ReadFile(list)
		return strings.Contains(string(b), seg)
	})
	got, _ := os.ReadFile(list)
	if again := regexp.MustCompile(`(?m)^00000001[0-9A-F]{16}$`).FindAllString(string(got), -1); len(again) > 0 {
		t.Errorf("timeline 1 segments archived again after promotion: %v", again)
	}
	if _, err := os.Stat(filepath.Join(dest, "pg_wal", "walkeeper_spool")); !os.IsNotExist(err) {
		t.Errorf("the spool outlived recovery: %v", err)
	}
}
