package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// newRigWith is newRig, with the receiver's production timings when defaults is set.
func newRigWith(t *testing.T, conninfo string, defaults bool) *rig {
	t.Helper()
	home := pgtest.TempDir(t)
	tw := &testWriter{t: t, on: true}
	t.Cleanup(func() { tw.mu.Lock(); tw.on = false; tw.mu.Unlock() })
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := &rig{home: home, streaming: filepath.Join(home, "pg1", "streaming"), incoming: filepath.Join(home, "pg1", "incoming"), log: log,
		defaults: defaults}
	idx, err := index.OpenBadger(filepath.Join(home, "index"), log)
	if err != nil {
		t.Fatal(err)
	}
	r.idx = idx
	r.store = storage.NewLocal(home)
	p, err := NewPipeline(PipelineConfig{Name: "pg1", IncomingDir: r.incoming, ErrorsDir: filepath.Join(home, "pg1", "errors"),
		Compression: "none", Workers: 2, QuietPeriod: 300 * time.Millisecond}, r.store, idx, log)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	pdone := make(chan struct{})
	go func() { defer close(pdone); _ = p.Run(pctx, nil) }()
	var once sync.Once
	r.stopPipe = func() {
		once.Do(func() {
			pcancel()
			<-pdone
			idx.Close()
		})
	}
	t.Cleanup(r.stopPipe)
	r.startReceiver(t, conninfo, false)
	return r
}

