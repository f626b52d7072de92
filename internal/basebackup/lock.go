package basebackup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// LockName is the per-server backup lock file in <home>/<server>/.
const LockName = "backup.lock"

// ErrBackupRunning is returned when another backup of the same server holds the lock.
var ErrBackupRunning = errors.New("another backup of this server is running")

// Lock is a held per-server backup lock.
type Lock struct{ f *os.File }

// TryLock takes the backup lock of a server directory without waiting: one backup per
// server at a time, while different servers back up in parallel. The kernel drops the
// lock when the process dies, so a crashed backup never leaves it stuck.
func TryLock(serverDir string) (*Lock, error) {
	if err := fsutil.MkdirAll(serverDir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(serverDir, LockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup lock %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := strings.TrimSpace(string(b[:n]))
			if holder == "" {
				holder = "unknown"
			}
			return nil, fmt.Errorf("%w (pid %s holds %s)", ErrBackupRunning, holder, p)
		}
		return nil, fmt.Errorf("backup lock %s: %w", p, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = l.f.Close()
	l.f = nil
}

// LockHeld reports whether a process holds the server's backup lock, without taking
// it (a backup starting at this moment must not find it taken by a reader): it looks
// the lock file's inode up in /proc/locks. Without /proc/locks it falls back to the
// pid the holder wrote into the file, alive or not. A missing lock file is not held.
func LockHeld(serverDir string) (bool, error) {
	p := filepath.Join(serverDir, LockName)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("backup lock %s: %w", p, err)
	}
	if locks, err := os.ReadFile("/proc/locks"); err == nil {
		// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF": device major:minor in hex,
		// then the inode in decimal.
		want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
		for _, l := range strings.Split(string(locks), "\n") {
			f := strings.Fields(l)
			if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want {
				return true, nil
			}
		}
		return false, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return false, fmt.Errorf("backup lock %s: %w", p, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false, nil
	}
	err = unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM), nil
}

// InterruptedError is the error shown for a backup left in progress by a process that
// is gone.
const InterruptedError = "interrupted: no process holds the backup lock (the backup process ended before the backup was complete)"

// ShowInterrupted lists a server's backups with every one still STARTED or WAITING_WAL
// whose process is gone shown as FAILED with InterruptedError, at once rather than
// when the next backup rewrites its record. It reads only (the next backup persists
// the change). The lock is probed between two listings and only backups in progress
// in both are marked: a backup takes the lock before it records STARTED and records
// its end before it releases it, so one in progress on both sides of a free lock is
// dead, while one that began after the probe is in the second listing alone.
func ShowInterrupted(serverDir string, list func() ([]catalog.Backup, error)) ([]catalog.Backup, error) {
	first, err := list()
	if err != nil {
		return nil, err
	}
	before := map[string]bool{}
	for _, b := range first {
		if inProgress(b) {
			before[b.ID] = true
		}
	}
	if len(before) == 0 {
		return first, nil
	}
	held, err := LockHeld(serverDir)
	if err != nil || held {
		return first, nil
	}
	second, err := list()
	if err != nil {
		return nil, err
	}
	for i, b := range second {
		if inProgress(b) && before[b.ID] {
			second[i].Status = catalog.StatusFailed
			second[i].Error = InterruptedError
		}
	}
	return second, nil
}

func inProgress(b catalog.Backup) bool {
	return b.Status == catalog.StatusStarted || b.Status == catalog.StatusWaitingWAL
}
