package retention

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestScheduleDecide(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	type tick struct {
		at     time.Duration // after t0
		newest string
		err    error
		want   string
	}
	for _, tc := range []struct {
		desc  string
		ticks []tick
	}{
		{"nothing new before the first interval run", []tick{{30 * time.Second, "B1", nil, ""}}},
		{"first interval run a minute after start", []tick{{time.Minute, "B1", nil, "retention_interval 1h0m0s"}}},
		{"a new backup triggers at once", []tick{{30 * time.Second, "B2", nil, "new backup B2"}}},
		{"a new backup restarts the interval", []tick{
			{30 * time.Second, "B2", nil, "new backup B2"},
			{time.Minute, "B2", nil, ""},
			{30*time.Second + time.Hour, "B2", nil, "retention_interval 1h0m0s"},
		}},
		{"the interval repeats", []tick{
			{time.Minute, "B1", nil, "retention_interval 1h0m0s"},
			{time.Minute + 59*time.Minute, "B1", nil, ""},
			{2 * time.Hour, "B1", nil, "retention_interval 1h0m0s"},
		}},
		{"a listing error is no new backup, the interval still runs", []tick{
			{30 * time.Second, "", errors.New("index closed"), ""},
			{time.Minute, "", errors.New("index closed"), "retention_interval 1h0m0s"},
		}},
		{"the last backup deleted by hand counts as a change", []tick{{30 * time.Second, "", nil, "new backup "}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			st := scheduleState{interval: time.Hour, next: t0.Add(time.Minute), lastSeen: "B1"}
			for i, k := range tc.ticks {
				if got := st.decide(t0.Add(k.at), k.newest, k.err); got != k.want {
					t.Errorf("tick %d at +%s: decide = %q, want %q", i, k.at, got, k.want)
				}
			}
		})
	}
}

// fakeClock is the schedule's injected clock: the test moves time and ticks.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestScheduleRun(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	ticks := make(chan time.Time) // unbuffered: a send returns once the loop waits again
	var mu sync.Mutex
	newest := "B1"
	var applied []string
	s := Schedule{Interval: 2 * time.Hour, Now: clock.Now, Ticks: ticks, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewestDone: func(context.Context) (string, error) { mu.Lock(); defer mu.Unlock(); return newest, nil },
		Apply:      func(_ context.Context, why string) { mu.Lock(); defer mu.Unlock(); applied = append(applied, why) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	step := func(d time.Duration) { clock.advance(d); ticks <- clock.Now() }
	step(0)                // the loop has started (and read the clock)
	step(30 * time.Second) // nothing yet
	step(30 * time.Second) // one minute: the first interval run
	step(0)                // taken once that run is done: B2 is seen by this look or the next
	mu.Lock()
	newest = "B2"
	mu.Unlock()
	step(30 * time.Second) // a new backup
	step(time.Hour)        // within the interval counted from the backup's run
	step(time.Hour)        // the interval has passed
	step(30 * time.Second) // nothing
	ticks <- clock.Now()   // the previous tick's work is done once this one is taken
	cancel()
	<-done
	want := []string{"retention_interval 2h0m0s", "new backup B2", "retention_interval 2h0m0s"}
	if !reflect.DeepEqual(applied, want) {
		t.Errorf("applied %q, want %q", applied, want)
	}
}

// A zero interval is retention_interval's default, one hour.
func TestScheduleDefaultInterval(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	ticks := make(chan time.Time)
	var applied []string
	s := Schedule{Now: clock.Now, Ticks: ticks, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewestDone: func(context.Context) (string, error) { return "", nil },
		Apply:      func(_ context.Context, why string) { applied = append(applied, why) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	ticks <- clock.Now() // the loop has started (and read the clock)
	clock.advance(time.Minute)
	ticks <- clock.Now()
	ticks <- clock.Now()
	cancel()
	<-done
	if !reflect.DeepEqual(applied, []string{"retention_interval 1h0m0s"}) {
		t.Errorf("applied %q", applied)
	}
}
