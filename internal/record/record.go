// Package record defines the records walkeeper keeps about archived WAL files and base
// backups. They are plain data shared by the index, the writers and the console; the
// durable truth behind them is the archive itself and each backup's backup.info.
package record

import (
	"time"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// Sources of an archived WAL file.
const (
	SourceArchive = "archive" // archive_command through incoming/
	SourceStream  = "stream"  // the streaming receiver
	SourceRebuild = "rebuild" // found on disk by index rebuild
)

// WALFile is the index record of one archived file: a segment, a .history, a .backup
// label or a .partial.
type WALFile struct {
	Name        string       `json:"name"`
	Kind        string       `json:"kind"`
	Timeline    uint32       `json:"timeline"`
	SegNo       uint64       `json:"segno,omitempty"`
	StartLSN    segments.LSN `json:"start_lsn,omitempty"`
	RawSize     int64        `json:"raw_size"`
	StoredSize  int64        `json:"stored_size"`
	Compression string       `json:"compression"`
	SHA256      string       `json:"sha256"`
	ArrivedAt   time.Time    `json:"arrived_at"`
	Source      string       `json:"source"`
	Key         string       `json:"key"`
}

// Backup states. Only DONE backups count for restore and retention.
const (
	StatusStarted    = "STARTED"
	StatusWaitingWAL = "WAITING_WAL"
	StatusDone       = "DONE"
	StatusFailed     = "FAILED"
)

// Tablespace is one tablespace of a backup as it was on the server.
type Tablespace struct {
	OID      uint32 `json:"oid"`
	Name     string `json:"name"`
	Location string `json:"location"`
	Size     int64  `json:"size"`
}

// Backup is the content of a backup's backup.info and its index record.
type Backup struct {
	ID               string       `json:"id"`
	Server           string       `json:"server"`
	Name             string       `json:"name,omitempty"`
	Label            string       `json:"label"`
	Status           string       `json:"status"`
	Error            string       `json:"error,omitempty"`
	Keep             bool         `json:"keep"`
	Timeline         uint32       `json:"timeline"`
	BeginLSN         segments.LSN `json:"begin_lsn"`
	EndLSN           segments.LSN `json:"end_lsn"`
	BeginWAL         string       `json:"begin_wal"`
	EndWAL           string       `json:"end_wal"`
	BeginTime        time.Time    `json:"begin_time"`
	EndTime          time.Time    `json:"end_time,omitzero"`
	PGVersion        int          `json:"pg_version"`
	SystemID         uint64       `json:"system_id,string"`
	SegSize          uint64       `json:"wal_segment_size"`
	FromStandby      bool         `json:"from_standby"`
	Size             int64        `json:"size_bytes"`
	StoredSize       int64        `json:"stored_bytes"`
	Files            int          `json:"files"`
	Tablespaces      []Tablespace `json:"tablespaces"`
	Compression      string       `json:"compression"`
	CompressionLevel int          `json:"compression_level,omitempty"`
}

// Done reports whether the backup is complete and usable.
func (b Backup) Done() bool { return b.Status == StatusDone }

// Identity is what walkeeper learned about a server's WAL: it is enforced on every file
// that arrives (invariant 3) and kept durably beside the archive.
type Identity struct {
	SystemID  uint64    `json:"system_id,string"`
	SegSize   uint64    `json:"wal_segment_size"`
	Magic     uint16    `json:"wal_page_magic"`
	PGVersion int       `json:"pg_version,omitempty"`
	Source    string    `json:"source"`
	LearnedAt time.Time `json:"learned_at"`
}

// ReceiverState is what status and check show about a streaming receiver (ingest's
// Receiver keeps it and writes it to its state file). LSNs are strings in
// PostgreSQL's notation so a DBA can compare them with pg_stat_replication.
type ReceiverState struct {
	Server          string `json:"server"`
	PID             int    `json:"pid"`
	Running         bool   `json:"running"`
	Connected       bool   `json:"connected"`
	Slot            string `json:"slot"`
	ApplicationName string `json:"application_name"`
	Timeline        uint32 `json:"timeline,omitempty"`
	ReceivedLSN     string `json:"received_lsn,omitempty"`
	FlushedLSN      string `json:"flushed_lsn,omitempty"`
	ServerLSN       string `json:"server_lsn,omitempty"`
	// LagBytes is the server's WAL end (from its last message) minus FlushedLSN.
	LagBytes int64 `json:"lag_bytes"`
	// LagSeconds is how long FlushedLSN has been behind the server's WAL end as last
	// seen: 0 while caught up (a cut-off receiver shows Connected false instead).
	LagSeconds     float64   `json:"lag_seconds"`
	Segment        string    `json:"segment,omitempty"`
	StartedAt      time.Time `json:"started_at,omitzero"`
	ConnectedAt    time.Time `json:"connected_at,omitzero"`
	LastMessageAt  time.Time `json:"last_message_at,omitzero"`
	LastServerTime time.Time `json:"last_server_time,omitzero"`
	Reconnects     int       `json:"reconnects"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
	Gap            string    `json:"gap,omitempty"`
	UpdatedAt      time.Time `json:"updated_at"`
}
