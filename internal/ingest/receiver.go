package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// ReceiverConfig is one server's streaming receiver: where it connects, which slot it
// holds, and where its files go. The receiver writes <StreamingDir>/<segment>.partial and
// hands every finished file to IncomingDir, the same door archive_command uses, so the
// pipeline validates, compresses and indexes streamed WAL exactly like archived WAL.
type ReceiverConfig struct {
	Server string
	// Conninfo is streaming_conninfo; "replication=yes" is added when it names no
	// replication mode, and application_name is always ApplicationName.
	Conninfo string
	SlotName string
	// CreateSlot is create_slot = auto: a missing physical slot is created with
	// RESERVE_WAL.
	CreateSlot bool
	// ApplicationName is what a DBA lists in synchronous_standby_names.
	ApplicationName string
	StreamingDir    string
	IncomingDir     string
	// ArchivedEnd, if set, names the newest complete segment in the archive (or "" when
	// there is none), so a receiver without local state starts right after it.
	ArchivedEnd func(ctx context.Context) (string, error)
	// SystemID, if set, gives the system identifier the archive belongs to (false when
	// none is known yet): a receiver pointed at another cluster refuses to stream.
	SystemID func(ctx context.Context) (uint64, bool)
	// Reset discards the streaming state once, at start: the receiver starts at the
	// server's current position instead of where it stopped.
	Reset bool
	// StatusInterval is how often a status update is sent when nothing else prompts
	// one (wal_receiver_status_interval; default 10s).
	StatusInterval time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay while the server cannot be
	// reached or refuses to stream (default 100ms, doubling to 10s). A session that
	// streamed is followed by an immediate reconnect: as the synchronous standby,
	// every moment away blocks the primary's commits.
	MinBackoff, MaxBackoff time.Duration
	// OnState, if set, is called with a fresh snapshot when the state changes, and
	// about once a second while streaming.
	OnState func(ReceiverState)
	Log     *slog.Logger
}

// Receiver streams one server's WAL over the physical replication protocol.
//
// Its fields fall in two groups. Everything but shared, mu and cfg/log belongs to the
// goroutine running Run (and what Run calls): no lock, because nothing else touches it.
// shared is what other goroutines read (State, OnState subscribers, the state-file
// writer); it is only touched with mu held, and the Run goroutine copies its positions
// into it when it reports them.
type Receiver struct {
	cfg ReceiverConfig
	log *slog.Logger

	// --- Owned by the Run goroutine. ---

	// segSize is the server's wal_segment_size, learned at the first connection.
	segSize uint64
	// timeline, writePos and flushPos are the streaming position: the timeline being
	// streamed, the end of the WAL written to the segment file, and the end of what is
	// fsynced.
	timeline uint32
	writePos segments.LSN
	flushPos segments.LSN
	// positionKnown: timeline and writePos describe a position this process streamed
	// to, so a reconnect resumes there instead of deciding afresh (startPosition).
	positionKnown bool
	// flushSent is the flush position last sent to the server in a status update.
	flushSent segments.LSN
	// unreportedSince is when data was first written or a segment completed after the
	// last status update (zero when everything is reported).
	unreportedSince time.Time
	// segFile is the open .partial being written, holding segment segFileNo of
	// timeline segFileTLI (nil between segments).
	segFile    *os.File
	segFileNo  uint64
	segFileTLI uint32
	// resetPending is ReceiverConfig.Reset until the first start position consumed it.
	resetPending bool
	// startPastGap: the server no longer has the WAL at the position the receiver
	// needs, so the next session starts from the slot or the server's current position.
	startPastGap bool
	// sessionStreamed and sessionStartedAt describe the current session for the
	// reconnect delay: WAL stored, and when START_REPLICATION succeeded.
	sessionStreamed  bool
	sessionStartedAt time.Time
	// spareDone delivers the spare file zero-filled in the background while
	// spareInFlight (see receiver_spare.go).
	spareDone     chan spareFile
	spareInFlight bool
	// stateFileCh carries snapshots to the state-file writer goroutine while Run runs.
	stateFileCh chan ReceiverState

	// --- Shared with other goroutines: every field of shared is guarded by mu. ---
	mu     sync.Mutex
	shared receiverShared
}

// receiverShared is the part of a Receiver that other goroutines read; see Receiver.
type receiverShared struct {
	state ReceiverState
	// serverWALEnd is the server's WAL end as of its last message.
	serverWALEnd segments.LSN
	// timeline, written and flushed are the positions as last reported by the Run
	// goroutine (rendered into state only when a snapshot is taken).
	timeline uint32
	written  segments.LSN
	flushed  segments.LSN
	// lastMessageAt is when the last message from the server arrived, lastServerTime
	// the server's clock in it.
	lastMessageAt  time.Time
	lastServerTime time.Time
	// caughtUpAt is when the flush position last reached the server's WAL end.
	caughtUpAt time.Time
	// lastPublished and lastStateFileAt rate-limit OnState and the state file.
	lastPublished   time.Time
	lastStateFileAt time.Time
}

