package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// ReceiverState is what status and check show about a receiver (record.ReceiverState:
// the packages that show it do not import ingest).
type ReceiverState = record.ReceiverState

// State returns a snapshot of the receiver's state.
func (r *Receiver) State() ReceiverState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

func (r *Receiver) snapshotLocked() ReceiverState {
	s := r.shared.state
	now := time.Now()
	s.UpdatedAt = now.UTC()
	// Positions are kept raw on the hot path and rendered here, at most once a second.
	if r.shared.timeline != 0 {
		s.Timeline = r.shared.timeline
		s.ReceivedLSN = r.shared.written.String()
		s.FlushedLSN = r.shared.flushed.String()
	}
	if r.shared.serverWALEnd != 0 {
		s.ServerLSN = r.shared.serverWALEnd.String()
	}
	if !r.shared.lastMessageAt.IsZero() {
		s.LastMessageAt = r.shared.lastMessageAt.UTC()
		s.LastServerTime = r.shared.lastServerTime.UTC()
	}
	if r.shared.serverWALEnd > r.shared.flushed && r.shared.flushed != 0 {
		s.LagBytes = int64(r.shared.serverWALEnd - r.shared.flushed)
		if !r.shared.caughtUpAt.IsZero() {
			s.LagSeconds = now.Sub(r.shared.caughtUpAt).Seconds()
		}
	}
	return s
}

func (r *Receiver) update(f func(s *ReceiverState), publish bool) {
	r.mu.Lock()
	f(&r.shared.state)
	if !publish && time.Since(r.shared.lastPublished) < time.Second {
		r.mu.Unlock()
		return
	}
	r.shared.lastPublished = time.Now()
	snap := r.snapshotLocked()
	writeFile := publish || time.Since(r.shared.lastStateFileAt) >= 5*time.Second
	if writeFile {
		r.shared.lastStateFileAt = time.Now()
	}
	r.mu.Unlock()
	if r.cfg.OnState != nil {
		r.cfg.OnState(snap)
	}
	if writeFile && r.stateFileCh != nil {
		// The file is written off the streaming goroutine, so it never
		// delays a flush report; only the newest snapshot waits.
		select {
		case r.stateFileCh <- snap:
		default:
			select {
			case <-r.stateFileCh:
			default:
			}
			select {
			case r.stateFileCh <- snap:
			default:
			}
		}
	}
}

// writeStateFile replaces receiver.state atomically but without fsync: it is a status
// report that nothing recovers from (after a crash, ReadReceiverState sees the lock is
// free and reports the receiver stopped), and forcing a journal commit every few
// seconds would stall the fsyncs synchronous commits wait for.
func (r *Receiver) writeStateFile(s ReceiverState) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return
	}
	if _, err := fsutil.WriteAtomicNoSync(filepath.Join(r.cfg.StreamingDir, ReceiverStateFile), bytes.NewReader(b), 0o600); err != nil {
		r.log.Debug("write receiver state", "err", err)
	}
}

// positions records the streaming positions for the state (hot path: no publishing
// unless a second has passed).
func (r *Receiver) positions() {
	r.mu.Lock()
	r.shared.timeline, r.shared.written, r.shared.flushed = r.timeline, r.writePos, r.flushPos
	if r.flushPos >= r.shared.serverWALEnd {
		r.shared.caughtUpAt = time.Now()
	}
	r.mu.Unlock()
	r.maybePublish()
}

// maybePublish publishes the state if the last publication is a second old.
func (r *Receiver) maybePublish() {
	r.mu.Lock()
	due := time.Since(r.shared.lastPublished) >= time.Second
	r.mu.Unlock()
	if due {
		r.update(func(*ReceiverState) {}, false)
	}
}

func (r *Receiver) fail(err error) {
	r.update(func(s *ReceiverState) {
		s.Connected = false
		s.LastError = err.Error()
		s.LastErrorAt = time.Now().UTC()
	}, true)
}

func (r *Receiver) noteServer(end segments.LSN, at time.Time) {
	r.mu.Lock()
	if end > r.shared.serverWALEnd {
		r.shared.serverWALEnd = end
	}
	r.shared.lastMessageAt, r.shared.lastServerTime = time.Now(), at
	r.mu.Unlock()
	r.maybePublish()
}

// ReadReceiverState reads the state a receiver last wrote to its streaming directory,
// for status and check when no daemon answers. Running and Connected are cleared when
// no receiver holds the directory's lock any more (it was stopped or killed).
func ReadReceiverState(streamingDir string) (ReceiverState, bool, error) {
	var s ReceiverState
	b, err := os.ReadFile(filepath.Join(streamingDir, ReceiverStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("%s: %w", filepath.Join(streamingDir, ReceiverStateFile), err)
	}
	if !receiverRunning(streamingDir) {
		s.Running, s.Connected = false, false
	}
	return s, true, nil
}
