package basebackup

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/record"
)

// LockName is the per-server backup lock file in <home>/<server>/.
const LockName = "backup.lock"

// ErrBackupRunning is returned when another backup of the same server holds the lock.
var ErrBackupRunning = errors.New("another backup of this server is running")

// Lock is a held per-server backup lock.
type Lock struct{ l *fsutil.Lock }

// TryLock takes the backup lock of a server directory without waiting: one backup per
// server at a time, while different servers back up in parallel. The kernel drops the
// lock when the process dies, so a crashed backup never leaves it stuck.
func TryLock(serverDir string) (*Lock, error) {
	if err := fsutil.MkdirAll(serverDir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(serverDir, LockName)
	l, err := fsutil.TryLock(p)
	var held *fsutil.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("%w (%s holds %s)", ErrBackupRunning, held.Holder, p)
	}
	if err != nil {
		return nil, fmt.Errorf("backup lock %s: %w", p, err)
	}
	return &Lock{l: l}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l == nil {
		return
	}
	l.l.Unlock()
}

// LockHeld reports whether a process holds the server's backup lock, without taking
// it (a backup starting at this moment must not find it taken by a reader; see
// fsutil.LockHeld). A missing lock file is not held.
func LockHeld(serverDir string) (bool, error) {
	p := filepath.Join(serverDir, LockName)
	held, err := fsutil.LockHeld(p)
	if err != nil {
		return false, fmt.Errorf("backup lock %s: %w", p, err)
	}
	return held, nil
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
func ShowInterrupted(serverDir string, list func() ([]record.Backup, error)) ([]record.Backup, error) {
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
			second[i].Status = record.StatusFailed
			second[i].Error = InterruptedError
		}
	}
	return second, nil
}

func inProgress(b record.Backup) bool {
	return b.Status == record.StatusStarted || b.Status == record.StatusWaitingWAL
}
