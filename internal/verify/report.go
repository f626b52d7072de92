package verify

import (
	"context"
	"fmt"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Options say what Run verifies.
type Options struct {
	Store  storage.Store
	Index  index.Index
	Server string
	// Backup is an id, name, "latest" or "oldest"; "" verifies every DONE backup.
	Backup string
	// SkipFiles skips reading the backups' files (only the WAL chain is checked).
	SkipFiles bool
	// WALChecksums reads every archived WAL file and compares it with its index record.
	WALChecksums bool
	// Jobs is the number of parallel readers.
	Jobs int
	// Deep decodes every backup file instead of trusting the sums recorded at backup.
	Deep bool
	// Progress, if set, makes a byte counter for a step of the given expected size.
	Progress func(desc string, total int64) func(int64)
}

// BackupResult is one backup in the report.
type BackupResult struct {
	ID     string        `json:"id"`
	Name   string        `json:"name,omitempty"`
	Status string        `json:"status"`
	Files  *BackupReport `json:"files,omitempty"`
	WAL    *Chain        `json:"wal,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// Report is the outcome of Run (and `verify --json`).
type Report struct {
	Server          string         `json:"server"`
	OK              bool           `json:"ok"`
	Backups         []BackupResult `json:"backups"`
	NewestSegment   string         `json:"newest_segment,omitempty"`
	ArchiveProblems []string       `json:"archive_problems,omitempty"`
	WALChecksums    *WALReport     `json:"wal_checksums,omitempty"`
	// Problems is every problem found, one line each.
	Problems []string `json:"problems"`
}

// Run verifies a server's backups (their files against backup_manifest, and the WAL
// chain from each one's begin to the newest archived segment) and, on request, every
// archived WAL file's checksum. Problems found are in the report; an error means the
// verification itself could not run (unknown backup, storage or index failing).
func Run(ctx context.Context, o Options) (Report, error) {
	rep := Report{Server: o.Server, Backups: []BackupResult{}, Problems: []string{}}
	progress := func(desc string, total int64) func(int64) {
		if o.Progress == nil {
			return nil
		}
		return o.Progress(desc, total)
	}
	all, err := o.Index.ListBackups(ctx, o.Server)
	if err != nil {
		return rep, err
	}
	var chosen []record.Backup
	if o.Backup != "" {
		b, err := basebackup.Resolve(all, o.Backup)
		if err != nil {
			return rep, err
		}
		chosen = []record.Backup{b}
	} else {
		for _, b := range all {
			if b.Done() {
				chosen = append(chosen, b)
			}
		}
	}
	arch, err := LoadArchive(ctx, o.Store, o.Server)
	if err != nil {
		return rep, err
	}
	rep.NewestSegment = arch.Newest()
	rep.ArchiveProblems = arch.Problems
	rep.Problems = append(rep.Problems, arch.Problems...)
	var segSize uint64
	if id, err := archive.LoadIdentity(ctx, o.Store, o.Server); err == nil {
		segSize = id.SegSize
	}
	for _, b := range chosen {
		r := BackupResult{ID: b.ID, Name: b.Name, Status: b.Status}
		add := func(format string, a ...any) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: ", b.ID)+fmt.Sprintf(format, a...))
		}
		if !o.SkipFiles {
			fr, err := VerifyBackup(ctx, o.Store, b, FileOptions{Workers: o.Jobs, Deep: o.Deep, Progress: progress("verify "+b.ID, b.Size)})
			if err != nil {
				return rep, err
			}
			r.Files = &fr
			if fr.Manifest != "" {
				add("%s", fr.Manifest)
			}
			if fr.Mismatch != "" {
				add("%s", fr.Mismatch)
			}
			for _, p := range fr.Problems {
				add("%s", p)
			}
		}
		if b.BeginWAL == "" && b.BeginLSN == 0 {
			r.Error = "the backup records no begin WAL"
			add("%s", r.Error)
		} else if ch, err := arch.ChainFor(b, segSize); err != nil {
			r.Error = err.Error()
			rep.Problems = append(rep.Problems, r.Error)
		} else {
			r.WAL = &ch
			for _, p := range ch.Problems {
				add("WAL: %s", p)
			}
			for _, g := range ch.Gaps {
				add("WAL: %s", g)
			}
		}
		rep.Backups = append(rep.Backups, r)
	}
	if o.WALChecksums {
		var total int64
		if st, err := o.Index.WALStats(ctx, o.Server); err == nil {
			total = st.RawBytes
		}
		wr, err := VerifyWAL(ctx, o.Store, o.Index, o.Server, arch, o.Jobs, progress("verify WAL", total))
		if err != nil {
			return rep, err
		}
		rep.WALChecksums = &wr
		for _, p := range wr.Problems {
			rep.Problems = append(rep.Problems, p.String())
		}
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}
