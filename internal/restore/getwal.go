// Package restore brings archived data back: get-wal for restore_command (with a
// prefetch spool and the .partial fallback), the restore of base backups with their
// recovery configuration and point-in-time targets, remote restores over ssh, and the
// sandbox.
package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// ErrNotArchived means the requested WAL file is not in the archive; get-wal exits 1 on
// it, which PostgreSQL reads as "no such file" (end of recovery or a probe).
var ErrNotArchived = errors.New("not archived")

// ErrOnlyPartial and ErrPartialNotFinal mean the segment is not archived complete
// and only its .partial would do, which is not served to this standby (see
// partialRefused): one that archives what it restores (archive_mode = always), or one
// that follows the archive with no recovery target. Both are an ErrNotArchived.
var (
	ErrOnlyPartial     = fmt.Errorf("%w complete (only its .partial, which this standby would archive as the complete segment: archive_mode = always)", ErrNotArchived)
	ErrPartialNotFinal = fmt.Errorf("%w complete (only its .partial, not served to a standby without a recovery target: a replica promoted later may not have its tail)", ErrNotArchived)
)

// Where get-wal found a file.
const (
	FromSpool            = "spool"
	FromArchive          = "archive"
	FromArchivedPartial  = "archived-partial"
	FromStreamingPartial = "streaming-partial"
	// FromIncoming: made durable in incoming/ by archive-wal (or put-wal, the
	// receiver) and validated, not yet moved into the archive by the daemon.
	FromIncoming        = "incoming"
	FromIncomingPartial = "incoming-partial"
	// FromRemote: fetched from the backup host over ssh (get-wal --ssh).
	FromRemote = "remote"
	// FromPGWAL: the prefetcher already put the segment into pg_wal under its own name;
	// get-wal must exit 1 so that PostgreSQL reads it there (see placeInPGWAL).
	FromPGWAL = "pg_wal"
)

// GetOptions tunes get-wal.
type GetOptions struct {
	// Prefetch is how many following segments to decompress ahead into the spool
	// (0: none).
	Prefetch int
	// SpoolDir defaults to <dir of dest>/walkeeper_spool.
	SpoolDir string
	// StreamingDir is the streaming receiver's directory, whose live
	// "<segment>.partial" is served when the segment is not archived ("" = skip).
	StreamingDir string
	// IncomingDir is the server's incoming/ directory: a file made durable there is
	// archived for PostgreSQL already, and is served from there until the daemon has
	// moved it ("" = skip).
	IncomingDir string
	// StartPrefetcher launches the background prefetcher for spool (a detached
	// process: get-wal must return at once for replay to go on). Nil: no prefetch.
	StartPrefetcher func(spool string) error
	// NoPartial: the asking cluster must never get a .partial for a segment (get-wal
	// --standby: a standby on another host, whose data directory get-wal cannot look
	// at to decide; see partialRefused).
	NoPartial bool
	// Remote fetches a file from the backup host instead of store (get-wal --ssh): it
	// writes walName to dest, and returns an error wrapping ErrNotArchived when the
	// backup host does not have it.
	Remote func(ctx context.Context, walName, dest string) error
}

// StdoutDest is the destination that makes get-wal write the file to standard output
// (behind ssh: "ssh backup walkeeper get-wal pg1 %f - > %p"). The reader keeps the
// bytes only when get-wal exits 0, which it does once the whole file was written.
const StdoutDest = "-"

// stdout is where StdoutDest writes (a test replaces it).
var stdout io.Writer = os.Stdout

// writeDest writes r to dest through a temporary name and a rename (not fsynced: the
// copy can be fetched again), or to stdout for StdoutDest.
func writeDest(dest string, r io.Reader) error {
	if dest == StdoutDest {
		if _, err := io.Copy(stdout, r); err != nil {
			return fmt.Errorf("write to standard output: %w", err)
		}
		return nil
	}
	_, err := fsutil.WriteAtomicNoSync(dest, r, 0o600)
	return err
}

// GetWAL writes the archived file walName of server to dest, decompressed, through a
// temporary name and a rename so PostgreSQL never reads a partial file. It reads the
// archive through storage only: restore_command must not wait for the index. The copy
// is not fsynced: PostgreSQL fetches it again from the archive after a crash.
func GetWAL(ctx context.Context, store storage.Store, server, walName, dest string) error {
	_, err := Get(ctx, store, server, walName, dest, GetOptions{})
	return err
}

