package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// walFile is one WAL file --copy-wal ships, under the name PostgreSQL will ask for.
type walFile struct {
	name  string
	key   string // archived object ("" for a live streaming file)
	codec string
	live  string // the receiver's .partial on disk
	data  []byte // history files, read while planning
	size  int64
	// pending is a validated copy waiting in incoming/ (invariant 9); once the daemon
	// has moved it, it is read from the archive (server) instead.
	pending, server string
}

func (w walFile) open(ctx context.Context, store storage.Store) (io.ReadCloser, error) {
	switch {
	case w.data != nil:
		return io.NopCloser(bytes.NewReader(w.data)), nil
	case w.live != "":
		return os.Open(w.live)
	case w.pending != "":
		f, err := os.Open(w.pending)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if w.key, w.codec, err = archive.Find(ctx, store, w.server, w.name); err != nil {
			return nil, fmt.Errorf("%s: left incoming/ but is not in the archive: %w", w.name, err)
		}
	}
	data, err := archive.Read(ctx, store, w.key, w.codec)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != w.size {
		return nil, fmt.Errorf("%s: %d bytes decompressed, want %d", w.name, len(data), w.size)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// planWAL lists exactly the WAL a --copy-wal restore needs: every archived history
// file (PostgreSQL reads the target timeline's and probes for newer ones when it picks
// a new timeline at promotion, so it must see all of them to avoid reusing one), and
// the segments from the backup's begin along the path to timeline tli, up to the
// target LSN (plus one segment, for a record crossing into it), to the backup's end
// for --target-immediate, or else to the end of the archive (a time, xid or name
// target is found only by replaying). A segment that is not archived complete ends
// the list with its archived or live .partial, served under the segment name. A
// missing segment before the backup's end is an error: the restore could not become
// consistent.
func planWAL(ctx context.Context, store storage.Store, server string, b record.Backup, tli uint32, tl *Timelines, t Target, streamingDir, incomingDir string) ([]walFile, error) {
	segSize := b.SegSize
	if !segments.ValidSegSize(segSize) {
		return nil, fmt.Errorf("backup %s: invalid wal_segment_size %d", b.ID, segSize)
	}
	var out []walFile
	for _, h := range tl.Sorted() {
		data := tl.Raw[h]
		out = append(out, walFile{name: segments.HistoryFileName(h), data: data, size: int64(len(data))})
	}
	first := segments.SegNoOf(b.BeginLSN, segSize)
	consistent := segments.SegNoOf(b.EndLSN-1, segSize)
	limit := ^uint64(0)
	switch {
	case t.HasLSN:
		limit = segments.SegNoOf(t.LSN, segSize) + 1
	case t.Immediate:
		limit = consistent
	}
	for seg := first; seg <= limit; seg++ {
		cands := tl.SegmentCandidates(tli, seg, segSize)
		newest := cands[0]
		found := false
		for _, c := range cands {
			name := segments.SegmentFileName(c, seg, segSize)
			w, ok, err := findSegment(ctx, store, server, name, incomingDir)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			w.size = int64(segSize)
			out = append(out, w)
			found = true
			break
		}
		if found {
			continue
		}
		name := segments.SegmentFileName(newest, seg, segSize)
		if w, ok, err := partialFor(ctx, store, server, name, streamingDir, incomingDir); err != nil {
			return nil, err
		} else if ok {
			out = append(out, w)
			seg++
			name = segments.SegmentFileName(tl.SegmentTimeline(tli, seg, segSize), seg, segSize)
		}
		if seg <= consistent {
			return nil, fmt.Errorf("backup %s: WAL segment %s, needed to reach the backup's end (%s), is not in the archive", b.ID, name, b.EndLSN)
		}
		break
	}
	return out, nil
}

// findSegment finds an archived segment, or its validated copy waiting in incoming/.
func findSegment(ctx context.Context, store storage.Store, server, name, incomingDir string) (walFile, bool, error) {
	key, codec, err := archive.Find(ctx, store, server, name)
	if err == nil {
		return walFile{name: name, key: key, codec: codec}, true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return walFile{}, false, err
	}
	if incomingDir == "" {
		return walFile{}, false, nil
	}
	w, err := archive.FindPending(ctx, store, server, incomingDir, name)
	if errors.Is(err, storage.ErrNotFound) {
		// Archived between the two looks?
		if key, codec, err := archive.Find(ctx, store, server, name); err == nil {
			return walFile{name: name, key: key, codec: codec}, true, nil
		}
		return walFile{}, false, nil
	}
	if err != nil {
		return walFile{}, false, err
	}
	return walFile{name: name, pending: w.Path, server: server}, true, nil
}

// partialFor finds the .partial of a segment where PostgreSQL's recovery would replay
// one (partialWanted): archived first, else waiting in incoming/, else the streaming
// receiver's live file.
func partialFor(ctx context.Context, store storage.Store, server, name, streamingDir, incomingDir string) (walFile, bool, error) {
	n, err := segments.Parse(name)
	if err != nil {
		return walFile{}, false, err
	}
	if wanted, err := partialWanted(ctx, store, server, n, incomingDir); err != nil || !wanted {
		return walFile{}, false, err
	}
	key, codec, err := archive.Find(ctx, store, server, name+".partial")
	if err == nil {
		data, err := archive.Read(ctx, store, key, codec)
		if err != nil {
			return walFile{}, false, err
		}
		return walFile{name: name, data: data, size: int64(len(data))}, true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return walFile{}, false, err
	}
	if incomingDir != "" {
		if w, err := archive.FindPending(ctx, store, server, incomingDir, name+".partial"); err == nil {
			return walFile{name: name, data: w.Data, size: int64(len(w.Data))}, true, nil
		}
	}
	if streamingDir == "" {
		return walFile{}, false, nil
	}
	live := filepath.Join(streamingDir, name+".partial")
	fi, err := os.Stat(live)
	if err != nil {
		return walFile{}, false, nil
	}
	return walFile{name: name, live: live, size: fi.Size()}, true, nil
}
