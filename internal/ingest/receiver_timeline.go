package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// endTimeline closes the old timeline at switchLSN: its last segment goes to incoming/
// as a .partial, the new timeline's history file is archived, and streaming goes on on
// newTLI from the start of the segment holding the switch point (the server's file on
// the new timeline carries the old timeline's WAL up to it).
func (r *Receiver) endTimeline(ctx context.Context, conn *pgconn.PgConn, newTLI uint32, switchLSN segments.LSN) (uint32, segments.LSN, error) {
	old := r.timeline
	if r.writePos != switchLSN && r.writePos != 0 {
		r.log.Warn("timeline ended at a position the receiver had not reached", "timeline", old, "switch", switchLSN, "received", r.writePos)
	}
	if r.segFile == nil && uint64(switchLSN)%r.segSize != 0 {
		// Resuming exactly at the switch point: the piece of the old timeline is on disk.
		p := r.partialPath(old, segments.SegNoOf(switchLSN, r.segSize))
		if _, err := os.Stat(p); err == nil {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				return 0, 0, err
			}
			r.segFile, r.segFileNo, r.segFileTLI = f, segments.SegNoOf(switchLSN, r.segSize), old
		}
	}
	if r.segFile != nil {
		if err := r.completeSegment(".partial"); err != nil {
			return 0, 0, err
		}
	}
	hist, err := pglogrepl.TimelineHistory(ctx, conn, int32(newTLI))
	if err != nil {
		return 0, 0, fmt.Errorf("TIMELINE_HISTORY %d: %w", newTLI, err)
	}
	name := segments.HistoryFileName(newTLI)
	if hist.FileName != "" && hist.FileName != name {
		return 0, 0, fmt.Errorf("TIMELINE_HISTORY %d returned file %q", newTLI, hist.FileName)
	}
	// archive_command may have dropped the same file first: left alone then; another
	// content waits beside it, never over it (invariant 2).
	if _, err := DropData(r.cfg.IncomingDir, name, hist.Content); err != nil {
		return 0, 0, err
	}
	start := segments.SegStart(segments.SegNoOf(switchLSN, r.segSize), r.segSize)
	r.log.Info("timeline switch followed", "from", old, "to", newTLI, "switch", switchLSN, "history", name)
	r.mu.Lock()
	r.shared.timeline = newTLI
	r.mu.Unlock()
	r.update(func(s *ReceiverState) { s.Timeline = newTLI }, true)
	return newTLI, start, nil
}

// forkBefore tells whether the server's history left timeline tli before start (so
// START_REPLICATION there is refused): it answers the fork point from the history of
// the server's timeline. The failed command's ReadyForQuery is consumed first.
func (r *Receiver) forkBefore(ctx context.Context, conn *pgconn.PgConn, serverTLI, tli uint32, start segments.LSN) (segments.LSN, bool, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		msg, err := conn.ReceiveMessage(dctx)
		if err != nil {
			return 0, false, fmt.Errorf("after START_REPLICATION: %w", err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if serverTLI <= tli {
		return 0, false, nil
	}
	hist, err := pglogrepl.TimelineHistory(ctx, conn, int32(serverTLI))
	if err != nil {
		return 0, false, fmt.Errorf("TIMELINE_HISTORY %d: %w", serverTLI, err)
	}
	entries, err := segments.ParseHistory(serverTLI, hist.Content)
	if err != nil {
		return 0, false, fmt.Errorf("history of timeline %d: %w", serverTLI, err)
	}
	for _, e := range entries {
		if e.Timeline == tli {
			return e.SwitchLSN, e.SwitchLSN < start, nil
		}
	}
	return 0, false, nil
}

// retireTimeline hands every .partial of timeline tli in streaming/ except the one of
// segment keep to incoming/ under its .partial name: they hold WAL past the fork that
// the server's history does not have, archived for the record and out of the way.
func (r *Receiver) retireTimeline(tli uint32, keep uint64) error {
	r.closeFile()
	ps, err := r.partials()
	if err != nil {
		return err
	}
	for _, n := range ps {
		if n.Timeline != tli || n.SegNo(r.segSize) == keep {
			continue
		}
		if err := HandOver(r.cfg.IncomingDir, n.Raw, filepath.Join(r.cfg.StreamingDir, n.Raw)); err != nil {
			return fmt.Errorf("hand %s to incoming: %w", n.Raw, err)
		}
		r.log.Warn("partial segment past the fork handed to the archive", "file", n.Raw)
	}
	return nil
}
