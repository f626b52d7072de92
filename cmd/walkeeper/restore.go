package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/schollz/progressbar/v3"

	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/pgutil"
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
	Tablespace       []string `sep:"none" placeholder:"NAME:PATH" help:"Restore tablespace NAME to PATH instead of its original location (repeatable)."`
	GetWAL           bool     `name:"get-wal" xor:"walmode" help:"restore_command calls this walkeeper (get-wal with prefetch); the default for local restores."`
	CopyWAL          bool     `name:"copy-wal" xor:"walmode" help:"Copy exactly the WAL needed into DEST/pg_wal/walkeeper_wal (restore_command = cp); the default for remote restores."`
	Prefetch         int      `default:"8" help:"Segments get-wal decompresses ahead of replay (--get-wal)."`
	Force            bool     `help:"Overwrite non-empty target directories (their content is removed first). Never allowed for walkeeper's home or anything inside or above it, nor for a directory a running PostgreSQL uses."`
	Archive          bool     `help:"Let the restored cluster archive as the backed-up server did (its archive_command comes with the backup), into this server's archive once promoted. Off by default: walkeeper writes archive_mode = off."`
	Jobs             int      `help:"Parallel extraction workers (default: the server's parallel_jobs, else all cores)."`
	RemoteSSHCommand string   `name:"remote-ssh-command" placeholder:"\"ssh user@host\"" help:"Write the cluster on another host through this ssh command (GNU tar needed there; implies --copy-wal)."`
}

func parseRelocations(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		name, p, ok := strings.Cut(s, ":")
		if !ok || name == "" || p == "" {
			return nil, usageErr("--tablespace %q: want NAME:PATH", s)
		}
		if _, dup := out[name]; dup {
			return nil, usageErr("--tablespace %s given twice", name)
		}
		out[name] = p
	}
	return out, nil
}

// selfBinary is this walkeeper's absolute path, for restore_command.
func selfBinary() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return filepath.Abs(p)
}

func (a *App) configFile() (string, error) {
	cfg, err := a.Config()
	if err != nil {
		return "", err
	}
	return filepath.Abs(cfg.File)
}

// chooseBackup resolves ID (or auto) and validates the target against it.
func chooseBackup(ctx context.Context, src restore.Source, tl *restore.Timelines, id string, t restore.Target) (restore.Choice, error) {
	backups, err := src.Backups(ctx)
	if err != nil {
		return restore.Choice{}, err
	}
	if id == "auto" {
		return restore.ChooseAuto(backups, t, tl)
	}
	b, err := src.Resolve(backups, id)
	if err != nil {
		return restore.Choice{}, err
	}
	return restore.CheckBackup(b, t, tl)
}

