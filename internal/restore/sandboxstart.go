package restore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// SandboxOptions is a sandbox to start: what `walkeeper sandbox SERVER [ID]` was given,
// resolved to paths and values by the caller.
type SandboxOptions struct {
	Server       string
	ServerDir    string // <home>/<server>: the state file and the default root live there
	Store        storage.Store
	IncomingDir  string
	StreamingDir string
	Target       Target
	// ID is the backup (id, name, latest, oldest, auto); "" is auto for a time or LSN
	// target, else latest.
	ID string
	// Root is the scratch directory (default <ServerDir>/sandbox).
	Root string
	// Port on 127.0.0.1; 0 takes a free one.
	Port  int
	PGBin string // "" finds it from the backup's version
	// Tablespaces relocates tablespaces by name (NAME:PATH, as --tablespace); the
	// others go to <root>/tablespaces.
	Tablespaces []string
	// Binary and ConfigFile are this walkeeper's, for restore_command (get-wal with
	// Prefetch segments of prefetch).
	Binary, ConfigFile string
	Prefetch           int
	User               string // the role the sandbox is entered as
	Jobs               int
	Timeout            time.Duration // for replay to reach the target
	// Guard is what the restore refuses to write into (the default root excepted).
	Guard    Guard
	Progress func(total int64) func(n int64)
	Log      *slog.Logger
}

// SandboxResult is a started sandbox: its state (saved in the server's directory), the
// restore, where replay stands and the relations locked at the target.
type SandboxResult struct {
	State           SandboxState
	Restore         Result
	ReplayLSN       string
	LastTransaction string
	Locked          []string
}

// DefaultSandboxRoot is the sandbox's scratch directory unless told otherwise.
func DefaultSandboxRoot(serverDir string) string { return filepath.Join(serverDir, "sandbox") }

// SandboxBackupRef is the backup a sandbox restores when none is named: auto for a time
// or LSN target (the newest backup that reaches it), else the latest.
func SandboxBackupRef(id string, t Target) string {
	if id != "" {
		return id
	}
	if !t.Time.IsZero() || t.HasLSN {
		return "auto"
	}
	return "latest"
}

// checkSandbox refuses what a sandbox cannot be: no target, a shutdown at the target,
// a second sandbox of the server, a bad --tablespace, a non-empty root, a root the
// guard forbids. It makes the root absolute and returns the relocations.
func checkSandbox(o *SandboxOptions) (map[string]string, error) {
	if !o.Target.IsSet() {
		return nil, usage("sandbox needs a recovery target (--target-time, --target-xid, --target-name, --target-lsn or --target-immediate)")
	}
	if o.Target.Action == ActionShutdown {
		return nil, usage("--target-action shutdown: a sandbox pauses at its target (default) or ends recovery there (promote)")
	}
	if st, err := LoadSandbox(o.ServerDir); err == nil {
		return nil, fmt.Errorf("%s already has a sandbox in %s (port %d): walkeeper sandbox stop %s", o.Server, st.Root, st.Port, o.Server)
	}
	reloc, err := ParseRelocations(o.Tablespaces)
	if err != nil {
		return nil, err
	}
	if o.Root == "" {
		o.Root = DefaultSandboxRoot(o.ServerDir)
	}
	if o.Root, err = filepath.Abs(o.Root); err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(o.Root); err == nil && len(ents) > 0 {
		return nil, usage("sandbox directory %s is not empty", o.Root)
	}
	return reloc, o.Guard.Check(o.Root)
}

// ParseRelocations reads --tablespace NAME:PATH options into a map by name.
func ParseRelocations(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		name, p, ok := strings.Cut(s, ":")
		if !ok || name == "" || p == "" {
			return nil, usage("--tablespace %q: want NAME:PATH", s)
		}
		if _, dup := out[name]; dup {
			return nil, usage("--tablespace %s given twice", name)
		}
		out[name] = p
	}
	return out, nil
}

// StartSandbox is the flashback sandbox: it restores the chosen backup into a scratch
// directory owned by the postgres OS user, starts PostgreSQL there as a read-only hot
// standby on loopback and a private socket, and waits until it is paused at the target
// (or, with ActionPromote, recovered to it and restarted as a standby). On failure
// after the state was saved, the sandbox is stopped and its state removed.
func StartSandbox(ctx context.Context, o SandboxOptions) (SandboxResult, error) {
	var out SandboxResult
	reloc, err := checkSandbox(&o)
	if err != nil {
		return out, err
	}
	owner, ownerHome, err := PostgresOwner()
	if err != nil {
		return out, err
	}
	if err := CheckReachable(o.Root, owner); err != nil {
		return out, err
	}
	src, tl, choice, err := Plan(ctx, o.Store, o.Server, o.IncomingDir, SandboxBackupRef(o.ID, o.Target), o.Target)
	if err != nil {
		return out, err
	}
	st, err := o.state(choice, owner != nil)
	if err != nil {
		return out, err
	}
	if err := prepareSandboxDirs(st, owner); err != nil {
		return out, err
	}
	if err := SaveSandbox(o.ServerDir, st); err != nil {
		return out, err
	}
	cleanup := func() {
		_ = StopSandbox(context.Background(), st, owner, ownerHome)
		_ = os.Remove(SandboxStateFile(o.ServerDir))
	}
	res, err := Run(ctx, o.restoreOptions(st, src, tl, choice, owner, reloc))
	if err != nil {
		cleanup()
		return out, err
	}
	if err := WriteSandboxHBA(st.DataDir, owner); err != nil {
		cleanup()
		return out, fmt.Errorf("sandbox of %s: pg_hba.conf: %w", o.Server, err)
	}
	if err := startPostgres(ctx, st, owner, ownerHome, o.Timeout); err != nil {
		cleanup()
		return out, fmt.Errorf("sandbox of %s: %w", o.Server, err)
	}
	out = SandboxResult{State: st, Restore: res}
	out.ReplayLSN, out.LastTransaction, _ = ReplayPosition(ctx, st)
	if o.Target.Action == ActionPause {
		out.Locked, _ = LockedRelations(ctx, st)
	}
	return out, nil
}

