package basebackup

import (
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/record"
)

// TestShowInterrupted: a backup left STARTED or WAITING_WAL shows as FAILED
// (interrupted) once nobody holds the lock, and stays as recorded while the lock is held.
func TestShowInterrupted(t *testing.T) {
	dir := t.TempDir()
	list := func() ([]record.Backup, error) {
		return []record.Backup{{ID: "a", Status: record.StatusDone}, {ID: "b", Status: record.StatusStarted},
			{ID: "c", Status: record.StatusWaitingWAL}}, nil
	}
	if held, err := LockHeld(dir); held || err != nil {
		t.Fatalf("no lock file: held %v, %v", held, err)
	}
	lock, err := TryLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if held, err := LockHeld(dir); !held || err != nil {
		t.Fatalf("lock taken: held %v, %v", held, err)
	}
	bs, _ := ShowInterrupted(dir, list)
	if bs[1].Status != record.StatusStarted || bs[2].Status != record.StatusWaitingWAL {
		t.Fatalf("lock held: %+v", bs)
	}
	lock.Unlock()
	if held, err := LockHeld(dir); held || err != nil {
		t.Fatalf("lock released: held %v, %v", held, err)
	}
	bs, _ = ShowInterrupted(dir, list)
	if bs[0].Status != record.StatusDone || bs[1].Status != record.StatusFailed || bs[2].Status != record.StatusFailed ||
		bs[1].Error != InterruptedError {
		t.Fatalf("lock free: %+v", bs)
	}
	// A backup that appears only after the probe (it took the lock since) is not marked.
	calls := 0
	racing := func() ([]record.Backup, error) {
		calls++
		if calls == 1 {
			return []record.Backup{{ID: "b", Status: record.StatusStarted}}, nil
		}
		return []record.Backup{{ID: "b", Status: record.StatusStarted}, {ID: "d", Status: record.StatusStarted}}, nil
	}
	bs, _ = ShowInterrupted(dir, racing)
	if bs[0].Status != record.StatusFailed || bs[1].Status != record.StatusStarted {
		t.Fatalf("race: %+v", bs)
	}
}

func TestReceiverCause(t *testing.T) {
	for _, c := range []struct {
		st    record.ReceiverState
		known bool
		want  string
	}{
		{record.ReceiverState{}, false, "the streaming receiver of pg1 is not running"},
		{record.ReceiverState{Running: true, LastError: "connect: refused"}, true, "is not connected to the server (slot s1; last error at"},
		{record.ReceiverState{Running: true, Connected: true, FlushedLSN: "0/3000000", Timeline: 1, ServerLSN: "0/3000100", LagBytes: 256}, true,
			"is connected (slot s1) and flushed WAL up to 0/3000000 on timeline 1 (the server is at 0/3000100, 256 bytes ahead)"},
	} {
		if got := receiverCause("pg1", "s1", c.st, c.known); !strings.Contains(got, c.want) {
			t.Errorf("receiverCause(%+v) = %q, want it to contain %q", c.st, got, c.want)
		}
	}
}
