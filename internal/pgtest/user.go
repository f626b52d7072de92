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
	"testing"
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

// WalkeeperUser is the OS user that stands for the backup host in the two-host tests:
// it owns walkeeper's home (0700), which PostgreSQL's user cannot read.
const WalkeeperUser = "walkeeper"

// RequireWalkeeperUser skips the test unless it runs as root and the walkeeper OS user
// exists (scripts/setup.sh creates it; a test cannot switch users without root).
func RequireWalkeeperUser(t testing.TB) {
	t.Helper()
	if !IsRoot() {
		t.Skip("two-host tests need root to run as the walkeeper and postgres OS users")
	}
	if _, err := user.Lookup(WalkeeperUser); err != nil {
		t.Fatalf("OS user %q missing: run scripts/setup.sh as root (%v)", WalkeeperUser, err)
	}
}

// UserIDs returns the uid, gid and home of an OS user.
func UserIDs(name string) (uid, gid int, home string, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, "", err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, u.HomeDir, nil
}

// RunAsUser is RunAs for any OS user (root only; it fails the command's start with an
// error naming the user when that user does not exist).
func RunAsUser(cmd *exec.Cmd, name string) error {
	if name == PGUser || name == "" {
		RunAs(cmd)
		return nil
	}
	if !IsRoot() {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return err
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
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = c
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
	cmd.Env = append(out, "HOME="+u.HomeDir, "USER="+name, "LOGNAME="+name)
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	return nil
}

// ChownUser gives path (recursively) to an OS user. No-op when not root.
func ChownUser(path, name string) error {
	if !IsRoot() {
		return nil
	}
	if name == PGUser || name == "" {
		return Chown(path)
	}
	uid, gid, _, err := UserIDs(name)
	if err != nil {
		return err
	}
	return filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// TempDirOf is TempDir owned by an OS user (mode 0700).
func TempDirOf(t testing.TB, name string) string {
	t.Helper()
	d := TempDir(t)
	if err := ChownUser(d, name); err != nil {
		t.Fatalf("pgtest: chown %s to %s: %v", d, name, err)
	}
	return d
}
