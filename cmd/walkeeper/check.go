package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/walkeeper/walkeeper/internal/check"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/gcbatch"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/progress"
	"github.com/walkeeper/walkeeper/internal/verify"
)

// errFailed makes a command exit 1 without another message: the output said why.
var errFailed = &exitError{code: 1, err: errors.New("")}

// CheckCmd runs the pass/fail checks of one server or all.
type CheckCmd struct {
	Server string `arg:"" help:"Server name, or 'all'."`
}

// Run implements the command.
func (c *CheckCmd) Run(a *App) error {
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	var servers []*config.Server
	if c.Server == "all" {
		servers = cfg.Servers
		if len(servers) == 0 {
			return fmt.Errorf("%s configures no server", cfg.File)
		}
	} else {
		srv, err := cfg.Server(c.Server)
		if err != nil {
			return usageErr("%v", err)
		}
		servers = []*config.Server{srv}
	}
	idx, idxErr := a.Index()
	d := a.Daemon()
	bin, _ := os.Executable()
	deps := make([]check.Deps, len(servers))
	var appMu sync.Mutex
	for i, srv := range servers {
		name := srv.Name
		deps[i] = check.Deps{Server: srv, ConfigFile: cfg.File, Binary: bin, ChainRecheck: check.ChainRecheckDelay,
			Store: a.Store(), Index: idx, IndexErr: idxErr, Daemon: d,
			Receiver: func() (ingest.ReceiverState, bool) {
				appMu.Lock() // App is not safe for concurrent use
				defer appMu.Unlock()
				return receiverState(a, name)
			}}
	}
	results := check.RunAll(context.Background(), deps)
	if err := a.output(results, func(w io.Writer) { check.WriteText(w, results) }); err != nil {
		return err
	}
	if check.Failed(results) {
		return errFailed
	}
	return nil
}

// VerifyCmd checks stored backups against their manifests and the WAL chain for gaps.
type VerifyCmd struct {
	Server       string `arg:"" help:"Server name."`
	ID           string `arg:"" optional:"" help:"Backup id, name, 'latest' or 'oldest' (default: every DONE backup)."`
	WALChecksums bool   `name:"wal-checksums" help:"Also read every archived WAL file and compare its SHA-256 with the index record (reads the whole archive)."`
	NoFiles      bool   `name:"no-files" help:"Skip reading the backups' files; check only the WAL chain."`
	Deep         bool   `help:"Decode every file and sum it against backup_manifest (default: the sums taken at backup, with every stored object read against its digest)."`
	Jobs         int    `short:"j" help:"Parallel readers (default: the server's parallel_jobs)."`
}

// Run implements the command.
func (c *VerifyCmd) Run(a *App) error {
	gcbatch.Tune()
	ctx, cancel := signalContext()
	defer cancel()
	srv, err := a.Server(c.Server)
	if err != nil {
		return usageErr("%v", err)
	}
	if c.Jobs < 0 {
		return usageErr("--jobs %d: must be positive", c.Jobs)
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	jobs := cmp.Or(c.Jobs, max(srv.ParallelJobs, 1))
	o := verify.Options{Store: a.Store(), Index: idx, Server: srv.Name, Backup: c.ID, SkipFiles: c.NoFiles,
		WALChecksums: c.WALChecksums, Jobs: jobs, Deep: c.Deep}
	if progress.Interactive() {
		o.Progress = progress.Adder
	}
	rep, err := verify.Run(ctx, o)
	if err != nil {
		return err
	}
	if err := a.output(rep, func(w io.Writer) { rep.WriteText(w, c.ID != "") }); err != nil {
		return err
	}
	if !rep.OK {
		return errFailed
	}
	return nil
}
