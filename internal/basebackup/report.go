package basebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/textout"
)

// Row is one backup as list-backups and show-backup report it (list-backups --json).
type Row struct {
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
}

// ListRows lists a server's backups with their linked WAL, oldest first; a backup
// whose process is gone shows as FAILED (interrupted) at once. The backups are
// returned too.
func ListRows(ctx context.Context, idx index.Index, serverDir, server string) ([]Row, []record.Backup, error) {
	bs, err := ShowInterrupted(serverDir, func() ([]record.Backup, error) { return idx.ListBackups(ctx, server) })
	if err != nil {
		return nil, nil, err
	}
	wal, err := LinkedWAL(ctx, idx, server, bs)
	if err != nil {
		return nil, nil, err
	}
	rows := make([]Row, 0, len(bs))
	for _, b := range bs {
		rows = append(rows, rowOf(b, wal[b.ID]))
	}
	return rows, bs, nil
}

func rowOf(b record.Backup, w WALFigures) Row {
	r := Row{ID: b.ID, Name: b.Name, Status: b.Status, Error: b.Error, Keep: b.Keep, BeginTime: b.BeginTime,
		Timeline: b.Timeline, Size: b.Size, StoredSize: b.StoredSize, WALCount: w.Count, WALBytes: w.Bytes, WALStored: w.StoredBytes,
		FromStandby: b.FromStandby}
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
	return r
}

// WriteRows renders list-backups: a table, newest first (as Barman), or a line saying
// there is none.
func WriteRows(w io.Writer, server string, rows []Row) {
	if len(rows) == 0 {
		fmt.Fprintf(w, "%s: no backups\n", server)
		return
	}
	var table [][]string
	for i := len(rows) - 1; i >= 0; i-- {
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
		table = append(table, []string{r.ID, name, status, end, fmt.Sprint(r.Timeline), textout.OrDash(r.BeginLSN), textout.OrDash(r.EndLSN),
			textout.Bytes(r.Size), textout.Bytes(r.StoredSize), fmt.Sprint(r.WALCount), textout.Bytes(r.WALBytes)})
	}
	textout.Table(w, []string{"ID", "NAME", "STATUS", "END TIME", "TLI", "BEGIN LSN", "END LSN", "SIZE", "STORED", "WAL FILES", "WAL SIZE"}, table)
}

// Detail is show-backup --json: backup.info, the linked WAL and the storage keys.
type Detail struct {
	record.Backup
	WALCount    int    `json:"wal_count"`
	WALBytes    int64  `json:"wal_bytes"`
	WALStored   int64  `json:"wal_stored_bytes"`
	Directory   string `json:"directory"`
	InfoKey     string `json:"info_key"`
	ManifestKey string `json:"manifest_key"`
	ContentsKey string `json:"contents_key"`
	DataPrefix  string `json:"data_prefix"`
	Objects     int    `json:"objects"`
	server      string
}

// Describe is everything known about backup ref (id, name, latest, oldest) of server:
// its backup.info (the truth; the index record mirrors it, and stands in when the file
// cannot be read, with a warning), linked WAL, keys and directory.
func Describe(ctx context.Context, idx index.Index, store storage.Store, serverDir, server, ref string, log *slog.Logger) (Detail, error) {
	rows, bs, err := ListRows(ctx, idx, serverDir, server)
	if err != nil {
		return Detail{}, err
	}
	b, err := Resolve(bs, ref)
	if err != nil {
		return Detail{}, fmt.Errorf("%s: %w", server, err)
	}
	if info, err := LoadInfo(ctx, store, server, b.ID); err == nil {
		b = info
	} else if !errors.Is(err, storage.ErrNotFound) {
		log.Warn("reading backup.info", "err", err)
	}
	d := Detail{Backup: b, InfoKey: archive.BackupInfoKey(server, b.ID), ManifestKey: archive.BackupManifestKey(server, b.ID),
		ContentsKey: archive.BackupContentsKey(server, b.ID), DataPrefix: archive.BackupDataPrefix(server, b.ID), server: server}
	if l, ok := store.(interface{ Path(string) (string, error) }); ok {
		if p, err := l.Path(strings.TrimSuffix(archive.BackupPrefix(server, b.ID), "/")); err == nil {
			d.Directory = p
		}
	}
	for _, r := range rows {
		if r.ID == b.ID {
			d.WALCount, d.WALBytes, d.WALStored = r.WALCount, r.WALBytes, r.WALStored
		}
	}
	if keys, err := Keys(ctx, store, server, b.ID); err == nil {
		d.Objects = len(keys)
	}
	if d.Tablespaces == nil {
		d.Tablespaces = []record.Tablespace{}
	}
	return d, nil
}

