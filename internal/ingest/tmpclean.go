package ingest

import (
	"log/slog"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// StaleTempAge is how old a temporary file in incoming/ must be before the daemon
// removes it at start. archive-wal (or the receiver's hand-over) may be writing one at
// this very moment, and its mtime moves with every write; ten minutes of silence is
// far beyond any live copy of a segment, and even then a writer whose temp file was
// removed fails at its rename and reports it, so PostgreSQL archives the file again.
const StaleTempAge = 10 * time.Minute

// TempRemover is the part of a store that can clear interrupted writes.
type TempRemover interface {
	RemoveStaleTemps(prefix string, minAge time.Duration) ([]string, error)
}

// RemoveStaleTemps clears a server's temporary files left by killed writers: in
// incoming/, those older than StaleTempAge; in the archive (wals/), all of them, since
// only the daemon writes there and the caller holds the daemon's home lock, so no
// writer is alive. It logs what it removed and returns the count.
func RemoveStaleTemps(server, incomingDir string, store storage.Store, log *slog.Logger) int {
	n := 0
	removed, err := fsutil.RemoveStaleTemps(incomingDir, StaleTempAge)
	if err != nil {
		log.Warn("stale temporary files", "server", server, "err", err)
	}
	n += len(removed)
	if tr, ok := store.(TempRemover); ok {
		keys, err := tr.RemoveStaleTemps(archive.WALPrefix(server), 0)
		if err != nil {
			log.Warn("stale temporary files", "server", server, "err", err)
		}
		removed = append(removed, keys...)
		n += len(keys)
	}
	if n > 0 {
		log.Info("removed temporary files of interrupted writes", "server", server, "count", n, "files", removed)
	}
	return n
}
