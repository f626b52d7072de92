package restore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Entry is one object of a stored backup as restore sees it (basebackup's Entry).
type Entry struct {
	Tablespace uint32 // 0 = the data directory, else the tablespace OID
	Path       string // slash-separated, relative to the data directory or tablespace root
	Type       string // "file" | "dir" | "symlink"
	Mode       uint32
	Size       int64
	ModTime    time.Time
	Link       string
	// Ref is the source's own handle of the entry.
	Ref any
}

// Source is a server's stored backups as restore reads them. The archive's
// implementation is NewSource (basebackup's reader); tests may use others.
type Source interface {
	// Backups lists the server's backups of every status, oldest first.
	Backups(ctx context.Context) ([]record.Backup, error)
	// Resolve finds a backup by id, name, latest or oldest.
	Resolve(backups []record.Backup, ref string) (record.Backup, error)
	// Contents lists a backup's entries, directories before their contents.
	Contents(ctx context.Context, id string) ([]Entry, error)
	// Open returns a file entry's uncompressed content.
	Open(ctx context.Context, e Entry) (io.ReadCloser, error)
	// Manifest returns the server's backup_manifest of the backup (nil if none).
	Manifest(ctx context.Context, id string) ([]byte, error)
}

// Unit is file entries stored in one object, read together: a solid bundle's members
// (decoded once for all of them) or one file.
type Unit struct {
	Entries []Entry
	Size    int64 // decompressed bytes: the work the unit costs
	// Read calls fn for each of Entries with its content, in order; r is valid only
	// during the call. A content that cannot be read comes as a reader that fails.
	Read func(ctx context.Context, fn func(e Entry, r io.Reader) error) error
}

// UnitSource is a Source that knows how its files are stored: Units groups the file
// entries by stored object. Restore plans its work by unit, not by file; a Source
// without it has each file read alone through Open.
type UnitSource interface {
	Units(entries []Entry) []Unit
}

// entryKey identifies an entry of a backup.
func entryKey(tablespace uint32, p string) string {
	return strconv.FormatUint(uint64(tablespace), 10) + "\x00" + p
}

// Owner is who restored files belong to when restore runs as root for another user.
type Owner struct{ UID, GID int }

// Options is one restore.
type Options struct {
	Server    string
	Source    Source
	Store     storage.Store // the archive (WAL and history files)
	Timelines *Timelines
	Choice    Choice // the backup and the timeline to follow
	Target    Target
	// Dest is the data directory to create (absolute; on the remote host if Remote).
	Dest string
	// Tablespaces relocates tablespaces by name (--tablespace NAME:PATH).
	Tablespaces map[string]string
	// Force allows non-empty targets: their content is removed first.
	Force bool
	// WAL is WALGet or WALCopy.
	WAL string
	// RestoreCommand is written for WALGet.
	RestoreCommand string
	// ExtraSettings are appended after the recovery settings (sandbox).
	ExtraSettings []Setting
	// Archive keeps production's archive settings (--archive): the restored cluster
	// archives into the same server once promoted. Off by default (ArchiveSettings).
	Archive bool
	// Standby writes standby.signal instead of recovery.signal: the cluster stays in
	// recovery (read-only) when it runs out of WAL instead of ending it (the sandbox,
	// restore --standby).
	Standby bool
	// PrimaryConninfo is written as primary_conninfo (restore --standby
	// --primary-conninfo): the standby streams from the primary too.
	PrimaryConninfo string
	// Guard is what the restore refuses to write into (invariant 8).
	Guard Guard
	// StreamingDir is the receiver's directory, for the live .partial (copy-wal).
	StreamingDir string
	// IncomingDir is the server's incoming/: WAL waiting there is archived for
	// PostgreSQL already, and --copy-wal ships it (invariant 9).
	IncomingDir string
	// Jobs is the number of extraction workers (default: all cores).
	Jobs int
	// Remote is the ssh command (argv) to write through; nil restores locally.
	Remote []string
	// Owner, if set, chowns everything restored (local only).
	Owner *Owner
	// Progress, if set, is called once with the bytes to write and returns the
	// function that is told about each chunk written.
	Progress func(total int64) func(n int64)
	Log      *slog.Logger
	// PGBin and PGBinNote are the binaries the cluster is to be started with, or why
	// none was found (StartBinaries), for the result's start command.
	PGBin, PGBinNote string
}

// TablespaceTarget says where a tablespace was restored.
type TablespaceTarget struct {
	OID      uint32 `json:"oid"`
	Name     string `json:"name"`
	Location string `json:"original_location"`
	Target   string `json:"restored_to"`
	// relocated is set when --tablespace named this one (by name or OID).
	relocated bool
}

// label is how messages and --tablespace name the tablespace.
func (t TablespaceTarget) label() string { return tablespaceLabel(t.Name, t.OID) }

// Result describes a finished restore.
type Result struct {
	Server   string `json:"server"`
	BackupID string `json:"backup_id"`
	Dest     string `json:"dest"`
	Remote   string `json:"remote,omitempty"`
	Timeline uint32 `json:"timeline"`
	Target   string `json:"target"`
	WALMode  string `json:"wal_mode"`
	// Standby: the cluster comes up as a standby (standby.signal); PrimaryConninfo is
	// what it streams from, password redacted.
	Standby         bool               `json:"standby"`
	PrimaryConninfo string             `json:"primary_conninfo,omitempty"`
	Archive         bool               `json:"archive"`
	RestoreCommand  string             `json:"restore_command"`
	Files           int                `json:"files"`
	Bytes           int64              `json:"bytes"`
	WALFiles        int                `json:"wal_files"`
	WALBytes        int64              `json:"wal_bytes"`
	Tablespaces     []TablespaceTarget `json:"tablespaces,omitempty"`
	// Owner is the OS user the restored files were given (restore run as root).
	Owner string `json:"owner,omitempty"`
	// PGBin is the bin directory to start the cluster with (StartBinaries), "" when
	// none was found or the restore is remote; PGBinNote then says what was not found.
	PGBin     string  `json:"pg_bin,omitempty"`
	PGBinNote string  `json:"pg_bin_note,omitempty"`
	Seconds   float64 `json:"seconds"`
}

// item is one thing to create under a root.
type item struct {
	root  string
	rel   string // slash-separated
	kind  byte   // 'd' dir, 'f' file, 'l' symlink
	mode  os.FileMode
	mtime time.Time
	size  int64 // -1: unknown until opened
	link  string
	// open gives the content of a file restore writes itself (the backup's files come
	// through their job's read).
	open func(ctx context.Context) (io.ReadCloser, error)
	// transform, if set, turns the stored content into what is written.
	transform func([]byte) ([]byte, error)
	wal       bool
}

// job is one worker's share of the files: those of one stored object, read together
// (a solid bundle decoded once for all of them), or one file restore writes itself.
type job struct {
	size  int64 // bytes to decode and write: what the job costs
	files []item
	// read calls fn for each of files (by index) with its content; r is valid only
	// during the call.
	read func(ctx context.Context, fn func(i int, r io.Reader) error) error
}

// runJobs runs jobs, in the order given, on workers goroutines; each worker calls
// newFile once for the function that writes one file of a job (so it can keep buffers
// of its own). It stops at the first error and returns it.
func runJobs(ctx context.Context, jobs []job, workers int, newFile func() func(it item, r io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers = max(1, workers)
	work := make(chan job)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := newFile()
			for j := range work {
				err := j.read(ctx, func(i int, r io.Reader) error { return file(j.files[i], r) })
				if err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case work <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return ctx.Err()
}

// ownJob is the job of a file restore writes itself.
func ownJob(it item) job {
	return job{size: max(it.size, 0), files: []item{it}, read: func(ctx context.Context, fn func(int, io.Reader) error) error {
		r, err := it.open(ctx)
		if err != nil {
			return fmt.Errorf("restore %s: %w", it.rel, err)
		}
		defer r.Close()
		return fn(0, r)
	}}
}

func (it item) path() string { return filepath.Join(it.root, filepath.FromSlash(it.rel)) }

// sink writes items locally or through ssh.
type sink interface {
	prepare(ctx context.Context, roots []string, force bool) error
	// write creates items (directories, parents first, then links) and then the files
	// of every job, jobs running on workers goroutines.
	write(ctx context.Context, items []item, jobs []job, workers int, progress func(int64)) error
	finish(ctx context.Context, roots []string) error
}

// Run restores one backup: it checks every target directory (empty, or --force), lays
// out the data directory and tablespaces (pg_tblspc links pointing to the targets),
// writes the files with parallel workers, leaves backup_manifest in DEST, sets up
// recovery (postgresql.auto.conf appended, recovery.signal) and syncs once at the end.
func Run(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	b := o.Choice.Backup
	res := Result{Server: o.Server, BackupID: b.ID, Dest: o.Dest, Timeline: o.Choice.TLI, Target: o.Target.String(), WALMode: o.WAL, Archive: o.Archive,
		Standby: o.Standby, PrimaryConninfo: config.RedactConninfo(o.PrimaryConninfo), PGBin: o.PGBin, PGBinNote: o.PGBinNote}
	if o.Owner != nil && o.Remote == nil {
		res.Owner = strconv.Itoa(o.Owner.UID)
		if u, err := user.LookupId(res.Owner); err == nil {
			res.Owner = u.Username
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if !filepath.IsAbs(o.Dest) {
		return res, usage("destination %q: must be an absolute path", o.Dest)
	}
	o.Dest = filepath.Clean(o.Dest)
	res.Dest = o.Dest
	if o.Remote != nil {
		res.Remote = strings.Join(o.Remote, " ")
	}
	ts, err := tablespaceTargets(b, o.Tablespaces, o.Dest)
	if err != nil {
		return res, err
	}
	res.Tablespaces = ts
	var live []LiveCluster
	if o.Remote == nil {
		live = LocalClusters()
	}
	if err := guardTargets(ctx, o, ts, live); err != nil {
		return res, err
	}
	tsRoot := map[uint32]string{}
	for _, t := range ts {
		tsRoot[t.OID] = t.Target
	}

	// Everything that can fail without writing is done first.
	entries, err := o.Source.Contents(ctx, b.ID)
	if err != nil {
		return res, fmt.Errorf("backup %s: %w", b.ID, err)
	}
	manifest, err := o.Source.Manifest(ctx, b.ID)
	if err != nil {
		return res, fmt.Errorf("backup %s: backup_manifest: %w", b.ID, err)
	}
	var wal []walFile
	restoreCmd, endCmd := o.RestoreCommand, SpoolEndCommand()
	switch o.WAL {
	case WALCopy:
		wal, err = planWAL(ctx, o.Store, o.Server, b, o.Choice.TLI, o.Timelines, o.Target, o.StreamingDir, o.IncomingDir)
		if err != nil {
			return res, err
		}
		restoreCmd, endCmd = CopyWALCommand(), CopyWALEndCommand()
	case WALGet:
		if restoreCmd == "" {
			return res, errors.New("restore: no restore_command for --get-wal")
		}
	default:
		return res, fmt.Errorf("restore: unknown WAL mode %q", o.WAL)
	}
	res.RestoreCommand = restoreCmd
	settings := RecoverySettings(restoreCmd, endCmd, o.Target, o.Choice.TimelineSetting())
	if o.PrimaryConninfo != "" {
		settings = append(settings, Setting{"primary_conninfo", o.PrimaryConninfo})
	}
	settings = append(settings, o.ExtraSettings...)
	head := header(o.Server, b.ID, o.Target, time.Now())
	if o.Standby && !o.Target.IsSet() {
		head = fmt.Sprintf("walkeeper restore of %s backup %s as a standby following the archive, %s", o.Server, b.ID, time.Now().UTC().Format(time.RFC3339))
	}
	confText := RenderSettings(head, settings) + ArchiveConf(o.Archive)

	items, jobs, err := buildItems(o, entries, tsRoot, confText, manifest, wal)
	if err != nil {
		return res, err
	}
	roots := []string{o.Dest}
	for _, t := range ts {
		roots = append(roots, t.Target)
	}

	var sk sink
	if o.Remote != nil {
		home := ""
		if o.Guard.Home != "" {
			home = resolvePath(o.Guard.Home)
		}
		sk = &sshSink{argv: o.Remote, log: o.Log, labels: targetLabels(o.Dest, ts), home: home}
	} else {
		sk = &localSink{owner: o.Owner}
	}
	if err := sk.prepare(ctx, roots, o.Force); err != nil {
		return res, err
	}
	var total int64
	for _, j := range jobs {
		for _, it := range j.files {
			total += max(it.size, 0)
			if it.wal {
				res.WALFiles++
				res.WALBytes += max(it.size, 0)
			} else {
				res.Files++
				res.Bytes += max(it.size, 0)
			}
		}
	}
	progress := func(int64) {}
	if o.Progress != nil {
		progress = o.Progress(total)
	}
	workers := o.Jobs
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if err := sk.write(ctx, items, jobs, workers, progress); err != nil {
		return res, err
	}
	if err := sk.finish(ctx, roots); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// tablespaceTargets maps each tablespace of the backup to where it is restored.
func tablespaceTargets(b record.Backup, relocate map[string]string, dest string) ([]TablespaceTarget, error) {
	known := map[string]bool{}
	var names []string
	for _, t := range b.Tablespaces {
		oid := strconv.FormatUint(uint64(t.OID), 10)
		known[t.Name], known[oid] = true, true
		names = append(names, tablespaceLabel(t.Name, t.OID))
	}
	for name := range relocate {
		if !known[name] {
			list := "none"
			if len(names) > 0 {
				list = strings.Join(names, ", ")
			}
			return nil, usage("--tablespace %s: backup %s has no tablespace %q (its tablespaces: %s)", name, b.ID, name, list)
		}
	}
	var out []TablespaceTarget
	seen := map[string]string{}
	for _, t := range b.Tablespaces {
		label := tablespaceLabel(t.Name, t.OID)
		target := t.Location
		p, byName := relocate[t.Name]
		q, byOID := relocate[strconv.FormatUint(uint64(t.OID), 10)]
		switch {
		case byName && t.Name != "" && byOID:
			return nil, usage("--tablespace: tablespace %s (oid %d) is relocated twice, by name and by oid", t.Name, t.OID)
		case byName && t.Name != "":
			target = p
		case byOID:
			target = q
		}
		if !filepath.IsAbs(target) {
			return nil, usage("--tablespace %s:%s: the path must be absolute", label, target)
		}
		target = filepath.Clean(target)
		if within(target, dest) || within(dest, target) {
			return nil, usage("tablespace %s would be restored to %s, which overlaps the destination %s: relocate it with --tablespace %s:PATH", label, target, dest, label)
		}
		if other, dup := seen[target]; dup {
			return nil, usage("tablespaces %s and %s would both be restored to %s", other, label, target)
		}
		seen[target] = label
		out = append(out, TablespaceTarget{OID: t.OID, Name: t.Name, Location: t.Location, Target: target,
			relocated: (byName && t.Name != "") || byOID})
	}
	return out, nil
}

// tablespaceLabel names a tablespace in messages and in --tablespace: its name, or its
// OID when the backup knows no name (a pg_tblspc link without a pg_tablespace row).
func tablespaceLabel(name string, oid uint32) string {
	if name != "" {
		return name
	}
	return strconv.FormatUint(uint64(oid), 10)
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// buildItems turns the backup's entries plus restore's own files into what to create:
// directories (parents before children) and links, then the jobs that write the files,
// planned by stored object (Source.Units) and largest first so the workers finish
// together. Links are only those PostgreSQL makes, pg_tblspc/<oid>, pointing at the
// planned tablespace targets, never where the stream says; any other link in the
// backup, and any entry under a link, is refused before anything is written.
func buildItems(o Options, entries []Entry, tsRoot map[uint32]string, confText string, manifest []byte, wal []walFile) ([]item, []job, error) {
	var dirs, links, own []item
	seenDir := map[string]bool{}
	haveAuto := false
	src := o.Source
	id := o.Choice.Backup.ID
	// linkAt holds the links restore creates (root + "\x00" + rel): nothing may be
	// written through one.
	linkAt := map[string]bool{}
	for oid := range tsRoot {
		linkAt[o.Dest+"\x00pg_tblspc/"+strconv.FormatUint(uint64(oid), 10)] = true
	}
	wanted := map[string]item{} // entryKey -> the backup's file to write
	var fileEntries []Entry
	for _, e := range entries {
		root := o.Dest
		if e.Tablespace != 0 {
			r, ok := tsRoot[e.Tablespace]
			if !ok {
				return nil, nil, fmt.Errorf("backup %s: entry %s belongs to tablespace %d, which backup.info does not list", id, e.Path, e.Tablespace)
			}
			root = r
		}
		rel := path.Clean(e.Path)
		if rel == "." || rel == "" {
			continue
		}
		if strings.HasPrefix(rel, "../") || rel == ".." || path.IsAbs(rel) {
			return nil, nil, fmt.Errorf("backup %s: entry %q escapes its directory", id, e.Path)
		}
		if e.Type == "symlink" {
			if e.Tablespace == 0 && path.Dir(rel) == "pg_tblspc" {
				if oid, err := strconv.ParseUint(path.Base(rel), 10, 32); err == nil {
					if _, ok := tsRoot[uint32(oid)]; ok {
						continue // replaced by a link to the (relocated) target below
					}
				}
			}
			return nil, nil, fmt.Errorf("backup %s: entry %s is a symbolic link to %q: refused, only pg_tblspc/<oid> links of the backup's tablespaces are restored (and made to point at their targets)", id, e.Path, e.Link)
		}
		for p := rel; ; p = path.Dir(p) {
			if linkAt[root+"\x00"+p] {
				return nil, nil, fmt.Errorf("backup %s: entry %s lies at or under the tablespace link %s: refused, restore never writes through a link", id, e.Path, p)
			}
			if !strings.Contains(p, "/") {
				break
			}
		}
		mode := os.FileMode(e.Mode).Perm()
		switch e.Type {
		case "dir":
			if mode == 0 {
				mode = 0o700
			}
			dirs = append(dirs, item{root: root, rel: rel, kind: 'd', mode: mode, mtime: e.ModTime})
			seenDir[root+"\x00"+rel] = true
		case "file":
			if mode == 0 {
				mode = 0o600
			}
			it := item{root: root, rel: rel, kind: 'f', mode: mode, mtime: e.ModTime, size: e.Size}
			if e.Tablespace == 0 {
				switch rel {
				case "postgresql.auto.conf":
					haveAuto = true
					it.size = -1
					it.transform = func(orig []byte) ([]byte, error) {
						if len(orig) > 0 && orig[len(orig)-1] != '\n' {
							orig = append(orig, '\n')
						}
						return append(orig, confText...), nil
					}
				case "tablespace_map":
					it.size = -1
					it.transform = func(data []byte) ([]byte, error) { return rewriteTablespaceMap(data, tsRoot), nil }
				case "backup_manifest", "recovery.signal", "standby.signal", "postmaster.pid", "postmaster.opts":
					continue // restore writes its own; a running server's files never apply
				}
			}
			k := entryKey(e.Tablespace, e.Path)
			if _, dup := wanted[k]; dup {
				return nil, nil, fmt.Errorf("backup %s: entry %s listed twice", id, e.Path)
			}
			wanted[k] = it
			fileEntries = append(fileEntries, e)
		default:
			return nil, nil, fmt.Errorf("backup %s: entry %s has unknown type %q", id, e.Path, e.Type)
		}
	}
	addDir := func(rel string) {
		if !seenDir[o.Dest+"\x00"+rel] {
			seenDir[o.Dest+"\x00"+rel] = true
			dirs = append(dirs, item{root: o.Dest, rel: rel, kind: 'd', mode: 0o700, mtime: time.Now()})
		}
	}
	addDir("pg_wal")
	addDir("pg_wal/archive_status")
	if len(tsRoot) > 0 {
		addDir("pg_tblspc")
	}
	oids := make([]uint32, 0, len(tsRoot))
	for oid := range tsRoot {
		oids = append(oids, oid)
	}
	sort.Slice(oids, func(i, j int) bool { return oids[i] < oids[j] })
	for _, oid := range oids {
		links = append(links, item{root: o.Dest, rel: "pg_tblspc/" + strconv.FormatUint(uint64(oid), 10), kind: 'l', link: tsRoot[oid]})
	}
	now := time.Now()
	mem := func(rel string, data []byte) item {
		return item{root: o.Dest, rel: rel, kind: 'f', mode: 0o600, mtime: now, size: int64(len(data)),
			open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
	}
	if !haveAuto {
		own = append(own, mem("postgresql.auto.conf", []byte("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n"+confText)))
	}
	signal := "recovery.signal"
	if o.Standby {
		signal = "standby.signal"
	}
	own = append(own, mem(signal, nil))
	if manifest != nil {
		own = append(own, mem("backup_manifest", manifest))
	}
	if o.WAL == WALCopy {
		addDir(CopyWALDir)
		for _, w := range wal {
			w := w
			own = append(own, item{root: o.Dest, rel: CopyWALDir + "/" + w.name, kind: 'f', mode: 0o600, mtime: now, size: w.size, wal: true,
				open: func(ctx context.Context) (io.ReadCloser, error) { return w.open(ctx, o.Store) }})
		}
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		if dirs[i].root != dirs[j].root {
			return dirs[i].root < dirs[j].root
		}
		return strings.Count(dirs[i].rel, "/") < strings.Count(dirs[j].rel, "/")
	})

	var units []Unit
	if us, ok := src.(UnitSource); ok {
		units = us.Units(fileEntries)
	} else {
		for _, e := range fileEntries {
			units = append(units, Unit{Entries: []Entry{e}, Size: e.Size, Read: func(ctx context.Context, fn func(Entry, io.Reader) error) error {
				r, err := src.Open(ctx, e)
				if err != nil {
					return fmt.Errorf("restore %s: %w", e.Path, err)
				}
				defer r.Close()
				return fn(e, r)
			}})
		}
	}
	jobs := make([]job, 0, len(units)+len(own))
	planned := 0
	for _, u := range units {
		j := job{size: u.Size}
		idx := map[string]int{}
		for _, e := range u.Entries {
			k := entryKey(e.Tablespace, e.Path)
			if it, ok := wanted[k]; ok {
				if _, dup := idx[k]; !dup {
					idx[k] = len(j.files)
					j.files = append(j.files, it)
				}
			}
		}
		if len(j.files) == 0 {
			continue
		}
		planned += len(j.files)
		j.read = func(ctx context.Context, fn func(int, io.Reader) error) error {
			return u.Read(ctx, func(e Entry, r io.Reader) error {
				if i, ok := idx[entryKey(e.Tablespace, e.Path)]; ok {
					return fn(i, r)
				}
				return nil
			})
		}
		jobs = append(jobs, j)
	}
	if planned != len(wanted) {
		return nil, nil, fmt.Errorf("backup %s: the read plan covers %d of %d files", id, planned, len(wanted))
	}
	for _, it := range own {
		jobs = append(jobs, ownJob(it))
	}
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].size > jobs[j].size })
	out := make([]item, 0, len(dirs)+len(links))
	out = append(out, dirs...)
	return append(out, links...), jobs, nil
}

// rewriteTablespaceMap points each "<oid> <path>" line of a tablespace_map at the
// tablespace's restore target (PostgreSQL recreates pg_tblspc links from it).
func rewriteTablespaceMap(data []byte, tsRoot map[uint32]string) []byte {
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		oidText, _, ok := strings.Cut(line, " ")
		if ok {
			if oid, err := strconv.ParseUint(oidText, 10, 32); err == nil {
				if t, ok := tsRoot[uint32(oid)]; ok {
					line = oidText + " " + t
				}
			}
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