// Get is get-wal: from the spool when the prefetcher has the file ready, else from
// the archive; a segment that is not archived complete is served from its archived
// .partial or the streaming receiver's live .partial (PostgreSQL replays what it
// holds; the tail is zeros). It returns where the file came from.
func Get(ctx context.Context, store storage.Store, server, walName, dest string, o GetOptions) (string, error) {
	n, err := segments.Parse(walName)
	if err != nil {
		return "", usage("get-wal %s: %v", walName, err)
	}
	if dest == StdoutDest && o.Prefetch > 0 {
		return "", usage("get-wal %s: --prefetch needs a destination path (the spool lives beside it), not %q", walName, dest)
	}
	spool, pgwal := "", ""
	if o.Prefetch > 0 && n.Kind == segments.KindSegment {
		abs, err := filepath.Abs(dest)
		if err != nil {
			return "", err
		}
		pgwal = filepath.Dir(abs)
		spool = o.SpoolDir
		if spool == "" {
			spool = filepath.Join(pgwal, SpoolDirName)
		}
		if spoolValid(spool) {
			if placed(spool, pgwal, walName) {
				os.Remove(filepath.Join(spool, walName))
				kickPrefetch(spool, pgwal, walName, o)
				return FromPGWAL, nil
			}
			if os.Rename(filepath.Join(spool, walName), dest) == nil {
				kickPrefetch(spool, pgwal, walName, o)
				return FromSpool, nil
			}
		}
	}
	var from string
	if o.Remote != nil {
		if err = o.Remote(ctx, walName, dest); err != nil {
			return "", fmt.Errorf("get-wal %s: %w", walName, err)
		}
		from = FromRemote
	} else {
		// The prefetcher is started as soon as the segment is known to be archived,
		// before it is decompressed here: the next segments are then on their way while
		// this one is, instead of after it (replay waits for the first ones otherwise).
		found := func() {
			if spool != "" {
				kickPrefetch(spool, pgwal, walName, o)
			}
		}
		if from, err = fetch(ctx, store, server, n, dest, o, found); err != nil {
			return "", err
		}
	}
	if spool != "" && from == FromRemote {
		kickPrefetch(spool, pgwal, walName, o)
	}
	return from, nil
}

// fetch writes archived segment n to dest; found runs once the archive holds it.
func fetch(ctx context.Context, store storage.Store, server string, n segments.Name, dest string, o GetOptions, found func()) (string, error) {
	walName := n.Raw
	key, codec, err := archive.Find(ctx, store, server, walName)
	if errors.Is(err, storage.ErrNotFound) {
		return fetchUnarchived(ctx, store, server, n, dest, o)
	}
	if err != nil {
		return "", fmt.Errorf("get-wal %s: %w", walName, err)
	}
	found()
	if err := writeArchivedInto(ctx, store, key, codec, dest, segmentBuffer(ctx, store, server, n)); err != nil {
		return "", fmt.Errorf("get-wal %s: %w", walName, err)
	}
	return FromArchive, nil
}

// writeArchived decompresses an archived object to dest (atomically, not fsynced).
func writeArchived(ctx context.Context, store storage.Store, key, codec, dest string) error {
	return writeArchivedInto(ctx, store, key, codec, dest, nil)
}

// writeArchivedInto is writeArchived decompressing into buf (see readArchivedInto).
func writeArchivedInto(ctx context.Context, store storage.Store, key, codec, dest string, buf []byte) error {
	data, err := readArchivedInto(ctx, store, key, codec, buf)
	if err != nil {
		return err
	}
	return writeDest(dest, bytes.NewReader(data))
}

// kickPrefetch records what PostgreSQL asked for last and makes sure a prefetcher runs.
// Failures only cost speed, never correctness, so they are ignored.
func kickPrefetch(spool, pgwal, walName string, o GetOptions) {
	if o.StartPrefetcher == nil {
		return
	}
	if err := prepareSpool(spool); err != nil {
		return
	}
	_, _ = fsutil.WriteAtomicNoSync(filepath.Join(spool, wantedFile), strings.NewReader(fmt.Sprintf("%s %d %s\n", walName, o.Prefetch, pgwal)), 0o600)
	if prefetcherRunning(spool) {
		return
	}
	_ = o.StartPrefetcher(spool)
}
