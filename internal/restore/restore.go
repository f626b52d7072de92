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
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/catalog"
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
	Backups(ctx context.Context) ([]catalog.Backup, error)
	// Resolve finds a backup by id, name, latest or oldest.
	Resolve(backups []catalog.Backup, ref string) (catalog.Backup, error)
	// Contents lists a backup's entries, directories before their contents.
	Contents(ctx context.Context, id string) ([]Entry, error)
	// Open returns a file entry's uncompressed content.
	Open(ctx context.Context, e Entry) (io.ReadCloser, error)
	// Manifest returns the server's backup_manifest of the backup (nil if none).
	Manifest(ctx context.Context, id string) ([]byte, error)
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
	// recovery (read-only) when it runs out of WAL instead of ending it (the sandbox).
	Standby bool
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
}

// TablespaceTarget says where a tablespace was restored.
type TablespaceTarget struct {
	OID      uint32 `json:"oid"`
	Name     string `json:"name"`
	Location string `json:"original_location"`
	Target   string `json:"restored_to"`
}

// Result describes a finished restore.
type Result struct {
	Server         string             `json:"server"`
	BackupID       string             `json:"backup_id"`
	Dest           string             `json:"dest"`
	Remote         string             `json:"remote,omitempty"`
	Timeline       uint32             `json:"timeline"`
	Target         string             `json:"target"`
	WALMode        string             `json:"wal_mode"`
	Archive        bool               `json:"archive"`
	RestoreCommand string             `json:"restore_command"`
	Files          int                `json:"files"`
	Bytes          int64              `json:"bytes"`
	WALFiles       int                `json:"wal_files"`
	WALBytes       int64              `json:"wal_bytes"`
	Tablespaces    []TablespaceTarget `json:"tablespaces,omitempty"`
	Seconds        float64            `json:"seconds"`
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
	open  func(ctx context.Context) (io.ReadCloser, error)
	wal   bool
}

func (it item) path() string { return filepath.Join(it.root, filepath.FromSlash(it.rel)) }

// sink writes items locally or through ssh.
type sink interface {
	prepare(ctx context.Context, roots []string, force bool) error
	write(ctx context.Context, items []item, jobs int, progress func(int64)) error
	finish(ctx context.Context, roots []string) error
}

