package restore

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/textout"
)

// Placement is where `walkeeper restore` writes and how its WAL is served, as the
// command line asks (--get-wal, --copy-wal, --remote-ssh-command, --wal-ssh-command,
// --remote-walkeeper, --standby, --primary-conninfo, DEST, --tablespace).
type Placement struct {
	Dest             string
	Tablespaces      []string // NAME:PATH
	GetWAL, CopyWAL  bool
	Prefetch         int
	RemoteSSHCommand string
	// WALSSHCommand is how the restored host reaches this backup host ("ssh
	// walkeeper@backup"): its restore_command fetches each WAL file through it.
	WALSSHCommand string
	// RemoteBinary is walkeeper's path on the restored host (its get-wal --ssh, with
	// prefetch); empty: the restored host has no walkeeper, ssh runs this host's.
	RemoteBinary string
	// Standby brings the cluster up as a standby following the archive (and the
	// primary when PrimaryConninfo is set).
	Standby         bool
	PrimaryConninfo string
	// Target is the recovery target asked for (refused with Standby).
	Target Target
}

// Placed is a checked Placement: the WAL mode, the ssh commands (nil for a local
// restore, nil for WAL read on this host) and absolute paths.
type Placed struct {
	WAL         string
	Remote      []string
	Dest        string
	Tablespaces map[string]string
	// WALSSH is the restored host's ssh command back to this host (split).
	WALSSH          []string
	WALSSHCommand   string
	RemoteBinary    string
	Standby         bool
	PrimaryConninfo string
}