// TestReceiverSynchronousStandby: `walkeeper watch` is the only synchronous standby and
// there is no archive_command. While everything runs, the flush position the primary
// holds for walkeeper covers the last acknowledged commit; then walkeeper is killed
// with SIGKILL (no final fsync or report) and the primary stopped with -m immediate:
// pg_waldump reads walkeeper's files (archive, incoming/, the live .partial) up to that
// flush position and finds the last acknowledged COMMIT; the primary's data directory
// is removed and `walkeeper restore` gives a cluster holding every acknowledged row.
func TestReceiverSynchronousStandby(t *testing.T) {
	pg := pgtest.New(t, "primary", pgtest.Options{Conf: map[string]string{
		"synchronous_standby_names": "walkeeper", "synchronous_commit": "on"}})
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{
		"conninfo": pg.ConnString(""), "streaming_archiver": "on", "create_slot": "auto", "compression": "none"}})
	d := env.StartDaemon(t)
	pg.WaitFor(t, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'walkeeper'", "sync", 30*time.Second)
	// Honest feedback: flush is reported, apply never (walkeeper replays nothing, so
	// synchronous_commit = remote_apply must not count it).
	pg.WaitFor(t, "SELECT flush_lsn IS NOT NULL AND replay_lsn IS NULL FROM pg_stat_replication WHERE application_name = 'walkeeper'", "t", 30*time.Second)
	ctx := context.Background()
	pg.Psql(t, "CREATE TABLE acked (id int PRIMARY KEY, xid bigint)")
	if r := env.Run("backup", "pg1", "--wait-timeout", "60s"); r.Code != 0 {
		t.Fatalf("backup on streamed WAL: exit %d\n%s%s\n%s", r.Code, r.Stdout, r.Stderr, d.Output())
	}
	// Bulk WAL (several segments) after the backup, then single-row commits, each
	// acknowledged only once walkeeper reported it flushed.
	pg.PgBench(t, "-i", "-s", "3", "-q")
	conn, err := pgx.Connect(ctx, pg.ConnString(""))
	if err != nil {
		t.Fatal(err)
	}
	var lastXID int64
	var commitEnd string
	for i := 1; i <= 300; i++ {
		if err := conn.QueryRow(ctx, "INSERT INTO acked VALUES ($1, txid_current()) RETURNING xid", i).Scan(&lastXID); err != nil {
			t.Fatal(err)
		}
	}
	// Still running: the flush position the primary has from walkeeper covers the
	// last acknowledged commit (its record ends at or before the insert position).
	var flushed string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&commitEnd); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT flush_lsn::text FROM pg_stat_replication WHERE application_name = 'walkeeper'").Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	d.Kill() // SIGKILL: no final fsync, no final report
	pg.Stop(t, "immediate")
	flushLSN, err := segments.ParseLSN(flushed)
	if err != nil {
		t.Fatal(err)
	}

	// Gather what walkeeper holds: the archive (uncompressed here), incoming/ and the
	// live .partial, which pg_waldump reads under its segment name.
	dump := pgtest.TempDir(t)
	partials, _ := filepath.Glob(filepath.Join(env.Home, "pg1", "streaming", "*.partial"))
	if len(partials) != 1 {
		t.Fatalf("want one live .partial in streaming/, found %v", partials)
	}
	live := strings.TrimSuffix(filepath.Base(partials[0]), ".partial")
	copyFile(t, partials[0], filepath.Join(dump, live))
	var names []string
	for _, dir := range []string{filepath.Join(env.Home, "pg1", "wals", "*"), filepath.Join(env.Home, "pg1", "incoming")} {
		fs, _ := filepath.Glob(filepath.Join(dir, "0*"))
		for _, f := range fs {
			names = append(names, filepath.Base(f))
			copyFile(t, f, filepath.Join(dump, filepath.Base(f)))
		}
	}
	first, lastSeg := contiguous(t, names, 1, segSize16)
	if lastSeg+1 != mustSegNo(t, live) {
		t.Fatalf("archive and incoming/ end at segment %d, the live .partial is %s", lastSeg, live)
	}
	if err := pgtest.Chown(dump); err != nil {
		t.Fatal(err)
	}
	start := segments.SegStart(mustSegNo(t, live)-1, segSize16)
	// Every record up to the flush position reported while running is on disk.
	if out, err := pgtest.RunPGErr("pg_waldump", "-p", dump, "-t", "1", "-s", start.String(), "-e", flushLSN.String(), "-q"); err != nil {
		t.Fatalf("pg_waldump cannot read walkeeper's WAL up to the flush position %s it reported: %v\n%s", flushLSN, err, tail(out, 5))
	}
	out, _ := pgtest.RunPGErr("pg_waldump", "-p", dump, "-t", "1", "-s", start.String(), "-r", "Transaction")
	re := regexp.MustCompile(fmt.Sprintf(`tx:\s+%d, lsn: [0-9A-F/]+, prev [0-9A-F/]+, desc: COMMIT`, lastXID))
	if !re.MatchString(out) {
		t.Fatalf("pg_waldump of the streamed WAL has no COMMIT for the last acknowledged transaction %d:\n%s", lastXID, tail(out, 15))
	}

	// The primary's data directory is gone; walkeeper restores the backup with its own
	// WAL (get-wal serves incoming/ and the live .partial) and every acknowledged row.
	if err := os.RemoveAll(pg.Dir); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(pgtest.TempDir(t), "data")
	env.MustRun(t, "restore", "pg1", "latest", dest)
	restored := pgtest.FromDataDir(t, "restored", dest)
	restored.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 60*time.Second)
	if got := restored.Psql(t, "SELECT count(*), max(id), max(xid) FROM acked"); got != fmt.Sprintf("300|300|%d", lastXID) {
		t.Fatalf("restored cluster: acked rows count|max(id)|max(xid) = %s, want 300|300|%d", got, lastXID)
	}
	t.Logf("walkeeper holds segments %d..%d plus %s.partial; flushed %s while running (insert position after the last commit %s); last acknowledged commit (xid %d) found by pg_waldump after SIGKILL",
		first, lastSeg, live, flushLSN, commitEnd, lastXID)
}

