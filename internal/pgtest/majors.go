package pgtest

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Other PostgreSQL majors. Debian ships 15 only; scripts/pg-majors.sh fetches the server
// binaries (postgres, initdb, pg_ctl) of 13, 14, 16, 17 and 18 into a cache, one dir per
// major. A cluster runs its major's server binaries (Cluster.BinDir) and PostgreSQL 15's
// client tools (ClientBinDir). Two ways to use them:
//   - the whole suite on one major: WALKEEPER_PGBIN=<cache>/<major>/bin go test ...
//     (`make test-all-pg` does this per major of WALKEEPER_PG_MAJORS);
//   - one test on a chosen major: RequireMajor, then New with Options.Major.

// MinMajor and MaxMajor bound the PostgreSQL majors walkeeper supports.
const (
	MinMajor = 13
	MaxMajor = 18
)

// CacheDir is where scripts/pg-majors.sh caches the other majors' server binaries:
// $WALKEEPER_PG_CACHE, else /var/cache/walkeeper/pg as root (a dir the postgres user can
// reach), else ${XDG_CACHE_HOME:-~/.cache}/walkeeper/pg. Keep in step with the script.
func CacheDir() string {
	if d := os.Getenv("WALKEEPER_PG_CACHE"); d != "" {
		return d
	}
	if IsRoot() {
		return "/var/cache/walkeeper/pg"
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "walkeeper", "pg")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "walkeeper", "pg")
}

var majorOf sync.Map // server bin dir -> int

// ServerMajor returns the major of the postgres binary in binDir (from postgres --version).
func ServerMajor(binDir string) (int, error) {
	if m, ok := majorOf.Load(binDir); ok {
		return m.(int), nil
	}
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s/postgres --version: %v: %s", binDir, err, strings.TrimSpace(string(out)))
	}
	m, err := parseVersionMajor(string(out))
	if err != nil {
		return 0, fmt.Errorf("%s/postgres --version: %w", binDir, err)
	}
	majorOf.Store(binDir, m)
	return m, nil
}

// parseVersionMajor reads the major from "postgres (PostgreSQL) 13.23" (or "16beta1").
func parseVersionMajor(s string) (int, error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return 0, fmt.Errorf("unexpected version string %q", strings.TrimSpace(s))
	}
	v := f[2]
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	m, err := strconv.Atoi(v[:end])
	if err != nil {
		return 0, fmt.Errorf("unexpected version string %q", strings.TrimSpace(s))
	}
	return m, nil
}

// MajorBinDir returns a server bin dir of the given major: BinDir or DefaultBinDir when
// they hold it, else CacheDir/<major>/bin; an error naming the command that fetches it
// otherwise.
func MajorBinDir(major int) (string, error) {
	for _, d := range []string{BinDir(), DefaultBinDir} {
		if m, err := ServerMajor(d); err == nil && m == major {
			return d, nil
		}
	}
	d := filepath.Join(CacheDir(), strconv.Itoa(major), "bin")
	m, err := ServerMajor(d)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL %d server binaries are not cached in %s (run scripts/pg-majors.sh %d): %v", major, filepath.Dir(d), major, err)
	}
	if m != major {
		return "", fmt.Errorf("%s holds PostgreSQL %d, not %d", d, m, major)
	}
	return d, nil
}

// Majors returns the majors named in WALKEEPER_PG_MAJORS ("13,14,16"), nil when unset.
// Entries outside MinMajor..MaxMajor fail.
func Majors() ([]int, error) {
	v := strings.TrimSpace(os.Getenv("WALKEEPER_PG_MAJORS"))
	if v == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		m, err := strconv.Atoi(f)
		if err != nil || m < MinMajor || m > MaxMajor {
			return nil, fmt.Errorf("WALKEEPER_PG_MAJORS=%q: %q is not a PostgreSQL major from %d to %d", v, f, MinMajor, MaxMajor)
		}
		out = append(out, m)
	}
	return out, nil
}

// RequireMajor is Require for a cluster of the given major: it returns that major's server
// bin dir (for Options.Major, or restore's --pg-bin). When the binaries are not cached the
// test is skipped with the command that fetches them, or fails when WALKEEPER_PG_MAJORS
// names the major (the matrix asked for it).
func RequireMajor(t testing.TB, major int) string {
	t.Helper()
	Require(t)
	d, err := MajorBinDir(major)
	if err == nil {
		return d
	}
	ms, merr := Majors()
	if merr != nil {
		t.Fatalf("pgtest: %v", merr)
	}
	for _, m := range ms {
		if m == major {
			t.Fatalf("pgtest: WALKEEPER_PG_MAJORS names %d: %v", major, err)
		}
	}
	t.Skipf("pgtest: skipping the PostgreSQL %d test: %v", major, err)
	return ""
}

// dataDirMajor reads the major from dir/PG_VERSION.
func dataDirMajor(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		return 0, err
	}
	m, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s/PG_VERSION: %q is not a major version", dir, strings.TrimSpace(string(b)))
	}
	return m, nil
}

// systemIdentifier reads the system identifier from global/pg_control, where it is the
// first field (a uint64 in the machine's byte order) on every major: PostgreSQL 15's
// pg_controldata warns about 17's and 18's changed layout.
func systemIdentifier(dir string) (uint64, error) {
	f, err := os.Open(filepath.Join(dir, "global", "pg_control"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return 0, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// run runs a PostgreSQL binary for this cluster: server binaries from c.BinDir, client
// tools as Bin does.
func (c *Cluster) run(stdin, name string, args ...string) (stdout, stderr string, err error) {
	return runBin(stdin, binIn(c.BinDir, name), args...)
}

// ClientMajor is the major of the client tools in ClientBinDir (0 if unknown). Their
// pg_basebackup and pg_dump refuse a server newer than that.
func ClientMajor() int {
	m, _ := ServerMajor(ClientBinDir())
	return m
}

// ToolsMatch reports whether the client tools are of c's major. When not, PostgreSQL 15's
// pg_waldump cannot read c's WAL (another page magic) and its pg_verifybackup can check a
// backup of c only without WAL (-n), and only a version 1 manifest (13 to 16): tests use
// those oracles only when ToolsMatch, or as far as they apply.
func (c *Cluster) ToolsMatch() bool {
	m, err := ServerMajor(ClientBinDir())
	return err == nil && m == c.Major
}
