// Package status gathers what `walkeeper status` and `list-servers` report about a
// server (the daemon, the archive's figures from the index, incoming/ and errors/, the
// backups, the streaming receiver) and renders it as text; the types are the --json
// forms.
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/textout"
	"github.com/walkeeper/walkeeper/internal/upload"
)

// Report is one server's status (`status --json`).
type Report struct {
	Server          string                    `json:"server"`
	Description     string                    `json:"description,omitempty"`
	Active          bool                      `json:"active"`
	DaemonRunning   bool                      `json:"daemon_running"`
	DaemonPID       int                       `json:"daemon_pid,omitempty"`
	Identity        *record.Identity          `json:"identity,omitempty"`
	Archive         index.Stats               `json:"archive"`
	IncomingBacklog int                       `json:"incoming_backlog"`
	IncomingBytes   int64                     `json:"incoming_bytes"`
	ErrorFiles      int                       `json:"error_files"`
	Errors          []archive.QuarantinedFile `json:"errors,omitempty"`
	Compression     string                    `json:"compression"`
	Backups         int                       `json:"backups"`
	LastBackup      *record.Backup            `json:"last_backup,omitempty"`
	Receiver        any                       `json:"receiver,omitempty"` // a record.ReceiverState
	Repository      *Repository               `json:"repository,omitempty"`
}

// Repository is the state of a server's repository: where it is and, from the
// daemon, what is still to upload.
type Repository struct {
	URL        string        `json:"url"`
	Encryption string        `json:"encryption"`
	Upload     *upload.Stats `json:"upload,omitempty"` // nil when no daemon runs
}

// Sources are where Gather looks, in this order.
type Sources struct {
	// Daemon is the running daemon's info; false when none answers.
	Daemon   func(ctx context.Context) (daemon.Info, bool)
	Store    storage.Store
	Index    func() (index.Index, error)
	Receiver func(server string) (record.ReceiverState, bool)
}

// Gather is one server's status.
func Gather(ctx context.Context, srv *config.Server, src Sources) (Report, error) {
	st := Report{Server: srv.Name, Description: srv.Description, Active: srv.Active, Compression: srv.Compression}
	if srv.Repository.Kind != "" {
		st.Repository = &Repository{URL: srv.Repository.URL, Encryption: srv.Repository.Encryption}
	}
	if info, ok := src.Daemon(ctx); ok {
		st.DaemonRunning, st.DaemonPID = true, info.PID
		if st.Repository != nil {
			st.Repository.Upload = upload.FromInfo(info.Servers[srv.Name].Upload)
		}
	}
	if id, err := archive.LoadIdentity(ctx, src.Store, srv.Name); err == nil {
		st.Identity = &id
	} else if !errors.Is(err, storage.ErrNotFound) {
		return st, err
	}
	idx, err := src.Index()
	if err != nil {
		return st, err
	}
	if st.Archive, err = idx.WALStats(ctx, srv.Name); err != nil {
		return st, err
	}
	st.IncomingBacklog, st.IncomingBytes = archive.IncomingBacklog(srv.IncomingDir())
	st.Errors, _ = archive.Quarantined(srv.ErrorsDir())
	st.ErrorFiles = len(st.Errors)
	if st.Backups, st.LastBackup, err = Backups(ctx, idx, srv.Name); err != nil {
		return st, err
	}
	if r, ok := src.Receiver(srv.Name); ok {
		st.Receiver = r
	}
	return st, nil
}

