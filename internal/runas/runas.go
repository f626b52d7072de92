// Package runas makes a walkeeper started as root act as the OS user that owns its
// home. The home is shared by processes of that user (archive-wal runs as
// PostgreSQL's user, the daemon as the home's owner): a root process there would leave
// index files, locks and backups that user can no longer open or replace (a root
// `walkeeper backup` left a retention.lock the postgres daemon could not flock).
package runas

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// OwnerOf drops root's privileges to the owner of home when walkeeper runs as root
// and home exists and belongs to another user: groups, gid, then uid, for every
// thread of the process (Go applies setuid process-wide on Linux), and HOME, USER and
// LOGNAME become that user's (so its ~/.pgpass and ssh keys are the ones used). It
// returns the user switched to, or nil when nothing changed. It must run before
// anything opens a file in home.
func OwnerOf(home string) (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	fi, err := os.Stat(home)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("home %s: %w", home, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil, nil
	}
	u, err := user.LookupId(strconv.Itoa(int(st.Uid)))
	if err != nil {
		return nil, fmt.Errorf("home %s belongs to uid %d, which is no OS user: run walkeeper as the home's owner: %w", home, st.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("home %s: user %s has gid %q: %w", home, u.Username, u.Gid, err)
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		groups = groups[:0]
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil {
				groups = append(groups, g)
			}
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return nil, fmt.Errorf("act as %s, the owner of home %s: setgroups: %w", u.Username, home, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return nil, fmt.Errorf("act as %s, the owner of home %s: setgid: %w", u.Username, home, err)
	}
	if err := syscall.Setuid(int(st.Uid)); err != nil {
		return nil, fmt.Errorf("act as %s, the owner of home %s: setuid: %w", u.Username, home, err)
	}
	for k, v := range map[string]string{"HOME": u.HomeDir, "USER": u.Username, "LOGNAME": u.Username} {
		if v != "" {
			_ = os.Setenv(k, v)
		}
	}
	return u, nil
}
