// Package check runs walkeeper's pass/fail checks of one server (the `check` command):
// can walkeeper reach PostgreSQL, is WAL arriving and complete, are backups recent and
// numerous enough, is the daemon up. Each check is a function returning a Result with a
// hint, so the console, JSON output and monitoring all read the same answers.
package check

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/verify"
)

// Result is one check's answer (also the `check --json` element).
type Result struct {
	Server string `json:"server"`
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Hint   string `json:"hint"`
}

// Deps is what the checks of one server read.
type Deps struct {
	Server *config.Server
	// ConfigFile is the loaded configuration file and Binary the walkeeper executable,
	// for hints that can be pasted.
	ConfigFile string
	Binary     string
	Store      storage.Store
	// Index is the catalog (the daemon's or opened directly); IndexErr says why it could
	// not be opened when it is nil.
	Index    index.Index
	IndexErr error
	// Daemon is a client of the running daemon, nil when none answers.
	Daemon *daemon.Client
	// Receiver returns the streaming receiver's state, if any is known.
	Receiver func() (catalog.ReceiverState, bool)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ChainRecheck, if positive, is how long the WAL chain check waits before it looks
	// again at a gap: the daemon stores segments in parallel, so a newer one can land a
	// moment before an older one.
	ChainRecheck time.Duration
}

// DefaultWALMaxAge is how old the newest archived WAL may be, while the server has
// completed segments that are not archived, when the server sets no archive_timeout.
const DefaultWALMaxAge = time.Hour

// ChainRecheckDelay is the usual Deps.ChainRecheck.
const ChainRecheckDelay = 2 * time.Second

// Check names, stable for --json consumers.
const (
	CheckPostgreSQL   = "PostgreSQL connection"
	CheckReplication  = "replication connection"
	CheckWALLevel     = "wal_level"
	CheckArchiving    = "archive_mode and archive_command"
	CheckArchiver     = "pg_stat_archiver"
	CheckWALRecent    = "WAL received recently"
	CheckSystemID     = "system identifier"
	CheckWALChain     = "WAL chain"
	CheckBackupAge    = "last backup age"
	CheckRedundancy   = "minimum redundancy"
	CheckDisk         = "free disk space"
	CheckDaemon       = "daemon running"
	CheckErrors       = "files in errors/"
	CheckFailedBackup = "failed backups"
	CheckReceiver     = "streaming receiver"
	CheckSlot         = "replication slot"
	CheckIndex        = "index"
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
	slotFound      bool
	slotActive     bool
	slotErr        error
}

type runner struct {
	d   Deps
	srv *config.Server
	now time.Time
	out []Result
	pg  facts

	backups    []catalog.Backup
	backupsErr error
}

func (r *runner) add(check string, ok bool, detail, hint string) {
	r.out = append(r.out, Result{Server: r.srv.Name, Check: check, OK: ok, Detail: detail, Hint: hint})
}

// Run runs every check that applies to the server, in a fixed order.
func Run(ctx context.Context, d Deps) []Result {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	r := &runner{d: d, srv: d.Server, now: now()}
	// The two connections are independent: probe them at once, so that an unreachable
	// host costs one connect timeout, not two.
	replc := make(chan replFacts, 1)
	go func() { replc <- probeReplication(ctx, d.Server) }()
	r.pg = gather(ctx, d.Server)
	rf := <-replc
	if d.Index != nil {
		r.backups, r.backupsErr = basebackup.ShowInterrupted(d.Server.Dir(), func() ([]catalog.Backup, error) {
			return d.Index.ListBackups(ctx, d.Server.Name)
		})
	} else {
		r.backupsErr = d.IndexErr
		r.add(CheckIndex, false, fmt.Sprintf("cannot open the index: %v", d.IndexErr),
			"if the index is damaged, `walkeeper index rebuild "+d.Server.Name+"` recreates it from the archive")
	}
	r.postgres()
	r.replication(rf)
	r.walLevel()
	r.archiving()
	r.archiverStats()
	r.streaming()
	r.walRecent(ctx)
	r.systemID(ctx)
	r.walChain(ctx)
	r.backupAge()
	r.redundancy()
	r.failedBackups()
	r.disk()
	r.daemonRunning(ctx)
	r.errorsDir()
	return r.out
}