func progressFor(desc string) func(total int64) func(int64) {
	if !interactive() {
		return nil
	}
	return func(total int64) func(int64) {
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		return func(n int64) { _ = bar.Add64(n) }
	}
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
	reloc, err := parseRelocations(c.Tablespace)
	if err != nil {
		return err
	}
	var remote []string
	mode := restore.WALGet
	if c.RemoteSSHCommand != "" {
		if c.GetWAL {
			return usageErr("--get-wal with --remote-ssh-command: the restore_command would need walkeeper, its configuration and the archive on the remote host; use --copy-wal (the default for remote restores)")
		}
		if remote, err = restore.SplitCommand(c.RemoteSSHCommand); err != nil {
			return cliErr(err)
		}
		mode = restore.WALCopy
		if !filepath.IsAbs(c.Dest) {
			return usageErr("DEST %q: a remote destination must be an absolute path", c.Dest)
		}
	}
	if c.CopyWAL {
		mode = restore.WALCopy
	}
	if c.Prefetch < 0 || c.Prefetch > 64 {
		return usageErr("--prefetch %d: want 0 to 64", c.Prefetch)
	}
	dest := c.Dest
	if remote == nil {
		if dest, err = filepath.Abs(c.Dest); err != nil {
			return err
		}
	}
	for name, p := range reloc {
		if remote == nil {
			if reloc[name], err = filepath.Abs(p); err != nil {
				return err
			}
		} else if !filepath.IsAbs(p) {
			return usageErr("--tablespace %s:%s: a remote path must be absolute", name, p)
		}
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	src := restore.NewSource(store, srv.Name)
	tl, err := restore.LoadTimelines(ctx, store, srv.Name, srv.IncomingDir())
	if err != nil {
		return err
	}
	choice, err := chooseBackup(ctx, src, tl, c.ID, t)
	if err != nil {
		return cliErr(err)
	}
	opts := restore.Options{
		Server: srv.Name, Source: src, Store: store, Timelines: tl, Choice: choice, Target: t,
		Dest: dest, Tablespaces: reloc, Force: c.Force, WAL: mode, StreamingDir: srv.StreamingDir(), IncomingDir: srv.IncomingDir(),
		Jobs: c.Jobs, Remote: remote, Progress: progressFor("restoring"), Log: a.log,
		Archive: c.Archive, Guard: restoreGuard(srv, nil),
	}
	if opts.Jobs <= 0 {
		opts.Jobs = jobsFor(srv)
	}
	if mode == restore.WALGet {
		bin, err := selfBinary()
		if err != nil {
			return err
		}
		cfgFile, err := a.configFile()
		if err != nil {
			return err
		}
		opts.RestoreCommand = restore.GetWALCommand(bin, cfgFile, srv.Name, c.Prefetch)
	}
	res, err := restore.Run(ctx, opts)
	if err != nil {
		return cliErr(err)
	}
	a.warnArchiveLag(srv, t)
	if a.g.JSON {
		return a.printJSON(res)
	}
	printRestore(a, res, choice.Backup)
	return nil
}

// restoreGuard is what a restore of srv refuses to write into: walkeeper's home
// (except the given scratch directories) and, while the server answers at its
// conninfo, its tablespaces' original locations.
func restoreGuard(srv *config.Server, scratch []string) restore.Guard {
	return restore.Guard{Home: srv.Home, Scratch: scratch,
		ServerAnswers: func(ctx context.Context) (string, bool) {
			return pgutil.Answers(ctx, srv.Conninfo, 5*time.Second)
		}}
}

func printRestore(a *App, res restore.Result, b catalog.Backup) {
	where := res.Dest
	if res.Remote != "" {
		where = res.Remote + ":" + res.Dest
	}
	fmt.Fprintf(a.out, "restored backup %s of %s (ended %s) into %s: %d files, %s in %.1fs\n",
		b.ID, res.Server, b.EndTime.UTC().Format("2006-01-02 15:04:05 UTC"), where, res.Files, humanBytes(res.Bytes), res.Seconds)
	for _, t := range res.Tablespaces {
		fmt.Fprintf(a.out, "tablespace %s (oid %d): %s\n", t.Name, t.OID, t.Target)
	}
	fmt.Fprintf(a.out, "recovery: to %s on timeline %d\n", res.Target, res.Timeline)
	if res.WALMode == restore.WALCopy {
		fmt.Fprintf(a.out, "WAL: %d files (%s) copied into %s/%s\n", res.WALFiles, humanBytes(res.WALBytes), res.Dest, restore.CopyWALDir)
	}
	fmt.Fprintf(a.out, "restore_command = '%s'\n", res.RestoreCommand)
	if res.Archive {
		fmt.Fprintf(a.out, "archiving: as the backed-up server (--archive): once promoted it archives into %s's archive\n", res.Server)
	} else {
		fmt.Fprintln(a.out, "archiving: off (archive_mode = off; --archive keeps the server's archive settings)")
	}
	fmt.Fprintf(a.out, "start it with: pg_ctl -D %s start\n", res.Dest)
}

// GetWALCmd is restore_command's helper.
type GetWALCmd struct {
	Server   string `arg:"" help:"Server name."`
	WALName  string `arg:"" name:"walname" help:"The WAL file name PostgreSQL asks for (%f)."`
	Dest     string `arg:"" help:"Where to write it (%p)."`
	Prefetch int    `default:"0" help:"Decompress the next N segments ahead into a spool (beside %p, in walkeeper_spool/) from a background process, and link each into pg_wal marked as PostgreSQL marks a restored file (.done, .ready under archive_mode = always); such a segment is answered with a silent exit 1 so that PostgreSQL reads it from pg_wal."`
	Spool    string `placeholder:"DIR" help:"Spool directory for --prefetch (default: walkeeper_spool beside DEST)."`
}

// Run implements the command.
func (c *GetWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	if c.Prefetch < 0 || c.Prefetch > 64 {
		return usageErr("--prefetch %d: want 0 to 64", c.Prefetch)
	}
	o := restore.GetOptions{Prefetch: c.Prefetch, SpoolDir: c.Spool, StreamingDir: srv.StreamingDir(), IncomingDir: srv.IncomingDir()}
	if c.Prefetch > 0 {
		o.StartPrefetcher = func(spool string) error { return a.startPrefetcher(srv, spool) }
	}
	from, err := restore.Get(context.Background(), store, srv.Name, c.WALName, c.Dest, o)
	if errors.Is(err, restore.ErrNotArchived) {
		return &exitError{code: 1, err: fmt.Errorf("%s: %s is not in the archive", srv.Name, c.WALName)}
	}
	if err != nil {
		return err
	}
	a.log.Debug("get-wal", "file", c.WALName, "from", from)
	if from == restore.FromPGWAL {
		// Quietly: PostgreSQL reads the segment from pg_wal when restore_command fails.
		return &exitError{code: 1}
	}
	return nil
}

// startPrefetcher launches `walkeeper prefetch-wal` detached (own session, no stdio),
// so get-wal returns at once while the next segments are decompressed.
func (a *App) startPrefetcher(srv *config.Server, spool string) error {
	bin, err := selfBinary()
	if err != nil {
		return err
	}
	cfgFile, err := a.configFile()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--config", cfgFile, "prefetch-wal", srv.Name, spool)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// PrefetchWALCmd is get-wal's background prefetcher (started by get-wal --prefetch).
type PrefetchWALCmd struct {
	Server string `arg:"" help:"Server name."`
	Spool  string `arg:"" help:"Spool directory."`
	Jobs   int    `default:"1" help:"Decompression workers."`
}

// Run implements the command.
func (c *PrefetchWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	// Below PostgreSQL's startup process, which replays WAL on one core: prefetching
	// only uses what it leaves idle (on a 2-core host, a prefetcher at the same
	// priority slowed replay down more than it saved).
	if err := restore.LowerPriority(10); err != nil {
		a.log.Debug("prefetch", "error", err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	st, err := restore.Prefetch(ctx, store, srv.Name, c.Spool, c.Jobs)
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
	Tablespace []string      `sep:"none" placeholder:"NAME:PATH" help:"Where to put tablespace NAME (default: inside the scratch directory)."`
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
	if !t.IsSet() {
		return usageErr("sandbox needs a recovery target (--target-time, --target-xid, --target-name, --target-lsn or --target-immediate)")
	}
	if t.Action == restore.ActionShutdown {
		return usageErr("--target-action shutdown: a sandbox pauses at its target (default) or ends recovery there (promote)")
	}
	if st, err := restore.LoadSandbox(srv.Dir()); err == nil {
		return fmt.Errorf("%s already has a sandbox in %s (port %d): walkeeper sandbox stop %s", srv.Name, st.Root, st.Port, srv.Name)
	}
	reloc, err := parseRelocations(c.Tablespace)
	if err != nil {
		return err
	}
	root := c.Dir
	if root == "" {
		root = filepath.Join(srv.Dir(), "sandbox")
	}
	if root, err = filepath.Abs(root); err != nil {
		return err
	}
	if ents, err := os.ReadDir(root); err == nil && len(ents) > 0 {
		return usageErr("sandbox directory %s is not empty", root)
	}
	guard := restoreGuard(srv, []string{filepath.Join(srv.Dir(), "sandbox")})
	if err := guard.Check(root); err != nil {
		return cliErr(err)
	}
	owner, ownerHome, err := restore.PostgresOwner()
	if err != nil {
		return err
	}
	if err := restore.CheckReachable(root, owner); err != nil {
		return cliErr(err)
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	src := restore.NewSource(store, srv.Name)
	tl, err := restore.LoadTimelines(ctx, store, srv.Name, srv.IncomingDir())
	if err != nil {
		return err
	}
	id := c.ID
	if id == "" {
		id = "latest"
		if !t.Time.IsZero() || t.HasLSN {
			id = "auto"
		}
	}
	choice, err := chooseBackup(ctx, src, tl, id, t)
	if err != nil {
		return cliErr(err)
	}
	for _, ts := range choice.Backup.Tablespaces {
		if _, ok := reloc[ts.Name]; !ok {
			reloc[ts.Name] = filepath.Join(root, "tablespaces", ts.Name)
		}
	}
	pgbin, err := restore.FindPGBin(c.PGBin, choice.Backup.PGVersion)
	if err != nil {
		return cliErr(err)
	}
	port := c.Port
	if port == 0 {
		if port, err = restore.FreePort(); err != nil {
			return err
		}
	}
	bin, err := selfBinary()
	if err != nil {
		return err
	}
	cfgFile, err := a.configFile()
	if err != nil {
		return err
	}
	st := restore.SandboxState{
		Server: srv.Name, BackupID: choice.Backup.ID, Target: t.String(), Timeline: choice.TLI,
		Root: root, DataDir: filepath.Join(root, "data"), SocketDir: filepath.Join(root, "socket"),
		Port: port, LogFile: filepath.Join(root, "postgresql.log"), PGBin: pgbin, User: connUser(srv.Conninfo),
		StartedAt: time.Now().UTC(), Action: t.Action,
	}
	if owner != nil {
		st.OSUser = "postgres"
	}
	for _, d := range []string{root, st.SocketDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if owner != nil {
			if err := os.Chown(d, owner.UID, owner.GID); err != nil {
				return err
			}
		}
	}
	cleanup := func() {
		_ = restore.StopSandbox(context.Background(), st, owner, ownerHome)
		_ = os.Remove(restore.SandboxStateFile(srv.Dir()))
	}
	if err := restore.SaveSandbox(srv.Dir(), st); err != nil {
		return err
	}
	extra := restore.SandboxSettings(port, st.SocketDir, st.DataDir, t.Action)
	if t.Action == restore.ActionPromote {
		// Belt and braces: the copy comes back as a standby after its promotion, and
		// sessions start read-only should anyone promote it again.
		extra = append(extra, restore.Setting{Name: "default_transaction_read_only", Value: "on"})
	}
	res, err := restore.Run(ctx, restore.Options{
		Server: srv.Name, Source: src, Store: store, Timelines: tl, Choice: choice, Target: t,
		Dest: st.DataDir, Tablespaces: reloc, WAL: restore.WALGet, StreamingDir: srv.StreamingDir(), IncomingDir: srv.IncomingDir(),
		RestoreCommand: restore.GetWALCommand(bin, cfgFile, srv.Name, c.Prefetch),
		ExtraSettings:  extra,
		Jobs:           jobsFor(srv), Owner: owner, Progress: progressFor("restoring sandbox"), Log: a.log,
		// Paused: a standby never ends recovery for want of WAL (it waits), so it
		// cannot become writable by running out of WAL before the target.
		Standby: t.Action != restore.ActionPromote, Guard: guard,
	})
	if err != nil {
		cleanup()
		return cliErr(err)
	}
	if err := restore.WriteSandboxHBA(st.DataDir, owner); err != nil {
		cleanup()
		return fmt.Errorf("sandbox of %s: pg_hba.conf: %w", srv.Name, err)
	}
	if err := restore.StartSandbox(ctx, st, owner, ownerHome, c.Timeout); err != nil {
		cleanup()
		return fmt.Errorf("sandbox of %s: %w", srv.Name, err)
	}
	lsn, xact, _ := restore.ReplayPosition(ctx, st)
	var locked []string
	if t.Action == restore.ActionPause {
		locked, _ = restore.LockedRelations(ctx, st)
	}
	if a.g.JSON {
		return a.printJSON(map[string]any{"sandbox": st, "conninfo": st.Conninfo("postgres"), "replay_lsn": lsn, "last_transaction": xact,
			"locked_relations": locked, "restore": res})
	}
	how := "paused at"
	if t.Action == restore.ActionPromote {
		how = "recovered to (recovery ended there, then restarted as a read-only standby)"
	}
	fmt.Fprintf(a.out, "sandbox of %s: backup %s restored into %s, PostgreSQL %s %s (timeline %d)\n", srv.Name, res.BackupID, st.DataDir, how, st.Target, st.Timeline)
	fmt.Fprintf(a.out, "replayed to %s, last transaction %s\n", lsn, xact)
	for _, l := range locked {
		fmt.Fprintf(a.out, "warning: %s is locked by a transaction in flight at the target (e.g. the DROP itself): queries on it wait; use --target-action promote to end recovery there and release it\n", l)
	}
	fmt.Fprintf(a.out, "connect (read-only): psql \"%s\"\n", st.Conninfo("postgres"))
	fmt.Fprintf(a.out, "stop and remove it:  walkeeper sandbox stop %s\n", srv.Name)
	return nil
}

// jobsFor is the server's parallel_jobs, else every core.
func jobsFor(srv *config.Server) int {
	if srv.ParallelJobs > 0 {
		return srv.ParallelJobs
	}
	return runtime.NumCPU()
}

// connUser is the user name of a conninfo (the sandbox has the same roles).
func connUser(conninfo string) string {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil || cfg.User == "" {
		return "postgres"
	}
	if os.Geteuid() == 0 && cfg.User == "root" {
		return "postgres"
	}
	return cfg.User
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
	st, err := restore.LoadSandbox(srv.Dir())
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s has no sandbox", srv.Name)
	}
	if err != nil {
		return err
	}
	owner, home, err := restore.PostgresOwner()
	if err != nil {
		return err
	}
	if err := restore.StopSandbox(context.Background(), st, owner, home); err != nil {
		return fmt.Errorf("sandbox of %s: %w", srv.Name, err)
	}
	if err := os.Remove(restore.SandboxStateFile(srv.Dir())); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if a.g.JSON {
		return a.printJSON(map[string]any{"server": srv.Name, "stopped": true, "removed": st.Root})
	}
	fmt.Fprintf(a.out, "sandbox of %s stopped, %s removed\n", srv.Name, st.Root)
	return nil
}

// SandboxStatusCmd lists sandboxes.
type SandboxStatusCmd struct {
	Servers []string `arg:"" optional:"" help:"Servers (default: all)."`
}

type sandboxStatus struct {
	restore.SandboxState
	Running    bool   `json:"running"`
	Replay     string `json:"replay_state,omitempty"`
	ReplayLSN  string `json:"replay_lsn,omitempty"`
	LastXact   string `json:"last_transaction,omitempty"`
	Conninfo   string `json:"conninfo"`
	StatusNote string `json:"note,omitempty"`
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
	out := []sandboxStatus{}
	for _, n := range names {
		srv, err := cfg.Server(n)
		if err != nil {
			return err
		}
		st, err := restore.LoadSandbox(srv.Dir())
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		s := sandboxStatus{SandboxState: st, Running: st.Running(), Conninfo: st.Conninfo("postgres")}
		if s.Running {
			if s.Replay, err = restore.PauseState(context.Background(), st); err != nil {
				s.StatusNote = err.Error()
			}
			s.ReplayLSN, s.LastXact, _ = restore.ReplayPosition(context.Background(), st)
		}
		out = append(out, s)
	}
	if a.g.JSON {
		return a.printJSON(out)
	}
	if len(out) == 0 {
		fmt.Fprintln(a.out, "no sandbox")
		return nil
	}
	var rows [][]string
	for _, s := range out {
		state := "stopped"
		if s.Running {
			state = "running, " + s.Replay
			if s.Action == restore.ActionPromote && s.Replay == "not paused" {
				state = "running, recovered to the target (read-only standby)"
			}
		}
		rows = append(rows, []string{s.Server, s.BackupID, s.Target, state, s.ReplayLSN, fmt.Sprint(s.Port), s.Root})
	}
	a.table([]string{"SERVER", "BACKUP", "TARGET", "STATE", "REPLAY LSN", "PORT", "DIR"}, rows)
	return nil
}
