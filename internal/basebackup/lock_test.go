package basebackup

import (
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/catalog"
)

// TestShowInterrupted: a backup left STARTED or WAITING_WAL shows as FAILED
// (interrupted) once nobody holds the lock, and stays as recorded while the lock is held.
func TestShowInterrupted(t *testing.T) {
	dir := t.TempDir()
	list := func() ([]catalog.Backup, error) {
		return []catalog.Backup{{ID: "a", Status: catalog.StatusDone}, {ID: "b", Status: catalog.StatusStarted},
			{ID: "c", Status: catalog.StatusWaitingWAL}}, nil
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
	if bs[1].Status != catalog.StatusStarted || bs[2].Status != catalog.StatusWaitingWAL {
		t.Fatalf("lock held: %+v", bs)
	}
	lock.Unlock()
	if held, err := LockHeld(dir); held || err != nil {
		t.Fatalf("lock released: held %v, %v", held, err)
	}
	bs, _ = ShowInterrupted(dir, list)
	if bs[0].Status != catalog.StatusDone || bs[1].Status != catalog.StatusFailed || bs[2].Status != catalog.StatusFailed ||
		bs[1].Error != InterruptedError {
		t.Fatalf("lock free: %+v", bs)
	}
	// A backup that appears only after the probe (it took the lock since) is not marked.
	calls := 0
	racing := func() ([]catalog.Backup, error) {
		calls++
		if calls == 1 {
			return []catalog.Backup{{ID: "b", Status: catalog.StatusStarted}}, nil
		}
		return []catalog.Backup{{ID: "b", Status: catalog.StatusStarted}, {ID: "d", Status: catalog.StatusStarted}}, nil
	}
	bs, _ = ShowInterrupted(dir, racing)
	if bs[0].Status != catalog.StatusFailed || bs[1].Status != catalog.StatusStarted {
		t.Fatalf("race: %+v", bs)
	}
}

func TestReceiverCause(t *testing.T) {
	for _, c := range []struct {
		st    catalog.ReceiverState
		known bool
		want  string
	}{
		{catalog.ReceiverState{}, false, "the streaming receiver of pg1 is not running"},
		{catalog.ReceiverState{Running: true, LastError: "connect: refused"}, true, "is not connected to the server (slot s1; last error at"},
		{catalog.ReceiverState{Running: true, Connected: true, FlushedLSN: "0/3000000", Timeline: 1, ServerLSN: "0/3000100", LagBytes: 256}, true,
			"is connected (slot s1) and flushed WAL up to 0/3000000 on timeline 1 (the server is at 0/3000100, 256 bytes ahead)"},
	} {
		if got := receiverCause("pg1", "s1", c.st, c.known); !strings.Contains(got, c.want) {
			t.Errorf("receiverCause(%+v) = %q, want it to contain %q", c.st, got, c.want)
		}
	}
}
