package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/retention"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// BackupCmd takes a base backup.
type BackupCmd struct {
	Server      string        `arg:"" help:"Server name."`
	Name        string        `help:"A name for the backup, unique per server (usable wherever a backup id is)."`
	WaitTimeout time.Duration `name:"wait-timeout" placeholder:"DURATION" help:"How long to wait for the backup's WAL to be archived (default: backup_wait_timeout, 10m)."`
}

// shortIndex opens the index for each call and closes it at once: a backup may wait a
// long time for WAL, and holding the badger database that long would keep
// `walkeeper watch` from starting (invariant 5).
type shortIndex struct {
	a *App
}

func (s shortIndex) with(fn func(index.Index) error) error {
	cfg, err := s.a.Config()
	if err != nil {
		return err
	}
	idx, _, err := daemon.OpenIndex(cfg.Home, s.a.log)
	if err != nil {
		return err
	}
	defer idx.Close()
	return fn(idx)
}

func (s shortIndex) PutBackup(ctx context.Context, server string, b catalog.Backup) error {
	return s.with(func(i index.Index) error { return i.PutBackup(ctx, server, b) })
}

func (s shortIndex) ListBackups(ctx context.Context, server string) (bs []catalog.Backup, err error) {
	err = s.with(func(i index.Index) error { bs, err = i.ListBackups(ctx, server); return err })
	return bs, err
}

