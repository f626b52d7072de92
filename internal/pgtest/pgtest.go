// Package pgtest is the real-PostgreSQL test harness: it creates, starts, stops and cleans up
// throw-away PostgreSQL clusters (run as the `postgres` OS user when the tests run as root),
// and builds the walkeeper binary once per test process.
//
// Conventions:
//   - Every cluster listens on 127.0.0.1 on a free port and on a private unix socket dir.
//   - Everything a test creates is removed in t.Cleanup, and every server started is stopped
//     (immediate mode) in t.Cleanup, also when the test fails.
//   - Normal connections: Cluster.ConnString(db) =
//     "host=127.0.0.1 port=N user=postgres dbname=DB sslmode=disable" (pgx, pgconn, psql).
//   - Physical replication connections (IDENTIFY_SYSTEM, START_REPLICATION, BASE_BACKUP):
//     Cluster.ReplConnString() = the same plus "replication=yes". pgconn passes "replication"
//     through as a startup parameter; the server reads "database" as logical replication and
//     any boolean (yes/true/on/1) as physical replication. Use it with pgconn.Connect (and
//     pglogrepl), not pgx.Connect (pgx runs queries a walsender rejects).
//   - Environment: WALKEEPER_PGBIN overrides the server binary dir (postgres, initdb, pg_ctl:
//     e.g. another major's, cached by scripts/pg-majors.sh); client tools (psql, pgbench,
//     pg_basebackup, pg_controldata, ...) come from it when it has them, else from
//     WALKEEPER_PGCLIENTBIN (default PostgreSQL 15's). WALKEEPER_NO_PG=1 makes Require
//     (and thus New) skip the test instead of failing. See majors.go for other majors.
//   - `go test -short` skips every test that needs a real server (Require, RunPG, SkipShort):
//     the fast pass (`make race`) runs everything else.
package pgtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// DefaultBinDir is where Debian puts the PostgreSQL 15 binaries.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// PGUser is the OS user (and database superuser) the harness uses.
const PGUser = "postgres"

// BinDir returns the default server binary dir: $WALKEEPER_PGBIN or /usr/lib/postgresql/15/bin.
func BinDir() string {
	if d := os.Getenv("WALKEEPER_PGBIN"); d != "" {
		return d
	}
	return DefaultBinDir
}

// ClientBinDir returns where client tools missing from BinDir come from:
// $WALKEEPER_PGCLIENTBIN or /usr/lib/postgresql/15/bin (the other majors' packages carry
// server binaries only, and Debian has 15's clients only).
func ClientBinDir() string {
	if d := os.Getenv("WALKEEPER_PGCLIENTBIN"); d != "" {
		return d
	}
	return DefaultBinDir
}

// Bin returns the path of a PostgreSQL binary: from BinDir when it is there, else from
// ClientBinDir. Server binaries (postgres, initdb, pg_ctl) always come from BinDir.
func Bin(name string) string { return binIn(BinDir(), name) }

// serverBins are the binaries that must match the data directory's major.
var serverBins = map[string]bool{"postgres": true, "initdb": true, "pg_ctl": true}

func binIn(serverDir, name string) string {
	p := filepath.Join(serverDir, name)
	if serverBins[name] {
		return p
	}
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p
	}
	return filepath.Join(ClientBinDir(), name)
}

// SkipShort skips the test in -short mode because it needs a real PostgreSQL (or sshd, or
// the postgres OS user). Tests that need one without going through Require call it first.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping test that needs a real PostgreSQL server or its binaries")
	}
}

var requiredBins = []string{"initdb", "pg_ctl", "postgres", "psql", "pgbench", "pg_basebackup", "pg_controldata"}

// Require fails the test with a clear message when the PostgreSQL binaries (or, when running
// as root, the postgres OS user) are missing. It skips only in -short mode (the fast pass,
// e.g. `make race`, runs every test that does not need a server) or when WALKEEPER_NO_PG=1.
// Every entry that starts a server (New, NewStandby, Adopt, FromDataDir) goes through it;
// RunPG and Controldata skip in -short mode too.
func Require(t testing.TB) {
	t.Helper()
	SkipShort(t)
	if os.Getenv("WALKEEPER_NO_PG") == "1" {
		t.Skip("WALKEEPER_NO_PG=1: skipping test that needs a real PostgreSQL")
	}
	var missing []string
	for _, b := range requiredBins {
		if st, err := os.Stat(Bin(b)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, Bin(b))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("pgtest: PostgreSQL binaries missing: %s (run scripts/setup.sh as root, or set WALKEEPER_PGBIN to the bin dir; WALKEEPER_NO_PG=1 skips these tests)",
			strings.Join(missing, ", "))
	}
	if _, err := pgCred(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}
