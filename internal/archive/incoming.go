package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
	for _, c := range copies {
		p := filepath.Join(incomingDir, c)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue // archived and removed meanwhile: the caller looks in the archive
		}
		if ValidatePending(n, data, id, known) == nil {
			return Waiting{Path: p, Data: data}, nil
		}
	}
	return Waiting{}, fmt.Errorf("%s: %w", name, storage.ErrNotFound)
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