// Place checks a Placement: a remote restore copies its WAL unless the restored host
// can fetch it back through --wal-ssh-command, and takes absolute paths only; a local
// one makes its paths absolute. A standby takes no recovery target and needs WAL that
// goes on arriving. Bad usage is a UsageError.
func Place(p Placement) (Placed, error) {
	out := Placed{WAL: WALGet, Dest: p.Dest, Standby: p.Standby, PrimaryConninfo: p.PrimaryConninfo, RemoteBinary: p.RemoteBinary}
	reloc, err := ParseRelocations(p.Tablespaces)
	if err != nil {
		return out, err
	}
	if err := checkStandby(p); err != nil {
		return out, err
	}
	if p.WALSSHCommand != "" {
		if p.CopyWAL {
			return out, usage("--wal-ssh-command with --copy-wal: the first fetches WAL on demand through ssh, the second copies it up front; choose one")
		}
		if out.WALSSH, err = SplitCommand(p.WALSSHCommand); err != nil {
			return out, fmt.Errorf("--wal-ssh-command: %w", err)
		}
		out.WALSSHCommand = p.WALSSHCommand
	} else if p.RemoteBinary != "" {
		return out, usage("--remote-walkeeper %s: it fetches WAL through --wal-ssh-command, which is not given", p.RemoteBinary)
	}
	if p.RemoteBinary != "" && !filepath.IsAbs(p.RemoteBinary) {
		return out, usage("--remote-walkeeper %q: must be an absolute path (restore_command runs it)", p.RemoteBinary)
	}
	if p.RemoteSSHCommand != "" {
		if p.GetWAL && out.WALSSH == nil {
			return out, usage("--get-wal with --remote-ssh-command: the restored host fetches its WAL from this host through ssh: give --wal-ssh-command \"ssh USER@THIS-HOST\" (as the restored host reaches this one), or use --copy-wal")
		}
		if out.Remote, err = SplitCommand(p.RemoteSSHCommand); err != nil {
			return out, err
		}
		if out.WALSSH == nil {
			out.WAL = WALCopy
		}
		if !filepath.IsAbs(p.Dest) {
			return out, usage("DEST %q: a remote destination must be an absolute path", p.Dest)
		}
	}
	if p.CopyWAL {
		out.WAL = WALCopy
	}
	if p.Standby && out.WAL == WALCopy && p.PrimaryConninfo == "" {
		how, what := "--get-wal (the default of a local restore)", "--standby with --copy-wal"
		if out.Remote != nil {
			how = "--wal-ssh-command \"ssh USER@THIS-HOST\""
			if !p.CopyWAL {
				what = "--standby with --remote-ssh-command alone (its WAL is copied up front)"
			}
		}
		return out, usage("%s: the copied WAL ends where the archive ends now, and the standby would never replay more; fetch WAL from the archive with %s, or give --primary-conninfo to stream the rest from the primary", what, how)
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

// checkStandby refuses what makes no sense with --standby, or without it.
//
// A recovery target is refused with --standby: a standby follows its primary's WAL
// with no end, and PostgreSQL would stop it at the target instead (pause, promote or
// shut down there), which is a point-in-time restore or the sandbox, not a standby.
// --target-tli stays allowed: latest (the default) follows later promotions, a number
// keeps the standby on that timeline.
func checkStandby(p Placement) error {
	t := p.Target
	if !p.Standby {
		if p.PrimaryConninfo != "" {
			return usage("--primary-conninfo is for a standby: add --standby")
		}
		return nil
	}
	var given []string
	switch {
	case !t.Time.IsZero():
		given = append(given, "--target-time")
	case t.XID != "":
		given = append(given, "--target-xid")
	case t.Name != "":
		given = append(given, "--target-name")
	case t.HasLSN:
		given = append(given, "--target-lsn")
	case t.Immediate:
		given = append(given, "--target-immediate")
	}
	// --target-action and --target-exclusive come only with one of those (ParseTarget
	// refuses them alone), which names the refusal.
	if len(given) > 0 {
		return usage("--standby with %s: a standby follows the archive with no end, and a recovery target would stop it there; restore without --standby for a point in time, or use `walkeeper sandbox` for a read-only copy paused at one", strings.Join(given, ", "))
	}
	return nil
}

// RestoreCommand is the restore_command a placed --get-wal restore writes: this
// walkeeper (bin, configFile) reading the archive on this host, or the archive fetched
// through --wal-ssh-command (with the restored host's own walkeeper when
// --remote-walkeeper names it).
func (p Placed) RestoreCommand(bin, configFile, server string, prefetch int) string {
	switch {
	case p.WALSSH == nil:
		return GetWALCommand(bin, configFile, server, prefetch)
	case p.RemoteBinary != "":
		remote := ShellQuote(bin)
		if configFile != "" {
			remote += " --config " + ShellQuote(configFile)
		}
		return GetWALSSHCommand(p.RemoteBinary, p.WALSSHCommand, remote, server, prefetch)
	default:
		return SSHGetWALCommand(p.WALSSH, bin, configFile, server, p.Standby)
	}
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
	if res.Standby {
		streams := ", streaming nothing (no --primary-conninfo)"
		if res.PrimaryConninfo != "" {
			streams = fmt.Sprintf(" and streams from primary_conninfo %q", res.PrimaryConninfo)
		}
		fmt.Fprintf(w, "standby (standby.signal): follows the archive through restore_command%s, from timeline %d on\n", streams, res.Timeline)
	} else {
		fmt.Fprintf(w, "recovery: to %s on timeline %d\n", res.Target, res.Timeline)
	}
	if res.WALMode == WALCopy {
		fmt.Fprintf(w, "WAL: %d files (%s) copied into %s/%s\n", res.WALFiles, textout.Bytes(res.WALBytes), res.Dest, CopyWALDir)
	}
	fmt.Fprintf(w, "restore_command = %s\n", QuoteConf(res.RestoreCommand))
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
	if res.Remote != "" {
		fmt.Fprintf(w, "start it on the remote host, as the ssh user, with: %s -D %s start\n", pgctl, res.Dest)
		return
	}
	fmt.Fprintf(w, "start it with: %s -D %s start\n", pgctl, res.Dest)
}
