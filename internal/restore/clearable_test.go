package restore

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// --force refuses, before removing anything, a target holding a live postmaster.pid
// deep inside (a cluster under the directory being cleared) or a directory it cannot
// read (another user's cluster that /proc does not show a non-root caller).
func TestForceRefusesWhatItCannotClearWhole(t *testing.T) {
	dest := t.TempDir()
	keep := filepath.Join(dest, "aaa-first")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cluster := filepath.Join(dest, "zzz", "data")
	if err := os.MkdirAll(cluster, 0o700); err != nil {
		t.Fatal(err)
	}
	pid := filepath.Join(cluster, "postmaster.pid")
	if err := os.WriteFile(pid, []byte(strconv.Itoa(os.Getpid())+"\n"+cluster+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := checkTarget(dest, true)
	if err == nil || !strings.Contains(err.Error(), "running PostgreSQL") || !strings.Contains(err.Error(), cluster) {
		t.Fatalf("a live postmaster.pid below the target: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("an entry before it was removed: %v", err)
	}
	if err := os.WriteFile(pid, []byte("999999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkTarget(dest, true); err != nil {
		t.Fatalf("a stale postmaster.pid (dead pid): %v", err)
	}
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory: the unreadable case needs another user")
	}
	if err := os.Chmod(cluster, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(cluster, 0o700)
	if err := checkTarget(dest, true); err == nil || !strings.Contains(err.Error(), "nothing was removed") {
		t.Fatalf("an unreadable directory below the target: %v", err)
	}
}
