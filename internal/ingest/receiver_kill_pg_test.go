package ingest

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// TestReceiverWalsenderKills: walkeeper is the only synchronous standby of a primary
// whose writer commits in a loop; ten times, the walsender serving walkeeper is
// terminated. The receiver reconnects at once after a session that streamed, so each
// kill keeps commits waiting under 2 s (the longest gap between two commits around the
// kill, measured per kill), with the production status interval and backoff. This is
// a correctness bound, not a speed figure: the old backoff made each blip wait up to
// 30 s.
func TestReceiverWalsenderKills(t *testing.T) {
	pg := pgtest.New(t, "primary", pgtest.Options{Conf: map[string]string{
		"synchronous_standby_names": "walkeeper", "synchronous_commit": "on"}})
	r := newRigWith(t, pg.ConnString(""), true)
	pg.WaitFor(t, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'walkeeper'", "sync", 30*time.Second)
	pg.Psql(t, "CREATE TABLE w (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")

	ctx, cancel := context.WithCancel(context.Background())
	log := &commitLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := pgx.Connect(ctx, pg.ConnString(""))
		if err != nil {
			log.mu.Lock()
			log.err = err
			log.mu.Unlock()
			return
		}
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			_, err := conn.Exec(ctx, "INSERT INTO w DEFAULT VALUES")
			log.mu.Lock()
			if err != nil && ctx.Err() == nil {
				log.err = err
			} else if err == nil {
				log.times = append(log.times, time.Now())
			}
			failed := log.err != nil
			log.mu.Unlock()
			if failed {
				return
			}
		}
	}()
	stopWriter := func() { cancel(); <-done }
	defer stopWriter()
	commitsAfter := func(at time.Time) int {
		times, err := log.snapshot()
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
		n := 0
		for _, c := range times {
			if c.After(at) {
				n++
			}
		}
		return n
	}
	walsender := func() (int, string) {
		out := pg.Psql(t, "SELECT coalesce(max(pid), 0) || '|' || coalesce(max(sync_state), '') FROM pg_stat_replication WHERE application_name = 'walkeeper'")
		var pid int
		var state string
		if n, _ := fmt.Sscanf(out, "%d|%s", &pid, &state); n < 1 {
			t.Fatalf("pg_stat_replication: %q", out)
		}
		return pid, state
	}

	var gaps []time.Duration
	for kill := 1; kill <= 10; kill++ {
		var pid int
		wktest.Eventually(t, 30*time.Second, "walkeeper to be the synchronous standby", func() bool {
			p, state := walsender()
			pid = p
			return p != 0 && state == "sync"
		})
		began := time.Now()
		wktest.Eventually(t, 30*time.Second, "the writer to commit", func() bool { return commitsAfter(began) >= 20 })
		at := time.Now()
		if got := pg.Psql(t, "SELECT pg_terminate_backend("+strconv.Itoa(pid)+")"); got != "t" {
			t.Fatalf("pg_terminate_backend(%d) = %q", pid, got)
		}
		wktest.Eventually(t, 30*time.Second, "a new synchronous walsender and commits after the kill", func() bool {
			p, state := walsender()
			return p != 0 && p != pid && state == "sync" && commitsAfter(at) >= 20
		})
		times, _ := log.snapshot()
		gap := longestGap(times, at)
		gaps = append(gaps, gap)
		if gap >= 2*time.Second {
			t.Errorf("kill %d (walsender %d): commits on the primary waited %v (want < 2s)", kill, pid, gap)
		}
	}
	stopWriter()
	if st := r.rcv.State(); st.Reconnects < 10 {
		t.Errorf("receiver counted %d reconnects after 10 walsender kills", st.Reconnects)
	}
	times, _ := log.snapshot()
	t.Logf("%d commits; longest wait per kill: %v", len(times), gaps)
}
