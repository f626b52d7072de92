package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Recorder is the part of the index a backup writes to: every state change of
// backup.info is mirrored there (index.Index satisfies it).
type Recorder interface {
	PutBackup(ctx context.Context, server string, b record.Backup) error
	ListBackups(ctx context.Context, server string) ([]record.Backup, error)
}

// Options configures one backup.
type Options struct {
	Server            string
	ServerDir         string // <home>/<server>: holds the backup lock
	Conninfo          string // SQL connection (pg_is_in_recovery, pg_switch_wal, pg_stat_archiver)
	StreamingConninfo string // replication connection for BASE_BACKUP ("" = Conninfo)
	PrimaryConninfo   string // the primary, when Conninfo points at a standby ("" = none)
	ApplicationName   string
	Store             storage.Store
	Index             Recorder
	Name              string // optional, unique per server
	// OpaqueNames stores each file over 256 KiB under its number, not its path
	// (data/objects/000123): an encrypted repository's object names then reveal no
	// database, relation or file name.
	OpaqueNames      bool
	Compression      string // zstd (default) | gzip | none
	CompressionLevel int
	Jobs             int   // compression workers; default all cores
	BandwidthLimit   int64 // bytes/s read from the server; 0 = unlimited
	WaitTimeout      time.Duration
	// DaemonRunning reports whether `walkeeper watch` runs (it ingests the WAL the
	// backup waits for); nil means unknown.
	DaemonRunning func() bool
	// IncomingDir is the server's incoming/: while DaemonRunning says no daemon runs,
	// a valid copy of a segment waiting there counts as archived (invariant 9: what
	// archive-wal made durable is archived, and restore reads it there).
	IncomingDir string
	// StreamingArchiver is the server's streaming_archiver and SlotName its slot;
	// Receiver, if set, gives the streaming receiver's state (false when none is known):
	// a backup whose WAL does not arrive names the receiver's state, not only
	// archive_command's.
	StreamingArchiver bool
	SlotName          string
	Receiver          func() (record.ReceiverState, bool)
	// Progress, if set, is called once the stream starts with the server's size
	// estimate and returns the function told the bytes done (-1 at the end).
	Progress func(total int64) func(done int64)
	// Notify receives human-readable state messages (waiting for WAL, and why).
	Notify func(msg string)
	Log    *slog.Logger
}

