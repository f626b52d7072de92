// Package sshtest runs a private sshd on a loopback port for tests that stand for two
// hosts: key authentication only, one key pair per client OS user, logins allowed as the
// users given. It needs root (sshd switches to the user it logs in).
package sshtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// SSHD is a running sshd.
type SSHD struct {
	Port int
	dir  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	keys map[string]string // client OS user -> private key path
}

// Write implements io.Writer for sshd's log (stdout and stderr).
func (s *SSHD) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

// Log is what sshd logged so far.
func (s *SSHD) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Start runs Debian's sshd (package openssh-server) on a free loopback port with a fresh
// host key, accepting key logins as the given OS users; cleanup stops it. It skips the
// test when not root.
func Start(t testing.TB, users ...string) *SSHD {
	t.Helper()
	const sshd = "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("%s missing (package openssh-server): run scripts/setup.sh as root", sshd)
	}
	if !pgtest.IsRoot() {
		t.Skip("sshd needs root to switch to the users it logs in")
	}
	// Root's and world-traversable: every client user reaches its own key below, and
	// sshd reads each user's authorized keys as that user.
	dir, err := os.MkdirTemp("", "walkeeper-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.MakeTraversable(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "auth"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_key"))
	s := &SSHD{Port: pgtest.FreePort(t), dir: dir, keys: map[string]string{}}
	for _, u := range users {
		p := filepath.Join(dir, "auth", u)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := pgtest.ChownUser(p, u); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host_key
AuthorizedKeysFile %s/auth/%%u
PidFile %s/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes no
UsePAM yes
AllowUsers %s
`, s.Port, dir, dir, dir, strings.Join(users, " "))
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// UsePAM yes: without PAM, sshd refuses a system account whose password is locked
	// ("!"), even for key authentication.
	_ = os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	s.cmd = exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
	return s
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// Command returns the ssh command line with which OS user from logs in as OS user to
// (batch mode, no host key prompts), once it works. from's key pair is made on first
// use, in a directory only from can read; its public key goes into to's authorized keys.
func (s *SSHD) Command(t testing.TB, from, to string) string {
	t.Helper()
	key := s.clientKey(t, from)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(s.dir, "auth", to)
	b, err := os.ReadFile(auth)
	if err != nil {
		t.Fatalf("sshtest: %s is not a user this sshd lets in: %v", to, err)
	}
	if !strings.Contains(string(b), string(pub)) {
		if err := os.WriteFile(auth, append(b, pub...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := fmt.Sprintf("ssh -i %s -p %d -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR %s@127.0.0.1",
		key, s.Port, to)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := exec.Command("sh", "-c", cmd+" true")
		if err := pgtest.RunAsUser(c, from); err != nil {
			t.Fatal(err)
		}
		out, err := c.CombinedOutput()
		if err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not let %s in as %s with %s: %v %s\nsshd log:\n%s", from, to, cmd, err, out, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *SSHD) clientKey(t testing.TB, from string) string {
	t.Helper()
	if k, ok := s.keys[from]; ok {
		return k
	}
	d := filepath.Join(s.dir, "client-"+from)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	k := filepath.Join(d, "key")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k)
	if err := pgtest.ChownUser(d, from); err != nil {
		t.Fatal(err)
	}
	s.keys[from] = k
	return k
}
