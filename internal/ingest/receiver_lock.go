package ingest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Files the receiver keeps in its streaming directory besides the .partial.
const (
	ReceiverLockFile  = "receiver.lock"
	ReceiverStateFile = "receiver.state"
)

// lockStreaming takes the streaming directory's lock: one receiver per server.
func lockStreaming(dir string) (*os.File, error) {
	p := filepath.Join(dir, ReceiverLockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another receiver (pid %s) is streaming into %s", strings.TrimSpace(string(b[:n])), dir)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}