func (o *Options) defaults() error {
	if o.Server == "" || o.ServerDir == "" || o.Conninfo == "" || o.Store == nil || o.Index == nil {
		return errors.New("basebackup: Server, ServerDir, Conninfo, Store and Index are required")
	}
	if o.StreamingConninfo == "" {
		o.StreamingConninfo = o.Conninfo
	}
	if o.Compression == "" {
		o.Compression = compress.Zstd
	}
	if !compress.Valid(o.Compression) {
		return fmt.Errorf("backup_compression %q: not one of zstd, gzip, none", o.Compression)
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 10 * time.Minute
	}
	if o.ApplicationName == "" {
		o.ApplicationName = "walkeeper"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Notify == nil {
		o.Notify = func(string) {}
	}
	if o.Name != "" {
		if err := ValidName(o.Name); err != nil {
			return err
		}
	}
	return nil
}

// Take runs one backup of a server: BASE_BACKUP streamed into per-file compressed
// objects, then a wait until the archive holds every WAL segment from the backup's
// begin to its end. The returned record is the final backup.info (DONE, or FAILED
// with the error also returned). An error before backup.info exists (lock held, bad
// name, server unreachable) returns a zero record.
func Take(ctx context.Context, o Options) (record.Backup, error) {
	if err := o.defaults(); err != nil {
		return record.Backup{}, err
	}
	lock, err := TryLock(o.ServerDir)
	if err != nil {
		return record.Backup{}, fmt.Errorf("backup of %s: %w", o.Server, err)
	}
	defer lock.Unlock()

	existing, err := o.Index.ListBackups(ctx, o.Server)
	if err != nil {
		return record.Backup{}, fmt.Errorf("backup of %s: list backups: %w", o.Server, err)
	}
	if o.Name != "" {
		for _, b := range existing {
			if b.Name == o.Name {
				return record.Backup{}, fmt.Errorf("backup of %s: name %q is already used by backup %s", o.Server, o.Name, b.ID)
			}
		}
	}
	failInterrupted(ctx, o, existing)

	id, err := pgutil.Identity(ctx, o.Conninfo)
	if err != nil {
		return record.Backup{}, fmt.Errorf("backup of %s: connect (%s): %w", o.Server, config.RedactConninfo(o.Conninfo), err)
	}
	if err := pgutil.CheckMajor(id.PGVersion / 10000); err != nil {
		return record.Backup{}, fmt.Errorf("backup of %s: %w", o.Server, err)
	}
	if arch, err := archive.LoadIdentity(ctx, o.Store, o.Server); err == nil && arch.SystemID != 0 && arch.SystemID != id.SystemID {
		return record.Backup{}, fmt.Errorf("backup of %s: the server's system identifier is %d but the archive holds WAL of %d (conninfo points at another cluster?)",
			o.Server, id.SystemID, arch.SystemID)
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return record.Backup{}, fmt.Errorf("backup of %s: %w", o.Server, err)
	}
	inRecovery, tsNames, err := serverState(ctx, o.Conninfo)
	if err != nil {
		return record.Backup{}, fmt.Errorf("backup of %s: %w", o.Server, err)
	}

	bid, err := allocateID(ctx, o, existing)
	if err != nil {
		return record.Backup{}, err
	}
	b := record.Backup{
		ID: bid, Server: o.Server, Name: o.Name, Status: record.StatusStarted,
		Label:     "walkeeper backup " + bid,
		BeginTime: time.Now().UTC(), PGVersion: id.PGVersion, SystemID: id.SystemID, SegSize: id.SegSize,
		FromStandby: inRecovery, Compression: o.Compression, CompressionLevel: o.CompressionLevel,
		Tablespaces: []record.Tablespace{},
	}
	if err := save(ctx, o, b); err != nil {
		return b, err
	}
	b, err = run(ctx, o, b, tsNames)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted (%s): %w", b.Status, context.Cause(ctx))
		}
		b.Status = record.StatusFailed
		b.Error = err.Error()
		if b.EndTime.IsZero() {
			b.EndTime = time.Now().UTC()
		}
		// The backup's own context may be cancelled (Ctrl-C): record the failure anyway.
		if serr := save(context.WithoutCancel(ctx), o, b); serr != nil {
			o.Log.Error("recording failed backup", "backup", b.ID, "err", serr)
		}
		return b, fmt.Errorf("backup %s of %s: %w", b.ID, o.Server, err)
	}
	return b, nil
}

// save writes backup.info durably, then the index record.
func save(ctx context.Context, o Options, b record.Backup) error {
	if err := SaveInfo(ctx, o.Store, b); err != nil {
		return err
	}
	if err := o.Index.PutBackup(ctx, o.Server, b); err != nil {
		return fmt.Errorf("backup %s: index: %w (backup.info is written; `walkeeper index rebuild %s` restores the record)", b.ID, err, o.Server)
	}
	return nil
}

// failInterrupted marks backups left STARTED or WAITING_WAL by a process that died:
// this process holds the server's backup lock, so none of them is running.
func failInterrupted(ctx context.Context, o Options, existing []record.Backup) {
	for _, b := range existing {
		if b.Status != record.StatusStarted && b.Status != record.StatusWaitingWAL {
			continue
		}
		if info, err := LoadInfo(ctx, o.Store, o.Server, b.ID); err == nil {
			b = info
		}
		b.Status = record.StatusFailed
		b.Error = InterruptedError
		if err := save(ctx, o, b); err != nil {
			o.Log.Warn("marking interrupted backup FAILED", "backup", b.ID, "err", err)
		}
	}
}

func allocateID(ctx context.Context, o Options, existing []record.Backup) (string, error) {
	taken := map[string]bool{}
	for _, b := range existing {
		taken[b.ID] = true
	}
	for range 5 {
		id := time.Now().UTC().Format(IDLayout)
		if !taken[id] {
			_, err := o.Store.Stat(ctx, archive.BackupInfoKey(o.Server, id))
			if errors.Is(err, storage.ErrNotFound) {
				return id, nil
			}
			if err != nil {
				return "", fmt.Errorf("backup of %s: %w", o.Server, err)
			}
		}
		// Ids have one-second resolution: wait for the next second.
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Until(time.Now().Truncate(time.Second).Add(time.Second))):
		}
	}
	return "", fmt.Errorf("backup of %s: could not allocate a backup id", o.Server)
}

