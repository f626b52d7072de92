package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// startupReportWindow and startupReportInterval: how long after START_REPLICATION, and
// how often, the receiver reports its position even when no WAL arrives (see stream).
const (
	startupReportWindow   = 5 * time.Second
	startupReportInterval = 100 * time.Millisecond
)

// maxUnflushed bounds how long received WAL waits for its fsync and report while
// the server keeps sending without a pause.
const maxUnflushed = 10 * time.Millisecond

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
				r.sessionStreamed = true
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
				return nil, fmt.Errorf("end of timeline %d: %w", r.timeline, err)
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
		if r.writePos > r.flushPos || r.flushPos > r.flushSent {
			if r.unreportedSince.IsZero() {
				r.unreportedSince = time.Now()
			}
			now := time.Now()
			due := r.flushPos > r.flushSent || now.After(nextStatus) || now.Sub(r.unreportedSince) >= maxUnflushed
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

// flushAndReport makes everything written durable, then reports write and flush
// positions; apply is reported as invalid (0), as pg_receivewal does, because
// walkeeper applies nothing (synchronous_commit = remote_apply must not count it).
func (r *Receiver) flushAndReport(conn *pgconn.PgConn) error {
	if err := r.flush(); err != nil {
		return err
	}
	r.unreportedSince = time.Time{}
	if err := sendStatus(conn, r.writePos, r.flushPos, false); err != nil {
		return fmt.Errorf("status update: %w", err)
	}
	r.flushSent = r.flushPos
	r.positions()
	return nil
}
