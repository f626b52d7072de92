package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/wktest"
)

// truncateTable cuts every table file of the index to half its size.
func truncateTable(t *testing.T, home string) {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(home, "index", "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("the index has no table file to damage")
	}
	for _, f := range ssts {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, st.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
}

// vmHWM is a process's peak resident set size, from /proc/PID/status.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return l[len(l)-1]
}

// TestConfigContract: configuration errors are bad usage (exit 2) on one line; a
// [index] section is refused; a group-readable file holding a password is warned about
// in one line.
func TestConfigContract(t *testing.T) {
	env := newEnv(t)
	write := func(body string, mode os.FileMode) {
		t.Helper()
		writeFile(t, env.Config, []byte(fmt.Sprintf("[walkeeper]\nhome = %s\n", env.Home)+body))
		if err := os.Chmod(env.Config, mode); err != nil {
			t.Fatal(err)
		}
	}
	oneLine := func(what string, r wktest.Result, code int, want string) {
		t.Helper()
		msg := strings.TrimRight(r.Stderr, "\n")
		if r.Code != code || strings.Contains(msg, "\n") || !strings.Contains(msg, want) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want one line with %q)", what, r.Code, code, r.Stderr, want)
		}
	}
	write("[pg1\nconninfo = host=x\n", 0o600)
	oneLine("INI syntax error", env.Run("status", "pg1"), 2, "unclosed section")
	write("[pg1]\nconninfo = host=x\ncompresion = zstd\n", 0o600)
	oneLine("unknown option", env.Run("list-backups", "pg1"), 2, `unknown option "compresion"`)
	write("[index]\nconninfo = host=x\n", 0o600)
	oneLine("[index] section", env.Run("status", "index"), 2, "[index]: the name is reserved")
	oneLine("[index] section, watch", env.Run("watch"), 2, "[index]: the name is reserved")
	r := env.Run("--config", filepath.Join(env.Dir, "nosuch.conf"), "status", "pg1")
	oneLine("missing config file", r, 2, "nosuch.conf")
	write("[pg1]\nconninfo = host=127.0.0.1 port=1 password=s3cret\n", 0o640)
	r = env.Run("list-backups", "pg1")
	if r.Code != 0 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "chmod 600 "+env.Config) || strings.Contains(r.Stderr, "s3cret") {
		t.Errorf("group-readable config with a password: exit %d, stderr %q", r.Code, r.Stderr)
	}
	write("[pg1]\nconninfo = host=127.0.0.1 port=1 password=s3cret\n", 0o600)
	if r := env.Run("list-backups", "pg1"); r.Code != 0 || r.Stderr != "" {
		t.Errorf("0600 config: exit %d, stderr %q", r.Code, r.Stderr)
	}
	oneLine("unknown flag", env.Run("status", "pg1", "--nosuch"), 2, "unknown flag --nosuch")
}
