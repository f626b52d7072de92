package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/fsutil"
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

// ReceiverState is what status and check show about a receiver (catalog.ReceiverState:
// the packages that show it do not import ingest).
type ReceiverState = catalog.ReceiverState

// startupReportWindow and startupReportInterval: how long after START_REPLICATION, and
// how often, the receiver reports its position even when no WAL arrives (see stream).
const (
	startupReportWindow   = 5 * time.Second
	startupReportInterval = 100 * time.Millisecond
)

// maxUnflushed bounds how long received WAL waits for its fsync and report while
// the server keeps sending without a pause.
const maxUnflushed = 10 * time.Millisecond

// Files the receiver keeps in its streaming directory besides the .partial.
const (
	ReceiverLockFile  = "receiver.lock"
	ReceiverStateFile = "receiver.state"
)

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidSlotName reports whether PostgreSQL accepts name as a replication slot name;
// the receiver interpolates it into replication commands, so nothing else may pass.
func ValidSlotName(name string) error {
	if !slotNameRE.MatchString(name) {
		return fmt.Errorf("slot name %q: only lower-case letters, digits and underscores, at most 63", name)
	}
	return nil
}

// Receiver streams one server's WAL over the physical replication protocol.
type Receiver struct {
	cfg ReceiverConfig
	log *slog.Logger

	// Streaming position, owned by the Run goroutine.
	segSize  uint64
	tli      uint32
	known    bool // tli and writePos describe a position this process streamed to
	writePos segments.LSN
	flushPos segments.LSN
	sentF    segments.LSN
	// dirtySince is when data was first written or a segment completed after the
	// last report.
	dirtySince time.Time
	file       *os.File
	fileSeg    uint64
	fileTLI    uint32
	reset      bool
	gapSkip    bool // the start position's WAL is gone: start from the slot/server instead
	// streamed and startedAt describe the current session for the reconnect delay:
	// WAL stored, and when START_REPLICATION succeeded.
	streamed  bool
	startedAt time.Time

	spareCh   chan spareFile
	spareBusy bool

	mu          sync.Mutex
	st          ReceiverState
	serverEnd   segments.LSN
	stTLI       uint32 // positions as last reported, for other goroutines
	stWrite     segments.LSN
	stFlush     segments.LSN
	lastMsg     time.Time
	lastSrvTime time.Time
	caughtUpAt  time.Time
	lastPub     time.Time
	lastFile    time.Time
	fileCh      chan ReceiverState // to the state file writer while Run runs
}

type spareFile struct {
	path string
	err  error
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
	r := &Receiver{cfg: cfg, log: cfg.Log.With("server", cfg.Server, "slot", cfg.SlotName), reset: cfg.Reset,
		spareCh: make(chan spareFile, 1)}
	r.st = ReceiverState{Server: cfg.Server, PID: os.Getpid(), Slot: cfg.SlotName, ApplicationName: cfg.ApplicationName}
	return r, nil
}

// State returns a snapshot of the receiver's state.
func (r *Receiver) State() ReceiverState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

func (r *Receiver) snapshotLocked() ReceiverState {
	s := r.st
	now := time.Now()
	s.UpdatedAt = now.UTC()
	// Positions are kept raw on the hot path and rendered here, at most once a second.
	if r.stTLI != 0 {
		s.Timeline = r.stTLI
		s.ReceivedLSN = r.stWrite.String()
		s.FlushedLSN = r.stFlush.String()
	}
	if r.serverEnd != 0 {
		s.ServerLSN = r.serverEnd.String()
	}
	if !r.lastMsg.IsZero() {
		s.LastMessageAt = r.lastMsg.UTC()
		s.LastServerTime = r.lastSrvTime.UTC()
	}
	if r.serverEnd > r.stFlush && r.stFlush != 0 {
		s.LagBytes = int64(r.serverEnd - r.stFlush)
		if !r.caughtUpAt.IsZero() {
			s.LagSeconds = now.Sub(r.caughtUpAt).Seconds()
		}
	}
	return s
}

