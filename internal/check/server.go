package check

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// facts is what one SQL connection tells about the server.
type facts struct {
	err            error
	walLevel       string
	archiveMode    string
	archiveCommand string
	archiveTimeout time.Duration
	inRecovery     bool
	systemID       uint64
	segSize        uint64
	version        string
	currentLSN     segments.LSN // primary: insert position; standby: last received
	timeline       uint32       // primary only
	archiver       pgutil.ArchiverStats
	archiverErr    error
	// archiveErrLines is what the failing archive_command printed last, read from the
	// server log (pg_current_logfile) when the role may read it; logNote says why not.
	archiveErrLines []string
	logNote         string
	slotFound       bool
	slotActive      bool
	slotErr         error
}

// gather reads the server's facts over one SQL connection (err set when it fails).
func gather(ctx context.Context, srv *config.Server) facts {
	var f facts
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := pgutil.Connect(ctx, srv.Conninfo)
	if err != nil {
		f.err = err
		return f
	}
	defer c.Close(context.Background())
	var sysid, segsize, timeout string
	err = c.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('archive_mode'),
		current_setting('archive_command'), (SELECT setting FROM pg_settings WHERE name = 'archive_timeout'),
		pg_is_in_recovery(), (SELECT system_identifier::text FROM pg_control_system()),
		(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), current_setting('server_version')`).
		Scan(&f.walLevel, &f.archiveMode, &f.archiveCommand, &timeout, &f.inRecovery, &sysid, &segsize, &f.version)
	if err != nil {
		f.err = fmt.Errorf("read settings: %w", err)
		return f
	}
	f.systemID, _ = strconv.ParseUint(sysid, 10, 64)
	f.segSize, _ = strconv.ParseUint(segsize, 10, 64)
	if s, err := strconv.Atoi(timeout); err == nil {
		f.archiveTimeout = time.Duration(s) * time.Second
	}
	if f.inRecovery {
		var lsn *string
		if err := c.QueryRow(ctx, `SELECT coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text`).Scan(&lsn); err == nil && lsn != nil {
			f.currentLSN, _ = segments.ParseLSN(*lsn)
		}
	} else {
		var lsn, file string
		if err := c.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())`).Scan(&lsn, &file); err == nil {
			f.currentLSN, _ = segments.ParseLSN(lsn)
			if n, err := segments.Parse(file); err == nil {
				f.timeline = n.Timeline
			}
		}
	}
	f.archiver, f.archiverErr = pgutil.Archiver(ctx, c)
	if f.archiverErr == nil && f.archiver.Cause() != "" {
		f.archiveErrLines, f.logNote = archiveFailureFromLog(ctx, c)
	}
	if srv.StreamingArchiver {
		var active bool
		err := c.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, srv.SlotName).Scan(&active)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			f.slotErr = err
		default:
			f.slotFound, f.slotActive = true, active
		}
	}
	return f
}

func (r *runner) postgres() {
	if r.pg.err != nil {
		r.add(CheckPostgreSQL, false, fmt.Sprintf("cannot connect with conninfo %q: %v", config.RedactConninfo(r.srv.Conninfo), r.pg.err),
			"is the server up, and does pg_hba.conf let this user in? (password in ~/.pgpass or the conninfo)")
		return
	}
	role := "primary"
	if r.pg.inRecovery {
		role = "standby"
	}
	r.add(CheckPostgreSQL, true, fmt.Sprintf("PostgreSQL %s (%s)", r.pg.version, role), "")
}

// replFacts is the outcome of the replication connection probe: a failure, or what
// IDENTIFY_SYSTEM said.
type replFacts struct {
	fail     *Result
	systemID string
	detail   string
}

func probeReplication(ctx context.Context, srv *config.Server) replFacts {
	conninfo := srv.StreamingConninfo
	if conninfo == "" {
		conninfo = srv.Conninfo
	}
	shown := config.RedactConninfo(conninfo)
	fail := func(detail, hint string) replFacts {
		return replFacts{fail: &Result{Server: srv.Name, Check: CheckReplication, Detail: detail, Hint: hint}}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return fail(fmt.Sprintf("streaming_conninfo %q: %v", shown, err), "fix streaming_conninfo (libpq key=value or a postgres:// URL)")
	}
	if pc.RuntimeParams["replication"] == "" {
		pc.RuntimeParams["replication"] = "yes"
	}
	pc.RuntimeParams["application_name"] = "walkeeper check"
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = 10 * time.Second
	}
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return fail(fmt.Sprintf("cannot open a replication connection with %q: %v", shown, err),
			"backups (and streaming) need it: a `replication` line in pg_hba.conf, a user with REPLICATION, max_wal_senders > 0")
	}
	defer conn.Close(context.Background())
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return fail(fmt.Sprintf("IDENTIFY_SYSTEM over %q failed: %v", shown, err),
			"the connection must be a physical replication connection (replication=yes)")
	}
	return replFacts{systemID: sys.SystemID,
		detail: fmt.Sprintf("IDENTIFY_SYSTEM: system %s, timeline %d, WAL at %s", sys.SystemID, sys.Timeline, sys.XLogPos)}
}

