package check

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/verify"
)

func (r *runner) since(t time.Time) time.Duration {
	d := r.now.Sub(t)
	if d < 0 {
		d = 0
	}
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// walRecent: the newest archived WAL is recent, or the server has nothing newer to give.
func (r *runner) walRecent(ctx context.Context) {
	if r.d.Index == nil {
		return
	}
	st, err := r.d.Index.WALStats(ctx, r.srv.Name)
	if err != nil {
		r.add(CheckWALRecent, false, fmt.Sprintf("index: %v", err), "")
		return
	}
	if st.LastSegment == "" {
		if n, size := archive.IncomingBacklog(r.srv.IncomingDir()); n > 0 {
			r.add(CheckWALRecent, false, fmt.Sprintf("no WAL segment moved into the archive yet; %d files (%s) wait in %s (restore reads them there)",
				n, human(size), r.srv.IncomingDir()), "see the daemon check: `walkeeper watch` archives them")
			return
		}
		r.add(CheckWALRecent, false, "no WAL segment has been archived yet",
			fmt.Sprintf("with the daemon running, `walkeeper switch-wal %s --wait` archives one", r.srv.Name))
		return
	}
	limit := DefaultWALMaxAge
	limitWhy := "default, the server sets no archive_timeout"
	if r.pg.err == nil && r.pg.archiveTimeout > 0 {
		limit = max(2*r.pg.archiveTimeout, time.Minute)
		limitWhy = fmt.Sprintf("twice archive_timeout %s", r.pg.archiveTimeout)
	}
	age := r.since(st.LastArrival)
	detail := fmt.Sprintf("last archived segment %s arrived %s ago", st.LastSegment, age)
	// How far behind the server is: its completed segments newer than the newest archived.
	behind := int64(-1)
	if r.pg.err == nil && r.pg.segSize != 0 && r.pg.currentLSN != 0 {
		last, err := segments.Parse(st.LastSegment)
		if err == nil && (r.pg.timeline == 0 || r.pg.timeline == last.Timeline) {
			completed := int64(segments.SegNoOf(r.pg.currentLSN, r.pg.segSize)) - 1
			behind = max(completed-int64(last.SegNo(r.pg.segSize)), 0)
		}
	}
	switch {
	case behind == 0:
		r.add(CheckWALRecent, true, detail+"; the server has not completed a newer segment", "")
	case age <= limit:
		if behind > 0 {
			detail += fmt.Sprintf("; the server has %d completed segment(s) not archived yet", behind)
		}
		r.add(CheckWALRecent, true, detail, "")
	default:
		if behind > 0 {
			detail += fmt.Sprintf(", and the server has completed %d newer segment(s)", behind)
		}
		r.add(CheckWALRecent, false, fmt.Sprintf("%s: older than %s (%s)", detail, limit, limitWhy),
			"see the pg_stat_archiver and daemon checks; `walkeeper status "+r.srv.Name+"` shows the incoming backlog")
	}
}

func (r *runner) systemID(ctx context.Context) {
	id, err := archive.LoadIdentity(ctx, r.d.Store, r.srv.Name)
	if errors.Is(err, storage.ErrNotFound) {
		if r.pg.err == nil {
			r.add(CheckSystemID, true, fmt.Sprintf("server %d; the archive has not learned one yet (no WAL archived)", r.pg.systemID), "")
		}
		return
	}
	if err != nil {
		r.add(CheckSystemID, false, fmt.Sprintf("cannot read the archive's identity: %v", err), "")
		return
	}
	if r.pg.err != nil {
		return
	}
	if id.SystemID != r.pg.systemID {
		r.add(CheckSystemID, false, fmt.Sprintf("the server's system identifier is %d, the archive's is %d", r.pg.systemID, id.SystemID),
			"conninfo points at another cluster (or the cluster was re-created): archive it under a new server name")
		return
	}
	if r.pg.segSize != 0 && id.SegSize != r.pg.segSize {
		r.add(CheckSystemID, false, fmt.Sprintf("the server's wal_segment_size is %d, the archive's is %d", r.pg.segSize, id.SegSize), "")
		return
	}
	r.add(CheckSystemID, true, fmt.Sprintf("%d (server and archive agree)", id.SystemID), "")
}

func (r *runner) walChain(ctx context.Context) {
	if r.backupsErr != nil {
		return
	}
	done := r.done()
	if len(done) == 0 {
		r.add(CheckWALChain, true, "no DONE backup yet: nothing to check the chain from", "")
		return
	}
	oldest := done[0]
	var segSize uint64
	if id, err := archive.LoadIdentity(ctx, r.d.Store, r.srv.Name); err == nil {
		segSize = id.SegSize
	}
	var a *verify.Archive
	var ch verify.Chain
	for attempt := 0; ; attempt++ {
		var err error
		if a, err = verify.LoadArchive(ctx, r.d.Store, r.srv.Name); err != nil {
			r.add(CheckWALChain, false, err.Error(), "")
			return
		}
		if ch, err = a.ChainFor(oldest, segSize); err != nil {
			r.add(CheckWALChain, false, err.Error(), "")
			return
		}
		// The daemon stores segments in parallel, so a newer one can land a moment
		// before an older one: look again before calling that a gap.
		if len(ch.Gaps) == 0 || attempt == 1 || r.d.ChainRecheck <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.d.ChainRecheck):
		}
	}
	problems := append(append([]string{}, a.Problems...), ch.Problems...)
	for _, g := range ch.Gaps {
		problems = append(problems, g.String())
	}
	if len(problems) > 0 {
		shown := problems
		if len(shown) > 5 {
			shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		r.add(CheckWALChain, false, fmt.Sprintf("from backup %s's begin %s to %s: %s", oldest.ID, ch.Start, ch.End, strings.Join(shown, "; ")),
			fmt.Sprintf("`walkeeper verify %s` lists every gap; a missing file may still be in the server's pg_wal", r.srv.Name))
		return
	}
	r.add(CheckWALChain, true, fmt.Sprintf("%d segments from %s (backup %s) to %s, timeline %d, no gap", ch.Needed, ch.Start, oldest.ID, ch.End, ch.Target), "")
}
