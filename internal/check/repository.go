package check

import (
	"context"
	"fmt"
	"time"

	"github.com/walkeeper/walkeeper/internal/repo"
	"github.com/walkeeper/walkeeper/internal/upload"
)

// CheckRepository is the repository check's name.
const CheckRepository = "repository upload"

// RepositoryMaxLag is how long the oldest file waiting for its upload may wait.
const RepositoryMaxLag = 15 * time.Minute

// repository checks a server's repository: with the daemon, that its uploads keep up
// (nothing waits longer than RepositoryMaxLag); without it, that it can be opened.
func (r *runner) repository(ctx context.Context) {
	rp := r.srv.Repository
	if rp.Kind == "" {
		return
	}
	var u *upload.Stats
	if r.d.Daemon != nil {
		if info, err := r.d.Daemon.Info(ctx); err == nil {
			u = upload.FromInfo(info.Servers[r.srv.Name].Upload)
		}
	}
	if u == nil {
		if _, err := repo.Open(ctx, rp); err != nil {
			r.add(CheckRepository, false, err.Error(), "check the repository's endpoint, credentials and key ("+rp.URL+"), then `walkeeper repository-init "+r.srv.Name+"`")
			return
		}
		r.add(CheckRepository, false, fmt.Sprintf("%s opens, but nothing uploads to it: the daemon is not running", rp.URL), "start `walkeeper watch`")
		return
	}
	lastErr := ""
	if u.LastError != "" {
		lastErr = fmt.Sprintf("; last error %s ago: %s", r.since(u.LastErrorAt), u.LastError)
	}
	switch {
	case !u.Scanned:
		r.add(CheckRepository, false, fmt.Sprintf("%s cannot be listed yet%s", rp.URL, lastErr), "check the repository's endpoint and credentials; the daemon retries")
	case u.Pending > 0 && r.now.Sub(u.OldestPending) > RepositoryMaxLag:
		r.add(CheckRepository, false, fmt.Sprintf("%d files (%d bytes) wait for their upload to %s, the oldest for %s%s", u.Pending, u.PendingBytes, rp.URL,
			r.since(u.OldestPending), lastErr), "the local copies are kept until the repository has them; check the repository and the network")
	default:
		r.add(CheckRepository, true, fmt.Sprintf("%s: %d files waiting, %d uploaded since the daemon started%s", rp.URL, u.Pending, u.Uploaded, lastErr), "")
	}
}
