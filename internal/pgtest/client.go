package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ConnString is the libpq/pgx conninfo for database db ("" = postgres).
func (c *Cluster) ConnString(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.Host, c.Port, PGUser, db)
}

// ReplConnString is a physical replication conninfo ("... replication=yes"), for
// pgconn.Connect + pglogrepl (IDENTIFY_SYSTEM, START_REPLICATION, BASE_BACKUP) and for psql.
func (c *Cluster) ReplConnString() string {
	return c.ConnString("postgres") + " replication=yes"
}

// Psql runs sql in database postgres; see PsqlDB.
func (c *Cluster) Psql(t testing.TB, sql string) string {
	t.Helper()
	return c.PsqlDB(t, "postgres", sql)
}

// PsqlDB runs sql (may hold several statements; fed to psql -X -A -t -q -v ON_ERROR_STOP=1 on
// stdin, so each statement runs on its own, like a script) and returns the trimmed stdout.
// Rows are one per line, columns separated by "|". Fails the test with stderr on error.
func (c *Cluster) PsqlDB(t testing.TB, db, sql string) string {
	t.Helper()
	out, err := c.psql(c.ConnString(db), sql)
	if err != nil {
		t.Fatalf("pgtest: psql on %s: %v\nSQL: %s", c.Name, err, sql)
	}
	return out
}

// PsqlErr is Psql (database postgres) returning the error (which holds psql's stderr).
func (c *Cluster) PsqlErr(sql string) (string, error) {
	return c.psql(c.ConnString("postgres"), sql)
}

// PsqlConn runs sql with psql on an arbitrary conninfo (e.g. ReplConnString()).
func (c *Cluster) PsqlConn(conninfo, sql string) (string, error) {
	return c.psql(conninfo, sql)
}

func (c *Cluster) psql(conninfo, sql string) (string, error) {
	out, errOut, err := runPG(sql, "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-")
	if err != nil {
		return strings.TrimSpace(out), fmt.Errorf("%v: %s", err, strings.TrimSpace(errOut))
	}
	return strings.TrimSpace(out), nil
}

// PgBench runs pgbench against the cluster (host, port and user set; database defaults to
// postgres unless args end with one), as the postgres user, and returns its combined output.
func (c *Cluster) PgBench(t testing.TB, args ...string) string {
	t.Helper()
	full := append([]string{"-h", c.Host, "-p", strconv.Itoa(c.Port), "-U", PGUser}, args...)
	out, err := RunPGErr("pgbench", full...)
	if err != nil {
		t.Fatalf("pgtest: pgbench %s on %s: %v\n%s\n--- server log tail ---\n%s", strings.Join(args, " "), c.Name, err, out, c.LogTail(20))
	}
	return out
}

func (c *Cluster) logSize() int64 {
	st, err := os.Stat(c.LogFile)
	if err != nil {
		return 0
	}
	return st.Size()
}

func (c *Cluster) logFrom(off int64) string {
	b, err := os.ReadFile(c.LogFile)
	if err != nil || off > int64(len(b)) {
		return string(b)
	}
	return string(b[off:])
}

// Log returns the whole server log.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.LogFile)
	return string(b)
}

// LogTail returns the last n lines of the server log.
func (c *Cluster) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(c.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitFor polls sql (database postgres, every 100ms) until its output equals want; errors
// while polling are tolerated (server starting up). Fails the test after timeout.
func (c *Cluster) WaitFor(t testing.TB, sql, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got string
	var err error
	for {
		got, err = c.PsqlErr(sql)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pgtest: %s: waited %v for %q to return %q; last output %q, error %v\n--- server log tail ---\n%s",
		c.Name, timeout, sql, want, got, err, c.LogTail(20))
}

// Tablespace creates a directory owned by postgres inside the cluster's Root and runs
// CREATE TABLESPACE name LOCATION dir. Returns dir.
func (c *Cluster) Tablespace(t testing.TB, name string) string {
	t.Helper()
	dir := mkdirPG(t, filepath.Join(c.Root, "tablespaces", name))
	_ = Chown(filepath.Dir(dir))
	c.Psql(t, fmt.Sprintf("CREATE TABLESPACE %s LOCATION '%s'", quoteIdent(name), strings.ReplaceAll(dir, "'", "''")))
	return dir
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