func (r *Receiver) update(f func(s *ReceiverState), publish bool) {
	r.mu.Lock()
	f(&r.st)
	if !publish && time.Since(r.lastPub) < time.Second {
		r.mu.Unlock()
		return
	}
	r.lastPub = time.Now()
	snap := r.snapshotLocked()
	writeFile := publish || time.Since(r.lastFile) >= 5*time.Second
	if writeFile {
		r.lastFile = time.Now()
	}
	r.mu.Unlock()
	if r.cfg.OnState != nil {
		r.cfg.OnState(snap)
	}
	if writeFile && r.fileCh != nil {
		// The file is written off the streaming goroutine, so it never
		// delays a flush report; only the newest snapshot waits.
		select {
		case r.fileCh <- snap:
		default:
			select {
			case <-r.fileCh:
			default:
			}
			select {
			case r.fileCh <- snap:
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
	r.stTLI, r.stWrite, r.stFlush = r.tli, r.writePos, r.flushPos
	if r.flushPos >= r.serverEnd {
		r.caughtUpAt = time.Now()
	}
	r.mu.Unlock()
	r.maybePublish()
}

// maybePublish publishes the state if the last publication is a second old.
func (r *Receiver) maybePublish() {
	r.mu.Lock()
	due := time.Since(r.lastPub) >= time.Second
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
	r.fileCh = make(chan ReceiverState, 1)
	fileDone := make(chan struct{})
	go func(ch chan ReceiverState) {
		defer close(fileDone)
		for s := range ch {
			r.writeStateFile(s)
		}
	}(r.fileCh)
	defer func() {
		close(r.fileCh)
		r.fileCh = nil
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
		r.streamed, r.startedAt = false, time.Time{}
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
			r.gapSkip = true
			r.log.Error("the server no longer has the WAL the receiver needs; streaming restarts at the slot or the server's current position, leaving a gap in the archive",
				"from", gone.from, "err", err)
			r.update(func(s *ReceiverState) {
				s.Gap = fmt.Sprintf("WAL from %s on was removed from the server before it was streamed (%s)", gone.from, time.Now().UTC().Format(time.RFC3339))
			}, true)
		}
		r.fail(err)
		progressed := r.streamed || (!r.startedAt.IsZero() && time.Since(r.startedAt) >= time.Second)
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

type walGoneError struct {
	from segments.LSN
	err  error
}

func (e *walGoneError) Error() string { return e.err.Error() }
func (e *walGoneError) Unwrap() error { return e.err }

// Connect opens a physical replication connection with the receiver's conninfo.
func replConnect(ctx context.Context, conninfo, appName string) (*pgconn.PgConn, error) {
	pc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("streaming_conninfo: %w", err)
	}
	if pc.RuntimeParams["replication"] == "" {
		pc.RuntimeParams["replication"] = "yes"
	}
	if appName != "" {
		pc.RuntimeParams["application_name"] = appName
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = 10 * time.Second
	}
	c, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

func (r *Receiver) session(ctx context.Context) error {
	conn, err := replConnect(ctx, r.cfg.Conninfo, r.cfg.ApplicationName)
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
	slot, err := ensureSlot(ctx, conn, r.cfg.SlotName, r.cfg.CreateSlot, r.log)
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
	r.serverEnd = segments.LSN(sys.XLogPos)
	r.caughtUpAt = time.Now()
	r.stTLI, r.stWrite, r.stFlush = tli, start, start
	r.mu.Unlock()
	r.update(func(s *ReceiverState) {
		s.Connected = true
		s.ConnectedAt = time.Now().UTC()
		s.Timeline = tli
	}, true)

	for {
		r.tli, r.writePos, r.flushPos, r.known = tli, start, start, true
		r.sentF = 0
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
		if r.startedAt.IsZero() {
			r.startedAt = time.Now()
		}
		cdr, err := r.stream(ctx, conn)
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "58P01" && r.writePos == start {
				return &walGoneError{from: start, err: fmt.Errorf("streaming from %s on timeline %d: %w", start, tli, err)}
			}
			return err
		}
		r.gapSkip = false
		if cdr == nil {
			// CopyDone without a next timeline: the server is shutting down.
			return errors.New("the server ended streaming (shutting down)")
		}
		if tli, start, err = r.endTimeline(ctx, conn, uint32(cdr.Timeline), segments.LSN(cdr.LSN)); err != nil {
			return err
		}
	}
}

// stream runs the copy-both loop until the server ends the timeline (CopyDone, whose
// result it returns), ctx ends or the connection fails.
func (r *Receiver) stream(ctx context.Context, conn *pgconn.PgConn) (*pglogrepl.CopyDoneResult, error) {
	// Report the flush position at once, as PostgreSQL's walreceiver does: after a
	// reconnect the WAL of the commits waiting on the primary may all be flushed here
	// already, so no new data would prompt a report, and they would wait for the
	// status interval.
	if err := r.flushAndReport(conn); err != nil {
		return nil, err
	}
	// That first report may reach the walsender while it is still catching up, when
	// it releases no waiting commit; it turns to streaming once it has sent what it
	// had, and with nothing new to send nothing would prompt another report before
	// the status interval. So the first seconds of a stream report often.
	began := time.Now()
	interval := func() time.Duration {
		if time.Since(began) < startupReportWindow {
			return min(r.cfg.StatusInterval, startupReportInterval)
		}
		return r.cfg.StatusInterval
	}
	nextStatus := time.Now().Add(interval())
	// A read deadline on the socket instead of a context per message: pgconn would
	// start a watcher goroutine and a timer for every ReceiveMessage, which costs
	// commit latency when walkeeper is the synchronous standby.
	nc := conn.Conn()
	stopWatch := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	defer stopWatch()
	defer func() { _ = nc.SetReadDeadline(time.Time{}) }()
	var deadline time.Time
	for {
		if !deadline.Equal(nextStatus) {
			if err := nc.SetReadDeadline(nextStatus); err != nil {
				return nil, fmt.Errorf("receive: %w", err)
			}
			deadline = nextStatus
		}
		// Checked after setting the deadline: a cancellation that set its own
		// deadline before ours was overwritten is seen here.
		if ctx.Err() != nil {
			return nil, r.finish(conn)
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil, r.finish(conn)
			}
			if pgconn.Timeout(err) {
				if err := r.flushAndReport(conn); err != nil {
					return nil, err
				}
				nextStatus = time.Now().Add(interval())
				continue
			}
			return nil, fmt.Errorf("receive: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return nil, err
				}
				if err := r.write(segments.LSN(xld.WALStart), xld.WALData); err != nil {
					return nil, err
				}
				r.streamed = true
				r.noteServer(segments.LSN(xld.ServerWALEnd), xld.ServerTime)
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return nil, err
				}
				r.noteServer(segments.LSN(pkm.ServerWALEnd), pkm.ServerTime)
				if pkm.ReplyRequested {
					if err := r.flushAndReport(conn); err != nil {
						return nil, err
					}
					nextStatus = time.Now().Add(interval())
				}
			}
		case *pgproto3.CopyDone:
			if err := r.flushAndReport(conn); err != nil {
				return nil, err
			}
			_ = nc.SetReadDeadline(time.Time{})
			deadline = time.Time{}
			cdr, err := pglogrepl.SendStandbyCopyDone(ctx, conn)
			if err != nil {
				return nil, fmt.Errorf("end of timeline %d: %w", r.tli, err)
			}
			return cdr, nil
		case *pgproto3.ErrorResponse:
			return nil, pgconn.ErrorResponseToPgError(m)
		}
		// Group commit: fsync once the burst the server sent is consumed, then tell
		// the server at once so synchronous commits wait no longer than that. A stream
		// that never pauses is still flushed and reported at least every maxUnflushed,
		// at every completed segment and at the status interval, so neither commits
		// nor wal_sender_timeout wait on it.
		if r.writePos > r.flushPos || r.flushPos > r.sentF {
			if r.dirtySince.IsZero() {
				r.dirtySince = time.Now()
			}
			now := time.Now()
			due := r.flushPos > r.sentF || now.After(nextStatus) || now.Sub(r.dirtySince) >= maxUnflushed
			if due || !pending(conn) {
				if err := r.flushAndReport(conn); err != nil {
					return nil, err
				}
				nextStatus = time.Now().Add(interval())
			}
		}
	}
}