// WriteText renders show-backup for a DBA.
func (d Detail) WriteText(w io.Writer) {
	b := d.Backup
	fmt.Fprintf(w, "Backup %s of %s:\n", b.ID, d.server)
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
	line("Begin LSN / WAL", fmt.Sprintf("%s / %s", b.BeginLSN, textout.OrDash(b.BeginWAL)))
	line("End LSN / WAL", fmt.Sprintf("%s / %s", b.EndLSN, textout.OrDash(b.EndWAL)))
	line("WAL segment size", textout.Bytes(int64(b.SegSize)))
	line("Size", fmt.Sprintf("%s in %d files", textout.Bytes(b.Size), b.Files))
	comp := b.Compression
	if b.CompressionLevel != 0 {
		comp += fmt.Sprintf(" level %d", b.CompressionLevel)
	}
	if b.StoredSize > 0 {
		comp += fmt.Sprintf(", ratio %.1fx", float64(b.Size)/float64(b.StoredSize))
	}
	line("Stored", fmt.Sprintf("%s (%s)", textout.Bytes(b.StoredSize), comp))
	line("Linked WAL", fmt.Sprintf("%d files, %s (%s stored)", d.WALCount, textout.Bytes(d.WALBytes), textout.Bytes(d.WALStored)))
	if len(b.Tablespaces) == 0 {
		line("Tablespaces", "none")
	}
	for _, t := range b.Tablespaces {
		line("Tablespace", fmt.Sprintf("%s (oid %d) at %s, %s", textout.OrDash(t.Name), t.OID, t.Location, textout.Bytes(t.Size)))
	}
	if d.Directory != "" {
		line("Directory", d.Directory)
	}
	line("backup.info", d.InfoKey)
	line("backup_manifest", d.ManifestKey)
	line("contents", d.ContentsKey)
	line("data", fmt.Sprintf("%s (%d objects in all)", d.DataPrefix, d.Objects))
}

// WriteDone is the line that reports a backup taken in took.
func WriteDone(w io.Writer, server string, b record.Backup, took time.Duration) {
	ratio := ""
	if b.StoredSize > 0 {
		ratio = fmt.Sprintf(", ratio %.1fx", float64(b.Size)/float64(b.StoredSize))
	}
	fmt.Fprintf(w, "%s: backup %s DONE in %s: %s in %d files, %s stored%s, WAL %s to %s\n",
		server, b.ID, took.Round(100*time.Millisecond), textout.Bytes(b.Size), b.Files, textout.Bytes(b.StoredSize), ratio, b.BeginWAL, b.EndWAL)
}

// Find is backup ref (id, name, latest, oldest) of server, an interrupted one shown as
// FAILED (see ShowInterrupted); errors name the server.
func Find(ctx context.Context, idx index.Index, serverDir, server, ref string) (record.Backup, error) {
	bs, err := ShowInterrupted(serverDir, func() ([]record.Backup, error) { return idx.ListBackups(ctx, server) })
	if err != nil {
		return record.Backup{}, err
	}
	b, err := Resolve(bs, ref)
	if err != nil {
		return record.Backup{}, fmt.Errorf("%s: %w", server, err)
	}
	return b, nil
}
