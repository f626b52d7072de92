package basebackup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

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
