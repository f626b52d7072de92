package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// StoredBackup is a backup in walkeeper's storage as a Source: its files named as the
// server's backup_manifest names them (tablespace files under pg_tblspc/<oid>/).
type StoredBackup struct {
	Store  storage.Store
	Server string
	ID     string
}

// Files implements Source.
func (s StoredBackup) Files(ctx context.Context) ([]File, error) {
	entries, err := basebackup.Contents(ctx, s.Store, s.Server, s.ID)
	if err != nil {
		return nil, err
	}
	return entryFiles(entries), nil
}

// entryFiles is the regular files of a backup's entries.
func entryFiles(entries []basebackup.Entry) []File {
	var out []File
	for _, e := range entries {
		if e.Type != basebackup.TypeFile {
			continue
		}
		out = append(out, File{Path: ManifestPath(e.Tablespace, e.Path), Size: e.Size, Ref: e})
	}
	return out
}

// Open implements Source.
func (s StoredBackup) Open(ctx context.Context, f File) (io.ReadCloser, error) {
	e, ok := f.Ref.(basebackup.Entry)
	if !ok {
		return nil, fmt.Errorf("%s: not a stored backup file", f.Path)
	}
	return basebackup.OpenEntry(ctx, s.Store, e)
}

// Units implements UnitSource: the files grouped by the object storing them
// (basebackup.PlanReads), so each solid bundle is decoded once.
func (s StoredBackup) Units(files []File) []FileUnit {
	es := make([]basebackup.Entry, 0, len(files))
	at := make([]int, 0, len(files)) // es[k] is files[at[k]]
	for i, f := range files {
		if e, ok := f.Ref.(basebackup.Entry); ok {
			es = append(es, e)
			at = append(at, i)
		}
	}
	plan := basebackup.PlanReads(es)
	out := make([]FileUnit, len(plan))
	for k, u := range plan {
		fu := FileUnit{Size: u.Size, Files: make([]int, len(u.Positions))}
		for j, pos := range u.Positions {
			fu.Files[j] = at[pos]
		}
		fu.Read = func(ctx context.Context, fn func(int, io.Reader) error) error {
			j := 0
			return u.Read(ctx, s.Store, func(_ basebackup.Entry, r io.Reader) error {
				i := fu.Files[j] // Read passes the entries in Entries order
				j++
				return fn(i, r)
			})
		}
		out[k] = fu
	}
	return out
}

// ManifestPath is how backup_manifest names a file of the data directory (tablespace
// 0) or of a tablespace.
func ManifestPath(tablespace uint32, p string) string {
	if tablespace == 0 {
		return p
	}
	return "pg_tblspc/" + strconv.FormatUint(uint64(tablespace), 10) + "/" + p
}

// BackupReport is the verification of one stored backup's files.
type BackupReport struct {
	ID       string    `json:"id"`
	Status   string    `json:"status"`
	Manifest string    `json:"manifest,omitempty"` // a problem with the manifest itself
	Files    int       `json:"files"`
	Bytes    int64     `json:"bytes"`
	Problems []Problem `json:"problems,omitempty"`
	// Decoded is how many of the files were decoded and summed; the others were
	// checked by the sums recorded at backup, their stored objects (Objects of them,
	// ObjectBytes) read against their recorded digests.
	Decoded     int   `json:"decoded"`
	Objects     int   `json:"objects,omitempty"`
	ObjectBytes int64 `json:"object_bytes,omitempty"`
	// WALRanges is the manifest's account of the WAL the backup needs.
	WALRanges []ManifestWAL `json:"wal_ranges,omitempty"`
	// Mismatch says how backup.info's WAL positions differ from WALRanges.
	Mismatch string `json:"mismatch,omitempty"`
}

// OK reports whether the backup's files all match its manifest.
func (r BackupReport) OK() bool { return r.Manifest == "" && len(r.Problems) == 0 && r.Mismatch == "" }

// FileOptions say how VerifyBackup reads a backup's files.
type FileOptions struct {
	// Workers is the number of parallel readers.
	Workers int
	// Deep decodes and sums every file, even where the backup recorded the sums.
	Deep bool
	// Progress, if set, receives bytes checked, counted decompressed (from several
	// goroutines).
	Progress func(int64)
}

