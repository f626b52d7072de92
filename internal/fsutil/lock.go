package fsutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is an exclusive advisory lock (flock) on a lock file. The kernel drops it when
// the process dies, so a crashed holder never leaves it stuck; while it is held the
// file names the holder (its pid on the first line, its command line on the second),
// so the process that finds it taken can say who has it.
type Lock struct {
	f    *os.File
	path string
}

// Holder is the process that holds (or last held) a lock, as written in its file.
type Holder struct {
	// PID is 0 when the file names no holder (written by nobody yet, or emptied).
	PID int
	// Command is the holder's command line ("" when the file has none: a holder of an
	// older walkeeper wrote its pid only).
	Command string
}

// PIDText is the holder's pid, or "unknown" when the file names none.
func (h Holder) PIDText() string {
	if h.PID <= 0 {
		return "unknown"
	}
	return strconv.Itoa(h.PID)
}

// String is "pid 1234 (walkeeper backup pg1)", or "pid 1234" without a command line.
func (h Holder) String() string {
	if h.Command == "" {
		return "pid " + h.PIDText()
	}
	return "pid " + h.PIDText() + " (" + h.Command + ")"
}

// ErrLockHeld matches (errors.Is) every HeldError.
var ErrLockHeld = errors.New("lock held by another process")

// HeldError is returned when another process holds the lock.
type HeldError struct {
	Path   string
	Holder Holder
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by %s", e.Path, e.Holder)
}

// Is makes errors.Is(err, ErrLockHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrLockHeld }

// maxCommandLen bounds the command line written into a lock file.
const maxCommandLen = 256

// TryLock takes the lock of path (created with mode 0600 if missing) without waiting.
// When another process holds it, the error is a *HeldError naming that process. Other
// errors name path; callers add what the lock is for.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &HeldError{Path: path, Holder: readHolder(f)}
		}
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	// The holder's name is a courtesy to the next process, not state anything
	// recovers from (the lock dies with the process), so it is not fsynced.
	cmd := strings.Join(os.Args, " ")
	if len(cmd) > maxCommandLen {
		cmd = cmd[:maxCommandLen]
	}
	cmd = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, cmd)
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"+cmd+"\n"), 0)
	return &Lock{f: f, path: path}, nil
}

// Poll bounds for WaitLock: flock cannot wait with a deadline, so WaitLock retries,
// quickly at first (a holder about to finish) and then at a modest rate.
const (
	minLockPoll = 10 * time.Millisecond
	maxLockPoll = 100 * time.Millisecond
)

// WaitLock takes the lock of path, waiting while another process holds it until ctx
// ends. Then the error wraps both the last *HeldError (errors.As names the holder)
// and ctx's error.
func WaitLock(ctx context.Context, path string) (*Lock, error) {
	poll := minLockPoll
	for {
		l, err := TryLock(path)
		var held *HeldError
		if !errors.As(err, &held) {
			return l, err
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %w", held, ctx.Err())
		case <-t.C:
		}
		poll = min(poll*2, maxLockPoll)
	}
}

// Path is the lock file's path.
func (l *Lock) Path() string { return l.path }

// Unlock releases the lock, emptying the holder's name first so nobody is named after
// it is gone. It is safe on a nil or released Lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = l.f.Close()
	l.f = nil
}

// Close is Unlock, for callers that hold the lock as an io.Closer.
func (l *Lock) Close() error {
	l.Unlock()
	return nil
}

// ReadHolder reads the holder named in the lock file at path (a zero Holder when the
// file is empty).
func ReadHolder(path string) (Holder, error) {
	f, err := os.Open(path)
	if err != nil {
		return Holder{}, err
	}
	defer f.Close()
	return readHolder(f), nil
}

func readHolder(f *os.File) Holder {
	b := make([]byte, 32+maxCommandLen)
	n, _ := f.ReadAt(b, 0)
	return parseHolder(string(b[:n]))
}

// parseHolder reads "pid\ncommand\n"; a file with the pid alone (older walkeeper) or
// garbage gives what it can.
func parseHolder(s string) Holder {
	pidLine, rest, _ := strings.Cut(s, "\n")
	var h Holder
	if pid, err := strconv.Atoi(strings.TrimSpace(pidLine)); err == nil && pid > 0 {
		h.PID = pid
	}
	h.Command, _, _ = strings.Cut(rest, "\n")
	h.Command = strings.TrimSpace(h.Command)
	return h
}

// LockHeld reports whether a process holds the lock of path, without taking it: a
// probe that took the lock, even for an instant, could make the lock's real user fail
// to start (a receiver, a backup, a prefetcher starting at that moment would find it
// taken). It looks the file's inode up in /proc/locks; without /proc/locks it falls
// back to the pid the holder wrote into the file, alive or not. A missing file is not
// held.
func LockHeld(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	if locks, err := os.ReadFile("/proc/locks"); err == nil {
		return flockListed(string(locks), st), nil
	}
	h, err := ReadHolder(path)
	if err != nil {
		return false, err
	}
	if h.PID == 0 {
		return false, nil
	}
	err = unix.Kill(h.PID, 0)
	return err == nil || errors.Is(err, unix.EPERM), nil
}

// flockListed reports whether /proc/locks lists a flock on the file st describes:
// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" names the device major:minor in
// hex, then the inode in decimal. Waiters ("1: -> FLOCK ...") do not hold it.
func flockListed(locks string, st unix.Stat_t) bool {
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for _, l := range strings.Split(locks, "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want {
			return true
		}
	}
	return false
}