// serverState asks whether the server is a standby and for its tablespaces' names.
func serverState(ctx context.Context, conninfo string) (bool, map[uint32]string, error) {
	c, err := pgutil.Connect(ctx, conninfo)
	if err != nil {
		return false, nil, fmt.Errorf("connect (%s): %w", config.RedactConninfo(conninfo), err)
	}
	defer c.Close(ctx)
	var inRecovery bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return false, nil, fmt.Errorf("pg_is_in_recovery: %w", err)
	}
	names := map[uint32]string{}
	rows, err := c.Query(ctx, "SELECT oid, spcname FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')")
	if err != nil {
		return false, nil, fmt.Errorf("list tablespaces: %w", err)
	}
	for rows.Next() {
		var oid uint32
		var name string
		if err := rows.Scan(&oid, &name); err != nil {
			rows.Close()
			return false, nil, fmt.Errorf("list tablespaces: %w", err)
		}
		names[oid] = name
	}
	rows.Close()
	return inRecovery, names, rows.Err()
}

// run is the backup after backup.info exists: any error makes it FAILED.
func run(ctx context.Context, o Options, b record.Backup, tsNames map[uint32]string) (record.Backup, error) {
	conn, err := pgutil.ReplConnect(ctx, o.StreamingConninfo, pgutil.ReplOptions{ApplicationName: o.ApplicationName, KeepConninfoName: true, ReadBuffer: 1 << 20})
	if err != nil {
		return b, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	writers := max(8, 2*o.Jobs)
	t0 := time.Now()
	res, err := runBaseBackup(ctx, conn, streamOptions{
		store: o.Store, server: o.Server, id: b.ID, label: b.Label,
		codec: o.Compression, level: o.CompressionLevel, jobs: o.Jobs, writers: writers,
		bandwidthLimit: o.BandwidthLimit, progress: o.Progress, opaqueNames: o.OpaqueNames,
		onStart: func(lsn segments.LSN, tli uint32) error {
			b.BeginLSN, b.Timeline = lsn, tli
			b.BeginWAL = segments.SegmentForLSN(tli, lsn, b.SegSize)
			// Record where the backup begins at once: WAL retention must keep it.
			return save(ctx, o, b)
		},
	})
	if err != nil {
		return b, err
	}
	b.EndTime = time.Now().UTC()
	o.Log.Debug("backup stream stored", "backup", b.ID, "seconds", b.EndTime.Sub(t0).Seconds())
	b.EndLSN = res.endLSN
	if res.endTLI != 0 {
		b.Timeline = res.endTLI
	}
	// The end record lies before EndLSN: the last segment needed is the one holding
	// EndLSN-1 (EndLSN may sit exactly on a segment boundary).
	b.EndWAL = segments.SegmentForLSN(b.Timeline, b.EndLSN-1, b.SegSize)

	// The manifest is stored (and fsynced) while the contents list is built.
	manifestStored := make(chan error, 1)
	go func() {
		_, err := o.Store.Put(ctx, archive.BackupManifestKey(o.Server, b.ID), bytes.NewReader(res.manifest))
		manifestStored <- err
	}()
	b, err = storeContents(ctx, o, b, res, tsNames)
	if merr := <-manifestStored; merr != nil && err == nil {
		err = fmt.Errorf("store backup_manifest: %w", merr)
	}
	if err != nil {
		return b, err
	}
	b.Status = record.StatusWaitingWAL
	if err := save(ctx, o, b); err != nil {
		return b, err
	}
	o.Log.Info("backup data stored", "backup", b.ID, "size", b.Size, "stored", b.StoredSize, "files", b.Files,
		"begin_wal", b.BeginWAL, "end_wal", b.EndWAL)

	switchNote := switchWAL(ctx, o, b)
	if err := waitWAL(ctx, o, b, res.startTLI, switchNote); err != nil {
		return b, err
	}
	b.Status = record.StatusDone
	b.Error = ""
	if err := save(ctx, o, b); err != nil {
		return b, err
	}
	return b, nil
}

// storeContents stores the backup's contents list and fills b's sizes and tablespaces.
func storeContents(ctx context.Context, o Options, b record.Backup, res *streamResult, tsNames map[uint32]string) (record.Backup, error) {
	tsSize := map[uint32]int64{}
	for i, e := range res.entries {
		if i > 0 && compareEntries(res.entries[i-1], e) == 0 {
			return b, fmt.Errorf("BASE_BACKUP sent %s twice", e.Path)
		}
		if e.Type == TypeFile && e.Size == 0 {
			e.Sum = ManifestCRC32C(0)
		}
		tsSize[e.Tablespace] += e.Size
	}
	slices.SortFunc(res.objects, func(a, b StoredObject) int { return strings.Compare(a.Key, b.Key) })
	cdata, err := compressContents(contentsList{version: formatVersion, backupID: b.ID, entries: res.entries, objects: res.objects})
	if err != nil {
		return b, fmt.Errorf("contents: %w", err)
	}
	if _, err := o.Store.Put(ctx, archive.BackupContentsKey(o.Server, b.ID), bytes.NewReader(cdata)); err != nil {
		return b, fmt.Errorf("store contents: %w", err)
	}
	b.Files = res.files
	b.Size = res.size
	b.StoredSize = res.stored + int64(len(res.manifest)) + int64(len(cdata))
	for oid, loc := range res.tsLocations {
		b.Tablespaces = append(b.Tablespaces, record.Tablespace{OID: oid, Name: tsNames[oid], Location: loc, Size: tsSize[oid]})
	}
	sortTablespaces(b.Tablespaces)
	return b, nil
}

func sortTablespaces(ts []record.Tablespace) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].OID < ts[j-1].OID; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// switchWAL makes sure the backup's end segment gets closed (and so archived) on an
// idle server: on a primary it switches WAL itself, from a standby it asks the primary.
// It returns a note for the waiting message when it could not.
func switchWAL(ctx context.Context, o Options, b record.Backup) string {
	target, where := o.Conninfo, "the server"
	if b.FromStandby {
		if o.PrimaryConninfo == "" {
			return "the backup was taken from a standby and no primary_conninfo is configured: the end segment is archived only once the primary switches WAL by itself"
		}
		target, where = o.PrimaryConninfo, "the primary"
	}
	c, err := pgutil.Connect(ctx, target)
	if err != nil {
		o.Log.Warn("cannot switch WAL", "on", where, "err", err)
		return fmt.Sprintf("could not ask %s to switch WAL (%v)", where, err)
	}
	defer c.Close(ctx)
	var lsn string
	if err := c.QueryRow(ctx, "SELECT pg_switch_wal()::text").Scan(&lsn); err != nil {
		o.Log.Warn("pg_switch_wal failed", "on", where, "err", err)
		return fmt.Sprintf("pg_switch_wal() on %s failed (%v)", where, err)
	}
	o.Log.Debug("switched WAL", "on", where, "lsn", lsn)
	return ""
}

