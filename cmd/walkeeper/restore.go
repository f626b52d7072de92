package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/progress"
	"github.com/walkeeper/walkeeper/internal/remotewal"
	"github.com/walkeeper/walkeeper/internal/restore"
)

// TargetOptions are the recovery target flags restore and sandbox share.
type TargetOptions struct {
	TargetTime      string `name:"target-time" placeholder:"TIME" help:"Recover to this time; it must carry a zone: \"2026-11-24 15:04:05+00\" or RFC 3339."`
	TargetXID       string `name:"target-xid" placeholder:"XID" help:"Recover to this transaction id."`
	TargetName      string `name:"target-name" placeholder:"NAME" help:"Recover to this restore point (pg_create_restore_point)."`
	TargetLSN       string `name:"target-lsn" placeholder:"LSN" help:"Recover to this WAL position (X/Y)."`
	TargetImmediate bool   `name:"target-immediate" help:"Stop as soon as the backup is consistent."`
	TargetExclusive bool   `name:"target-exclusive" help:"Stop just before the target (time, xid, lsn) instead of just after it."`
	TargetAction    string `name:"target-action" placeholder:"pause|promote|shutdown" help:"What PostgreSQL does at the target (default pause, as PostgreSQL)."`
	TargetTLI       string `name:"target-tli" placeholder:"N|current|latest" help:"Timeline to follow (default: the newest timeline the backup can reach)."`
}

func (f TargetOptions) parse() (restore.Target, error) {
	return restore.ParseTarget(restore.TargetFlags{Time: f.TargetTime, XID: f.TargetXID, Name: f.TargetName, LSN: f.TargetLSN,
		Immediate: f.TargetImmediate, Exclusive: f.TargetExclusive, Action: f.TargetAction, TLI: f.TargetTLI})
}

// cliErr maps restore's usage errors to exit status 2.
func cliErr(err error) error {
	if err != nil && restore.IsUsage(err) {
		return &exitError{code: 2, err: err}
	}
	return err
}

// RestoreCmd restores a backup, optionally to a point in time.
type RestoreCmd struct {
	Server string `arg:"" help:"Server name."`
	ID     string `arg:"" help:"Backup id, name, latest, oldest, or auto (the newest backup that can reach the target)."`
	Dest   string `arg:"" help:"Data directory to create (must be empty or missing, unless --force)."`
	TargetOptions
	Tablespace       []string `sep:"none" placeholder:"NAME:PATH" help:"Restore tablespace NAME (its name or OID) to PATH instead of its original location (repeatable)."`
	GetWAL           bool     `name:"get-wal" xor:"walmode" help:"restore_command calls this walkeeper (get-wal with prefetch); the default for local restores."`
	CopyWAL          bool     `name:"copy-wal" xor:"walmode" help:"Copy exactly the WAL needed into DEST/pg_wal/walkeeper_wal (restore_command = cp); the default for remote restores."`
	Prefetch         int      `default:"8" help:"Segments get-wal decompresses ahead of replay (--get-wal)."`
	Force            bool     `help:"Overwrite non-empty target directories (their content is removed first). Never allowed for walkeeper's home or anything inside or above it, nor for a directory a running PostgreSQL uses."`
	Archive          bool     `help:"Let the restored cluster archive as the backed-up server did (its archive_command comes with the backup), into this server's archive once promoted. Off by default: walkeeper writes archive_mode = off into postgresql.auto.conf, which wins over postgresql.conf (use this flag for a standby with archive_mode = always)."`
	Jobs             int      `help:"Parallel extraction workers (default: the server's parallel_jobs, else all cores)."`
	RemoteSSHCommand string   `name:"remote-ssh-command" placeholder:"\"ssh user@host\"" help:"Write the cluster on another host through this ssh command (GNU tar needed there). Its WAL is copied up front (--copy-wal) unless --wal-ssh-command is given."`
	WALSSHCommand    string   `name:"wal-ssh-command" placeholder:"\"ssh walkeeper@backup\"" help:"How the restored host reaches this backup host: restore_command fetches each WAL file on demand through this ssh command (this host's get-wal writing to standard output). Implies --get-wal; needs no walkeeper on the restored host."`
	RemoteWalkeeper  string   `name:"remote-walkeeper" placeholder:"PATH" help:"walkeeper's path on the restored host: restore_command runs its get-wal --ssh (with --prefetch) instead of ssh alone."`
	Standby          bool     `help:"Bring the cluster up as a standby (standby.signal) that follows the archive through restore_command, and the primary with --primary-conninfo; takes no recovery target."`
	PrimaryConninfo  string   `name:"primary-conninfo" placeholder:"CONNINFO" help:"With --standby: primary_conninfo, to stream from the primary as well (use ~/.pgpass for the password)."`
	PGBin            string   `name:"pg-bin" placeholder:"DIR" help:"PostgreSQL bin directory the restored cluster will be started with: refused before anything is written unless its postgres is of the backup's major; named in the start command (default: found from the backup's version, as sandbox does). Local restores only."`
}