// Failed reports whether any result failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return true
		}
	}
	return false
}

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

// archivesToUs reports whether archive_command runs `walkeeper archive-wal <server>`
// (flags may come between).
func archivesToUs(command, server string) bool {
	fields := strings.Fields(strings.NewReplacer(`'`, " ", `"`, " ", ";", " ", "&&", " ").Replace(command))
	for i, f := range fields {
		if f != "archive-wal" {
			continue
		}
		for _, g := range fields[i+1:] {
			if strings.HasPrefix(g, "-") {
				continue
			}
			if g == server {
				return true
			}
			break
		}
	}
	return false
}

// archiving is the archive_mode/archive_command check; streaming alone also passes.
func (r *runner) archiving() {
	if r.pg.err != nil {
		return
	}
	mode, cmd := r.pg.archiveMode, r.pg.archiveCommand
	bin := r.d.Binary
	if bin == "" {
		bin = "walkeeper"
	}
	want := fmt.Sprintf("archive_command = '%s --config %s archive-wal %s %%p'", bin, r.configFile(), r.srv.Name)
	var why, hint string
	switch {
	case mode != "on" && mode != "always":
		why = fmt.Sprintf("archive_mode is %s", mode)
		hint = "set archive_mode = on and " + want + ", then restart PostgreSQL"
	case r.pg.inRecovery && mode != "always":
		why = "archive_mode is on, but this is a standby: it archives only with archive_mode = always"
		hint = "set archive_mode = always on the standby, or streaming_archiver = on"
	case !archivesToUs(cmd, r.srv.Name):
		why = fmt.Sprintf("archive_command %q does not run `walkeeper archive-wal %s`", cmd, r.srv.Name)
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

func (r *runner) archiverStats() {
	if r.pg.err != nil || (r.pg.archiveMode != "on" && r.pg.archiveMode != "always") {
		return
	}
	if r.pg.archiverErr != nil {
		r.add(CheckArchiver, false, fmt.Sprintf("cannot read pg_stat_archiver: %v", r.pg.archiverErr), "")
		return
	}
	s := r.pg.archiver
	if cause := s.Cause(); cause != "" {
		r.add(CheckArchiver, false, cause,
			fmt.Sprintf("run archive_command by hand as the postgres user on %s to see its error", s.LastFailedWAL))
		return
	}
	detail := fmt.Sprintf("%d archived, %d failed", s.ArchivedCount, s.FailedCount)
	if s.LastArchivedWAL != "" && s.LastArchivedTime != nil {
		detail += fmt.Sprintf("; last %s %s ago", s.LastArchivedWAL, r.since(*s.LastArchivedTime))
	}
	r.add(CheckArchiver, true, detail, "")
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
	var st catalog.ReceiverState
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

func (r *runner) done() []catalog.Backup {
	var out []catalog.Backup
	for _, b := range r.backups {
		if b.Done() {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
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

func (r *runner) backupAge() {
	if r.srv.LastBackupMaximumAge <= 0 || r.backupsErr != nil {
		return
	}
	done := r.done()
	if len(done) == 0 {
		r.add(CheckBackupAge, false, "no DONE backup", fmt.Sprintf("`walkeeper backup %s`", r.srv.Name))
		return
	}
	last := done[len(done)-1]
	at := last.EndTime
	if at.IsZero() {
		at = last.BeginTime
	}
	age := r.since(at)
	if age > r.srv.LastBackupMaximumAge {
		r.add(CheckBackupAge, false, fmt.Sprintf("last DONE backup %s ended %s ago, more than last_backup_maximum_age %s", last.ID, age, r.srv.LastBackupMaximumAge),
			fmt.Sprintf("`walkeeper backup %s` (and check the backup schedule)", r.srv.Name))
		return
	}
	r.add(CheckBackupAge, true, fmt.Sprintf("last DONE backup %s ended %s ago (maximum %s)", last.ID, age, r.srv.LastBackupMaximumAge), "")
}

func (r *runner) redundancy() {
	if r.srv.MinimumRedundancy <= 0 || r.backupsErr != nil {
		return
	}
	n := len(r.done())
	if n < r.srv.MinimumRedundancy {
		r.add(CheckRedundancy, false, fmt.Sprintf("%d DONE backup(s), minimum_redundancy is %d", n, r.srv.MinimumRedundancy),
			fmt.Sprintf("`walkeeper backup %s`", r.srv.Name))
		return
	}
	r.add(CheckRedundancy, true, fmt.Sprintf("%d DONE backup(s), minimum %d", n, r.srv.MinimumRedundancy), "")
}

func (r *runner) failedBackups() {
	if r.backupsErr != nil {
		return
	}
	var lastDone string
	for _, b := range r.backups {
		if b.Done() && b.ID > lastDone {
			lastDone = b.ID
		}
	}
	var failed []catalog.Backup
	for _, b := range r.backups {
		if b.Status == catalog.StatusFailed && b.ID > lastDone {
			failed = append(failed, b)
		}
	}
	if len(failed) == 0 {
		r.add(CheckFailedBackup, true, "no FAILED backup since the last DONE one", "")
		return
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].ID < failed[j].ID })
	newest := failed[len(failed)-1]
	why := newest.Error
	if why == "" {
		why = "no error recorded"
	}
	r.add(CheckFailedBackup, false, fmt.Sprintf("%d FAILED backup(s) since the last DONE one; newest %s: %s", len(failed), newest.ID, why),
		fmt.Sprintf("fix the cause and run `walkeeper backup %s`", r.srv.Name))
}

func (r *runner) disk() {
	dir := r.srv.Dir()
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		r.add(CheckDisk, false, fmt.Sprintf("statfs %s: %v", dir, err), "")
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	detail := fmt.Sprintf("%s free on %s", human(free), dir)
	if free < r.srv.MinFreeDisk {
		r.add(CheckDisk, false, fmt.Sprintf("%s, less than min_free_disk %s", detail, human(r.srv.MinFreeDisk)),
			"free space or add storage: the archive stops when the disk fills, and PostgreSQL's pg_wal grows")
		return
	}
	r.add(CheckDisk, true, fmt.Sprintf("%s (minimum %s)", detail, human(r.srv.MinFreeDisk)), "")
}

func human(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

func (r *runner) daemonRunning(ctx context.Context) {
	if r.d.Daemon == nil {
		r.add(CheckDaemon, false, "no `walkeeper watch` answers on "+daemon.SocketPath(r.srv.Home),
			"start `walkeeper watch` (e.g. as a systemd service): without it no WAL is archived")
		return
	}
	info, err := r.d.Daemon.Info(ctx)
	if err != nil {
		r.add(CheckDaemon, false, fmt.Sprintf("the daemon does not answer: %v", err), "restart `walkeeper watch`")
		return
	}
	ss, ok := info.Servers[r.srv.Name]
	if r.srv.Active && (!ok || !ss.Watching) {
		r.add(CheckDaemon, false, fmt.Sprintf("the daemon (pid %d) does not watch %s", info.PID, r.srv.Name),
			"restart `walkeeper watch` without server names, or name this server too")
		return
	}
	detail := fmt.Sprintf("pid %d, up %s", info.PID, r.since(info.StartedAt))
	if ss.LastError != "" {
		detail += fmt.Sprintf("; last error %s ago: %s", r.since(ss.LastErrorAt), ss.LastError)
	}
	r.add(CheckDaemon, true, detail, "")
}

func (r *runner) errorsDir() {
	dir := r.srv.ErrorsDir()
	qs, err := archive.Quarantined(dir)
	if err != nil {
		r.add(CheckErrors, false, fmt.Sprintf("cannot read %s: %v", dir, err), "")
		return
	}
	if len(qs) == 0 {
		r.add(CheckErrors, true, "none", "")
		return
	}
	newest := qs[0]
	for _, q := range qs[1:] {
		if q.Mtime.After(newest.Mtime) {
			newest = q
		}
	}
	r.add(CheckErrors, false, fmt.Sprintf("%d file(s) in %s; newest %s: %s", len(qs), dir, newest.File, newest.Reason),
		"each file was refused with the reason beside it (<file>.reason); remove them once understood")
}