// Run restores one backup: it checks every target directory (empty, or --force), lays
// out the data directory and tablespaces (pg_tblspc links pointing to the targets),
// writes the files with parallel workers, leaves backup_manifest in DEST, sets up
// recovery (postgresql.auto.conf appended, recovery.signal) and syncs once at the end.
func Run(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	b := o.Choice.Backup
	res := Result{Server: o.Server, BackupID: b.ID, Dest: o.Dest, Timeline: o.Choice.TLI, Target: o.Target.String(), WALMode: o.WAL, Archive: o.Archive}
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
	settings = append(settings, ArchiveSettings(o.Archive)...)
	settings = append(settings, o.ExtraSettings...)
	confText := RenderSettings(header(o.Server, b.ID, o.Target, time.Now()), settings)

	items, err := buildItems(o, entries, tsRoot, confText, manifest, wal)
	if err != nil {
		return res, err
	}
	roots := []string{o.Dest}
	for _, t := range ts {
		roots = append(roots, t.Target)
	}

	var sk sink
	if o.Remote != nil {
		sk = &sshSink{argv: o.Remote, log: o.Log, labels: targetLabels(o.Dest, ts)}
	} else {
		sk = &localSink{owner: o.Owner}
	}
	if err := sk.prepare(ctx, roots, o.Force); err != nil {
		return res, err
	}
	var total int64
	for _, it := range items {
		if it.kind == 'f' && it.size > 0 {
			total += it.size
		}
		if it.kind == 'f' {
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
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	if err := sk.write(ctx, items, jobs, progress); err != nil {
		return res, err
	}
	if err := sk.finish(ctx, roots); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// tablespaceTargets maps each tablespace of the backup to where it is restored.
func tablespaceTargets(b catalog.Backup, relocate map[string]string, dest string) ([]TablespaceTarget, error) {
	known := map[string]bool{}
	var names []string
	for _, t := range b.Tablespaces {
		known[t.Name] = true
		names = append(names, t.Name)
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
		target := t.Location
		if p, ok := relocate[t.Name]; ok {
			target = p
		}
		if !filepath.IsAbs(target) {
			return nil, usage("--tablespace %s:%s: the path must be absolute", t.Name, target)
		}
		target = filepath.Clean(target)
		if within(target, dest) || within(dest, target) {
			return nil, usage("tablespace %s would be restored to %s, which overlaps the destination %s: relocate it with --tablespace %s:PATH", t.Name, target, dest, t.Name)
		}
		if other, dup := seen[target]; dup {
			return nil, usage("tablespaces %s and %s would both be restored to %s", other, t.Name, target)
		}
		seen[target] = t.Name
		out = append(out, TablespaceTarget{OID: t.OID, Name: t.Name, Location: t.Location, Target: target})
	}
	return out, nil
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// buildItems turns the backup's entries plus restore's own files into the list of
// things to create: directories first (parents before children), then links, then
// files, largest first so the workers finish together.
func buildItems(o Options, entries []Entry, tsRoot map[uint32]string, confText string, manifest []byte, wal []walFile) ([]item, error) {
	var dirs, links, files []item
	seenDir := map[string]bool{}
	haveAuto := false
	src := o.Source
	for _, e := range entries {
		root := o.Dest
		if e.Tablespace != 0 {
			r, ok := tsRoot[e.Tablespace]
			if !ok {
				return nil, fmt.Errorf("backup %s: entry %s belongs to tablespace %d, which backup.info does not list", o.Choice.Backup.ID, e.Path, e.Tablespace)
			}
			root = r
		}
		rel := path.Clean(e.Path)
		if rel == "." || rel == "" {
			continue
		}
		if strings.HasPrefix(rel, "../") || rel == ".." || path.IsAbs(rel) {
			return nil, fmt.Errorf("backup %s: entry %q escapes its directory", o.Choice.Backup.ID, e.Path)
		}
		mode := os.FileMode(e.Mode).Perm()
		e := e
		switch e.Type {
		case "dir":
			if mode == 0 {
				mode = 0o700
			}
			dirs = append(dirs, item{root: root, rel: rel, kind: 'd', mode: mode, mtime: e.ModTime})
			seenDir[root+"\x00"+rel] = true
		case "symlink":
			if e.Tablespace == 0 && path.Dir(rel) == "pg_tblspc" {
				if oid, err := strconv.ParseUint(path.Base(rel), 10, 32); err == nil {
					if _, ok := tsRoot[uint32(oid)]; ok {
						continue // replaced by a link to the (relocated) target below
					}
				}
			}
			links = append(links, item{root: root, rel: rel, kind: 'l', link: e.Link})
		case "file":
			if mode == 0 {
				mode = 0o600
			}
			it := item{root: root, rel: rel, kind: 'f', mode: mode, mtime: e.ModTime, size: e.Size,
				open: func(ctx context.Context) (io.ReadCloser, error) { return src.Open(ctx, e) }}
			if e.Tablespace == 0 {
				switch rel {
				case "postgresql.auto.conf":
					haveAuto = true
					it.size = -1
					it.open = func(ctx context.Context) (io.ReadCloser, error) {
						r, err := src.Open(ctx, e)
						if err != nil {
							return nil, err
						}
						defer r.Close()
						orig, err := io.ReadAll(r)
						if err != nil {
							return nil, fmt.Errorf("postgresql.auto.conf: %w", err)
						}
						if len(orig) > 0 && orig[len(orig)-1] != '\n' {
							orig = append(orig, '\n')
						}
						return io.NopCloser(bytes.NewReader(append(orig, confText...))), nil
					}
				case "tablespace_map":
					it.size = -1
					it.open = func(ctx context.Context) (io.ReadCloser, error) {
						r, err := src.Open(ctx, e)
						if err != nil {
							return nil, err
						}
						defer r.Close()
						data, err := io.ReadAll(r)
						if err != nil {
							return nil, fmt.Errorf("tablespace_map: %w", err)
						}
						return io.NopCloser(bytes.NewReader(rewriteTablespaceMap(data, tsRoot))), nil
					}
				case "backup_manifest", "recovery.signal", "standby.signal", "postmaster.pid", "postmaster.opts":
					continue // restore writes its own; a running server's files never apply
				}
			}
			files = append(files, it)
		default:
			return nil, fmt.Errorf("backup %s: entry %s has unknown type %q", o.Choice.Backup.ID, e.Path, e.Type)
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
		files = append(files, mem("postgresql.auto.conf", []byte("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n"+confText)))
	}
	signal := "recovery.signal"
	if o.Standby {
		signal = "standby.signal"
	}
	files = append(files, mem(signal, nil))
	if manifest != nil {
		files = append(files, mem("backup_manifest", manifest))
	}
	if o.WAL == WALCopy {
		addDir(CopyWALDir)
		for _, w := range wal {
			w := w
			files = append(files, item{root: o.Dest, rel: CopyWALDir + "/" + w.name, kind: 'f', mode: 0o600, mtime: now, size: w.size, wal: true,
				open: func(ctx context.Context) (io.ReadCloser, error) { return w.open(ctx, o.Store) }})
		}
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		if dirs[i].root != dirs[j].root {
			return dirs[i].root < dirs[j].root
		}
		return strings.Count(dirs[i].rel, "/") < strings.Count(dirs[j].rel, "/")
	})
	sort.SliceStable(files, func(i, j int) bool { return files[i].size > files[j].size })
	out := make([]item, 0, len(dirs)+len(links)+len(files))
	out = append(out, dirs...)
	out = append(out, links...)
	return append(out, files...), nil
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
