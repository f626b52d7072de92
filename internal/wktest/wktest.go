// Package wktest runs the real walkeeper binary in tests the way a DBA would: a home and
// config file owned by the PostgreSQL user, the `watch` daemon as a process that can be
// stopped or killed, and CLI calls with their exit codes.
package wktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// Env is one walkeeper installation: a home directory and a config file.
type Env struct {
	Bin    string
	Dir    string // private dir holding home, config and logs
	Home   string
	Config string
	// Servers are the server sections, in order, as written to the config.
	Servers []ServerSection
	Global  map[string]string
	// User is the OS user that owns the home and runs walkeeper (Run, StartDaemon):
	// "" for the PostgreSQL user (one host), pgtest.WalkeeperUser for NewRemote.
	User string
}

// ServerSection is one [section] of the config.
type ServerSection struct {
	Name     string
	Settings map[string]string
}

// New makes an Env with the given servers and writes its config.
func New(t testing.TB, servers ...ServerSection) *Env {
	t.Helper()
	dir := pgtest.TempDir(t)
	e := &Env{Bin: pgtest.Walkeeper(t), Dir: dir, Home: filepath.Join(dir, "home"), Config: filepath.Join(dir, "walkeeper.conf"),
		Servers: servers, Global: map[string]string{}}
	// Registered first, so it runs last: after the daemons and clusters are stopped.
	t.Cleanup(func() { pgtest.CheckRace(t) })
	e.WriteConfig(t)
	return e
}

// NewRemote is New for the two-host layout: the home and the config belong to the
// walkeeper OS user (mode 0700), which runs every command and the daemon, so that
// PostgreSQL's user cannot read the archive and reaches it only through ssh. It skips
// the test when not root.
func NewRemote(t testing.TB, servers ...ServerSection) *Env {
	t.Helper()
	pgtest.RequireWalkeeperUser(t)
	dir := pgtest.TempDirOf(t, pgtest.WalkeeperUser)
	e := &Env{Bin: pgtest.Walkeeper(t), Dir: dir, Home: filepath.Join(dir, "home"), Config: filepath.Join(dir, "walkeeper.conf"),
		Servers: servers, Global: map[string]string{}, User: pgtest.WalkeeperUser}
	t.Cleanup(func() { pgtest.CheckRace(t) })
	e.WriteConfig(t)
	return e
}

// WriteConfig (re)writes the config file from e.Global and e.Servers.
func (e *Env) WriteConfig(t testing.TB) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[walkeeper]\nhome = %s\n", e.Home)
	for k, v := range e.Global {
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	for _, s := range e.Servers {
		fmt.Fprintf(&b, "\n[%s]\n", s.Name)
		for k, v := range s.Settings {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	if err := os.WriteFile(e.Config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.ChownUser(e.Config, e.User); err != nil {
		t.Fatal(err)
	}
}

// ArchiveCommand is the archive_command for server.
func (e *Env) ArchiveCommand(server string) string {
	return fmt.Sprintf("%s --config %s archive-wal %s %%p", e.Bin, e.Config, server)
}

// RestoreCommand is the restore_command for server.
func (e *Env) RestoreCommand(server string) string {
	return fmt.Sprintf("%s --config %s get-wal %s %%f %%p", e.Bin, e.Config, server)
}

// Result is one CLI call's outcome.
type Result struct {
	Stdout, Stderr string
	Code           int
	// MaxRSS is the process's peak resident set size in bytes (its rusage).
	MaxRSS int64
}

// Run calls walkeeper with args (as e.User, by default the PostgreSQL user) and
// returns its outcome.
func (e *Env) Run(args ...string) Result { return e.run(true, args...) }

// RunAsCaller is Run as the test's own user (root in CI): a DBA's `sudo walkeeper`.
func (e *Env) RunAsCaller(args ...string) Result { return e.run(false, args...) }

func (e *Env) run(asPG bool, args ...string) Result {
	cmd := exec.Command(e.Bin, append([]string{"--config", e.Config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if asPG {
		if err := pgtest.RunAsUser(cmd, e.User); err != nil {
			return Result{Code: -1, Stderr: err.Error()}
		}
	}
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSS = ru.Maxrss << 10 // kilobytes on Linux
		}
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code = -1
		r.Stderr += err.Error()
	}
	return r
}

// MustRun calls walkeeper and fails the test unless it exits 0.
func (e *Env) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	r := e.Run(args...)
	if r.Code != 0 {
		t.Fatalf("walkeeper %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// JSON calls a read command with --json and decodes its output into v.
func (e *Env) JSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out := e.MustRun(t, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("walkeeper %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Daemon is a running `walkeeper watch`.
type Daemon struct {
	cmd  *exec.Cmd
	Log  string
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// StartDaemon starts `walkeeper watch` with extra environment (e.g. a failpoint) and
// waits until its socket answers. Cleanup stops it.
func (e *Env) StartDaemon(t testing.TB, env ...string) *Daemon {
	t.Helper()
	logf, err := os.CreateTemp(e.Dir, "watch-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.Bin, "--config", e.Config, "watch")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := pgtest.RunAsUser(cmd, e.User); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, env...)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("start walkeeper watch: %v", err)
	}
	d := &Daemon{cmd: cmd, Log: logf.Name(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		logf.Close()
		close(d.done)
	}()
	t.Cleanup(func() { d.Stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Asked over the socket, not with a command: a command that finds no daemon
		// (one a failpoint killed) opens the index itself and repairs it, which would
		// change the crash state a test is about to look at.
		if c, err := daemon.Dial(e.Home); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			info, err := c.Info(ctx)
			cancel()
			if err == nil && info.PID == cmd.Process.Pid {
				return d
			}
		}
		select {
		case <-d.done:
			return d // died early (a failpoint may do that); callers check Exited
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("walkeeper watch did not come up in 30s; log:\n%s", d.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Output is the daemon's log so far.
func (d *Daemon) Output() string {
	b, _ := os.ReadFile(d.Log)
	return string(b)
}

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end and returns its exit error.
func (d *Daemon) Wait(timeout time.Duration) (error, bool) {
	select {
	case <-d.done:
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Stop sends SIGTERM and waits; it fails the test if the daemon does not exit 0.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.Exited() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	err, ok := d.Wait(60 * time.Second)
	if !ok {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		t.Errorf("walkeeper watch did not stop within 60s of SIGTERM; log:\n%s", d.Output())
		return
	}
	if err != nil {
		t.Errorf("walkeeper watch exited with %v after SIGTERM; log:\n%s", err, d.Output())
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (d *Daemon) Kill() {
	if d.Exited() {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	d.Wait(30 * time.Second)
}

// Eventually polls cond until it returns true or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// HashTree hashes every regular file under dir (relative path -> sha256 hex), or only
// under the named subdirectories of dir (a missing one holds nothing; a missing dir
// itself fails the test): a snapshot that tests compare to prove a command left files
// alone.
func HashTree(t testing.TB, dir string, subs ...string) map[string]string {
	t.Helper()
	optional := len(subs) > 0
	if !optional {
		subs = []string{"."}
	}
	out := map[string]string{}
	for _, sub := range subs {
		err := filepath.Walk(filepath.Join(dir, sub), func(p string, fi os.FileInfo, err error) error {
			if optional && os.IsNotExist(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				rel, _ := filepath.Rel(dir, p)
				out[rel] = hex.EncodeToString(sum[:])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
