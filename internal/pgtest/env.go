package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	baseOnce sync.Once
	baseDir  string
	baseErr  error
)

// processDir is os.TempDir()/walkeeper-test-<pid>, mode 0755, shared by this test process.
// Stale ones (of test processes that have exited) are removed when it is first created,
// so the per-process binaries and sockets do not pile up in /tmp.
func processDir() (string, error) {
	baseOnce.Do(func() {
		tmp := os.TempDir()
		cleanStale(tmp)
		baseDir = filepath.Join(tmp, fmt.Sprintf("walkeeper-test-%d", os.Getpid()))
		if baseErr = os.MkdirAll(baseDir, 0o755); baseErr != nil {
			return
		}
		if baseErr = os.Chmod(baseDir, 0o755); baseErr != nil {
			return
		}
		baseErr = MakeTraversable(baseDir)
	})
	return baseDir, baseErr
}

func cleanStale(tmp string) {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "walkeeper-test-") {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "walkeeper-test-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // still alive
		}
		_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
}

var (
	tbOnce sync.Once
	tbErr  error
)

// tempBase is os.TempDir(), made traversable for the postgres user.
func tempBase() (string, error) {
	tmp := os.TempDir()
	tbOnce.Do(func() { tbErr = MakeTraversable(filepath.Join(tmp, "x")) })
	return tmp, tbErr
}

// TempDir returns a fresh directory owned by the PostgreSQL user, mode 0700, reachable by
// that user, and removed at cleanup.
func TempDir(t testing.TB) string {
	t.Helper()
	base, err := tempBase()
	if err != nil {
		t.Fatalf("pgtest: temp base dir: %v", err)
	}
	d, err := os.MkdirTemp(base, "walkeeper-pg-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := Chown(d); err != nil {
		t.Fatalf("pgtest: chown %s: %v", d, err)
	}
	return d
}

// mkdirPG creates dir (mode 0700) owned by the PostgreSQL user.
func mkdirPG(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := Chown(dir); err != nil {
		t.Fatalf("pgtest: chown %s: %v", dir, err)
	}
	return dir
}

var (
	portMu   sync.Mutex
	usedPort = map[int]bool{}
)

// FreePort returns a free loopback TCP port, never the same one twice in this process.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("pgtest: free port: %v", err)
	}
	return p
}

func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !usedPort[p] {
			usedPort[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port found")
}

var (
	wkOnce sync.Once
	wkPath string
	wkErr  error
)

// ModuleRoot returns the directory holding go.mod, found by walking up from the working dir.
func ModuleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("go.mod not found above the working directory")
		}
		d = p
	}
}

// Walkeeper builds ./cmd/walkeeper once per test process into
// os.TempDir()/walkeeper-test-<pid>/bin/walkeeper (0755 chain, so the postgres user can run
// it from archive_command) and returns its path. The binary is kept until the process exits.
func Walkeeper(t testing.TB) string {
	t.Helper()
	wkOnce.Do(func() {
		base, err := processDir()
		if err != nil {
			wkErr = err
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			wkErr = err
			return
		}
		bin := filepath.Join(base, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			wkErr = err
			return
		}
		out := filepath.Join(bin, "walkeeper")
		args := []string{"build", "-o", out}
		if raceEnabled {
			// Under -race the binary is race-enabled too, and every process it starts
			// (CLI, daemon, archive_command of a cluster started after this) writes its
			// reports under raceDir, which CheckRace turns into test failures.
			if err := os.MkdirAll(raceDir(base), 0o777); err != nil {
				wkErr = err
				return
			}
			if err := os.Chmod(raceDir(base), 0o1777); err != nil {
				wkErr = err
				return
			}
			if err := os.Setenv("GORACE", "log_path="+filepath.Join(raceDir(base), "walkeeper")); err != nil {
				wkErr = err
				return
			}
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/walkeeper")...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			wkErr = fmt.Errorf("go build ./cmd/walkeeper: %v\n%s", err, b)
			return
		}
		if err := os.Chmod(out, 0o755); err != nil {
			wkErr = err
			return
		}
		wkPath = out
	})
	if wkErr != nil {
		t.Fatalf("pgtest: %v", wkErr)
	}
	return wkPath
}

func raceDir(base string) string { return filepath.Join(base, "race") }

// CheckRace fails t with every race report the walkeeper binary has written since the last
// call (only under -race; see Walkeeper) and removes the reports, so each one fails the
// test that was running when it was written.
func CheckRace(t testing.TB) {
	t.Helper()
	if !raceEnabled {
		return
	}
	base, err := processDir()
	if err != nil {
		t.Errorf("pgtest: %v", err)
		return
	}
	logs, _ := filepath.Glob(filepath.Join(raceDir(base), "walkeeper.*"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Errorf("pgtest: reading race report: %v", err)
			continue
		}
		t.Errorf("data race in the walkeeper binary (%s):\n%s", l, b)
		_ = os.Remove(l)
	}
}