// TestReceiverFollowsPromotion: walkeeper streams from a standby (its slot lives on the
// standby); the standby is promoted, the receiver follows timeline 2, archives
// 00000002.history and timeline 1's last segment as a .partial; then the new primary
// restarts and the receiver reconnects and goes on without a gap.
func TestReceiverFollowsPromotion(t *testing.T) {
	primary := pgtest.New(t, "primary", pgtest.Options{})
	standby := pgtest.NewStandby(t, "standby", primary, nil)
	r := newRig(t, standby.ConnString(""))
	wktest.Eventually(t, 30*time.Second, "the receiver to stream from the standby", func() bool {
		return r.rcv.State().Connected && r.rcv.State().FlushedLSN != ""
	})

	primary.Psql(t, "CREATE TABLE t AS SELECT g FROM generate_series(1, 50000) g")
	primary.Psql(t, "SELECT pg_switch_wal()")
	primary.Psql(t, "INSERT INTO t SELECT generate_series(1, 1000)")
	primary.Psql(t, "SELECT pg_switch_wal()")
	primary.Psql(t, "INSERT INTO t SELECT generate_series(1, 10)")
	want := primary.Psql(t, "SELECT pg_current_wal_lsn()")
	standby.WaitFor(t, "SELECT pg_last_wal_replay_lsn() >= '"+want+"'", "t", 30*time.Second)
	wantLSN, _ := segments.ParseLSN(want)
	wktest.Eventually(t, 30*time.Second, "the receiver to flush "+want+" and report no lag", func() bool {
		st := r.rcv.State()
		f, err := segments.ParseLSN(st.FlushedLSN)
		return err == nil && f >= wantLSN && st.LagBytes == 0 && st.LagSeconds == 0 && st.Timeline == 1
	})
	primary.Stop(t, "fast")
	standby.Promote(t)
	switchLSN := standby.Psql(t, "SELECT pg_current_wal_lsn()")
	standby.Psql(t, "INSERT INTO t SELECT generate_series(1, 1000)")
	standby.Psql(t, "SELECT pg_switch_wal()")

	r.waitArchived(t, "00000002.history", 60*time.Second)
	wktest.Eventually(t, 60*time.Second, "timeline 1's last segment as .partial and timeline 2's first segment", func() bool {
		var partial, seg2 bool
		for n := range r.archived(t) {
			partial = partial || strings.HasPrefix(n, "00000001") && strings.HasSuffix(n, ".partial")
			seg2 = seg2 || strings.HasPrefix(n, "00000002") && len(n) == 24
		}
		return partial && seg2
	})
	if tli := r.rcv.State().Timeline; tli != 2 {
		t.Fatalf("receiver timeline %d after the promotion, want 2", tli)
	}
	arch := r.archived(t)
	hist, err := os.ReadFile(filepath.Join(r.home, arch["00000002.history"].Key))
	if err != nil || !strings.HasPrefix(string(hist), "1\t") {
		t.Fatalf("archived 00000002.history: %q, %v", hist, err)
	}
	// Timeline 1's last segment, up to the switch point the history names, is archived
	// as a .partial, and the segments before it without a gap.
	sw, err := segments.ParseLSN(strings.Fields(string(hist))[1])
	if err != nil {
		t.Fatalf("switch point in %q: %v", hist, err)
	}
	wantPartial := segments.SegmentForLSN(1, sw, segSize16) + ".partial"
	if _, ok := arch[wantPartial]; !ok {
		t.Fatalf("%s (switch point %s, read %s after promotion) not archived; archive: %v", wantPartial, sw, switchLSN, keys(arch))
	}
	var tl1 []string
	for n := range arch {
		tl1 = append(tl1, n)
	}
	if _, last := contiguous(t, tl1, 1, segSize16); last+1 != segments.SegNoOf(sw, segSize16) {
		t.Fatalf("timeline 1's complete segments end at %d, the switch is in segment %d", last, segments.SegNoOf(sw, segSize16))
	}

	// A restart of the server: the receiver reconnects and resumes where it flushed.
	before := r.rcv.State().Reconnects
	standby.Restart(t)
	standby.Psql(t, "INSERT INTO t SELECT generate_series(1, 1000)")
	next := standby.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	standby.Psql(t, "SELECT pg_switch_wal()")
	r.waitArchived(t, next, 60*time.Second)
	if st := r.rcv.State(); st.Reconnects <= before || !st.Connected {
		t.Fatalf("after the server restart: reconnects %d (before %d), connected %v, last error %q", st.Reconnects, before, st.Connected, st.LastError)
	}
	var names []string
	for n := range r.archived(t) {
		names = append(names, n)
	}
	contiguous(t, names, 2, segSize16)
	t.Logf("archive after promotion and restart: %v", names)
}

