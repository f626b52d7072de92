package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Archive is what the storage holds for a server's WAL. It is read from storage, not
// the index: the index is derived, and a file deleted behind its back is exactly what a
// verification must notice.
type Archive struct {
	// Segments are the complete archived segments, sorted.
	Segments []string
	// Objects maps every archived file's name (without codec suffix) to its stored object.
	Objects map[string]storage.Info
	// History holds the parsed history files, by timeline.
	History map[uint32][]segments.HistoryEntry
	// Problems lists archived history files that cannot be read or parsed.
	Problems []string
}

// LoadArchive lists the server's archived WAL (archive.ListWAL) and reads every
// history file.
func LoadArchive(ctx context.Context, store storage.Store, server string) (*Archive, error) {
	a := &Archive{Objects: map[string]storage.Info{}, History: map[uint32][]segments.HistoryEntry{}}
	var hist []archive.Key
	var histObjs []storage.Info
	err := archive.ListWAL(ctx, store, server, func(i storage.Info, k archive.Key, err error) error {
		if err != nil {
			return nil // not an archive file (nothing else lives there)
		}
		a.Objects[k.Name] = i
		switch k.WAL.Kind {
		case segments.KindSegment:
			a.Segments = append(a.Segments, k.Name)
		case segments.KindHistory:
			hist, histObjs = append(hist, k), append(histObjs, i)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("archive of %s: %w", server, err)
	}
	sort.Strings(a.Segments)
	for j, k := range hist {
		data, err := archive.Read(ctx, store, histObjs[j].Key, k.Codec)
		if err != nil {
			a.Problems = append(a.Problems, fmt.Sprintf("history file %s: %v", k.Name, err))
			continue
		}
		h, err := segments.ParseHistory(k.WAL.Timeline, data)
		if err != nil {
			a.Problems = append(a.Problems, fmt.Sprintf("history file %s: %v", k.Name, err))
			continue
		}
		a.History[k.WAL.Timeline] = h
	}
	return a, nil
}

// Newest is the newest archived segment (by timeline, then position), or "".
func (a *Archive) Newest() string {
	if len(a.Segments) == 0 {
		return ""
	}
	return a.Segments[len(a.Segments)-1]
}

// ChainFor follows the WAL backup b needs from its begin to the newest archived segment
// its timeline leads to, and at least to its end. The segment size is the backup's, or
// segSize (the archive's identity) for a record that lacks it.
func (a *Archive) ChainFor(b record.Backup, segSize uint64) (Chain, error) {
	if b.SegSize != 0 {
		segSize = b.SegSize
	}
	start := b.BeginWAL
	if start == "" {
		start = segments.SegmentForLSN(b.Timeline, b.BeginLSN, segSize)
	}
	ch, err := FindChain(ChainInput{SegSize: segSize, Start: start, StartLSN: b.BeginLSN, EndLSN: b.EndLSN,
		Segments: a.Segments, History: a.History})
	if err != nil {
		return ch, fmt.Errorf("backup %s: %w", b.ID, err)
	}
	return ch, nil
}

// WALReport is the outcome of VerifyWAL.
type WALReport struct {
	Files    int       `json:"files"`
	Bytes    int64     `json:"bytes"`
	Problems []Problem `json:"problems,omitempty"`
}

// VerifyWAL reads every archived file of the server (decompressing it) with workers
// goroutines and compares its SHA-256 with the index record, and lists files the index
// and the archive disagree about. progress, if set, receives raw bytes read.
func VerifyWAL(ctx context.Context, store storage.Store, idx index.Index, server string, a *Archive, workers int, progress func(int64)) (WALReport, error) {
	var rep WALReport
	var recs []record.WALFile
	indexed := map[string]bool{}
	err := idx.ScanWAL(ctx, server, index.WALRange{}, func(f record.WALFile) error {
		indexed[f.Name] = true
		if _, ok := a.Objects[f.Name]; !ok {
			// It may have arrived since the archive was listed: look again.
			info, err := store.Stat(ctx, f.Key)
			if err != nil || f.Key == "" {
				rep.Problems = append(rep.Problems, Problem{Name: f.Name, Problem: "not-stored"})
				return nil
			}
			a.Objects[f.Name] = info
		}
		recs = append(recs, f)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("index of %s: %w", server, err)
	}
	for name := range a.Objects {
		if indexed[name] {
			continue
		}
		// The daemon stores a file before it commits its record: look again.
		if _, err := idx.GetWAL(ctx, server, name); err == nil {
			continue
		}
		rep.Problems = append(rep.Problems, Problem{Name: name, Problem: "not-indexed"})
	}
	problems, n := parallel(ctx, workers, len(recs), func(i int) (*Problem, int64) {
		f := recs[i]
		obj := a.Objects[f.Name]
		data, err := archive.Read(ctx, store, obj.Key, archive.CodecOf(obj.Key))
		if err != nil {
			return &Problem{Name: f.Name, Problem: "unreadable", Detail: err.Error()}, 0
		}
		if progress != nil {
			progress(int64(len(data)))
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
			return &Problem{Name: f.Name, Problem: "checksum", Expected: f.SHA256, Got: got}, int64(len(data))
		}
		return nil, int64(len(data))
	})
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	rep.Problems = append(rep.Problems, problems...)
	rep.Files, rep.Bytes = len(recs), n
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Name < rep.Problems[j].Name })
	return rep, nil
}
