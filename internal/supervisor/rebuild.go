package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/rebuild"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// RebuildServer rebuilds one server's index records from its archive, with the segment
// size from the server's identity (or its first archived segment).
func RebuildServer(ctx context.Context, idx index.Index, store storage.Store, server string) (rebuild.Result, error) {
	segSize, err := archive.SegSize(ctx, store, server)
	if err != nil {
		return rebuild.Result{}, err
	}
	return rebuild.Server(ctx, idx, store, server, segSize, nil)
}

// RebuildLost rebuilds the index of every server whose records are missing while its
// archive is not empty, and reconciles every other server's records with its archive
// (rebuild.Reconcile): a damage badger does not report, such as a truncated memtable
// log after a crash, silently drops the newest records, which would otherwise stay
// missing from status, list-backups and retention until a rebuild by hand.
func RebuildLost(ctx context.Context, servers []*config.Server, idx index.Index, store storage.Store, log *slog.Logger) error {
	for _, s := range servers {
		lost, err := indexLost(ctx, idx, store, s.Name)
		if err != nil {
			return err
		}
		if !lost {
			segSize, err := archive.SegSize(ctx, store, s.Name)
			if err != nil {
				return err
			}
			d, err := rebuild.Reconcile(ctx, idx, store, s.Name, segSize)
			if err != nil {
				return err
			}
			if !d.Empty() {
				log.Warn("the index did not match the archive: repaired it from the archive", "server", s.Name,
					"wal_added", d.WALAdded, "backups_added", d.BackupsAdded, "skipped", len(d.Skipped))
			}
			continue
		}
		log.Warn("the index holds nothing for a server whose archive is not empty: rebuilding it", "server", s.Name)
		res, err := RebuildServer(ctx, idx, store, s.Name)
		if err != nil {
			return err
		}
		if res.WALFiles > 0 || res.Backups > 0 {
			log.Info("index rebuilt", "server", s.Name, "wal_files", res.WALFiles, "backups", res.Backups, "skipped", len(res.Skipped))
		}
	}
	return nil
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// indexLost reports whether the index has no WAL record of a server whose archive holds
// files: the index was deleted, or recreated empty by a command run without the daemon.
func indexLost(ctx context.Context, idx index.Index, store storage.Store, server string) (bool, error) {
	err := idx.ScanWAL(ctx, server, index.WALRange{}, func(record.WALFile) error { return errStop })
	if errors.Is(err, errStop) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return archive.HasWAL(ctx, store, server)
}

// RepairIndex replaces a damaged index: it moves it aside to index.broken-<timestamp>
// and rebuilds every server into a fresh one, since the index is shared by all of them
// (invariant 4: a rebuild always works from the archive, never from the index it
// replaces). notice is told where the damaged one went before the rebuild starts, and
// each is told every server's result. The caller closes the returned index.
func RepairIndex(ctx context.Context, home string, servers []*config.Server, store storage.Store, log *slog.Logger,
	notice func(movedTo string), each func(server string, res rebuild.Result)) (*index.Badger, error) {
	moved, err := index.MoveAside(daemon.IndexDir(home))
	if err != nil {
		return nil, err
	}
	notice(moved)
	idx, err := daemon.OpenLocalIndex(home, log, 10*time.Second)
	if err != nil {
		return nil, err
	}
	for _, s := range servers {
		res, err := RebuildServer(ctx, idx, store, s.Name)
		if err != nil {
			return idx, err
		}
		each(s.Name, res)
	}
	return idx, nil
}

// OpenIndex is daemon.OpenIndex for a command: the daemon's index when it runs, else
// the local database, which the command then writes as the daemon would. With
// reconcile, a local index is first repaired as the daemon's start repairs it
// (RebuildLost): records a crash dropped without an error must not show as an archive
// that lost files in a command run while the daemon is down.
func OpenIndex(ctx context.Context, cfg *config.Config, store storage.Store, log *slog.Logger, reconcile bool) (index.Index, *daemon.Client, error) {
	idx, client, err := daemon.OpenIndex(cfg.Home, log)
	if err != nil || client != nil || !reconcile {
		return idx, client, err
	}
	if err := RebuildLost(ctx, cfg.Servers, idx, store, log); err != nil {
		_ = idx.Close()
		return nil, nil, err
	}
	return idx, nil, nil
}