// waitWAL waits until every segment from BeginWAL to EndWAL is archived.
func waitWAL(ctx context.Context, o Options, b record.Backup, startTLI uint32, note string) error {
	first := segments.SegNoOf(b.BeginLSN, b.SegSize)
	last := segments.SegNoOf(b.EndLSN-1, b.SegSize)
	tlis := []uint32{b.Timeline}
	if startTLI != 0 && startTLI != b.Timeline {
		tlis = append(tlis, startTLI)
	}
	deadline := time.Now().Add(o.WaitTimeout)
	next := first
	locate := archive.WaitOptions{IncomingDir: o.IncomingDir,
		AcceptWaiting: func() bool { return o.DaemonRunning != nil && !o.DaemonRunning() },
		Identity:      record.Identity{SystemID: b.SystemID, SegSize: b.SegSize}}
	var waiting []string // segments found only in incoming/
	// The first message after 2s: the end segment usually arrives at once.
	lastNotify := time.Now().Add(-8 * time.Second)
	for {
		for next <= last {
			found := false
			for _, tli := range tlis {
				name := segments.SegmentFileName(tli, next, b.SegSize)
				p, err := archive.Locate(ctx, o.Store, o.Server, name, locate)
				if err != nil {
					return err
				}
				if p == archive.InIncoming {
					waiting = append(waiting, name)
				}
				if p != 0 {
					found = true
					break
				}
			}
			if !found {
				break
			}
			next++
		}
		if next > last {
			if len(waiting) > 0 && o.Notify != nil {
				what := waiting[0]
				if len(waiting) > 1 {
					what = fmt.Sprintf("%d segments (%s to %s)", len(waiting), waiting[0], waiting[len(waiting)-1])
				}
				o.Notify(fmt.Sprintf("warning: backup %s: WAL %s waits in %s, durable and read from there by restore, but the walkeeper daemon is NOT running: start `walkeeper watch` to archive it",
					b.ID, what, o.IncomingDir))
			}
			return nil
		}
		missing := segments.SegmentFileName(b.Timeline, next, b.SegSize)
		if time.Now().After(deadline) {
			return fmt.Errorf("WAL %s to %s not archived within %s (first missing: %s): %s",
				b.BeginWAL, b.EndWAL, o.WaitTimeout, missing, waitCause(ctx, o, b, note))
		}
		if time.Since(lastNotify) >= 10*time.Second {
			msg := fmt.Sprintf("backup %s: waiting up to %s for WAL %s to %s to be archived (missing %s)",
				b.ID, time.Until(deadline).Round(time.Second), b.BeginWAL, b.EndWAL, missing)
			if o.DaemonRunning != nil && !o.DaemonRunning() {
				msg += "; the walkeeper daemon is NOT running: start `walkeeper watch` to ingest WAL"
			}
			if note != "" {
				msg += "; " + note
			}
			o.Notify(msg)
			lastNotify = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
			// A few stats a poll; the end segment usually lands within a poll or two of
			// the switch, and each poll's wait is backup time.
		}
	}
}