// Backups is the number of DONE backups of server and the newest one (nil when there
// is none).
func Backups(ctx context.Context, idx index.Index, server string) (count int, last *record.Backup, err error) {
	bs, err := idx.ListBackups(ctx, server)
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

// WriteText renders the status for a DBA; ages are counted to now.
func (st Report) WriteText(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "Server %s:\n", st.Server)
	if st.Description != "" {
		fmt.Fprintf(w, "  Description:        %s\n", st.Description)
	}
	fmt.Fprintf(w, "  Active:             %v\n", st.Active)
	if st.DaemonRunning {
		fmt.Fprintf(w, "  Daemon:             running (pid %d)\n", st.DaemonPID)
	} else {
		fmt.Fprintf(w, "  Daemon:             NOT running (start `walkeeper watch`)\n")
	}
	if st.Identity != nil {
		fmt.Fprintf(w, "  System identifier:  %d\n", st.Identity.SystemID)
		fmt.Fprintf(w, "  WAL segment size:   %s\n", textout.Bytes(int64(st.Identity.SegSize)))
	} else {
		fmt.Fprintf(w, "  System identifier:  unknown (no WAL archived yet)\n")
	}
	fmt.Fprintf(w, "  Compression:        %s\n", st.Compression)
	fmt.Fprintf(w, "  Archived files:     %d (%d segments)\n", st.Archive.Files, st.Archive.Segments)
	ratio := ""
	if st.Archive.StoredBytes > 0 {
		ratio = fmt.Sprintf(", ratio %.1fx", float64(st.Archive.RawBytes)/float64(st.Archive.StoredBytes))
	}
	fmt.Fprintf(w, "  Archive size:       %s raw, %s stored%s\n", textout.Bytes(st.Archive.RawBytes), textout.Bytes(st.Archive.StoredBytes), ratio)
	if st.Archive.LastArrived != "" {
		fmt.Fprintf(w, "  Last archived:      %s at %s (%s ago)\n", st.Archive.LastArrived, st.Archive.LastArrival.Local().Format(time.RFC3339),
			now.Sub(st.Archive.LastArrival).Round(time.Second))
	}
	if st.Archive.FirstSegment != "" {
		fmt.Fprintf(w, "  Segments:           %s .. %s\n", st.Archive.FirstSegment, st.Archive.LastSegment)
	}
	if st.LastBackup != nil {
		fmt.Fprintf(w, "  Backups:            %d, last %s ended %s (%s ago)\n", st.Backups, st.LastBackup.ID,
			st.LastBackup.EndTime.Local().Format(time.RFC3339), now.Sub(st.LastBackup.EndTime).Round(time.Second))
	} else {
		fmt.Fprintf(w, "  Backups:            none\n")
	}
	if r, ok := st.Receiver.(record.ReceiverState); ok {
		state := "NOT connected"
		if r.Connected {
			state = "connected"
		}
		fmt.Fprintf(w, "  Streaming receiver: %s, slot %s, timeline %d\n", state, r.Slot, r.Timeline)
		fmt.Fprintf(w, "    received %s, flushed %s, lag %s (%.1fs)\n", textout.OrDash(r.ReceivedLSN), textout.OrDash(r.FlushedLSN), textout.Bytes(r.LagBytes), r.LagSeconds)
		if r.LastError != "" {
			fmt.Fprintf(w, "    last error: %s (%s)\n", r.LastError, r.LastErrorAt.Local().Format(time.RFC3339))
		}
	}
	if r := st.Repository; r != nil {
		fmt.Fprintf(w, "  Repository:         %s (encryption %s)\n", r.URL, r.Encryption)
		switch u := r.Upload; {
		case u == nil:
			fmt.Fprintf(w, "    upload:           unknown (the daemon uploads; it is not running)\n")
		case !u.Scanned:
			fmt.Fprintf(w, "    upload:           waiting for the repository (%d files, %s to upload)\n", u.Pending, textout.Bytes(u.PendingBytes))
		case u.Pending == 0:
			fmt.Fprintf(w, "    upload:           up to date (%d files, %s uploaded since the daemon started)\n", u.Uploaded, textout.Bytes(u.UploadedBytes))
		default:
			fmt.Fprintf(w, "    upload:           %d files (%s) to upload, the oldest written %s ago\n", u.Pending, textout.Bytes(u.PendingBytes),
				now.Sub(u.OldestPending).Round(time.Second))
		}
		if r.Upload != nil && r.Upload.LastError != "" {
			fmt.Fprintf(w, "    last error:       %s (%s)\n", r.Upload.LastError, r.Upload.LastErrorAt.Local().Format(time.RFC3339))
		}
	}
	waits := ""
	if st.IncomingBacklog > 0 && !st.DaemonRunning {
		// Archived for recovery all the same (invariant 9), but nobody moves them.
		waits = "; restore reads them there, the daemon archives them once started"
	}
	fmt.Fprintf(w, "  Incoming backlog:   %d files (%s%s)\n", st.IncomingBacklog, textout.Bytes(st.IncomingBytes), waits)
	fmt.Fprintf(w, "  Files in errors/:   %d\n", st.ErrorFiles)
	for _, e := range st.Errors {
		fmt.Fprintf(w, "    %s\n", e.Reason)
	}
}