// NewReceiver checks cfg and fills in defaults.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Conninfo == "" {
		return nil, fmt.Errorf("server %s: streaming_conninfo is empty", cfg.Server)
	}
	if err := ValidSlotName(cfg.SlotName); err != nil {
		return nil, fmt.Errorf("server %s: %w", cfg.Server, err)
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = "walkeeper"
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{cfg: cfg, log: cfg.Log.With("server", cfg.Server, "slot", cfg.SlotName), resetPending: cfg.Reset,
		spareDone: make(chan spareFile, 1)}
	r.shared.state = ReceiverState{Server: cfg.Server, PID: os.Getpid(), Slot: cfg.SlotName, ApplicationName: cfg.ApplicationName}
	return r, nil
}

// Run streams until ctx ends, reconnecting with backoff after every failure. It
// returns nil when ctx ends (after a final fsync and status update) and an error only
// when it cannot start at all (another receiver holds the streaming directory).
func (r *Receiver) Run(ctx context.Context) error {
	if err := fsutil.MkdirAll(r.cfg.StreamingDir, 0o700); err != nil {
		return err
	}
	if err := fsutil.MkdirAll(r.cfg.IncomingDir, 0o700); err != nil {
		return err
	}
	lock, err := lockStreaming(r.cfg.StreamingDir)
	if err != nil {
		return fmt.Errorf("server %s: %w", r.cfg.Server, err)
	}
	defer lock.Close()
	r.stateFileCh = make(chan ReceiverState, 1)
	fileDone := make(chan struct{})
	go func(ch chan ReceiverState) {
		defer close(fileDone)
		for s := range ch {
			r.writeStateFile(s)
		}
	}(r.stateFileCh)
	defer func() {
		close(r.stateFileCh)
		r.stateFileCh = nil
		<-fileDone
	}()
	r.cleanTemps()
	defer r.dropSpare()
	r.update(func(s *ReceiverState) { s.Running = true; s.StartedAt = time.Now().UTC() }, true)
	defer func() {
		r.update(func(s *ReceiverState) { s.Running = false; s.Connected = false }, true)
	}()

	backoff := r.cfg.MinBackoff
	var lastProgress time.Time
	for {
		r.sessionStreamed, r.sessionStartedAt = false, time.Time{}
		err := r.session(ctx)
		r.closeFile()
		if ctx.Err() != nil {
			r.log.Info("receiver stopped", "flushed", r.flushPos)
			return nil
		}
		if err == nil {
			err = errors.New("connection ended")
		}
		var gone *walGoneError
		if errors.As(err, &gone) {
			r.startPastGap = true
			r.log.Error("the server no longer has the WAL the receiver needs; streaming restarts at the slot or the server's current position, leaving a gap in the archive",
				"from", gone.from, "err", err)
			r.update(func(s *ReceiverState) {
				s.Gap = fmt.Sprintf("WAL from %s on was removed from the server before it was streamed (%s)", gone.from, time.Now().UTC().Format(time.RFC3339))
			}, true)
		}
		r.fail(err)
		progressed := r.sessionStreamed || (!r.sessionStartedAt.IsZero() && time.Since(r.sessionStartedAt) >= time.Second)
		if progressed {
			lastProgress = time.Now()
		}
		wait := reconnectDelay(progressed, time.Since(lastProgress) < fastRetryWindow, &backoff, r.cfg.MinBackoff, r.cfg.MaxBackoff)
		r.log.Warn("receiver disconnected; reconnecting", "err", err, "in", wait)
		r.update(func(s *ReceiverState) { s.Reconnects++ }, true)
		if wait == 0 {
			continue
		}
		select {
		case <-ctx.Done():
			r.log.Info("receiver stopped", "flushed", r.flushPos)
			return nil
		case <-time.After(wait + time.Duration(rand.Int64N(int64(wait)/10+1))):
		}
	}
}

// reconnectDelay is how long to wait before the next session. After a session that
// made progress, none: the server was there a moment ago (a killed walsender, a
// network blip), and as the synchronous standby every moment away blocks the
// primary's commits. Progress is WAL stored, or a replication stream that stayed up
// for a second (an idle server sends no WAL). Within fastRetryWindow of progress
// (recent), failures wait the smallest delay without doubling: the slot is typically
// still held by the dying walsender for a moment. Otherwise (the server unreachable,
// refusing, a local write error at the first byte) the wait is *backoff, which
// doubles up to maxB: nothing spins.
func reconnectDelay(progressed, recent bool, backoff *time.Duration, minB, maxB time.Duration) time.Duration {
	if progressed {
		*backoff = minB
		return 0
	}
	if recent {
		*backoff = minB
		return minB
	}
	wait := *backoff
	*backoff = min(*backoff*2, maxB)
	return wait
}