// selfCommand is this walkeeper and its configuration file, as absolute paths, for
// the commands PostgreSQL or a detached process run (restore_command, prefetch-wal).
func (a *App) selfCommand() (bin, cfgFile string, err error) {
	if bin, err = fsutil.Executable(); err != nil {
		return "", "", err
	}
	cfg, err := a.Config()
	if err != nil {
		return "", "", err
	}
	cfgFile, err = filepath.Abs(cfg.File)
	return bin, cfgFile, err
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Run implements the command.
func (c *RestoreCmd) Run(a *App) error {
	ctx, cancel := signalContext()
	defer cancel()
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	t, err := c.parse()
	if err != nil {
		return cliErr(err)
	}
	opts, err := restore.Prepare(ctx, a.Store(), srv, restore.Command{Placement: restore.Placement{Dest: c.Dest, Tablespaces: c.Tablespace,
		GetWAL: c.GetWAL, CopyWAL: c.CopyWAL, Prefetch: c.Prefetch, RemoteSSHCommand: c.RemoteSSHCommand, WALSSHCommand: c.WALSSHCommand,
		RemoteBinary: c.RemoteWalkeeper, Standby: c.Standby, PrimaryConninfo: c.PrimaryConninfo, Target: t},
		ID: c.ID, Force: c.Force, Archive: c.Archive, Jobs: c.Jobs, PGBin: c.PGBin, Progress: progress.AdderOnTerminal("restoring"), Log: a.log, Self: a.selfCommand})
	if err != nil {
		return cliErr(err)
	}
	res, err := restore.Run(ctx, opts)
	if err != nil {
		return cliErr(err)
	}
	if w := restore.ArchiveLagWarning(srv.Name, srv.IncomingDir(), func() bool { return a.Daemon() != nil }, t); w != "" {
		fmt.Fprintln(os.Stderr, w)
	}
	return a.output(res, func(w io.Writer) { res.WriteText(w, opts.Choice.Backup) })
}

// GetWALCmd is restore_command's helper.
type GetWALCmd struct {
	Server        string `arg:"" help:"Server name."`
	WALName       string `arg:"" name:"walname" help:"The WAL file name PostgreSQL asks for (%f)."`
	Dest          string `arg:"" help:"Where to write it (%p), or - for standard output."`
	Prefetch      int    `default:"0" help:"Decompress the next N segments ahead into a spool (beside %p, in walkeeper_spool/) from a background process, and link each into pg_wal marked as PostgreSQL marks a restored file (.done, .ready under archive_mode = always); such a segment is answered with a silent exit 1 so that PostgreSQL reads it from pg_wal."`
	Spool         string `placeholder:"DIR" help:"Spool directory for --prefetch (default: walkeeper_spool beside DEST)."`
	Standby       bool   `help:"The asking cluster is a standby: never serve a .partial for a segment not archived complete (decided from DEST's data directory otherwise; needed with - as DEST)."`
	SSH           string `name:"ssh" placeholder:"CMD" help:"Fetch from the backup host's walkeeper through this ssh command (\"ssh walkeeper@backup\"), on a host without the archive; no configuration file is read here. With --prefetch the prefetcher streams segments over one ssh session."`
	RemoteCommand string `placeholder:"CMD" help:"With --ssh: the walkeeper command on the backup host (default: walkeeper)."`
}

// Validate refuses --remote-command without --ssh (kong: a usage error, exit 2).
func (c *GetWALCmd) Validate() error { return remotewal.NeedsSSH(c.SSH, c.RemoteCommand) }

// Run implements the command.
func (c *GetWALCmd) Run(a *App) error {
	if c.Prefetch < 0 || c.Prefetch > 64 {
		return usageErr("--prefetch %d: want 0 to 64", c.Prefetch)
	}
	if c.SSH != "" { // on a host without the archive (restore.GetSSH)
		from, err := restore.GetSSH(context.Background(), restore.SSHGet{SSH: c.SSH, RemoteCommand: c.RemoteCommand,
			Server: c.Server, Prefetch: c.Prefetch, Spool: c.Spool, Standby: c.Standby}, c.WALName, c.Dest)
		return c.result(c.Server, from, err)
	}
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	o := restore.GetOptions{Prefetch: c.Prefetch, SpoolDir: c.Spool, StreamingDir: srv.StreamingDir(), IncomingDir: srv.IncomingDir(), NoPartial: c.Standby}
	if c.Prefetch > 0 {
		o.StartPrefetcher = func(spool string) error { return a.startPrefetcher(srv, spool) }
	}
	from, err := restore.Get(context.Background(), a.Store(), srv.Name, c.WALName, c.Dest, o)
	return c.result(srv.Name, from, err)
}

// result maps get-wal's outcome to its exit status for PostgreSQL.
func (c *GetWALCmd) result(server, from string, err error) error {
	if code, err := restore.ExitStatus(server, c.WALName, c.Dest, from, c.Standby, err); code != 0 {
		return &exitError{code: code, err: err}
	}
	return nil
}

// startPrefetcher launches `walkeeper prefetch-wal` detached.
func (a *App) startPrefetcher(srv *config.Server, spool string) error {
	bin, cfgFile, err := a.selfCommand()
	if err != nil {
		return err
	}
	return restore.StartPrefetcher(bin, cfgFile, srv.Name, spool)
}

// PrefetchWALCmd is get-wal's background prefetcher (started by get-wal --prefetch).
type PrefetchWALCmd struct {
	Server        string `arg:"" help:"Server name."`
	Spool         string `arg:"" help:"Spool directory."`
	Jobs          int    `default:"1" help:"Decompression workers."`
	SSH           string `name:"ssh" placeholder:"CMD" help:"Read the archive through this ssh command (get-wal --ssh)."`
	RemoteCommand string `placeholder:"CMD" help:"With --ssh: the walkeeper command on the backup host."`
}

// Run implements the command.
func (c *PrefetchWALCmd) Run(a *App) error {
	open, err := restore.SSHSource(c.SSH, c.RemoteCommand, c.Server)
	if c.SSH == "" {
		srv, serr := a.Server(c.Server)
		if serr != nil {
			return serr
		}
		open, err = restore.StoreOpener(a.Store(), srv.Name), nil
	}
	if err != nil {
		return cliErr(err)
	}
	// At most --jobs cores run its Go code, the garbage collector's included: with the
	// runtime's default (every core), decoding and collecting took both cores of a
	// 2-core host at times, and PostgreSQL's startup process, which replays on one
	// core, waited for a core 2.3 s per GiB of WAL instead of 0.6 s.
	runtime.GOMAXPROCS(max(1, c.Jobs))
	if err := restore.LowerPriority(10); err != nil {
		a.log.Debug("prefetch", "error", err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	st, err := restore.PrefetchFrom(ctx, c.Spool, c.Jobs, open)
	a.log.Debug("prefetch done", "fetched", st.Fetched, "bytes", st.Bytes)
	return err
}

// SandboxCmd is the flashback sandbox.
type SandboxCmd struct {
	Start  SandboxStartCmd  `cmd:"" default:"withargs" help:"Restore into a scratch directory and start PostgreSQL as a hot standby, read-only at the server level, paused at the target (or, with --target-action promote, recovered to it and restarted as a standby with nothing to replay); loopback and unix socket only, never archiving."`
	Stop   SandboxStopCmd   `cmd:"" help:"Stop a server's sandbox and remove its scratch directory."`
	Status SandboxStatusCmd `cmd:"" help:"Show sandboxes."`
}

// SandboxStartCmd starts a sandbox.
type SandboxStartCmd struct {
	Server string `arg:"" help:"Server name."`
	ID     string `arg:"" optional:"" help:"Backup id, name, latest, oldest or auto (default: auto for --target-time/--target-lsn, else latest)."`
	TargetOptions
	Dir        string        `placeholder:"DIR" help:"Scratch directory (default <home>/<server>/sandbox)."`
	Port       int           `help:"TCP port on 127.0.0.1 (default: a free one)."`
	PGBin      string        `name:"pg-bin" placeholder:"DIR" help:"PostgreSQL bin directory (default: found from the backup's version)."`
	Tablespace []string      `sep:"none" placeholder:"NAME:PATH" help:"Where to put tablespace NAME (its name or OID; default: inside the scratch directory)."`
	Prefetch   int           `default:"8" help:"get-wal prefetch depth."`
	Timeout    time.Duration `default:"10m" help:"How long to wait for replay to pause at the target."`
}

// Run implements the command.
func (c *SandboxStartCmd) Run(a *App) error {
	ctx, cancel := signalContext()
	defer cancel()
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	t, err := c.parse()
	if err != nil {
		return cliErr(err)
	}
	bin, cfgFile, err := a.selfCommand()
	if err != nil {
		return err
	}
	sb, err := restore.StartSandbox(ctx, restore.SandboxOptions{Server: srv.Name, ServerDir: srv.Dir(), Store: a.Store(),
		IncomingDir: srv.IncomingDir(), StreamingDir: srv.StreamingDir(), Target: t, ID: c.ID, Root: c.Dir, Port: c.Port,
		PGBin: c.PGBin, Tablespaces: c.Tablespace, Binary: bin, ConfigFile: cfgFile, Prefetch: c.Prefetch,
		User: pgutil.ConnUser(srv.Conninfo), Jobs: srv.ParallelJobs, Timeout: c.Timeout,
		Guard: restore.GuardFor(srv, []string{restore.DefaultSandboxRoot(srv.Dir())}), Progress: progress.AdderOnTerminal("restoring sandbox"), Log: a.log})
	if err != nil {
		return cliErr(err)
	}
	if a.g.JSON {
		return a.printJSON(map[string]any{"sandbox": sb.State, "conninfo": sb.State.Conninfo("postgres"), "replay_lsn": sb.ReplayLSN,
			"last_transaction": sb.LastTransaction, "locked_relations": sb.Locked, "restore": sb.Restore})
	}
	sb.WriteText(a.out)
	return nil
}

// SandboxStopCmd stops a sandbox.
type SandboxStopCmd struct {
	Server string `arg:"" help:"Server name."`
}

// Run implements the command.
func (c *SandboxStopCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	st, err := restore.StopSandboxOf(context.Background(), srv.Dir(), srv.Name)
	if err != nil {
		return err
	}
	return a.output(map[string]any{"server": srv.Name, "stopped": true, "removed": st.Root},
		func(w io.Writer) { fmt.Fprintf(w, "sandbox of %s stopped, %s removed\n", srv.Name, st.Root) })
}

// SandboxStatusCmd lists sandboxes.
type SandboxStatusCmd struct {
	Servers []string `arg:"" optional:"" help:"Servers (default: all)."`
}

// Run implements the command.
func (c *SandboxStatusCmd) Run(a *App) error {
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	names := c.Servers
	if len(names) == 0 {
		names = cfg.ServerNames()
	}
	var dirs []string
	for _, n := range names {
		srv, err := cfg.Server(n)
		if err != nil {
			return err
		}
		dirs = append(dirs, srv.Dir())
	}
	out, err := restore.ReadSandboxStatuses(context.Background(), dirs)
	if err != nil {
		return err
	}
	return a.output(out, func(w io.Writer) { restore.WriteSandboxTable(w, out) })
}
