package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

type credInfo struct {
	cred *syscall.Credential // nil when not root
	home string
	uid  int
	gid  int
}

var (
	credOnce sync.Once
	credVal  credInfo
	credErr  error
)

func pgCred() (credInfo, error) {
	credOnce.Do(func() {
		if os.Geteuid() != 0 {
			credVal = credInfo{uid: os.Geteuid(), gid: os.Getegid(), home: os.Getenv("HOME")}
			return
		}
		u, err := user.Lookup(PGUser)
		if err != nil {
			credErr = fmt.Errorf("running as root but OS user %q does not exist (PostgreSQL refuses to run as root; scripts/setup.sh creates it): %v", PGUser, err)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.Atoi(g); err == nil {
					c.Groups = append(c.Groups, uint32(n))
				}
			}
		}
		credVal = credInfo{cred: c, home: u.HomeDir, uid: uid, gid: gid}
	})
	return credVal, credErr
}

// IsRoot reports whether the harness runs the PostgreSQL tools under another user.
func IsRoot() bool { return os.Geteuid() == 0 }

// PGUID returns the uid and gid PostgreSQL runs as (the current ones when not root).
func PGUID() (uid, gid int) {
	c, _ := pgCred()
	return c.uid, c.gid
}

// RunAs makes cmd run as the postgres OS user when the current process is root: it sets
// SysProcAttr.Credential, sets HOME/USER/LOGNAME to that user's (keeping the rest of the
// environment) and, when cmd.Dir is empty, runs it in "/" so that the user can access its
// working directory (pass absolute paths). When not root it leaves cmd unchanged.
func RunAs(cmd *exec.Cmd) {
	c, err := pgCred()
	if err != nil || c.cred == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = c.cred
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "HOME="+c.home, "USER="+PGUser, "LOGNAME="+PGUser)
	cmd.Env = out
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
}

// Chown gives path (recursively) to the PostgreSQL user. No-op when not root.
func Chown(path string) error {
	c, err := pgCred()
	if err != nil {
		return err
	}
	if c.cred == nil {
		return nil
	}
	return filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, c.uid, c.gid)
	})
}

// MakeTraversable adds o+x to every ancestor directory of path that lacks it, so that the
// postgres user can reach path (e.g. a dir under Go's t.TempDir(), whose parent is 0700).
// No-op when not root.
func MakeTraversable(path string) error {
	if !IsRoot() {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
		if d == "/" || d == filepath.Dir(d) {
			return nil
		}
	}
}