// finish is the clean stop: what was written is fsynced and reported.
func (r *Receiver) finish(conn *pgconn.PgConn) error {
	if err := r.flushAndReport(conn); err != nil {
		r.log.Warn("final status update", "err", err)
	}
	return nil
}

func (r *Receiver) noteServer(end segments.LSN, at time.Time) {
	r.mu.Lock()
	if end > r.serverEnd {
		r.serverEnd = end
	}
	r.lastMsg, r.lastSrvTime = time.Now(), at
	r.mu.Unlock()
	r.maybePublish()
}

// pending reports whether more replication data is already waiting, in pgconn's
// buffer or in the socket: a burst is not over, so the fsync can wait for it.
func pending(conn *pgconn.PgConn) bool {
	if conn.Frontend().ReadBufferLen() > 0 {
		return true
	}
	c := conn.Conn()
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		// TLS: encrypted bytes waiting in the socket mean a message is on its way.
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = raw.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n > 0
}

// flushAndReport makes everything written durable, then reports write and flush
// positions; apply is reported as invalid (0), as pg_receivewal does, because
// walkeeper applies nothing (synchronous_commit = remote_apply must not count it).
func (r *Receiver) flushAndReport(conn *pgconn.PgConn) error {
	if err := r.flush(); err != nil {
		return err
	}
	r.dirtySince = time.Time{}
	if err := sendStatus(conn, r.writePos, r.flushPos, false); err != nil {
		return fmt.Errorf("status update: %w", err)
	}
	r.sentF = r.flushPos
	r.positions()
	return nil
}