// Run implements the command.
func (c *BackupCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	if c.Name != "" {
		if err := basebackup.ValidName(c.Name); err != nil {
			return usageErr("--name: %v", err)
		}
	}
	if c.WaitTimeout < 0 {
		return usageErr("--wait-timeout %s: must not be negative", c.WaitTimeout)
	}
	wait := c.WaitTimeout
	if wait == 0 {
		wait = srv.BackupWaitTimeout
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	cfg, _ := a.Config()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	o := basebackup.Options{
		Server: srv.Name, ServerDir: srv.Dir(),
		Conninfo: srv.Conninfo, StreamingConninfo: srv.StreamingConninfo, PrimaryConninfo: srv.PrimaryConninfo,
		ApplicationName: srv.ApplicationName,
		Store:           store, Index: shortIndex{a},
		Name:        c.Name,
		Compression: srv.BackupCompression, CompressionLevel: srv.BackupCompressionLevel,
		Jobs: srv.ParallelJobs, BandwidthLimit: srv.BandwidthLimit,
		WaitTimeout: wait,
		DaemonRunning: func() bool {
			d, err := daemon.Dial(cfg.Home)
			return err == nil && d != nil
		},
		StreamingArchiver: srv.StreamingArchiver, SlotName: srv.SlotName,
		Receiver: func() (ingest.ReceiverState, bool) { return receiverState(a, srv.Name) },
		Notify:   func(msg string) { fmt.Fprintln(os.Stderr, msg) },
		Log:      a.log,
	}
	if interactive() {
		o.Progress = backupProgress(srv.Name)
	}
	fmt.Fprintf(os.Stderr, "%s: starting backup (%s)\n", srv.Name, config.RedactConninfo(o.StreamingConninfo))
	start := time.Now()
	b, err := basebackup.Take(ctx, o)
	if err != nil {
		return err
	}
	if a.g.JSON {
		return a.printJSON(b)
	}
	ratio := ""
	if b.StoredSize > 0 {
		ratio = fmt.Sprintf(", ratio %.1fx", float64(b.Size)/float64(b.StoredSize))
	}
	fmt.Fprintf(a.out, "%s: backup %s DONE in %s: %s in %d files, %s stored%s, WAL %s to %s\n",
		srv.Name, b.ID, time.Since(start).Round(100*time.Millisecond), humanBytes(b.Size), b.Files, humanBytes(b.StoredSize), ratio, b.BeginWAL, b.EndWAL)
	return nil
}

// backupProgress draws the transfer on stderr.
func backupProgress(server string) func(total int64) func(int64) {
	return func(total int64) func(int64) {
		if total <= 0 {
			total = -1
		}
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(server+": backup"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		return func(done int64) {
			if done < 0 {
				_ = bar.Finish()
				return
			}
			if bar.GetMax64() > 0 && done > bar.GetMax64() {
				bar.ChangeMax64(done)
			}
			_ = bar.Set64(done)
		}
	}
}

// BackupRow is one backup as list-backups and show-backup print it.
type BackupRow struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Status      string     `json:"status"`
	Error       string     `json:"error,omitempty"`
	Keep        bool       `json:"keep"`
	BeginTime   time.Time  `json:"begin_time"`
	EndTime     *time.Time `json:"end_time"` // null until the backup ends
	BeginLSN    string     `json:"begin_lsn"`
	EndLSN      string     `json:"end_lsn"`
	Timeline    uint32     `json:"timeline"`
	Size        int64      `json:"size_bytes"`
	StoredSize  int64      `json:"stored_bytes"`
	WALCount    int        `json:"wal_count"`
	WALBytes    int64      `json:"wal_bytes"`
	WALStored   int64      `json:"wal_stored_bytes"`
	FromStandby bool       `json:"from_standby"`
	b           catalog.Backup
}

// backupRows lists a server's backups with their linked WAL; a backup whose process
// is gone shows as FAILED (interrupted) at once.
func backupRows(ctx context.Context, idx index.Index, srv *config.Server) ([]BackupRow, []catalog.Backup, error) {
	server := srv.Name
	bs, err := basebackup.ShowInterrupted(srv.Dir(), func() ([]catalog.Backup, error) { return idx.ListBackups(ctx, server) })
	if err != nil {
		return nil, nil, err
	}
	wal, err := basebackup.LinkedWAL(ctx, idx, server, bs)
	if err != nil {
		return nil, nil, err
	}
	rows := make([]BackupRow, 0, len(bs))
	for _, b := range bs {
		w := wal[b.ID]
		r := BackupRow{ID: b.ID, Name: b.Name, Status: b.Status, Error: b.Error, Keep: b.Keep, BeginTime: b.BeginTime,
			Timeline: b.Timeline, Size: b.Size, StoredSize: b.StoredSize, WALCount: w.Count, WALBytes: w.Bytes, WALStored: w.StoredBytes,
			FromStandby: b.FromStandby, b: b}
		if !b.EndTime.IsZero() {
			end := b.EndTime
			r.EndTime = &end
		}
		if b.BeginLSN != 0 {
			r.BeginLSN = b.BeginLSN.String()
		}
		if b.EndLSN != 0 {
			r.EndLSN = b.EndLSN.String()
		}
		rows = append(rows, r)
	}
	return rows, bs, nil
}

// ListBackupsCmd lists a server's backups.
type ListBackupsCmd struct {
	Server string `arg:"" help:"Server name."`
}

// Run implements the command.
func (c *ListBackupsCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	rows, _, err := backupRows(context.Background(), idx, srv)
	if err != nil {
		return err
	}
	if a.g.JSON {
		return a.printJSON(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(a.out, "%s: no backups\n", srv.Name)
		return nil
	}
	var table [][]string
	for i := len(rows) - 1; i >= 0; i-- { // newest first, as Barman
		r := rows[i]
		end := "-"
		if r.EndTime != nil {
			end = r.EndTime.Local().Format("2006-01-02 15:04:05")
		}
		name := r.Name
		if name == "" {
			name = "-"
		}
		status := r.Status
		if r.Keep {
			status += " (keep)"
		}
		table = append(table, []string{r.ID, name, status, end, fmt.Sprint(r.Timeline), orDash(r.BeginLSN), orDash(r.EndLSN),
			humanBytes(r.Size), humanBytes(r.StoredSize), fmt.Sprint(r.WALCount), humanBytes(r.WALBytes)})
	}
	a.table([]string{"ID", "NAME", "STATUS", "END TIME", "TLI", "BEGIN LSN", "END LSN", "SIZE", "STORED", "WAL FILES", "WAL SIZE"}, table)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ShowBackupCmd shows everything known about one backup.
type ShowBackupCmd struct {
	Server string `arg:"" help:"Server name."`
	ID     string `arg:"" help:"Backup id, name, latest or oldest."`
}

// BackupDetail is show-backup --json: backup.info, the linked WAL and the storage keys.
type BackupDetail struct {
	catalog.Backup
	WALCount    int    `json:"wal_count"`
	WALBytes    int64  `json:"wal_bytes"`
	WALStored   int64  `json:"wal_stored_bytes"`
	Directory   string `json:"directory"`
	InfoKey     string `json:"info_key"`
	ManifestKey string `json:"manifest_key"`
	ContentsKey string `json:"contents_key"`
	DataPrefix  string `json:"data_prefix"`
	Objects     int    `json:"objects"`
}

// Run implements the command.
func (c *ShowBackupCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	ctx := context.Background()
	rows, bs, err := backupRows(ctx, idx, srv)
	if err != nil {
		return err
	}
	b, err := basebackup.Resolve(bs, c.ID)
	if err != nil {
		return fmt.Errorf("%s: %w", srv.Name, err)
	}
	// backup.info is the truth; the index record mirrors it.
	if info, err := basebackup.LoadInfo(ctx, store, srv.Name, b.ID); err == nil {
		b = info
	} else if !errors.Is(err, storage.ErrNotFound) {
		a.log.Warn("reading backup.info", "err", err)
	}
	d := BackupDetail{Backup: b, InfoKey: archive.BackupInfoKey(srv.Name, b.ID), ManifestKey: archive.BackupManifestKey(srv.Name, b.ID),
		ContentsKey: archive.BackupContentsKey(srv.Name, b.ID), DataPrefix: archive.BackupDataPrefix(srv.Name, b.ID)}
	if p, err := store.Path(strings.TrimSuffix(archive.BackupPrefix(srv.Name, b.ID), "/")); err == nil {
		d.Directory = p
	}
	for _, r := range rows {
		if r.ID == b.ID {
			d.WALCount, d.WALBytes, d.WALStored = r.WALCount, r.WALBytes, r.WALStored
		}
	}
	if keys, err := basebackup.Keys(ctx, store, srv.Name, b.ID); err == nil {
		d.Objects = len(keys)
	}
	if d.Tablespaces == nil {
		d.Tablespaces = []catalog.Tablespace{}
	}
	if a.g.JSON {
		return a.printJSON(d)
	}
	w := a.out
	fmt.Fprintf(w, "Backup %s of %s:\n", b.ID, srv.Name)
	line := func(k, v string) { fmt.Fprintf(w, "  %-20s %s\n", k+":", v) }
	if b.Name != "" {
		line("Name", b.Name)
	}
	line("Status", b.Status)
	if b.Error != "" {
		line("Error", b.Error)
	}
	line("Keep", fmt.Sprint(b.Keep))
	line("Label", b.Label)
	line("PostgreSQL version", fmt.Sprintf("%d.%d (%d)", b.PGVersion/10000, b.PGVersion%10000, b.PGVersion))
	line("System identifier", fmt.Sprint(b.SystemID))
	line("From standby", fmt.Sprint(b.FromStandby))
	line("Timeline", fmt.Sprint(b.Timeline))
	line("Begin time", b.BeginTime.Local().Format(time.RFC3339))
	if !b.EndTime.IsZero() {
		line("End time", fmt.Sprintf("%s (%s)", b.EndTime.Local().Format(time.RFC3339), b.EndTime.Sub(b.BeginTime).Round(time.Second)))
	}
	line("Begin LSN / WAL", fmt.Sprintf("%s / %s", b.BeginLSN, orDash(b.BeginWAL)))
	line("End LSN / WAL", fmt.Sprintf("%s / %s", b.EndLSN, orDash(b.EndWAL)))
	line("WAL segment size", humanBytes(int64(b.SegSize)))
	line("Size", fmt.Sprintf("%s in %d files", humanBytes(b.Size), b.Files))
	comp := b.Compression
	if b.CompressionLevel != 0 {
		comp += fmt.Sprintf(" level %d", b.CompressionLevel)
	}
	if b.StoredSize > 0 {
		comp += fmt.Sprintf(", ratio %.1fx", float64(b.Size)/float64(b.StoredSize))
	}
	line("Stored", fmt.Sprintf("%s (%s)", humanBytes(b.StoredSize), comp))
	line("Linked WAL", fmt.Sprintf("%d files, %s (%s stored)", d.WALCount, humanBytes(d.WALBytes), humanBytes(d.WALStored)))
	if len(b.Tablespaces) == 0 {
		line("Tablespaces", "none")
	}
	for _, t := range b.Tablespaces {
		line("Tablespace", fmt.Sprintf("%s (oid %d) at %s, %s", orDash(t.Name), t.OID, t.Location, humanBytes(t.Size)))
	}
	if d.Directory != "" {
		line("Directory", d.Directory)
	}
	line("backup.info", d.InfoKey)
	line("backup_manifest", d.ManifestKey)
	line("contents", d.ContentsKey)
	line("data", fmt.Sprintf("%s (%d objects in all)", d.DataPrefix, d.Objects))
	return nil
}

// DeleteCmd removes a backup.
type DeleteCmd struct {
	Server   string        `arg:"" help:"Server name."`
	ID       string        `arg:"" help:"Backup id, name, latest or oldest."`
	Force    bool          `help:"Delete even if fewer DONE backups than minimum_redundancy would remain (a backup pinned with keep is never deleted)."`
	LockWait time.Duration `name:"lock-wait" default:"10m" help:"How long to wait for a retention run or keep of the same server to finish (delete takes the retention lock)."`
}

// Run implements the command.
func (c *DeleteCmd) Run(a *App) error {
	ctx := context.Background()
	srv, b, err := a.resolveBackup(ctx, c.Server, c.ID)
	if err != nil {
		return err
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, c.LockWait)
	defer cancel()
	if _, err := retention.DeleteBackup(ctx, lctx, retention.DeleteOptions{Index: idx, Store: store, Server: srv.Name, ServerDir: srv.Dir(),
		ID: b.ID, MinimumRedundancy: srv.MinimumRedundancy, Force: c.Force}); err != nil {
		return err
	}
	if a.g.JSON {
		return a.printJSON(map[string]string{"server": srv.Name, "deleted": b.ID})
	}
	fmt.Fprintf(a.out, "%s: backup %s deleted\n", srv.Name, b.ID)
	return nil
}

// backupSummary is list-servers' backup figures: the number of DONE backups and the
// newest one (nil when there is none).
func backupSummary(a *App, server string) (count int, last *catalog.Backup, err error) {
	idx, err := a.Index()
	if err != nil {
		return 0, nil, err
	}
	bs, err := idx.ListBackups(context.Background(), server)
	if err != nil {
		return 0, nil, err
	}
	for i := range bs {
		if bs[i].Done() {
			count++
			if last == nil || bs[i].ID > last.ID {
				b := bs[i]
				last = &b
			}
		}
	}
	return count, last, nil
}
