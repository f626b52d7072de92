package restore

import (
	"context"
	"log/slog"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Command is `walkeeper restore` as its flags give it; Prepare turns it into the
// Options of Run.
type Command struct {
	Placement
	// ID names the backup (an id, a name, latest, oldest or auto).
	ID             string
	Force, Archive bool
	// Jobs is the extraction workers (0: the server's parallel_jobs, else all cores).
	Jobs int
	// PGBin is the binaries the cluster will be started with (--pg-bin; local only).
	PGBin    string
	Progress func(total int64) func(n int64)
	Log      *slog.Logger
	// Self is this walkeeper and its configuration file, for the restore_command.
	Self func() (bin, cfgFile string, err error)
}

// Prepare checks a restore command of srv and plans it: every refusal it can make
// (targets, placement, owner, binaries of another major) comes before anything is
// written, as usage errors.
func Prepare(ctx context.Context, store storage.Store, srv *config.Server, c Command) (Options, error) {
	p, err := Place(c.Placement)
	if err != nil {
		return Options{}, err
	}
	src, tl, choice, err := Plan(ctx, store, srv.Name, srv.IncomingDir(), c.ID, c.Target)
	if err != nil {
		return Options{}, err
	}
	o := Options{
		Server: srv.Name, Source: src, Store: store, Timelines: tl, Choice: choice, Target: c.Target,
		Dest: p.Dest, Tablespaces: p.Tablespaces, Force: c.Force, WAL: p.WAL, StreamingDir: srv.StreamingDir(), IncomingDir: srv.IncomingDir(),
		Jobs: c.Jobs, Remote: p.Remote, Progress: c.Progress, Log: c.Log,
		Archive: c.Archive, Guard: GuardFor(srv, nil), Standby: p.Standby, PrimaryConninfo: p.PrimaryConninfo,
	}
	if o.Owner, err = LocalOwner(p, srv.IncomingDir()); err != nil {
		return Options{}, err
	}
	if p.Remote != nil {
		if c.PGBin != "" {
			return Options{}, usage("--pg-bin %s: checked on this host only, not with --remote-ssh-command", c.PGBin)
		}
	} else if o.PGBin, o.PGBinNote, err = StartBinaries(c.PGBin, choice.Backup.PGVersion); err != nil {
		return Options{}, err
	}
	if o.Jobs <= 0 {
		o.Jobs = srv.ParallelJobs // Run takes every core when it is 0 too
	}
	if p.WAL == WALGet {
		bin, cfgFile, err := c.Self()
		if err != nil {
			return Options{}, err
		}
		o.RestoreCommand = p.RestoreCommand(bin, cfgFile, srv.Name, c.Prefetch)
	}
	return o, nil
}