// TestReceiverSIGKILL: the real `walkeeper watch` daemon streams (streaming_archiver =
// on, no archive_command); it is killed with SIGKILL under load and started again; the
// archive then holds every segment from where streaming began to the last one closed,
// without a gap, and the daemon reports the receiver connected.
func TestReceiverSIGKILL(t *testing.T) {
	pg := pgtest.New(t, "primary", pgtest.Options{})
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{
		"conninfo": pg.ConnString(""), "streaming_archiver": "on", "create_slot": "auto"}})
	d := env.StartDaemon(t)
	pg.WaitFor(t, "SELECT state FROM pg_stat_replication WHERE application_name = 'walkeeper'", "streaming", 30*time.Second)

	// A bulk load (many segments) with the daemon killed in the middle of it.
	bench := make(chan string, 1)
	go func() {
		out, err := pgtest.RunPGErr("pgbench", "-h", pg.Host, "-p", fmt.Sprint(pg.Port), "-U", pgtest.PGUser, "-i", "-s", "5", "-q", "postgres")
		if err != nil {
			out += err.Error()
		}
		bench <- out
	}()
	time.Sleep(800 * time.Millisecond)
	killedAt := pg.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	d.Kill()
	// The killed receiver's last state file says it runs; the free lock says it does not.
	if st, ok, err := ReadReceiverState(filepath.Join(env.Home, "pg1", "streaming")); err != nil || !ok || st.Running || st.Connected {
		t.Fatalf("receiver.state of a killed receiver: %+v ok=%v err=%v", st, ok, err)
	}
	time.Sleep(500 * time.Millisecond)
	d2 := env.StartDaemon(t)
	if out := <-bench; !strings.Contains(out, "done in") {
		t.Fatalf("pgbench -i: %s", out)
	}
	t.Logf("daemon killed while the server wrote %s", killedAt)
	last := pg.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.Psql(t, "SELECT pg_switch_wal()")

	wals := filepath.Join(env.Home, "pg1", "wals")
	list := func() []string {
		var out []string
		_ = filepath.Walk(wals, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), ".") {
				out = append(out, strings.TrimSuffix(strings.TrimSuffix(fi.Name(), ".zst"), ".gz"))
			}
			return nil
		})
		sort.Strings(out)
		return out
	}
	wktest.Eventually(t, 60*time.Second, last+" to be archived after the restart and incoming/ to drain", func() bool {
		if es, _ := os.ReadDir(filepath.Join(env.Home, "pg1", "incoming")); len(es) > 0 {
			return false
		}
		for _, n := range list() {
			if n == last {
				return true
			}
		}
		return false
	})
	names := list()
	first, lastNo := contiguous(t, names, 1, segSize16)
	if lastNo != mustSegNo(t, last) {
		t.Fatalf("archive ends at %d, want %s", lastNo, last)
	}
	if lastNo-first < 3 {
		t.Fatalf("expected the load to span several segments, archive: %v\nfirst daemon:\n%s\nsecond daemon:\n%s", names, d.Output(), d2.Output())
	}
	if _, err := os.Stat(filepath.Join(env.Home, "pg1", "errors")); err == nil {
		if es, _ := os.ReadDir(filepath.Join(env.Home, "pg1", "errors")); len(es) > 0 {
			t.Fatalf("files quarantined: %v", es)
		}
	}
	st, ok, err := ReadReceiverState(filepath.Join(env.Home, "pg1", "streaming"))
	if err != nil || !ok || !st.Running || !st.Connected {
		t.Fatalf("receiver.state after the restart: %+v ok=%v err=%v", st, ok, err)
	}
	if rs := daemonReceiver(t, env.Home); rs["connected"] != true || rs["slot"] != "walkeeper_pg1" || rs["flushed_lsn"] == "" {
		t.Fatalf("/v1/info receiver state: %v", rs)
	}
	// It resumes from its .partial, or after the last segment it handed over when it
	// was killed between two segments; never from the server's current position.
	if out := d2.Output(); !strings.Contains(out, "from=streaming/") && !strings.Contains(out, `from="after archived`) {
		t.Fatalf("the restarted receiver did not resume where it stopped:\n%s", out)
	}
	d2.Stop(t)
	if st, _, _ := ReadReceiverState(filepath.Join(env.Home, "pg1", "streaming")); st.Running {
		t.Fatalf("receiver.state says running after the daemon stopped: %+v", st)
	}
	t.Logf("archive after SIGKILL and restart: segments %d..%d, no gap", first, lastNo)
}

