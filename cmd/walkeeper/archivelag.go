package main

import (
	"fmt"
	"os"

	"github.com/dustin/go-humanize"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/restore"
)

// warnArchiveLag tells, in one line on stderr, a restore that replays past the backup's
// end that the daemon is down or behind: WAL waiting in incoming/ is served to recovery
// from there (invariant 9), but it is not in the archive proper until the daemon runs.
func (a *App) warnArchiveLag(srv *config.Server, t restore.Target) {
	if t.Immediate {
		return // recovery stops at the backup's end: the backlog does not matter
	}
	n, size := restore.IncomingBacklog(srv.IncomingDir())
	running := a.Daemon() != nil
	switch {
	case !running && n > 0:
		fmt.Fprintf(os.Stderr, "warning: %s: the walkeeper daemon is not running and %d WAL files (%s) wait in %s: recovery reads them from there; start `walkeeper watch` to archive them\n",
			srv.Name, n, humanize.IBytes(uint64(size)), srv.IncomingDir())
	case !running:
		fmt.Fprintf(os.Stderr, "warning: %s: the walkeeper daemon is not running: WAL archived from now on waits in %s (recovery still reads it there); start `walkeeper watch`\n",
			srv.Name, srv.IncomingDir())
	case n > 0:
		fmt.Fprintf(os.Stderr, "warning: %s: %d WAL files (%s) wait in %s, not yet archived by the daemon: recovery reads them from there\n",
			srv.Name, n, humanize.IBytes(uint64(size)), srv.IncomingDir())
	}
}
