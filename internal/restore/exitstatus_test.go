package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestExitStatus: get-wal's exit status is what PostgreSQL needs to tell "no such file"
// (1: a probe, or the end of the archive) from "cannot tell" (ExitFatal: recovery stops
// rather than ending short of archived WAL), and a standby always retries.
func TestExitStatus(t *testing.T) {
	root := t.TempDir()
	recovering := filepath.Join(root, "recovering", "pg_wal", "RECOVERYXLOG")
	standby := filepath.Join(root, "standby", "pg_wal", "RECOVERYXLOG")
	for _, d := range []string{recovering, standby} {
		if err := os.MkdirAll(filepath.Dir(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "standby", "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	damaged := fmt.Errorf("get-wal 000000010000000000000003: read pg1/wals/x.zst: %w", errors.New("zstd: corrupt input"))
	for _, c := range []struct {
		name, dest, from string
		standbyFlag      bool
		err              error
		want             int
	}{
		{"served", recovering, FromArchive, false, nil, 0},
		{"not archived", recovering, "", false, fmt.Errorf("x: %w", ErrNotArchived), 1},
		{"only partial", standby, "", false, ErrOnlyPartial, 1},
		{"placed in pg_wal", recovering, FromPGWAL, false, nil, 1},
		{"usage", recovering, "", false, usage("bad name"), 2},
		{"damaged copy ends no recovery", recovering, "", false, damaged, ExitFatal},
		{"damaged copy to stdout", StdoutDest, "", false, damaged, ExitFatal},
		{"damaged copy, standby.signal", standby, "", false, damaged, 1},
		{"damaged copy, --standby", StdoutDest, "", true, damaged, 1},
		{"remote marked fatal", standby, "", true, fatalError{errors.New("ssh connection failed")}, ExitFatal},
	} {
		code, err := ExitStatus("pg1", "000000010000000000000003", c.dest, c.from, c.standbyFlag, c.err)
		if code != c.want {
			t.Errorf("%s: exit %d, want %d", c.name, code, c.want)
		}
		if code != 0 && c.err != nil && err == nil {
			t.Errorf("%s: exit %d without a message", c.name, code)
		}
	}
}