// TestReceiveWALCommandOldMajors is TestReceiveWALCommand on PostgreSQL 13 and 14, which
// have no READ_REPLICATION_SLOT (the slot is read from pg_replication_slots over SQL);
// skipped when their server binaries are not cached (scripts/pg-majors.sh).
func TestReceiveWALCommandOldMajors(t *testing.T) {
	for _, m := range []int{13, 14} {
		t.Run(strconv.Itoa(m), func(t *testing.T) {
			pgtest.RequireMajor(t, m)
			testReceiveWALCommand(t, m)
		})
	}
}

// testReceiveWALCommand runs TestReceiveWALCommand on a server of major (0: the default).
func testReceiveWALCommand(t *testing.T, major int) {
	pg := pgtest.New(t, "primary", pgtest.Options{Major: major})
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{"conninfo": pg.ConnString("")}})
	slots := "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'walkeeper_pg1'"

	if r := env.Run("receive-wal", "pg1", "--create-slot", "--drop-slot"); r.Code != 2 {
		t.Fatalf("--create-slot --drop-slot: exit %d (want 2), stderr %q", r.Code, r.Stderr)
	}
	if out := env.MustRun(t, "receive-wal", "pg1", "--create-slot"); !strings.Contains(out, "created") || pg.Psql(t, slots) != "1" {
		t.Fatalf("--create-slot: %q, slots %s", out, pg.Psql(t, slots))
	}
	if out := env.MustRun(t, "receive-wal", "pg1", "--create-slot"); !strings.Contains(out, "already exists") {
		t.Fatalf("second --create-slot: %q", out)
	}

	run := func(args ...string) (*exec.Cmd, *lockedWriter) {
		cmd := exec.Command(env.Bin, append([]string{"--config", env.Config, "receive-wal", "pg1"}, args...)...)
		logb := &lockedWriter{b: &strings.Builder{}}
		cmd.Stderr = logb
		pgtest.RunAs(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd, logb
	}
	stop := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("receive-wal after SIGTERM: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("receive-wal did not stop within 30s of SIGTERM")
		}
	}

	cmd, _ := run()
	pg.WaitFor(t, "SELECT state FROM pg_stat_replication WHERE application_name = 'walkeeper'", "streaming", 30*time.Second)
	pg.Psql(t, "CREATE TABLE t AS SELECT generate_series(1, 10000) g")
	seg := pg.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.Psql(t, "SELECT pg_switch_wal()")
	incoming := filepath.Join(env.Home, "pg1", "incoming")
	wktest.Eventually(t, 30*time.Second, seg+" in incoming/", func() bool {
		_, err := os.Stat(filepath.Join(incoming, seg))
		return err == nil
	})
	stop(cmd)
	st, ok, err := ReadReceiverState(filepath.Join(env.Home, "pg1", "streaming"))
	if err != nil || !ok || st.Running || st.FlushedLSN == "" {
		t.Fatalf("receiver.state after SIGTERM: %+v ok=%v err=%v", st, ok, err)
	}

	// --reset: the streaming state is discarded and streaming starts at the server's
	// current segment.
	pg.Psql(t, "SELECT pg_switch_wal()")
	pg.Psql(t, "INSERT INTO t SELECT generate_series(1, 10)")
	cur := pg.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	cmd, logb := run("--reset")
	wktest.Eventually(t, 30*time.Second, "the reset receiver to stream", func() bool {
		_, err := os.Stat(filepath.Join(env.Home, "pg1", "streaming", cur+".partial"))
		return err == nil && strings.Contains(logb.String(), "current position")
	})
	stop(cmd)

	if out := env.MustRun(t, "receive-wal", "pg1", "--drop-slot"); !strings.Contains(out, "dropped") || pg.Psql(t, slots) != "0" {
		t.Fatalf("--drop-slot: %q, slots %s", out, pg.Psql(t, slots))
	}
	// create_slot = manual and no slot: the receiver says what to do.
	cmd, logb = run()
	wktest.Eventually(t, 30*time.Second, "the missing-slot error", func() bool {
		return strings.Contains(logb.String(), "does not exist (create_slot = manual")
	})
	stop(cmd)

	// An archive that belongs to another cluster: the receiver refuses to stream.
	idPath := filepath.Join(env.Home, "pg1", "identity.json")
	if err := os.WriteFile(idPath, []byte(`{"system_id":"12345","wal_segment_size":16777216}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = pgtest.Chown(idPath)
	cmd, logb = run()
	wktest.Eventually(t, 30*time.Second, "the wrong-cluster error", func() bool {
		return strings.Contains(logb.String(), "but this archive belongs to 12345")
	})
	stop(cmd)
}

// TestReceiverWithArchiveCommand: archive_command and streaming on one server; every
// segment arrives both ways, is archived once, and nothing is quarantined.
func TestReceiverWithArchiveCommand(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{"streaming_archiver": "on", "create_slot": "auto"}})
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	d := env.StartDaemon(t)
	pg.WaitFor(t, "SELECT state FROM pg_stat_replication WHERE application_name = 'walkeeper'", "streaming", 30*time.Second)
	pg.PgBench(t, "-i", "-s", "3", "-q")
	last := pg.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.Psql(t, "SELECT pg_switch_wal()")
	pg.WaitFor(t, "SELECT last_archived_wal >= '"+last+"' FROM pg_stat_archiver", "t", 60*time.Second)
	// Both doors deliver the same names: archive-wal's copy and the receiver's rename
	// may replace each other in incoming/ before ingest sees them, or each be ingested
	// (the second as a duplicate); either way each name is archived once.
	var ss daemon.ServerState
	wktest.Eventually(t, 60*time.Second, last+" archived and incoming/ drained", func() bool {
		c, err := daemon.Dial(env.Home)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return false
		}
		ss = info.Servers["pg1"]
		es, _ := os.ReadDir(filepath.Join(env.Home, "pg1", "incoming"))
		_, err = os.Stat(filepath.Join(env.Home, "pg1", "wals", last[:16], last+".zst"))
		return err == nil && len(es) == 0
	})
	if es, _ := os.ReadDir(filepath.Join(env.Home, "pg1", "errors")); len(es) > 0 || ss.Quarantined > 0 {
		t.Fatalf("files quarantined with archive_command and streaming together: %v (%+v)\n%s", es, ss, d.Output())
	}
	if got := pg.Psql(t, "SELECT failed_count FROM pg_stat_archiver"); got != "0" {
		t.Fatalf("archive_command failed %s times", got)
	}
	t.Logf("daemon: %d archived, %d duplicates accepted, 0 quarantined", ss.Archived, ss.Duplicates)
}

// TestReceiverBackupAndRestore: walkeeper's daemon is the synchronous standby and the
// only WAL path (no archive_command). A `walkeeper backup` completes on streamed WAL
// alone; after the primary is stopped with -m immediate and its data directory
// removed, `walkeeper restore` (get-wal and copy-wal) gives clusters holding every
// acknowledged commit, the last ones coming from the receiver's live .partial.
func TestReceiverBackupAndRestore(t *testing.T) {
	pg := pgtest.New(t, "primary", pgtest.Options{Conf: map[string]string{
		"synchronous_standby_names": "walkeeper", "synchronous_commit": "on"}})
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{
		"conninfo": pg.ConnString(""), "streaming_archiver": "on", "create_slot": "auto"}})
	d := env.StartDaemon(t)
	pg.WaitFor(t, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'walkeeper'", "sync", 30*time.Second)
	pg.Psql(t, "CREATE TABLE acked (id int PRIMARY KEY, at timestamptz DEFAULT now())")
	pg.PgBench(t, "-i", "-s", "1", "-q")
	if r := env.Run("backup", "pg1", "--wait-timeout", "60s"); r.Code != 0 {
		t.Fatalf("backup on streamed WAL: exit %d\n%s%s\n%s", r.Code, r.Stdout, r.Stderr, d.Output())
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.ConnString(""))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 200; i++ {
		if _, err := conn.Exec(ctx, "INSERT INTO acked (id) VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	pg.Stop(t, "immediate")
	if err := os.RemoveAll(pg.Dir); err != nil {
		t.Fatal(err)
	}
	d.Stop(t)

	for _, mode := range []string{"--get-wal", "--copy-wal"} {
		dest := filepath.Join(pgtest.TempDir(t), "data")
		env.MustRun(t, "restore", "pg1", "latest", dest, mode)
		c := pgtest.FromDataDir(t, "restored"+mode, dest)
		c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 60*time.Second)
		if got := c.Psql(t, "SELECT count(*), max(id) FROM acked"); got != "200|200" {
			t.Fatalf("restore %s: acked rows count|max = %s, want 200|200", mode, got)
		}
		c.Stop(t, "immediate")
	}
}

// TestReceiverFailoverToLaggingStandby: walkeeper has more WAL than the standby that
// is promoted after the primary dies. Pointed at the new primary, the receiver finds
// that the new timeline forked before its position, resumes at the fork and follows
// timeline 2: the fork's segment of timeline 1 is archived as a .partial, the history
// file and timeline 2's segments follow.
func TestReceiverFailoverToLaggingStandby(t *testing.T) {
	primary := pgtest.New(t, "primary", pgtest.Options{})
	standby := pgtest.NewStandby(t, "standby", primary, nil)
	r := newRig(t, primary.ConnString(""))
	primary.Psql(t, "CREATE TABLE t AS SELECT generate_series(1, 1000) g")
	want := primary.Psql(t, "SELECT pg_current_wal_lsn()")
	standby.WaitFor(t, "SELECT pg_last_wal_replay_lsn() >= '"+want+"'", "t", 30*time.Second)
	standby.Stop(t, "fast")

	// The primary goes on without the standby, for more than a segment.
	primary.Psql(t, "INSERT INTO t SELECT generate_series(1, 1000)")
	primary.Psql(t, "SELECT pg_switch_wal()")
	primary.Psql(t, "INSERT INTO t SELECT generate_series(1, 1000)")
	primary.Psql(t, "SELECT pg_switch_wal()")
	primary.Psql(t, "INSERT INTO t SELECT generate_series(1, 10)")
	end, _ := segments.ParseLSN(primary.Psql(t, "SELECT pg_current_wal_lsn()"))
	wktest.Eventually(t, 30*time.Second, "the receiver to flush the primary's WAL", func() bool {
		f, err := segments.ParseLSN(r.rcv.State().FlushedLSN)
		return err == nil && f >= end
	})
	primary.Stop(t, "immediate")
	r.stopRcv()

	standby.Start(t)
	standby.Promote(t)
	standby.Psql(t, "INSERT INTO t SELECT generate_series(1, 100)")
	next := standby.Psql(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	standby.Psql(t, "SELECT pg_switch_wal()")
	r.startReceiver(t, standby.ConnString(""), false)
	r.waitArchived(t, "00000002.history", 60*time.Second)
	r.waitArchived(t, next, 60*time.Second)

	arch := r.archived(t)
	hist, err := os.ReadFile(filepath.Join(r.home, arch["00000002.history"].Key))
	if err != nil {
		t.Fatal(err)
	}
	fork, err := segments.ParseLSN(strings.Fields(string(hist))[1])
	if err != nil {
		t.Fatalf("00000002.history %q: %v", hist, err)
	}
	if fork >= end {
		t.Fatalf("the standby was not behind: fork %s, walkeeper had %s", fork, end)
	}
	if uint64(fork)%segSize16 != 0 {
		// The old timeline's piece up to the fork reaches the archive through incoming/,
		// on its own turn: it may land after the new timeline's first segment.
		p := segments.SegmentForLSN(1, fork, segSize16) + ".partial"
		r.waitArchived(t, p, 30*time.Second)
		arch = r.archived(t)
	}
	var names []string
	for n := range arch {
		names = append(names, n)
	}
	first2, _ := contiguous(t, names, 2, segSize16)
	if first2 != segments.SegNoOf(fork, segSize16) {
		t.Fatalf("timeline 2 starts at segment %d, the fork is in segment %d", first2, segments.SegNoOf(fork, segSize16))
	}
	if st := r.rcv.State(); st.Timeline != 2 || !st.Connected {
		t.Fatalf("receiver after the failover: %+v", st)
	}
	t.Logf("fork at %s (walkeeper had %s); archive: %v", fork, end, keys(arch))
}

// TestReceiveWALCommand: `walkeeper receive-wal` manages the slot (create_slot = manual
// by default), streams in the foreground without a daemon (completed segments wait in
// incoming/), stops cleanly on SIGTERM, and --reset starts at the server's position.
func TestReceiveWALCommand(t *testing.T) { testReceiveWALCommand(t, 0) }
