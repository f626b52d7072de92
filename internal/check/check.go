// Package check runs walkeeper's pass/fail checks of one server (the `check` command):
// can walkeeper reach PostgreSQL, is WAL arriving and complete, are backups recent and
// numerous enough, is the daemon up. Each check is a function returning a Result with a
// hint, so the console, JSON output and monitoring all read the same answers.
package check

import (
	"context"
	"fmt"
	"time"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Result is one check's answer (also the `check --json` element).
type Result struct {
	Server string `json:"server"`
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Hint   string `json:"hint"`
}

// Deps is what the checks of one server read.
type Deps struct {
	Server *config.Server
	// ConfigFile is the loaded configuration file and Binary the walkeeper executable,
	// for hints that can be pasted.
	ConfigFile string
	Binary     string
	Store      storage.Store
	// Index is the index of archived WAL and backups (the daemon's or opened directly); IndexErr says why it could
	// not be opened when it is nil.
	Index    index.Index
	IndexErr error
	// Daemon is a client of the running daemon, nil when none answers.
	Daemon *daemon.Client
	// Receiver returns the streaming receiver's state, if any is known.
	Receiver func() (record.ReceiverState, bool)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ChainRecheck, if positive, is how long the WAL chain check waits before it looks
	// again at a gap: the daemon stores segments in parallel, so a newer one can land a
	// moment before an older one.
	ChainRecheck time.Duration
}

// DefaultWALMaxAge is how old the newest archived WAL may be, while the server has
// completed segments that are not archived, when the server sets no archive_timeout.
const DefaultWALMaxAge = time.Hour

// ChainRecheckDelay is the usual Deps.ChainRecheck.
const ChainRecheckDelay = 2 * time.Second

// Check names, stable for --json consumers.
const (
	CheckPostgreSQL   = "PostgreSQL connection"
	CheckReplication  = "replication connection"
	CheckWALLevel     = "wal_level"
	CheckArchiving    = "archive_mode and archive_command"
	CheckArchiver     = "pg_stat_archiver"
	CheckWALRecent    = "WAL received recently"
	CheckSystemID     = "system identifier"
	CheckWALChain     = "WAL chain"
	CheckBackupAge    = "last backup age"
	CheckRedundancy   = "minimum redundancy"
	CheckDisk         = "free disk space"
	CheckDaemon       = "daemon running"
	CheckErrors       = "files in errors/"
	CheckFailedBackup = "failed backups"
	CheckReceiver     = "streaming receiver"
	CheckSlot         = "replication slot"
	CheckIndex        = "index"
)

type runner struct {
	d   Deps
	srv *config.Server
	now time.Time
	out []Result
	pg  facts

	backups    []record.Backup
	backupsErr error
}

func (r *runner) add(check string, ok bool, detail, hint string) {
	r.out = append(r.out, Result{Server: r.srv.Name, Check: check, OK: ok, Detail: detail, Hint: hint})
}

// Run runs every check that applies to the server, in a fixed order.
func Run(ctx context.Context, d Deps) []Result {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	r := &runner{d: d, srv: d.Server, now: now()}
	// The two connections are independent: probe them at once, so that an unreachable
	// host costs one connect timeout, not two.
	replc := make(chan replFacts, 1)
	go func() { replc <- probeReplication(ctx, d.Server) }()
	r.pg = gather(ctx, d.Server)
	rf := <-replc
	if d.Index != nil {
		r.backups, r.backupsErr = basebackup.ShowInterrupted(d.Server.Dir(), func() ([]record.Backup, error) {
			return d.Index.ListBackups(ctx, d.Server.Name)
		})
	} else {
		r.backupsErr = d.IndexErr
		r.add(CheckIndex, false, fmt.Sprintf("cannot open the index: %v", d.IndexErr),
			"if the index is damaged, `walkeeper index rebuild "+d.Server.Name+"` recreates it from the archive")
	}
	r.postgres()
	r.replication(rf)
	r.walLevel()
	r.archiving()
	r.archiverStats(ctx)
	r.streaming()
	r.walRecent(ctx)
	r.systemID(ctx)
	r.walChain(ctx)
	r.backupAge()
	r.redundancy()
	r.failedBackups()
	r.disk()
	r.daemonRunning(ctx)
	r.repository(ctx)
	r.errorsDir()
	return r.out
}

// Failed reports whether any result failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return true
		}
	}
	return false
}