func (r *runner) replication(rf replFacts) {
	if rf.fail != nil {
		r.out = append(r.out, *rf.fail)
		return
	}
	if r.pg.err == nil && r.pg.systemID != 0 && rf.systemID != strconv.FormatUint(r.pg.systemID, 10) {
		r.add(CheckReplication, false, rf.detail+fmt.Sprintf(", but conninfo reaches system %d", r.pg.systemID),
			"conninfo and streaming_conninfo must point at the same cluster")
		return
	}
	r.add(CheckReplication, true, rf.detail, "")
}

func (r *runner) walLevel() {
	if r.pg.err != nil {
		return
	}
	if r.pg.walLevel != "replica" && r.pg.walLevel != "logical" {
		r.add(CheckWALLevel, false, fmt.Sprintf("wal_level is %q", r.pg.walLevel), "set wal_level = replica (or logical) and restart PostgreSQL")
		return
	}
	r.add(CheckWALLevel, true, r.pg.walLevel, "")
}

// archiving is the archive_mode/archive_command check; streaming alone also passes.
func (r *runner) archiving() {
	if r.pg.err != nil {
		return
	}
	mode, cmd := r.pg.archiveMode, r.pg.archiveCommand
	want := r.wantArchiveCommand()
	var why, hint string
	switch {
	case mode != "on" && mode != "always":
		why = fmt.Sprintf("archive_mode is %s", mode)
		hint = "set archive_mode = on and " + want + ", then restart PostgreSQL"
	case r.pg.inRecovery && mode != "always":
		why = "archive_mode is on, but this is a standby: it archives only with archive_mode = always"
		hint = "set archive_mode = always on the standby, or streaming_archiver = on"
	case !archivesToUs(cmd, r.srv.Name):
		why = fmt.Sprintf("archive_command %q does not run `walkeeper archive-wal %s` (nor `put-wal %s` through ssh)", cmd, r.srv.Name, r.srv.Name)
		hint = "set " + want + " and reload PostgreSQL"
	}
	switch {
	case why == "":
		r.add(CheckArchiving, true, fmt.Sprintf("archive_mode = %s, archive_command = %q", mode, cmd), "")
	case r.srv.StreamingArchiver:
		r.add(CheckArchiving, true, "WAL arrives by streaming (streaming_archiver = on); "+why, "")
	case !r.srv.Archiver:
		r.add(CheckArchiving, false, why+", and both archiver and streaming_archiver are off: no WAL can arrive",
			"set archiver = on (with "+want+") or streaming_archiver = on")
	default:
		r.add(CheckArchiving, false, why, hint)
	}
}

func (r *runner) configFile() string {
	if r.d.ConfigFile != "" {
		return r.d.ConfigFile
	}
	return "<config>"
}

func (r *runner) streaming() {
	if !r.srv.StreamingArchiver {
		return
	}
	if r.pg.err == nil {
		switch {
		case r.pg.slotErr != nil:
			r.add(CheckSlot, false, fmt.Sprintf("cannot read pg_replication_slots: %v", r.pg.slotErr), "")
		case !r.pg.slotFound && r.srv.CreateSlot != "auto":
			r.add(CheckSlot, false, fmt.Sprintf("replication slot %q does not exist", r.srv.SlotName),
				fmt.Sprintf("`walkeeper receive-wal --create-slot %s`, or create_slot = auto", r.srv.Name))
		case !r.pg.slotFound:
			r.add(CheckSlot, true, fmt.Sprintf("replication slot %q will be created by the receiver (create_slot = auto)", r.srv.SlotName), "")
		default:
			state := "inactive"
			if r.pg.slotActive {
				state = "active"
			}
			r.add(CheckSlot, true, fmt.Sprintf("replication slot %q exists (%s)", r.srv.SlotName, state), "")
		}
	}
	var st record.ReceiverState
	ok := false
	if r.d.Receiver != nil {
		st, ok = r.d.Receiver()
	}
	switch {
	case !ok || !st.Running:
		r.add(CheckReceiver, false, "the WAL receiver is not running", "start `walkeeper watch` (it streams every server with streaming_archiver = on)")
	case !st.Connected:
		detail := "the WAL receiver is not connected"
		if st.LastError != "" {
			detail += fmt.Sprintf(": %s (%s ago)", st.LastError, r.since(st.LastErrorAt))
		}
		r.add(CheckReceiver, false, detail, "check streaming_conninfo and the replication slot")
	default:
		r.add(CheckReceiver, true, fmt.Sprintf("connected, slot %s, received %s, lag %d bytes", st.Slot, st.ReceivedLSN, st.LagBytes), "")
	}
}
