package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// dupSep separates a WAL name from the arrival stamp of a later copy waiting beside
// an earlier one in incoming/ ("<name>.wk-dup-<stamp>"): not a WAL name, so nothing
// takes it for one, and ingest reads the WAL name back with SplitDup.
const dupSep = ".wk-dup-"

// DupName is the incoming/ entry of a later copy of WAL file name that arrived at
// stamp (nanoseconds since the epoch) while an earlier copy waits: zero-padded so
// that entries sort in arrival order.
func DupName(name string, stamp int64) string {
	return fmt.Sprintf("%s%s%020d", name, dupSep, stamp)
}

// SplitDup returns the WAL name of an incoming entry and whether it is a later copy
// waiting beside an earlier one.
func SplitDup(entry string) (name string, dup bool) {
	i := strings.Index(entry, dupSep)
	if i <= 0 {
		return entry, false
	}
	return entry[:i], true
}

// Copies lists the incoming entries that hold a copy of WAL file name, in arrival
// order: the plain name first (a copy only ever goes beside an earlier one), then the
// later copies by their stamp. Ingest judges them in this order, and get-wal serves
// the first valid one, which is the one ingest archives.
func Copies(incomingDir, name string) []string {
	var out []string
	if _, err := os.Lstat(filepath.Join(incomingDir, name)); err == nil {
		out = append(out, name)
	}
	dups, _ := filepath.Glob(filepath.Join(incomingDir, globEscape(name)+dupSep+"*"))
	sort.Strings(dups)
	for _, d := range dups {
		out = append(out, filepath.Base(d))
	}
	return out
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// Waiting is a WAL file that a producer (archive-wal, put-wal, the receiver) made
// durable in incoming/ and that the daemon has not moved into the archive yet. For
// PostgreSQL it is archived already (invariant 9): get-wal, restore's timeline
// discovery and its WAL plan read it from here.
type Waiting struct {
	// Path is the incoming entry (the plain name, or a later copy beside it).
	Path string
	Data []byte
}

// FindPending returns the copy of WAL file name waiting in incomingDir that ingest will
// archive: the first, in arrival order, that passes the validation ingest applies
// (invariant 3) against the server's stored identity. A copy that fails is never
// served; storage.ErrNotFound when no valid copy waits.
func FindPending(ctx context.Context, store storage.Store, server, incomingDir, name string) (Waiting, error) {
	return FindPendingAs(ctx, store, server, incomingDir, name, record.Identity{})
}

// FindPendingAs is FindPending that validates against fallback (its system identifier
// and segment size, when set) while the server has no stored identity yet: a caller
// that asked the server itself (a backup) knows more than the header's own claims.
func FindPendingAs(ctx context.Context, store storage.Store, server, incomingDir, name string, fallback record.Identity) (Waiting, error) {
	n, err := segments.Parse(name)
	if err != nil {
		return Waiting{}, fmt.Errorf("%s: %w", name, err)
	}
	copies := Copies(incomingDir, name)
	if len(copies) == 0 {
		return Waiting{}, fmt.Errorf("%s: %w", name, storage.ErrNotFound)
	}
	id, err := LoadIdentity(ctx, store, server)
	known := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return Waiting{}, err
	}
	if !known && fallback.SystemID != 0 {
		id, known = fallback, true
	}
	for _, c := range copies {
		p := filepath.Join(incomingDir, c)
		data, err := readPending(p, n.Kind, id, known)
		if err != nil {
			// Invalid by its size or header alone (ingest quarantines it), not a
			// regular file, or archived and removed meanwhile: the caller looks in
			// the archive.
			continue
		}
		if ValidatePending(n, data, id, known) == nil {
			return Waiting{Path: p, Data: data}, nil
		}
	}
	return Waiting{}, fmt.Errorf("%s: %w", name, storage.ErrNotFound)
}

// readPending reads a waiting copy only when its size allows a valid file of its kind
// (segments.MaxFileSize for the server's segment size), and never more than that: a
// huge file dropped into incoming/ is invalid by its size alone and costs get-wal and
// restore no memory, as it costs ingest none. With the identity not known yet, a
// segment's size is the one its own first page header claims (as ValidatePending
// takes it); a header that claims none PostgreSQL allows makes the copy invalid.
func readPending(p string, kind segments.Kind, id record.Identity, known bool) ([]byte, error) {
	// O_NOFOLLOW: a link is never served; O_NONBLOCK: a FIFO dropped there must not
	// block the open (it is no regular file, refused below).
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	var segSize uint64
	if known {
		segSize = id.SegSize
	} else if kind == segments.KindSegment || kind == segments.KindPartial {
		var hdr [segments.LongHeaderSize]byte
		if _, err := io.ReadFull(f, hdr[:]); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		h, err := segments.ParseLongHeader(hdr[:])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !segments.ValidSegSize(uint64(h.SegSize)) {
			return nil, fmt.Errorf("%s: its header claims a segment size of %d", p, h.SegSize)
		}
		segSize = uint64(h.SegSize)
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	limit := segments.MaxFileSize(kind, segSize)
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: size %d is larger than a valid %s can be (%d)", p, fi.Size(), kind, limit)
	}
	data, err := fsutil.ReadLimited(f, make([]byte, 0, fi.Size()+1), limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return data, nil
}

// ValidatePending checks a waiting file as ingest will before archiving it: a history
// file's syntax, a backup label's, and for a segment or .partial its size and first
// page header against the server's identity (when known), else against the header's
// own claims, as ingest does for a server's first segment.
func ValidatePending(n segments.Name, data []byte, id record.Identity, known bool) error {
	switch n.Kind {
	case segments.KindHistory:
		return segments.ValidateHistory(n, data)
	case segments.KindBackupLabel:
		return segments.ValidateBackupLabel(data)
	}
	exp := segments.Expect{SystemID: id.SystemID, SegSize: id.SegSize, Magic: id.Magic}
	if !known {
		h, err := segments.ParseLongHeader(data)
		if err != nil {
			return err
		}
		exp = segments.Expect{SystemID: h.SystemID, SegSize: uint64(h.SegSize)}
	}
	if n.Kind == segments.KindSegment && uint64(len(data)) != exp.SegSize {
		return &segments.ValidationError{Name: n.Raw, Reason: fmt.Sprintf("size %d is not the segment size %d", len(data), exp.SegSize)}
	}
	return segments.ValidateSegment(n, int64(len(data)), data, exp)
}

// PendingHistories lists the timelines whose history file waits in incomingDir.
func PendingHistories(incomingDir string) []uint32 {
	ents, err := os.ReadDir(incomingDir)
	if err != nil {
		return nil
	}
	seen := map[uint32]bool{}
	var out []uint32
	for _, e := range ents {
		name, _ := SplitDup(e.Name())
		n, err := segments.Parse(name)
		if err != nil || n.Kind != segments.KindHistory || seen[n.Timeline] {
			continue
		}
		seen[n.Timeline] = true
		out = append(out, n.Timeline)
	}
	return out
}

// IncomingBacklog counts the WAL files waiting in incoming/ (temporary files aside).
func IncomingBacklog(incomingDir string) (files int, bytes int64) {
	ents, err := os.ReadDir(incomingDir)
	if err != nil {
		return 0, 0
	}
	for _, e := range ents {
		if e.IsDir() || fsutil.IsTemp(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			files++
			bytes += fi.Size()
		}
	}
	return files, bytes
}
