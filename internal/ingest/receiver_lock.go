package ingest

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// Files the receiver keeps in its streaming directory besides the .partial.
const (
	ReceiverLockFile  = "receiver.lock"
	ReceiverStateFile = "receiver.state"
)

// lockStreaming takes the streaming directory's lock: one receiver per server.
func lockStreaming(dir string) (*fsutil.Lock, error) {
	p := filepath.Join(dir, ReceiverLockFile)
	l, err := fsutil.TryLock(p)
	var held *fsutil.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("another receiver (pid %s) is streaming into %s", held.Holder.PIDText(), dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return l, nil
}

// receiverRunning reports whether a receiver holds the streaming directory's lock,
// without taking it (a receiver starting at that moment must not find it taken).
func receiverRunning(dir string) bool {
	held, err := fsutil.LockHeld(filepath.Join(dir, ReceiverLockFile))
	return err == nil && held
}
