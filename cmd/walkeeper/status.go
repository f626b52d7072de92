package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// StatusCmd shows one server's state.
type StatusCmd struct {
	Server string `arg:"" help:"Server name."`
}

// ServerStatus is `status --json`.
type ServerStatus struct {
	Server          string            `json:"server"`
	Description     string            `json:"description,omitempty"`
	Active          bool              `json:"active"`
	DaemonRunning   bool              `json:"daemon_running"`
	DaemonPID       int               `json:"daemon_pid,omitempty"`
	Identity        *catalog.Identity `json:"identity,omitempty"`
	Archive         index.Stats       `json:"archive"`
	IncomingBacklog int               `json:"incoming_backlog"`
	IncomingBytes   int64             `json:"incoming_bytes"`
	ErrorFiles      int               `json:"error_files"`
	Errors          []QuarantinedFile `json:"errors,omitempty"`
	Compression     string            `json:"compression"`
	Backups         int               `json:"backups"`
	LastBackup      *catalog.Backup   `json:"last_backup,omitempty"`
	Receiver        any               `json:"receiver,omitempty"`
}

// QuarantinedFile is a file in errors/ with its reason.
type QuarantinedFile = archive.QuarantinedFile

// Run implements the command.
func (c *StatusCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	st, err := serverStatus(a, srv)
	if err != nil {
		return err
	}
	if a.g.JSON {
		return a.printJSON(st)
	}
	w := a.out
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
		fmt.Fprintf(w, "  WAL segment size:   %s\n", humanBytes(int64(st.Identity.SegSize)))
	} else {
		fmt.Fprintf(w, "  System identifier:  unknown (no WAL archived yet)\n")
	}
	fmt.Fprintf(w, "  Compression:        %s\n", st.Compression)
	fmt.Fprintf(w, "  Archived files:     %d (%d segments)\n", st.Archive.Files, st.Archive.Segments)
	ratio := ""
	if st.Archive.StoredBytes > 0 {
		ratio = fmt.Sprintf(", ratio %.1fx", float64(st.Archive.RawBytes)/float64(st.Archive.StoredBytes))
	}
	fmt.Fprintf(w, "  Archive size:       %s raw, %s stored%s\n", humanBytes(st.Archive.RawBytes), humanBytes(st.Archive.StoredBytes), ratio)
	if st.Archive.LastArrived != "" {
		fmt.Fprintf(w, "  Last archived:      %s at %s (%s ago)\n", st.Archive.LastArrived, st.Archive.LastArrival.Local().Format(time.RFC3339),
			time.Since(st.Archive.LastArrival).Round(time.Second))
	}
	if st.Archive.FirstSegment != "" {
		fmt.Fprintf(w, "  Segments:           %s .. %s\n", st.Archive.FirstSegment, st.Archive.LastSegment)
	}
	if st.LastBackup != nil {
		fmt.Fprintf(w, "  Backups:            %d, last %s ended %s (%s ago)\n", st.Backups, st.LastBackup.ID,
			st.LastBackup.EndTime.Local().Format(time.RFC3339), time.Since(st.LastBackup.EndTime).Round(time.Second))
	} else {
		fmt.Fprintf(w, "  Backups:            none\n")
	}
	if r, ok := st.Receiver.(ingest.ReceiverState); ok {
		state := "NOT connected"
		if r.Connected {
			state = "connected"
		}
		fmt.Fprintf(w, "  Streaming receiver: %s, slot %s, timeline %d\n", state, r.Slot, r.Timeline)
		fmt.Fprintf(w, "    received %s, flushed %s, lag %s (%.1fs)\n", orDash(r.ReceivedLSN), orDash(r.FlushedLSN), humanBytes(r.LagBytes), r.LagSeconds)
		if r.LastError != "" {
			fmt.Fprintf(w, "    last error: %s (%s)\n", r.LastError, r.LastErrorAt.Local().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(w, "  Incoming backlog:   %d files (%s)\n", st.IncomingBacklog, humanBytes(st.IncomingBytes))
	fmt.Fprintf(w, "  Files in errors/:   %d\n", st.ErrorFiles)
	for _, e := range st.Errors {
		fmt.Fprintf(w, "    %s\n", e.Reason)
	}
	return nil
}

func serverStatus(a *App, srv *config.Server) (ServerStatus, error) {
	ctx := context.Background()
	st := ServerStatus{Server: srv.Name, Description: srv.Description, Active: srv.Active, Compression: srv.Compression}
	if c := a.Daemon(); c != nil {
		if info, err := c.Info(ctx); err == nil {
			st.DaemonRunning, st.DaemonPID = true, info.PID
		}
	}
	store, err := a.Store()
	if err != nil {
		return st, err
	}
	if id, err := archive.LoadIdentity(ctx, store, srv.Name); err == nil {
		st.Identity = &id
	} else if !errors.Is(err, storage.ErrNotFound) {
		return st, err
	}
	idx, err := a.Index()
	if err != nil {
		return st, err
	}
	if st.Archive, err = idx.WALStats(ctx, srv.Name); err != nil {
		return st, err
	}
	st.IncomingBacklog, st.IncomingBytes = dirFiles(srv.IncomingDir(), nil)
	st.Errors = quarantined(srv.ErrorsDir())
	st.ErrorFiles = len(st.Errors)
	if st.Backups, st.LastBackup, err = backupSummary(a, srv.Name); err != nil {
		return st, err
	}
	if r, ok := receiverStatus(a, srv.Name); ok {
		st.Receiver = r
	}
	return st, nil
}

// dirFiles counts the finished files of a directory (not walkeeper's temp files).
func dirFiles(dir string, keep func(string) bool) (int, int64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	n, size := 0, int64(0)
	for _, e := range entries {
		if e.IsDir() || fsutil.IsTemp(e.Name()) || (keep != nil && !keep(e.Name())) {
			continue
		}
		n++
		if fi, err := e.Info(); err == nil {
			size += fi.Size()
		}
	}
	return n, size
}

// quarantined lists errors/ with the reason written beside each file.
func quarantined(dir string) []QuarantinedFile {
	q, _ := archive.Quarantined(dir)
	return q
}

// ListServersCmd lists the configured servers.
type ListServersCmd struct{}

// ServerSummary is one row of list-servers.
type ServerSummary struct {
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

// Run implements the command.
func (c *ListServersCmd) Run(a *App) error {
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	ctx := context.Background()
	var rows []ServerSummary
	for _, s := range cfg.Servers {
		stats, err := idx.WALStats(ctx, s.Name)
		if err != nil {
			return err
		}
		backlog, _ := dirFiles(s.IncomingDir(), nil)
		row := ServerSummary{Server: s.Name, Description: s.Description, Active: s.Active,
			Segments: stats.Segments, StoredBytes: stats.StoredBytes, LastArchived: stats.LastArrived, LastArchival: stats.LastArrival,
			IncomingBacklog: backlog, ErrorFiles: len(quarantined(s.ErrorsDir()))}
		n, last, err := backupSummary(a, s.Name)
		if err != nil {
			return err
		}
		row.Backups = n
		if last != nil {
			row.LastBackup, row.LastBackupEnd = last.ID, last.EndTime
			row.LastBackupAge = time.Since(last.EndTime).Round(time.Second).String()
		}
		rows = append(rows, row)
	}
	if a.g.JSON {
		if rows == nil {
			rows = []ServerSummary{}
		}
		return a.printJSON(rows)
	}
	var table [][]string
	for _, r := range rows {
		last := "-"
		if r.LastArchived != "" {
			last = fmt.Sprintf("%s (%s ago)", r.LastArchived, time.Since(r.LastArchival).Round(time.Second))
		}
		lastBackup := "-"
		if r.LastBackup != "" {
			lastBackup = fmt.Sprintf("%s (%s ago)", r.LastBackup, r.LastBackupAge)
		}
		table = append(table, []string{r.Server, fmt.Sprint(r.Active), fmt.Sprint(r.Segments), humanBytes(r.StoredBytes), last,
			fmt.Sprint(r.Backups), lastBackup, fmt.Sprint(r.IncomingBacklog), fmt.Sprint(r.ErrorFiles), r.Description})
	}
	a.table([]string{"SERVER", "ACTIVE", "SEGMENTS", "STORED", "LAST ARCHIVED", "BACKUPS", "LAST BACKUP", "BACKLOG", "ERRORS", "DESCRIPTION"}, table)
	return nil
}
