package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pglogrepl"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// startPosition decides where a receiver without an in-process position starts: after
// what streaming/, incoming/ and the archive already hold, else at the slot's
// restart_lsn, else at the server's current segment.
func (r *Receiver) startPosition(ctx context.Context, sys pglogrepl.IdentifySystemResult, slot slotInfo) (uint32, segments.LSN, string, error) {
	if r.positionKnown && !r.startPastGap {
		// Same process: resume exactly where the fsynced data ends.
		return r.timeline, r.flushPos, "last flushed position", nil
	}
	current := func() (uint32, segments.LSN, string, error) {
		return uint32(sys.Timeline), segments.SegStart(segments.SegNoOf(segments.LSN(sys.XLogPos), r.segSize), r.segSize), "server's current position", nil
	}
	if r.resetPending {
		r.resetPending = false
		if err := r.discardPartials(); err != nil {
			return 0, 0, "", err
		}
		return current()
	}
	fromSlot := func() (uint32, segments.LSN, string, error) {
		if slot.restartLSN != 0 {
			tli := slot.restartTLI
			if tli == 0 {
				tli = uint32(sys.Timeline)
			}
			return tli, segments.SegStart(segments.SegNoOf(slot.restartLSN, r.segSize), r.segSize), "slot restart_lsn", nil
		}
		return current()
	}
	if r.startPastGap {
		return fromSlot()
	}
	type pos struct {
		tli uint32
		lsn segments.LSN
		src string
	}
	var best *pos
	consider := func(p pos) {
		if best == nil || p.lsn > best.lsn || p.lsn == best.lsn && p.tli > best.tli {
			best = &p
		}
	}
	partials, err := r.partials()
	if err != nil {
		return 0, 0, "", err
	}
	var partial *pos
	if len(partials) > 0 {
		n := partials[len(partials)-1]
		partial = &pos{n.Timeline, n.StartLSN(r.segSize), "streaming/" + n.Raw}
		consider(*partial)
	}
	newestDone := ""
	if ents, err := os.ReadDir(r.cfg.IncomingDir); err == nil {
		for _, e := range ents {
			if n, err := segments.Parse(e.Name()); err == nil && n.Kind == segments.KindSegment && e.Name() > newestDone {
				newestDone = e.Name()
			}
		}
	}
	if r.cfg.ArchivedEnd != nil {
		last, err := r.cfg.ArchivedEnd(ctx)
		if err != nil {
			return 0, 0, "", fmt.Errorf("newest archived segment: %w", err)
		}
		if last > newestDone {
			newestDone = last
		}
	}
	if newestDone != "" {
		n, err := segments.Parse(newestDone)
		if err == nil && n.ValidFor(r.segSize) == nil {
			consider(pos{n.Timeline, segments.SegStart(n.SegNo(r.segSize)+1, r.segSize), "after archived " + newestDone})
		}
	}
	// Only the newest .partial is live (and only when nothing newer is archived); older
	// ones, left by an interrupted hand-over, are archived as partials so nothing they
	// hold is lost.
	for i, n := range partials {
		if i == len(partials)-1 && best.src == partial.src {
			continue
		}
		if err := HandOver(r.cfg.IncomingDir, n.Raw, filepath.Join(r.cfg.StreamingDir, n.Raw)); err != nil {
			return 0, 0, "", fmt.Errorf("hand stale %s to incoming: %w", n.Raw, err)
		}
		r.log.Warn("stale partial segment handed to the archive as a .partial", "file", n.Raw)
	}
	if best != nil {
		return best.tli, best.lsn, best.src, nil
	}
	return fromSlot()
}
