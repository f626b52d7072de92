package restore

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/textout"
)

// Placement is where `walkeeper restore` writes and how its WAL is served, as the
// command line asks (--get-wal, --copy-wal, --remote-ssh-command, DEST, --tablespace).
type Placement struct {
	Dest             string
	Tablespaces      []string // NAME:PATH
	GetWAL, CopyWAL  bool
	Prefetch         int
	RemoteSSHCommand string
}

// Placed is a checked Placement: the WAL mode, the ssh command (nil for a local
// restore) and absolute paths.
type Placed struct {
	WAL         string
	Remote      []string
	Dest        string
	Tablespaces map[string]string
}

// Place checks a Placement: a remote restore copies its WAL and takes absolute paths
// only; a local one makes its paths absolute. Bad usage is a UsageError.
func Place(p Placement) (Placed, error) {
	out := Placed{WAL: WALGet, Dest: p.Dest}
	reloc, err := ParseRelocations(p.Tablespaces)
	if err != nil {
		return out, err
	}
	if p.RemoteSSHCommand != "" {
		if p.GetWAL {
			return out, usage("--get-wal with --remote-ssh-command: the restore_command would need walkeeper, its configuration and the archive on the remote host; use --copy-wal (the default for remote restores)")
		}
		if out.Remote, err = SplitCommand(p.RemoteSSHCommand); err != nil {
			return out, err
		}
		out.WAL = WALCopy
		if !filepath.IsAbs(p.Dest) {
			return out, usage("DEST %q: a remote destination must be an absolute path", p.Dest)
		}
	}
	if p.CopyWAL {
		out.WAL = WALCopy
	}
	if p.Prefetch < 0 || p.Prefetch > 64 {
		return out, usage("--prefetch %d: want 0 to 64", p.Prefetch)
	}
	if out.Remote == nil {
		if out.Dest, err = filepath.Abs(p.Dest); err != nil {
			return out, err
		}
	}
	for name, path := range reloc {
		if out.Remote == nil {
			if reloc[name], err = filepath.Abs(path); err != nil {
				return out, err
			}
		} else if !filepath.IsAbs(path) {
			return out, usage("--tablespace %s:%s: a remote path must be absolute", name, path)
		}
	}
	out.Tablespaces = reloc
	return out, nil
}

// WriteText renders a finished restore of backup b for a DBA: what was written where,
// the recovery target, the WAL and the archiving it was given, how to start it.
func (res Result) WriteText(w io.Writer, b record.Backup) {
	where := res.Dest
	if res.Remote != "" {
		where = res.Remote + ":" + res.Dest
	}
	fmt.Fprintf(w, "restored backup %s of %s (ended %s) into %s: %d files, %s in %.1fs\n",
		b.ID, res.Server, b.EndTime.UTC().Format("2006-01-02 15:04:05 UTC"), where, res.Files, textout.Bytes(res.Bytes), res.Seconds)
	for _, t := range res.Tablespaces {
		fmt.Fprintf(w, "tablespace %s (oid %d): %s\n", t.Name, t.OID, t.Target)
	}
	fmt.Fprintf(w, "recovery: to %s on timeline %d\n", res.Target, res.Timeline)
	if res.WALMode == WALCopy {
		fmt.Fprintf(w, "WAL: %d files (%s) copied into %s/%s\n", res.WALFiles, textout.Bytes(res.WALBytes), res.Dest, CopyWALDir)
	}
	fmt.Fprintf(w, "restore_command = '%s'\n", res.RestoreCommand)
	if res.Archive {
		fmt.Fprintf(w, "archiving: as the backed-up server (--archive): once promoted it archives into %s's archive\n", res.Server)
	} else {
		fmt.Fprintln(w, "archiving: off (archive_mode = off in postgresql.auto.conf, which wins over postgresql.conf; --archive keeps the server's archive settings)")
	}
	pgctl := "pg_ctl"
	if res.PGBin != "" {
		pgctl = ShellQuote(filepath.Join(res.PGBin, "pg_ctl"))
	} else if res.PGBinNote != "" && b.PGVersion > 0 {
		fmt.Fprintf(w, "binaries: %s; start it with PostgreSQL %d's pg_ctl\n", res.PGBinNote, b.PGVersion/10000)
	}
	if res.Owner != "" {
		fmt.Fprintf(w, "owner: %s (restore ran as root; PostgreSQL runs as the data directory's owner)\n", res.Owner)
		fmt.Fprintf(w, "start it with: su %s -c %s\n", res.Owner, ShellQuote(pgctl+" -D "+ShellQuote(res.Dest)+" start"))
		return
	}
	fmt.Fprintf(w, "start it with: %s -D %s start\n", pgctl, res.Dest)
}
