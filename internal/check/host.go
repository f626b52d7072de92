package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/daemon"
)

func (r *runner) disk() {
	dir := r.srv.Dir()
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		r.add(CheckDisk, false, fmt.Sprintf("statfs %s: %v", dir, err), "")
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	detail := fmt.Sprintf("%s free on %s", human(free), dir)
	if free < r.srv.MinFreeDisk {
		r.add(CheckDisk, false, fmt.Sprintf("%s, less than min_free_disk %s", detail, human(r.srv.MinFreeDisk)),
			"free space or add storage: the archive stops when the disk fills, and PostgreSQL's pg_wal grows")
		return
	}
	r.add(CheckDisk, true, fmt.Sprintf("%s (minimum %s)", detail, human(r.srv.MinFreeDisk)), "")
}

func human(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

func (r *runner) daemonRunning(ctx context.Context) {
	if r.d.Daemon == nil {
		r.add(CheckDaemon, false, "no `walkeeper watch` answers on "+daemon.SocketPath(r.srv.Home),
			"start `walkeeper watch` (e.g. as a systemd service): without it WAL waits in incoming/ (restore reads it there), uncompressed and never removed by retention")
		return
	}
	info, err := r.d.Daemon.Info(ctx)
	if err != nil {
		r.add(CheckDaemon, false, fmt.Sprintf("the daemon does not answer: %v", err), "restart `walkeeper watch`")
		return
	}
	ss, ok := info.Servers[r.srv.Name]
	if r.srv.Active && (!ok || !ss.Watching) {
		r.add(CheckDaemon, false, fmt.Sprintf("the daemon (pid %d) does not watch %s", info.PID, r.srv.Name),
			"restart `walkeeper watch` without server names, or name this server too")
		return
	}
	detail := fmt.Sprintf("pid %d, up %s", info.PID, r.since(info.StartedAt))
	if ss.LastError != "" {
		detail += fmt.Sprintf("; last error %s ago: %s", r.since(ss.LastErrorAt), ss.LastError)
	}
	r.add(CheckDaemon, true, detail, "")
}

func (r *runner) errorsDir() {
	dir := r.srv.ErrorsDir()
	qs, err := archive.Quarantined(dir)
	if err != nil {
		r.add(CheckErrors, false, fmt.Sprintf("cannot read %s: %v", dir, err), "")
		return
	}
	if len(qs) == 0 {
		r.add(CheckErrors, true, "none", "")
		return
	}
	newest := qs[0]
	for _, q := range qs[1:] {
		if q.Mtime.After(newest.Mtime) {
			newest = q
		}
	}
	r.add(CheckErrors, false, fmt.Sprintf("%d file(s) in %s; newest %s: %s", len(qs), dir, newest.File, newest.Reason),
		"each file was refused with the reason beside it (<file>.reason); remove them once understood")
}