// state lays the sandbox out under its root for the chosen backup.
func (o SandboxOptions) state(choice Choice, asPostgres bool) (SandboxState, error) {
	pgbin, err := FindPGBin(o.PGBin, choice.Backup.PGVersion)
	if err != nil {
		return SandboxState{}, err
	}
	port := o.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return SandboxState{}, err
		}
	}
	st := SandboxState{
		Server: o.Server, BackupID: choice.Backup.ID, Target: o.Target.String(), Timeline: choice.TLI,
		Root: o.Root, DataDir: filepath.Join(o.Root, "data"), SocketDir: filepath.Join(o.Root, "socket"),
		Port: port, LogFile: filepath.Join(o.Root, "postgresql.log"), PGBin: pgbin, User: o.User,
		StartedAt: time.Now().UTC(), Action: o.Target.Action,
	}
	if asPostgres {
		st.OSUser = "postgres"
	}
	return st, nil
}

// prepareSandboxDirs creates the root and the socket directory, owned by the server's
// OS user.
func prepareSandboxDirs(st SandboxState, owner *Owner) error {
	for _, d := range []string{st.Root, st.SocketDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if owner != nil {
			if err := os.Chown(d, owner.UID, owner.GID); err != nil {
				return err
			}
		}
	}
	return nil
}

// restoreOptions is the sandbox's restore: get-wal, the sandbox's settings, the
// tablespaces not relocated put inside the root.
func (o SandboxOptions) restoreOptions(st SandboxState, src Source, tl *Timelines, choice Choice, owner *Owner, reloc map[string]string) Options {
	for _, ts := range choice.Backup.Tablespaces {
		label := tablespaceLabel(ts.Name, ts.OID)
		_, byName := reloc[ts.Name]
		_, byOID := reloc[strconv.FormatUint(uint64(ts.OID), 10)]
		if !(byName && ts.Name != "") && !byOID {
			reloc[label] = filepath.Join(o.Root, "tablespaces", label)
		}
	}
	extra := SandboxSettings(st.Port, st.SocketDir, st.DataDir, o.Target.Action)
	if o.Target.Action == ActionPromote {
		// Belt and braces: the copy comes back as a standby after its promotion, and
		// sessions start read-only should anyone promote it again.
		extra = append(extra, Setting{Name: "default_transaction_read_only", Value: "on"})
	}
	return Options{
		Server: o.Server, Source: src, Store: o.Store, Timelines: tl, Choice: choice, Target: o.Target,
		Dest: st.DataDir, Tablespaces: reloc, WAL: WALGet, StreamingDir: o.StreamingDir, IncomingDir: o.IncomingDir,
		RestoreCommand: GetWALCommand(o.Binary, o.ConfigFile, o.Server, o.Prefetch),
		ExtraSettings:  extra,
		Jobs:           o.Jobs, Owner: owner, Progress: o.Progress, Log: o.Log,
		// Paused: a standby never ends recovery for want of WAL (it waits), so it
		// cannot become writable by running out of WAL before the target.
		Standby: o.Target.Action != ActionPromote, Guard: o.Guard,
	}
}

// Choose resolves a backup reference (or auto: the newest backup that can reach the
// target) and validates the target against it.
func Choose(ctx context.Context, src Source, tl *Timelines, id string, t Target) (Choice, error) {
	backups, err := src.Backups(ctx)
	if err != nil {
		return Choice{}, err
	}
	if id == "auto" {
		return ChooseAuto(backups, t, tl)
	}
	b, err := src.Resolve(backups, id)
	if err != nil {
		return Choice{}, err
	}
	return CheckBackup(b, t, tl)
}

// Plan reads what a restore of server decides from: its backups and timelines (with
// the history files still in incomingDir), and the backup ref chosen against target t
// (see Choose).
func Plan(ctx context.Context, store storage.Store, server, incomingDir, ref string, t Target) (Source, *Timelines, Choice, error) {
	src := NewSource(store, server)
	tl, err := LoadTimelines(ctx, store, server, incomingDir)
	if err != nil {
		return nil, nil, Choice{}, err
	}
	choice, err := Choose(ctx, src, tl, ref, t)
	return src, tl, choice, err
}