// waitCause names why WAL did not arrive: archive_command failures (pg_stat_archiver of
// the server and, for a standby, of the primary), the streaming receiver's state when
// streaming_archiver is on, a daemon that is not running, or a standby nobody switches
// WAL for. archive_command is blamed only where archive_mode is on.
func waitCause(ctx context.Context, o Options, b record.Backup, note string) string {
	var causes []string
	archiving := false
	check := func(conninfo, where string) {
		c, err := pgutil.Connect(ctx, conninfo)
		if err != nil {
			causes = append(causes, fmt.Sprintf("cannot read pg_stat_archiver of %s: %v", where, err))
			return
		}
		defer c.Close(ctx)
		var mode string
		if err := c.QueryRow(ctx, "SHOW archive_mode").Scan(&mode); err == nil && mode == "off" {
			return
		}
		archiving = true
		st, err := pgutil.Archiver(ctx, c)
		if err != nil {
			causes = append(causes, fmt.Sprintf("cannot read pg_stat_archiver of %s: %v", where, err))
			return
		}
		if cause := st.Cause(); cause != "" {
			causes = append(causes, where+": "+cause)
		}
	}
	check(o.Conninfo, "the server")
	if b.FromStandby && o.PrimaryConninfo != "" {
		check(o.PrimaryConninfo, "the primary")
	}
	if o.StreamingArchiver {
		var st record.ReceiverState
		known := false
		if o.Receiver != nil {
			st, known = o.Receiver()
		}
		causes = append(causes, receiverCause(o.Server, o.SlotName, st, known))
	}
	if o.DaemonRunning != nil && !o.DaemonRunning() {
		causes = append(causes, "the walkeeper daemon is not running (start `walkeeper watch`)")
	}
	if note != "" {
		causes = append(causes, note)
	}
	if len(causes) == 0 {
		if archiving {
			causes = append(causes, fmt.Sprintf("pg_stat_archiver reports no failure: check that archive_command is `walkeeper archive-wal %s %%p` (or that streaming_archiver is on) and that archive_mode is on (always, for a standby that archives)", o.Server))
		} else {
			causes = append(causes, fmt.Sprintf("archive_mode is off on the server and streaming_archiver is off for %s: nothing sends WAL to walkeeper (set streaming_archiver = on, or archive_mode = on with archive_command = `walkeeper archive-wal %s %%p`)", o.Server, o.Server))
		}
	}
	return strings.Join(causes, "; ")
}

// receiverCause describes the streaming receiver's state for a backup that waits on it.
func receiverCause(server, slot string, st record.ReceiverState, known bool) string {
	switch {
	case !known || !st.Running:
		return fmt.Sprintf("the streaming receiver of %s is not running (streaming_archiver = on: `walkeeper watch` runs it, or `walkeeper receive-wal %s`)", server, server)
	case !st.Connected:
		msg := fmt.Sprintf("the streaming receiver of %s is not connected to the server (slot %s", server, slot)
		if st.LastError != "" {
			msg += fmt.Sprintf("; last error at %s: %s", st.LastErrorAt.Format(time.RFC3339), st.LastError)
		}
		return msg + ")"
	}
	msg := fmt.Sprintf("the streaming receiver of %s is connected (slot %s) and flushed WAL up to %s on timeline %d", server, slot, orNone(st.FlushedLSN), st.Timeline)
	if st.ServerLSN != "" {
		msg += fmt.Sprintf(" (the server is at %s, %d bytes ahead)", st.ServerLSN, st.LagBytes)
	}
	return msg + "; a segment is archived once the receiver has streamed it whole"
}

func orNone(s string) string {
	if s == "" {
		return "nothing yet"
	}
	return s
}