func sendStatus(conn *pgconn.PgConn, write, flush segments.LSN, reply bool) error {
	data := make([]byte, 0, 34)
	data = append(data, pglogrepl.StandbyStatusUpdateByteID)
	data = appendU64(data, uint64(write))
	data = appendU64(data, uint64(flush))
	data = appendU64(data, 0) // apply: walkeeper applies nothing
	const pgEpochMicros = 946684800 * 1000000
	data = appendU64(data, uint64(time.Now().UnixMicro()-pgEpochMicros))
	if reply {
		data = append(data, 1)
	} else {
		data = append(data, 0)
	}
	cd := &pgproto3.CopyData{Data: data}
	buf, err := cd.Encode(nil)
	if err != nil {
		return err
	}
	return conn.Frontend().SendUnbufferedEncodedCopyData(buf)
}

func appendU64(b []byte, v uint64) []byte {
	return append(b, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// write puts WAL at its place in the segment files, completing segments as they fill.
func (r *Receiver) write(start segments.LSN, data []byte) error {
	if start != r.writePos {
		return fmt.Errorf("received WAL at %s, expected %s", start, r.writePos)
	}
	for len(data) > 0 {
		segNo := segments.SegNoOf(r.writePos, r.segSize)
		off := uint64(r.writePos) % r.segSize
		if r.file == nil || r.fileSeg != segNo || r.fileTLI != r.tli {
			if err := r.openSegment(r.tli, segNo); err != nil {
				return err
			}
		}
		n := min(uint64(len(data)), r.segSize-off)
		if _, err := r.file.WriteAt(data[:n], int64(off)); err != nil {
			return fmt.Errorf("write %s: %w", r.file.Name(), err)
		}
		r.writePos += segments.LSN(n)
		data = data[n:]
		if off+n == r.segSize {
			if err := r.completeSegment(""); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush fsyncs what was written (fdatasync: the file is preallocated, so its size never
// changes and only the data needs to reach the disk).
func (r *Receiver) flush() error {
	if r.file != nil && r.writePos > r.flushPos {
		if err := unix.Fdatasync(int(r.file.Fd())); err != nil {
			return fmt.Errorf("fsync %s: %w", r.file.Name(), err)
		}
	}
	r.flushPos = r.writePos
	return nil
}

func (r *Receiver) partialPath(tli uint32, segNo uint64) string {
	return filepath.Join(r.cfg.StreamingDir, segments.SegmentFileName(tli, segNo, r.segSize)+".partial")
}

// openSegment opens (or creates, zero-filled to the segment size like pg_receivewal)
// the .partial of a segment. A new file appears under its name only once its zeros are
// on disk, so a .partial in streaming/ is always full-size.
func (r *Receiver) openSegment(tli uint32, segNo uint64) error {
	r.closeFile()
	path := r.partialPath(tli, segNo)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		tmp := r.takeSpare()
		if tmp == "" {
			tmp = fsutil.TempName(r.cfg.StreamingDir, filepath.Base(path))
			if err := zeroFile(tmp, r.segSize); err != nil {
				return err
			}
		}
		if err := fsutil.RenameDurable(tmp, path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("create %s: %w", path, err)
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if uint64(fi.Size()) < r.segSize {
		if err := f.Truncate(int64(r.segSize)); err != nil {
			f.Close()
			return fmt.Errorf("extend %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("fsync %s: %w", path, err)
		}
	}
	r.file, r.fileSeg, r.fileTLI = f, segNo, tli
	r.prepareSpare()
	r.update(func(s *ReceiverState) { s.Segment = segments.SegmentFileName(tli, segNo, r.segSize) }, false)
	return nil
}

func zeroFile(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, uint64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("preallocate %s: %w", path, err)
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

// prepareSpare zero-fills the next segment's file in the background, so a segment
// switch does not stall synchronous commits for the time it takes to write 16 MiB.
func (r *Receiver) prepareSpare() {
	if r.spareBusy {
		return
	}
	r.spareBusy = true
	dir, size := r.cfg.StreamingDir, r.segSize
	go func() {
		p := fsutil.TempName(dir, "spare")
		err := zeroFile(p, size)
		r.spareCh <- spareFile{path: p, err: err}
	}()
}

func (r *Receiver) takeSpare() string {
	if !r.spareBusy {
		return ""
	}
	select {
	case s := <-r.spareCh:
		r.spareBusy = false
		if s.err != nil {
			r.log.Warn("preallocating the next segment", "err", s.err)
			return ""
		}
		if fi, err := os.Stat(s.path); err != nil || uint64(fi.Size()) != r.segSize {
			os.Remove(s.path)
			return ""
		}
		return s.path
	default:
		return ""
	}
}

func (r *Receiver) dropSpare() {
	if r.spareBusy {
		s := <-r.spareCh
		r.spareBusy = false
		os.Remove(s.path)
	}
}

func (r *Receiver) closeFile() {
	if r.file != nil {
		_ = r.flush()
		r.file.Close()
		r.file = nil
	}
}

// completeSegment fsyncs the open file and renames it durably into incoming/ as the
// segment's name plus suffix ("" for a full segment, ".partial" for the last piece of a
// timeline), where the pipeline archives it.
func (r *Receiver) completeSegment(suffix string) error {
	if r.file == nil {
		return nil
	}
	f := r.file
	r.file = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	f.Close()
	name := segments.SegmentFileName(r.fileTLI, r.fileSeg, r.segSize) + suffix
	// archive_command may have delivered the same bytes first (left alone then);
	// other bytes never replace a waiting file (invariant 2).
	if err := HandOver(r.cfg.IncomingDir, name, f.Name()); err != nil {
		return fmt.Errorf("hand %s to incoming: %w", name, err)
	}
	if suffix == "" {
		r.flushPos = r.writePos
	}
	r.log.Debug("segment streamed", "file", name)
	return nil
}

// endTimeline closes the old timeline at switchLSN: its last segment goes to incoming/
// as a .partial, the new timeline's history file is archived, and streaming goes on on
// newTLI from the start of the segment holding the switch point (the server's file on
// the new timeline carries the old timeline's WAL up to it).
func (r *Receiver) endTimeline(ctx context.Context, conn *pgconn.PgConn, newTLI uint32, switchLSN segments.LSN) (uint32, segments.LSN, error) {
	old := r.tli
	if r.writePos != switchLSN && r.writePos != 0 {
		r.log.Warn("timeline ended at a position the receiver had not reached", "timeline", old, "switch", switchLSN, "received", r.writePos)
	}
	if r.file == nil && uint64(switchLSN)%r.segSize != 0 {
		// Resuming exactly at the switch point: the piece of the old timeline is on disk.
		p := r.partialPath(old, segments.SegNoOf(switchLSN, r.segSize))
		if _, err := os.Stat(p); err == nil {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				return 0, 0, err
			}
			r.file, r.fileSeg, r.fileTLI = f, segments.SegNoOf(switchLSN, r.segSize), old
		}
	}
	if r.file != nil {
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
	r.stTLI = newTLI
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

// slotInfo is READ_REPLICATION_SLOT's answer.
type slotInfo struct {
	exists     bool
	restartLSN segments.LSN
	restartTLI uint32
}

func readSlot(ctx context.Context, conn *pgconn.PgConn, name string) (slotInfo, error) {
	var si slotInfo
	res, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+name).ReadAll()
	if err != nil {
		return si, fmt.Errorf("READ_REPLICATION_SLOT %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3 {
		return si, fmt.Errorf("READ_REPLICATION_SLOT %s: unexpected answer", name)
	}
	row := res[0].Rows[0]
	if row[0] == nil {
		return si, nil
	}
	si.exists = true
	if string(row[0]) != "physical" {
		return si, fmt.Errorf("replication slot %s is a %s slot, not a physical one", name, row[0])
	}
	if row[1] != nil {
		l, err := segments.ParseLSN(string(row[1]))
		if err != nil {
			return si, fmt.Errorf("slot %s restart_lsn: %w", name, err)
		}
		si.restartLSN = l
	}
	if row[2] != nil {
		t, err := strconv.ParseUint(string(row[2]), 10, 32)
		if err == nil {
			si.restartTLI = uint32(t)
		}
	}
	return si, nil
}

func ensureSlot(ctx context.Context, conn *pgconn.PgConn, name string, create bool, log *slog.Logger) (slotInfo, error) {
	si, err := readSlot(ctx, conn, name)
	if err != nil || si.exists {
		return si, err
	}
	if !create {
		return si, fmt.Errorf("replication slot %s does not exist (create_slot = manual: run `walkeeper receive-wal --create-slot` or set create_slot = auto)", name)
	}
	if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "", pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.PhysicalReplication, SnapshotAction: "RESERVE_WAL"}); err != nil {
		return si, fmt.Errorf("create replication slot %s: %w", name, err)
	}
	log.Info("replication slot created")
	return readSlot(ctx, conn, name)
}

// CreateSlot creates the physical replication slot (with RESERVE_WAL) that the receiver
// streams through; an existing physical slot of that name is not an error.
func CreateSlot(ctx context.Context, conninfo, name string) (created bool, err error) {
	if err := ValidSlotName(name); err != nil {
		return false, err
	}
	conn, err := replConnect(ctx, conninfo, "walkeeper")
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	si, err := readSlot(ctx, conn, name)
	if err != nil {
		return false, err
	}
	if si.exists {
		return false, nil
	}
	if _, err := ensureSlot(ctx, conn, name, true, slog.New(slog.DiscardHandler)); err != nil {
		return false, err
	}
	return true, nil
}

// DropSlot drops the receiver's replication slot, so the server stops keeping WAL for
// it; a missing slot is not an error.
func DropSlot(ctx context.Context, conninfo, name string) (dropped bool, err error) {
	if err := ValidSlotName(name); err != nil {
		return false, err
	}
	conn, err := replConnect(ctx, conninfo, "walkeeper")
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	si, err := readSlot(ctx, conn, name)
	if err != nil {
		return false, err
	}
	if !si.exists {
		return false, nil
	}
	if err := pglogrepl.DropReplicationSlot(ctx, conn, name, pglogrepl.DropReplicationSlotOptions{}); err != nil {
		return false, fmt.Errorf("drop replication slot %s: %w", name, err)
	}
	return true, nil
}

// showSegSize asks the server for wal_segment_size ("16MB").
func showSegSize(ctx context.Context, conn *pgconn.PgConn) (uint64, error) {
	res, err := conn.Exec(ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("SHOW wal_segment_size: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return 0, errors.New("SHOW wal_segment_size: unexpected answer")
	}
	v, err := parseSize(string(res[0].Rows[0][0]))
	if err != nil || !segments.ValidSegSize(v) {
		return 0, fmt.Errorf("wal_segment_size %q: not a valid segment size", res[0].Rows[0][0])
	}
	return v, nil
}

func parseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]uint64{"": 1, "B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[strings.TrimSpace(s[i:])]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit in %q", s)
	}
	return n * mult, nil
}

// startPosition decides where a receiver without an in-process position starts: after
// what streaming/, incoming/ and the archive already hold, else at the slot's
// restart_lsn, else at the server's current segment.
func (r *Receiver) startPosition(ctx context.Context, sys pglogrepl.IdentifySystemResult, slot slotInfo) (uint32, segments.LSN, string, error) {
	if r.known && !r.gapSkip {
		// Same process: resume exactly where the fsynced data ends.
		return r.tli, r.flushPos, "last flushed position", nil
	}
	current := func() (uint32, segments.LSN, string, error) {
		return uint32(sys.Timeline), segments.SegStart(segments.SegNoOf(segments.LSN(sys.XLogPos), r.segSize), r.segSize), "server's current position", nil
	}
	if r.reset {
		r.reset = false
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
	if r.gapSkip {
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

// partials lists the .partial files in streaming/, oldest position first.
func (r *Receiver) partials() ([]segments.Name, error) {
	ents, err := os.ReadDir(r.cfg.StreamingDir)
	if err != nil {
		return nil, err
	}
	var out []segments.Name
	for _, e := range ents {
		n, err := segments.Parse(e.Name())
		if err != nil || n.Kind != segments.KindPartial || n.ValidFor(r.segSize) != nil {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].StartLSN(r.segSize), out[j].StartLSN(r.segSize)
		if a != b {
			return a < b
		}
		return out[i].Timeline < out[j].Timeline
	})
	return out, nil
}

func (r *Receiver) discardPartials() error {
	ps, err := r.partials()
	if err != nil {
		return err
	}
	for _, n := range ps {
		r.log.Warn("--reset: discarding streamed partial segment", "file", n.Raw)
		if err := fsutil.RemoveDurable(filepath.Join(r.cfg.StreamingDir, n.Raw)); err != nil {
			return err
		}
	}
	r.known = false
	return nil
}

// cleanTemps removes temporary files a killed receiver left (a half-zeroed spare).
func (r *Receiver) cleanTemps() {
	ents, err := os.ReadDir(r.cfg.StreamingDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if fsutil.IsTemp(e.Name()) {
			os.Remove(filepath.Join(r.cfg.StreamingDir, e.Name()))
		}
	}
}

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
	if f, err := os.Open(filepath.Join(streamingDir, ReceiverLockFile)); err == nil {
		if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
			s.Running, s.Connected = false, false
		}
		f.Close()
	} else {
		s.Running, s.Connected = false, false
	}
	return s, true, nil
}

// sameContent reports whether both files exist and hold the same bytes.
func sameContent(a, b string) bool {
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	fa, err := os.Stat(a)
	if err != nil || fa.Size() != fb.Size() {
		return false
	}
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	return err == nil && bytes.Equal(x, y)
}