// VerifyBackup checks every stored file of backup b against the backup_manifest stored
// with it: by the sums the backup recorded and the digests of its stored objects
// (recordedSums), or by decoding each file (o.Deep, or a backup that recorded none). A
// missing or damaged manifest is reported in Manifest (nothing else can be checked
// then); other errors (storage failing) are returned.
//
// The stored files are read and summed while the manifest is parsed (with the
// algorithm its first entry names): on a schema of tens of thousands of relations both
// lists are tens of thousands of JSON records, and parsing them before reading a byte
// was a third of verify's time.
func VerifyBackup(ctx context.Context, store storage.Store, b record.Backup, o FileOptions) (BackupReport, error) {
	workers := o.Workers
	rep := BackupReport{ID: b.ID, Status: b.Status}
	r, err := store.Get(ctx, archive.BackupManifestKey(b.Server, b.ID))
	if errors.Is(err, storage.ErrNotFound) {
		rep.Manifest = "backup_manifest is not stored"
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("backup %s: %w", b.ID, err)
	}
	data, err := storage.ReadAll(r)
	r.Close()
	if err != nil {
		return rep, fmt.Errorf("backup %s: read backup_manifest: %w", b.ID, err)
	}
	type parsed struct {
		m   *Manifest
		err error
	}
	parsing := make(chan parsed, 1)
	go func() {
		m, err := ParseManifest(data)
		parsing <- parsed{m, err}
	}()
	src := StoredBackup{Store: store, Server: b.Server, ID: b.ID}
	entries, objs, ferr := basebackup.ContentsAndObjects(ctx, store, b.Server, b.ID)
	stored := entryFiles(entries)
	// What is not listed by design is not read (a stored file the manifest should list
	// but does not is still read, and reported as extra).
	stored = slices.DeleteFunc(stored, func(f File) bool { return notInManifest[f.Path] })
	if ferr != nil {
		if p := <-parsing; p.err != nil {
			rep.Manifest = p.err.Error()
			return rep, nil
		}
		return rep, fmt.Errorf("backup %s: %w", b.ID, ferr)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type summed struct {
		sums    []fileSum
		objects []objectProblem
		decoded int
	}
	summing := make(chan summed, 1)
	alg := firstChecksumAlgorithm(data)
	deep := o.Deep || len(objs) == 0
	go func() {
		if deep {
			summing <- summed{sums: sumFiles(sctx, src, stored, func(int) string { return alg }, workers, o.Progress), decoded: len(stored)}
			return
		}
		sums, problems, decoded := recordedSums(sctx, src, stored, objs, alg, workers, o.Progress)
		summing <- summed{sums, problems, decoded}
	}()
	p := <-parsing
	if p.err != nil {
		cancel()
		<-summing
		rep.Manifest = p.err.Error()
		return rep, nil
	}
	pr := match(p.m, stored) // while the files are summed
	s := <-summing
	fr, err := compare(ctx, pr, src, stored, s.sums, workers)
	if err != nil {
		return rep, fmt.Errorf("backup %s: %w", b.ID, err)
	}
	rep.Files, rep.Bytes, rep.Problems, rep.Decoded = fr.Files, fr.Bytes, fr.Problems, s.decoded
	if !deep {
		rep.Objects = len(objs)
		for _, ob := range objs {
			rep.ObjectBytes += ob.Size
		}
		// A changed object is named only when none of its files is: those files'
		// problems say what a DBA needs (the same as --deep would), and an object
		// whose files all still decode and match is a problem of its own (restore
		// checks the stored frames' checksums).
		named := map[string]bool{}
		for _, p := range rep.Problems {
			named[p.Path] = true
		}
		for _, op := range s.objects {
			if !slices.ContainsFunc(op.files, func(f string) bool { return named[f] }) {
				rep.Problems = append(rep.Problems, op.problem)
			}
		}
		sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Path < rep.Problems[j].Path })
	}
	rep.WALRanges = p.m.WALRanges
	rep.Mismatch = walRangeMismatch(b, p.m.WALRanges)
	return rep, nil
}

// walRangeMismatch compares backup.info's WAL positions with the manifest's WAL-Ranges,
// which PostgreSQL wrote itself: the chain check trusts backup.info, so a disagreement
// must not pass silently.
func walRangeMismatch(b record.Backup, ranges []ManifestWAL) string {
	if len(ranges) == 0 {
		return ""
	}
	first, last := ranges[0], ranges[len(ranges)-1]
	start, err1 := segments.ParseLSN(first.StartLSN)
	end, err2 := segments.ParseLSN(last.EndLSN)
	switch {
	case err1 != nil || err2 != nil:
		return fmt.Sprintf("backup_manifest WAL-Ranges %+v do not parse", ranges)
	case start != b.BeginLSN || first.Timeline != b.Timeline:
		return fmt.Sprintf("backup.info begins at %s on timeline %d, backup_manifest's WAL-Ranges at %s on timeline %d", b.BeginLSN, b.Timeline, start, first.Timeline)
	case b.EndLSN != 0 && end != b.EndLSN:
		return fmt.Sprintf("backup.info ends at %s, backup_manifest's WAL-Ranges at %s", b.EndLSN, end)
	}
	return ""
}
