package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/wktest"
)

// status is the part of `status --json` the tests read.
type status struct {
	DaemonRunning   bool            `json:"daemon_running"`
	Archive         json.RawMessage `json:"archive"`
	IncomingBacklog int             `json:"incoming_backlog"`
	ErrorFiles      int             `json:"error_files"`
	Errors          []struct {
		File   string `json:"file"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

func newEnv(t *testing.T) *wktest.Env {
	return wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// archiveSnapshot lists the archive's files with their content, to prove it unchanged.
func archiveSnapshot(t *testing.T, env *wktest.Env) map[string]string {
	snap := map[string]string{}
	root := filepath.Join(env.Home, "pg1", "wals")
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			snap[p] = string(b)
		}
		return nil
	})
	return snap
}

// TestDaemonContract: one daemon per home; clear errors for bad archive-wal calls.
func TestDaemonContract(t *testing.T) {
	env := newEnv(t)
	env.Servers[0].Settings["conninfo"] = "host=127.0.0.1 port=1 user=postgres dbname=postgres sslmode=disable connect_timeout=1"
	env.WriteConfig(t)
	d := env.StartDaemon(t)
	r := env.Run("watch")
	if r.Code == 0 || !strings.Contains(r.Stderr, "another walkeeper watch") {
		t.Fatalf("second daemon: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if d.Exited() {
		t.Fatal("first daemon died")
	}
	r = env.Run("archive-wal", "nosuch", "/etc/hostname")
	if r.Code != 1 || !strings.Contains(r.Stderr, `unknown server "nosuch"`) {
		t.Fatalf("unknown server: exit %d, stderr %q", r.Code, r.Stderr)
	}
	r = env.Run("archive-wal", "pg1", "/nonexistent/000000010000000000000001")
	if r.Code != 1 || !strings.Contains(r.Stderr, "/nonexistent/000000010000000000000001") {
		t.Fatalf("missing file: exit %d, stderr %q", r.Code, r.Stderr)
	}
	r = env.Run("archive-wal", "pg1")
	if r.Code != 2 {
		t.Fatalf("missing argument: exit %d (want 2), stderr %q", r.Code, r.Stderr)
	}
	fi, err := os.Stat(env.Home)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("home mode: %v %v", fi.Mode(), err)
	}
	si, err := os.Stat(filepath.Join(env.Home, "walkeeper.sock"))
	if err != nil || si.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", si.Mode(), err)
	}
	d.Stop(t)
}
