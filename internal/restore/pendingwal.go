package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// fetchUnarchived serves a file that is not in wals/: the validated copy waiting in
// incoming/ (invariant 9: what archive-wal made durable is archived, daemon or not),
// else, for a segment, its .partial where PostgreSQL's recovery wants one.
func fetchUnarchived(ctx context.Context, store storage.Store, server string, n segments.Name, dest string, o GetOptions) (string, error) {
	walName := n.Raw
	if o.IncomingDir != "" {
		from, err := serveWaiting(ctx, store, server, o.IncomingDir, walName, dest)
		if err == nil {
			return from, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return "", fmt.Errorf("get-wal %s: %w", walName, err)
		}
	}
	if n.Kind != segments.KindSegment {
		return "", fmt.Errorf("get-wal %s: %w", walName, ErrNotArchived)
	}
	wanted, err := partialWanted(ctx, store, server, n, o.IncomingDir)
	if err != nil {
		return "", fmt.Errorf("get-wal %s: %w", walName, err)
	}
	if !wanted {
		return "", fmt.Errorf("get-wal %s: %w", walName, ErrNotArchived)
	}
	if err := partialRefusal(dest, o.NoPartial); err != nil {
		return "", fmt.Errorf("get-wal %s: %w", walName, err)
	}
	partial := walName + ".partial"
	key, codec, err := archive.Find(ctx, store, server, partial)
	if err == nil {
		if err := writeArchived(ctx, store, key, codec, dest); err != nil {
			return "", fmt.Errorf("get-wal %s: %w", walName, err)
		}
		return FromArchivedPartial, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("get-wal %s: %w", walName, err)
	}
	if o.IncomingDir != "" {
		from, err := serveWaiting(ctx, store, server, o.IncomingDir, partial, dest)
		if err == nil {
			if from == FromIncoming {
				from = FromIncomingPartial
			} else {
				from = FromArchivedPartial
			}
			return from, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return "", fmt.Errorf("get-wal %s: %w", walName, err)
		}
	}
	if o.StreamingDir != "" {
		live := filepath.Join(o.StreamingDir, partial)
		if f, oerr := os.Open(live); oerr == nil {
			defer f.Close()
			if werr := writeDest(dest, f); werr != nil {
				return "", fmt.Errorf("get-wal %s: %w", walName, werr)
			}
			return FromStreamingPartial, nil
		}
	}
	return "", fmt.Errorf("get-wal %s: %w", walName, ErrNotArchived)
}

// partialRefusal is partialRefused, or ErrPartialNotFinal when the asker said it must
// get no .partial (get-wal --standby).
func partialRefusal(dest string, noPartial bool) error {
	if err := partialRefused(dest); err != nil {
		return err
	}
	if noPartial {
		return ErrPartialNotFinal
	}
	return nil
}

// inStandbyMode reports whether the cluster asking for a file at dest (%p,
// pg_wal/RECOVERYXLOG in its data directory) runs as a standby (standby.signal). For
// StdoutDest there is no data directory here: the asker says (get-wal --standby).
func inStandbyMode(dest string) bool {
	if dest == StdoutDest {
		return false
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(filepath.Dir(filepath.Dir(abs)), "standby.signal"))
	return err == nil
}

// RefusesPartial reports whether the cluster restoring into dest (%p) must get no
// .partial: get-wal --ssh asks the backup host with --standby then.
func RefusesPartial(dest string) bool { return partialRefused(dest) != nil }

// partialRefused says why the cluster that asked for a file at dest (%p,
// pg_wal/RECOVERYXLOG in its data directory) must not get a .partial as its segment
// (nil: it may). Only a recovery that ends gets one: the end of a lost primary's WAL,
// whose last commits only the partial holds, or a recovery target inside it (the
// sandbox). A standby (standby.signal) that follows the archive with no target waits
// for complete segments, as with any archive that holds no partials:
//
//   - the partial is not final: a replica promoted after losing the primary may not
//     have its tail, and a standby that replayed past the new timeline's fork point
//     can never follow it ("new timeline forked off ... before current recovery
//     point");
//   - under archive_mode = always PostgreSQL marks every restored file .ready under
//     the name it asked for (KeepFileRestoredFromArchive): the partial would be
//     archived as the complete segment, into production's archive when the restored
//     cluster keeps its archive_command (restore --archive), where the real segment,
//     arriving later, is refused as a conflict; the standby, and every restore past it,
//     would stop where the partial ended. This holds with a target too.
func partialRefused(dest string) error {
	if !inStandbyMode(dest) {
		return nil
	}
	abs, _ := filepath.Abs(dest) // inStandbyMode made it absolute already
	dataDir := filepath.Dir(filepath.Dir(abs))
	// Read afresh, not through restoredStatus's cache: this get-wal serves one request.
	if strings.EqualFold(ArchiveMode(dataDir), "always") {
		return ErrOnlyPartial
	}
	for _, name := range []string{"recovery_target", "recovery_target_time", "recovery_target_xid", "recovery_target_name", "recovery_target_lsn"} {
		if ConfValue(dataDir, name) != "" {
			return nil
		}
	}
	return ErrPartialNotFinal
}