// fastRetryWindow is how long after a session's progress reconnect failures are
// retried at the smallest delay.
const fastRetryWindow = 5 * time.Second

func (r *Receiver) session(ctx context.Context) error {
	conn, err := pgutil.ReplConnect(ctx, r.cfg.Conninfo, pgutil.ReplOptions{ApplicationName: r.cfg.ApplicationName})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	if r.cfg.SystemID != nil {
		if want, ok := r.cfg.SystemID(ctx); ok && strconv.FormatUint(want, 10) != sys.SystemID {
			return fmt.Errorf("the server's system identifier is %s, but this archive belongs to %d: streaming_conninfo points at another cluster", sys.SystemID, want)
		}
	}
	segSize, err := showSegSize(ctx, conn)
	if err != nil {
		return err
	}
	if r.segSize != 0 && r.segSize != segSize {
		return fmt.Errorf("the server's wal_segment_size changed from %d to %d", r.segSize, segSize)
	}
	r.segSize = segSize
	slot, err := ensureSlot(ctx, conn, r.cfg.Conninfo, r.cfg.SlotName, r.cfg.CreateSlot, r.log)
	if err != nil {
		return err
	}
	tli, start, src, err := r.startPosition(ctx, sys, slot)
	if err != nil {
		return err
	}
	r.log.Info("receiver connected", "system_id", sys.SystemID, "server_timeline", sys.Timeline, "server_lsn", sys.XLogPos,
		"start", start, "timeline", tli, "from", src)
	r.mu.Lock()
	r.shared.serverWALEnd = segments.LSN(sys.XLogPos)
	r.shared.caughtUpAt = time.Now()
	r.shared.timeline, r.shared.written, r.shared.flushed = tli, start, start
	r.mu.Unlock()
	r.update(func(s *ReceiverState) {
		s.Connected = true
		s.ConnectedAt = time.Now().UTC()
		s.Timeline = tli
	}, true)

	for {
		r.timeline, r.writePos, r.flushPos, r.positionKnown = tli, start, start, true
		r.flushSent = 0
		err := pglogrepl.StartReplication(ctx, conn, r.cfg.SlotName, pglogrepl.LSN(start),
			pglogrepl.StartReplicationOptions{Mode: pglogrepl.PhysicalReplication, Timeline: int32(tli)})
		if nextTLI, switchLSN, ok := pglogrepl.IsErrEndTimeline(err); ok {
			// The start position is exactly the end of tli: nothing more to stream on it.
			if tli, start, err = r.endTimeline(ctx, conn, uint32(nextTLI), segments.LSN(switchLSN)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "58P01" {
				return &walGoneError{from: start, err: fmt.Errorf("START_REPLICATION %s on timeline %d: %w", start, tli, err)}
			}
			if errors.As(err, &pe) {
				if fork, ok, ferr := r.forkBefore(ctx, conn, uint32(sys.Timeline), tli, start); ferr != nil {
					return ferr
				} else if ok {
					// Failover to a server that had less WAL than walkeeper: what walkeeper
					// holds of tli after the fork stays archived under tli's names; streaming
					// resumes at the fork's segment and follows the server's timelines.
					r.log.Warn("the server's history left this timeline before the receiver's position; resuming at the fork",
						"timeline", tli, "fork", fork, "position", start)
					if err := r.retireTimeline(tli, segments.SegNoOf(fork, r.segSize)); err != nil {
						return err
					}
					start = segments.SegStart(segments.SegNoOf(fork, r.segSize), r.segSize)
					continue
				}
			}
			return fmt.Errorf("START_REPLICATION %s on timeline %d: %w", start, tli, err)
		}
		if r.sessionStartedAt.IsZero() {
			r.sessionStartedAt = time.Now()
		}
		cdr, err := r.stream(ctx, conn)
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "58P01" && r.writePos == start {
				return &walGoneError{from: start, err: fmt.Errorf("streaming from %s on timeline %d: %w", start, tli, err)}
			}
			return err
		}
		r.startPastGap = false
		if cdr == nil {
			// CopyDone without a next timeline: the server is shutting down.
			return errors.New("the server ended streaming (shutting down)")
		}
		if tli, start, err = r.endTimeline(ctx, conn, uint32(cdr.Timeline), segments.LSN(cdr.LSN)); err != nil {
			return err
		}
	}
}
