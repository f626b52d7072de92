// Package index is walkeeper's badger index of archived WAL files and base backups:
// keys, records, range queries and the linkage of WAL to timelines and backups. It is
// derived data: Rebuild recreates it from the archive and each backup's backup.info.
package index

import (
	"context"
	"errors"
	"time"

	"github.com/walkeeper/walkeeper/internal/record"
)

// ErrNotFound is returned for a WAL file or backup the index does not hold.
var ErrNotFound = errors.New("not in the index")

// WALRange selects archived files by name, which orders them by (timeline, segment):
// From is inclusive, To exclusive; empty means unbounded.
type WALRange struct {
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Stats summarises a server's archive.
type Stats struct {
	Files        int64     `json:"files"`
	Segments     int64     `json:"segments"`
	RawBytes     int64     `json:"raw_bytes"`
	StoredBytes  int64     `json:"stored_bytes"`
	FirstSegment string    `json:"first_segment,omitempty"`
	LastSegment  string    `json:"last_segment,omitempty"`
	LastArrived  string    `json:"last_arrived,omitempty"`
	LastArrival  time.Time `json:"last_arrival,omitzero"`
	Timelines    []uint32  `json:"timelines,omitempty"`
}

// TimelineSpan is what the index holds for one timeline: the lowest and highest names of
// its segments, .partial and .backup files (both "" when it has only a history file), and
// whether its .history file is archived.
type TimelineSpan struct {
	Timeline uint32 `json:"timeline"`
	MinName  string `json:"min_name,omitempty"`
	MaxName  string `json:"max_name,omitempty"`
	History  bool   `json:"history,omitempty"`
}

// Index is the index's interface. The daemon holds the badger database; other processes
// reach the same methods over its unix socket (see Open).
type Index interface {
	// PutWAL records an archived file (insert or replace by name).
	PutWAL(ctx context.Context, server string, f record.WALFile) error
	// GetWAL returns the record of one archived file.
	GetWAL(ctx context.Context, server, name string) (record.WALFile, error)
	// ScanWAL calls fn for every file in r, in name order.
	ScanWAL(ctx context.Context, server string, r WALRange, fn func(record.WALFile) error) error
	// DeleteWAL removes the records of the named files.
	DeleteWAL(ctx context.Context, server string, names []string) error
	// WALStats summarises the server's archive.
	WALStats(ctx context.Context, server string) (Stats, error)
	// WALTimelines returns, per timeline, the first and last segment-like names (a few
	// key seeks per timeline, no values read), so retention plans over millions of
	// segments without loading them.
	WALTimelines(ctx context.Context, server string) ([]TimelineSpan, error)
	// PutBackup records a backup (insert or replace by id).
	PutBackup(ctx context.Context, server string, b record.Backup) error
	// GetBackup returns one backup.
	GetBackup(ctx context.Context, server, id string) (record.Backup, error)
	// ListBackups returns the server's backups, oldest first.
	ListBackups(ctx context.Context, server string) ([]record.Backup, error)
	// DeleteBackup removes a backup's record.
	DeleteBackup(ctx context.Context, server, id string) error
	// DropServer removes every record of a server (the first step of a rebuild).
	DropServer(ctx context.Context, server string) error
	// Close releases the index.
	Close() error
}
