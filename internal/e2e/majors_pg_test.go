package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// TestRestoreRefusesOtherMajor (issue 13, item 5): a backup restored or sandboxed with a
// DBA's --pg-bin of another major, older or newer, is refused before anything is written,
// exit 2, naming both majors; the backup's own binaries pass and are named in restore's
// start command. The other majors are every one at hand: Debian's 15 and those
// scripts/pg-majors.sh cached (the matrix runs this on 13 to 18, 15 then being the other).
func TestRestoreRefusesOtherMajor(t *testing.T) {
	x := newTruth(t, "", nil)
	x.pg.Psql(t, "INSERT INTO rows VALUES (1, 'one')")
	x.backup(t)
	own := x.pg.BinDir
	var others []string
	for m := pgtest.MinMajor; m <= pgtest.MaxMajor; m++ {
		if m == x.pg.Major {
			continue
		}
		if d, err := pgtest.MajorBinDir(m); err == nil {
			others = append(others, d)
		}
	}
	base := pgtest.TempDir(t)
	for i, other := range others {
		om, err := pgtest.ServerMajor(other)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("its binaries are PostgreSQL %d, but the backup is of PostgreSQL %d", om, x.pg.Major)
		dest := filepath.Join(base, fmt.Sprintf("refused%d", i))
		r := x.env.Run("restore", "pg1", "latest", dest, "--pg-bin", other)
		if r.Code != 2 || !strings.Contains(r.Stderr, "--pg-bin "+other) || !strings.Contains(r.Stderr, want) {
			t.Fatalf("restore of a PostgreSQL %d backup with --pg-bin %s: exit %d (want 2), stderr %q (want %q)", x.pg.Major, other, r.Code, r.Stderr, want)
		}
		if _, err := os.Lstat(dest); !os.IsNotExist(err) {
			t.Fatalf("refused restore left %s behind (%v)", dest, err)
		}
		r = x.env.Run("sandbox", "start", "pg1", "--target-immediate", "--pg-bin", other)
		if r.Code != 2 || !strings.Contains(r.Stderr, want) {
			t.Fatalf("sandbox of a PostgreSQL %d backup with --pg-bin %s: exit %d (want 2), stderr %q", x.pg.Major, other, r.Code, r.Stderr)
		}
		if _, err := os.Lstat(filepath.Join(x.env.Home, "pg1", "sandbox")); !os.IsNotExist(err) {
			t.Fatalf("refused sandbox left its scratch directory behind (%v)", err)
		}
		t.Logf("PostgreSQL %d binaries refused for a backup of %d: %s", om, x.pg.Major, strings.TrimSpace(r.Stderr))
	}
	dest := filepath.Join(base, "own")
	r := x.env.Run("restore", "pg1", "latest", dest, "--pg-bin", own)
	if r.Code != 0 || !strings.Contains(r.Stdout, "start it with: "+filepath.Join(own, "pg_ctl")+" -D ") {
		t.Fatalf("restore with the backup's own --pg-bin %s: exit %d, stdout %q, stderr %q", own, r.Code, r.Stdout, r.Stderr)
	}
	if len(others) == 0 {
		t.Skipf("no PostgreSQL binaries of a major other than %d at hand (scripts/pg-majors.sh fetches them): only the backup's own were checked", x.pg.Major)
	}
}