// serveWaiting writes the valid copy of name waiting in incoming/ to dest. The daemon
// may archive and remove it between the archive's look and this one: the archive is
// read again then, so a file is never missed in the hand-over.
func serveWaiting(ctx context.Context, store storage.Store, server, incomingDir, name, dest string) (string, error) {
	w, err := archive.FindPending(ctx, store, server, incomingDir, name)
	if err == nil {
		if err := writeDest(dest, bytes.NewReader(w.Data)); err != nil {
			return "", err
		}
		return FromIncoming, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	key, codec, err := archive.Find(ctx, store, server, name)
	if err != nil {
		return "", err
	}
	if err := writeArchived(ctx, store, key, codec, dest); err != nil {
		return "", err
	}
	return FromArchive, nil
}

// partialWanted decides whether recovery asking for segment n should get its .partial:
// only the newest partial of the newest timeline, as PostgreSQL's recovery would
// replay it (the last commits a streamed server made before it was lost). Once a later
// timeline's history says n's timeline was left within or before that segment (a
// promotion archives the old timeline's last segment as .partial), PostgreSQL reads
// the new timeline's segment instead and never the old partial; and a partial followed
// by a later complete segment of its timeline is not the newest.
func partialWanted(ctx context.Context, store storage.Store, server string, n segments.Name, incomingDir string) (bool, error) {
	tl, err := LoadTimelines(ctx, store, server, incomingDir)
	if err != nil {
		return false, err
	}
	id, err := archive.LoadIdentity(ctx, store, server)
	if err != nil || !segments.ValidSegSize(id.SegSize) || n.ValidFor(id.SegSize) != nil {
		// Without the segment size, any later timeline leaving n's counts.
		return tl.LeftBy(n.Timeline, ^segments.LSN(0)) == 0, nil
	}
	segNo := n.SegNo(id.SegSize)
	if tl.LeftBy(n.Timeline, segments.SegStart(segNo+1, id.SegSize)) != 0 {
		return false, nil
	}
	next := segments.SegmentFileName(n.Timeline, segNo+1, id.SegSize)
	if _, _, err := archive.Find(ctx, store, server, next); err == nil {
		return false, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	if incomingDir != "" && len(archive.Copies(incomingDir, next)) > 0 {
		return false, nil
	}
	return true, nil
}

// ArchiveLagWarning is the one line a restore that replays past the backup's end
// prints when the daemon is down or behind ("" when there is nothing to say): WAL
// waiting in incoming/ is served to recovery from there (invariant 9), but it is not in
// the archive proper until the daemon runs.
func ArchiveLagWarning(server, incomingDir string, daemonRunning func() bool, t Target) string {
	if t.Immediate {
		return "" // recovery stops at the backup's end: the backlog does not matter
	}
	n, size := archive.IncomingBacklog(incomingDir)
	running := daemonRunning()
	switch {
	case !running && n > 0:
		return fmt.Sprintf("warning: %s: the walkeeper daemon is not running and %d WAL files (%s) wait in %s: recovery reads them from there; start `walkeeper watch` to archive them",
			server, n, humanize.IBytes(uint64(size)), incomingDir)
	case !running:
		return fmt.Sprintf("warning: %s: the walkeeper daemon is not running: WAL archived from now on waits in %s (recovery still reads it there); start `walkeeper watch`",
			server, incomingDir)
	case n > 0:
		return fmt.Sprintf("warning: %s: %d WAL files (%s) wait in %s, not yet archived by the daemon: recovery reads them from there",
			server, n, humanize.IBytes(uint64(size)), incomingDir)
	}
	return ""
}
