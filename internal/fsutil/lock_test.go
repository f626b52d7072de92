package fsutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockTwoHolders: a second TryLock of a held lock fails with a HeldError naming the
// holder's pid and command line; once released, the lock can be taken again and the
// file no longer names anybody.
func TestLockTwoHolders(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	a, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	// flock conflicts between open file descriptions, so a second open in this
	// process contends exactly as another process would.
	_, err = TryLock(p)
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrLockHeld) {
		t.Fatalf("second TryLock: %v, want a HeldError", err)
	}
	if held.Path != p || held.Holder.PID != os.Getpid() || held.Holder.Command != strings.Join(os.Args, " ") {
		t.Fatalf("holder %+v of %s, want pid %d command %q", held.Holder, held.Path, os.Getpid(), strings.Join(os.Args, " "))
	}
	if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "pid "+held.Holder.PIDText()) {
		t.Fatalf("error %q names neither the file nor the pid", err)
	}
	if h, err := ReadHolder(p); err != nil || h != held.Holder {
		t.Fatalf("ReadHolder: %+v, %v", h, err)
	}
	if ok, err := LockHeld(p); !ok || err != nil {
		t.Fatalf("LockHeld while held: %v, %v", ok, err)
	}
	a.Unlock()
	a.Unlock() // twice is harmless
	if ok, err := LockHeld(p); ok || err != nil {
		t.Fatalf("LockHeld after unlock: %v, %v", ok, err)
	}
	if h, err := ReadHolder(p); err != nil || h != (Holder{}) {
		t.Fatalf("holder after unlock: %+v, %v", h, err)
	}
	b, err := TryLock(p)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	b.Unlock()
	if ok, err := LockHeld(filepath.Join(t.TempDir(), "missing")); ok || err != nil {
		t.Fatalf("LockHeld of a missing file: %v, %v", ok, err)
	}
}

// TestWaitLockCancelled: a wait for a held lock ends with ctx, its error naming both
// the holder and the context's end, and leaves the lock with its holder.
func TestWaitLockCancelled(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	a, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = WaitLock(ctx, p)
	var held *HeldError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &held) || held.Holder.PID != os.Getpid() {
		t.Fatalf("WaitLock on a held lock: %v", err)
	}
	if ok, _ := LockHeld(p); !ok {
		t.Fatal("the holder lost the lock to a cancelled wait")
	}
}

// TestWaitLockReleased: a wait for a held lock takes it once the holder releases it.
func TestWaitLockReleased(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	a, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(released)
		a.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := WaitLock(ctx, p)
	if err != nil {
		t.Fatalf("WaitLock after release: %v", err)
	}
	defer b.Unlock()
	select {
	case <-released:
	default:
		t.Fatal("WaitLock took the lock while it was still held")
	}
	if h, err := ReadHolder(p); err != nil || h.PID != os.Getpid() {
		t.Fatalf("new holder not written: %+v, %v", h, err)
	}
}

func TestParseHolder(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Holder
	}{
		{"", Holder{}},
		{"1234\n", Holder{PID: 1234}}, // older walkeeper: pid only
		{"1234", Holder{PID: 1234}},
		{"1234\nwalkeeper backup pg1\n", Holder{PID: 1234, Command: "walkeeper backup pg1"}},
		{"garbage\nx\n", Holder{Command: "x"}},
		{"-5\n", Holder{}},
	} {
		if got := parseHolder(c.in); got != c.want {
			t.Errorf("parseHolder(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if s := (Holder{}).String(); s != "pid unknown" {
		t.Errorf("empty holder: %q", s)
	}
	if s := (Holder{PID: 7, Command: "walkeeper watch"}).String(); s != "pid 7 (walkeeper watch)" {
		t.Errorf("holder: %q", s)
	}
}

// TestFlockListed: the /proc/locks parser matches the file's device and inode, and
// not a waiter's line.
func TestFlockListed(t *testing.T) {
	var st = statOf(t, t.TempDir())
	line := func(prefix string) string {
		return prefix + " FLOCK  ADVISORY  WRITE 99 " + devIno(st) + " 0 EOF"
	}
	if !flockListed("1: POSIX  ADVISORY  WRITE 1 00:00:1 0 EOF\n"+line("2:")+"\n", st) {
		t.Error("held flock not found")
	}
	if flockListed("1: FLOCK  ADVISORY  WRITE 99 00:00:1 0 EOF\n", st) {
		t.Error("another file's flock matched")
	}
	if flockListed("1: -> FLOCK  ADVISORY  WRITE 99 "+devIno(st)+" 0 EOF\n", st) {
		t.Error("a waiter counted as the holder")
	}
}

func statOf(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func devIno(st unix.Stat_t) string {
	return fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
}