// Summary is one row of list-servers.
type Summary struct {
	Server          string    `json:"server"`
	Description     string    `json:"description,omitempty"`
	Active          bool      `json:"active"`
	Segments        int64     `json:"segments"`
	StoredBytes     int64     `json:"stored_bytes"`
	LastArchived    string    `json:"last_archived,omitempty"`
	LastArchival    time.Time `json:"last_archival,omitzero"`
	IncomingBacklog int       `json:"incoming_backlog"`
	ErrorFiles      int       `json:"error_files"`
	Backups         int       `json:"backups"`
	LastBackup      string    `json:"last_backup,omitempty"`
	LastBackupEnd   time.Time `json:"last_backup_end,omitzero"`
	LastBackupAge   string    `json:"last_backup_age,omitempty"`
}

// Summaries is list-servers: one row per server (an empty list, not nil, for none).
func Summaries(ctx context.Context, servers []*config.Server, idx index.Index, now time.Time) ([]Summary, error) {
	rows := []Summary{}
	for _, s := range servers {
		stats, err := idx.WALStats(ctx, s.Name)
		if err != nil {
			return nil, err
		}
		backlog, _ := archive.IncomingBacklog(s.IncomingDir())
		errs, _ := archive.Quarantined(s.ErrorsDir())
		row := Summary{Server: s.Name, Description: s.Description, Active: s.Active,
			Segments: stats.Segments, StoredBytes: stats.StoredBytes, LastArchived: stats.LastArrived, LastArchival: stats.LastArrival,
			IncomingBacklog: backlog, ErrorFiles: len(errs)}
		n, last, err := Backups(ctx, idx, s.Name)
		if err != nil {
			return nil, err
		}
		row.Backups = n
		if last != nil {
			row.LastBackup, row.LastBackupEnd = last.ID, last.EndTime
			row.LastBackupAge = now.Sub(last.EndTime).Round(time.Second).String()
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// WriteSummaries renders list-servers as a table; ages are counted to now.
func WriteSummaries(w io.Writer, rows []Summary, now time.Time) {
	var table [][]string
	for _, r := range rows {
		last := "-"
		if r.LastArchived != "" {
			last = fmt.Sprintf("%s (%s ago)", r.LastArchived, now.Sub(r.LastArchival).Round(time.Second))
		}
		lastBackup := "-"
		if r.LastBackup != "" {
			lastBackup = fmt.Sprintf("%s (%s ago)", r.LastBackup, r.LastBackupAge)
		}
		table = append(table, []string{r.Server, fmt.Sprint(r.Active), fmt.Sprint(r.Segments), textout.Bytes(r.StoredBytes), last,
			fmt.Sprint(r.Backups), lastBackup, fmt.Sprint(r.IncomingBacklog), fmt.Sprint(r.ErrorFiles), r.Description})
	}
	textout.Table(w, []string{"SERVER", "ACTIVE", "SEGMENTS", "STORED", "LAST ARCHIVED", "BACKUPS", "LAST BACKUP", "BACKLOG", "ERRORS", "DESCRIPTION"}, table)
}
