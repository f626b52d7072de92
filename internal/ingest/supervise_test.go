package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeReceiver fails its first runs, then runs until its context ends.
type fakeReceiver struct {
	mu    sync.Mutex
	fails int
	runs  int
	cfg   ReceiverConfig
}

func (f *fakeReceiver) Run(ctx context.Context) error {
	f.mu.Lock()
	f.runs++
	failing := f.runs <= f.fails
	f.mu.Unlock()
	if failing {
		return errors.New("streaming directory locked by another receiver")
	}
	f.cfg.OnState(ReceiverState{Server: f.cfg.Server, Slot: f.cfg.SlotName, Connected: true})
	<-ctx.Done()
	return nil
}

func (f *fakeReceiver) State() ReceiverState {
	return ReceiverState{Server: f.cfg.Server, Slot: f.cfg.SlotName}
}

func TestSuperviseReceivers(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var mu sync.Mutex
	reports := map[string][]ReceiverState{}
	report := func(server string, st ReceiverState) {
		mu.Lock()
		defer mu.Unlock()
		reports[server] = append(reports[server], st)
	}
	fakes := map[string]*fakeReceiver{}
	newReceiver := func(c ReceiverConfig) (receiverRun, error) {
		if c.Conninfo == "" {
			return nil, errors.New("streaming_conninfo is empty")
		}
		f := &fakeReceiver{cfg: c, fails: 2}
		fakes[c.Server] = f
		return f, nil
	}
	cfgs := []ReceiverConfig{
		{Server: "pg1", Conninfo: "host=db1", SlotName: "wk1"},
		{Server: "pg2", SlotName: "wk2"}, // refused by NewReceiver
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { superviseReceivers(ctx, cfgs, report, log, time.Millisecond, newReceiver); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(reports["pg1"])
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not return when its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	// pg1: two failures reported with their error, then the running state from OnState.
	got := reports["pg1"]
	if len(got) != 3 || got[0].LastError == "" || got[1].LastError == "" || got[0].LastErrorAt.IsZero() || !got[2].Connected {
		t.Fatalf("pg1 reports = %+v; want two failures, then connected", got)
	}
	if fakes["pg1"].runs != 3 {
		t.Errorf("pg1 ran %d times, want 3 (two retries)", fakes["pg1"].runs)
	}
	// pg2: never started, reported once with the reason and its slot.
	if r := reports["pg2"]; len(r) != 1 || r[0].LastError != "streaming_conninfo is empty" || r[0].Slot != "wk2" || r[0].Server != "pg2" {
		t.Errorf("pg2 reports = %+v", r)
	}
}

// A receiver that fails is not run again once the context has ended.
func TestSuperviseReceiversStopsRetrying(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fakeReceiver{fails: 1 << 30}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		superviseReceivers(ctx, []ReceiverConfig{{Server: "pg1", Conninfo: "x"}}, func(string, ReceiverState) { cancel() }, log, time.Hour,
			func(c ReceiverConfig) (receiverRun, error) { f.cfg = c; return f, nil })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor waited out its retry delay after the context ended")
	}
	if f.runs != 1 {
		t.Errorf("ran %d times, want 1", f.runs)
	}
}
