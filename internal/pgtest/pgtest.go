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
//   - Environment: WALKEEPER_PGBIN overrides the binary dir; WALKEEPER_NO_PG=1 makes Require
//     (and thus New) skip the test instead of failing.
//   - `go test -short` skips every test that needs a real server (Require, RunPG, SkipShort):
//     the fast pass (`make race`) runs everything else.
package pgtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultBinDir is where Debian puts the PostgreSQL 15 binaries.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// PGUser is the OS user (and database superuser) the harness uses.
const PGUser = "postgres"

// BinDir returns $WALKEEPER_PGBIN or /usr/lib/postgresql/15/bin.
func BinDir() string {
	if d := os.Getenv("WALKEEPER_PGBIN"); d != "" {
		return d
	}
	return DefaultBinDir
}

// Bin returns the path of a PostgreSQL binary in BinDir.
func Bin(name string) string { return filepath.Join(BinDir(), name) }

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

// ---------------------------------------------------------------------------------------
// Running as the postgres user.

type credInfo struct {
	cred *syscall.Credential // nil when not root
	home string
	uid  int
	gid  int
}

var (
	credOnce sync.Once
	credVal  credInfo
	credErr  error
)

func pgCred() (credInfo, error) {
	credOnce.Do(func() {
		if os.Geteuid() != 0 {
			credVal = credInfo{uid: os.Geteuid(), gid: os.Getegid(), home: os.Getenv("HOME")}
			return
		}
		u, err := user.Lookup(PGUser)
		if err != nil {
			credErr = fmt.Errorf("running as root but OS user %q does not exist (PostgreSQL refuses to run as root; scripts/setup.sh creates it): %v", PGUser, err)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.Atoi(g); err == nil {
					c.Groups = append(c.Groups, uint32(n))
				}
			}
		}
		credVal = credInfo{cred: c, home: u.HomeDir, uid: uid, gid: gid}
	})
	return credVal, credErr
}

// IsRoot reports whether the harness runs the PostgreSQL tools under another user.
func IsRoot() bool { return os.Geteuid() == 0 }

// PGUID returns the uid and gid PostgreSQL runs as (the current ones when not root).
func PGUID() (uid, gid int) {
	c, _ := pgCred()
	return c.uid, c.gid
}

// RunAs makes cmd run as the postgres OS user when the current process is root: it sets
// SysProcAttr.Credential, sets HOME/USER/LOGNAME to that user's (keeping the rest of the
// environment) and, when cmd.Dir is empty, runs it in "/" so that the user can access its
// working directory (pass absolute paths). When not root it leaves cmd unchanged.
func RunAs(cmd *exec.Cmd) {
	c, err := pgCred()
	if err != nil || c.cred == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = c.cred
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "HOME="+c.home, "USER="+PGUser, "LOGNAME="+PGUser)
	cmd.Env = out
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
}

// Chown gives path (recursively) to the PostgreSQL user. No-op when not root.
func Chown(path string) error {
	c, err := pgCred()
	if err != nil {
		return err
	}
	if c.cred == nil {
		return nil
	}
	return filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, c.uid, c.gid)
	})
}

// MakeTraversable adds o+x to every ancestor directory of path that lacks it, so that the
// postgres user can reach path (e.g. a dir under Go's t.TempDir(), whose parent is 0700).
// No-op when not root.
func MakeTraversable(path string) error {
	if !IsRoot() {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
		if d == "/" || d == filepath.Dir(d) {
			return nil
		}
	}
}

// ---------------------------------------------------------------------------------------
// Temp dirs, ports, the walkeeper binary.

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

// ---------------------------------------------------------------------------------------
// Running PostgreSQL tools.

func runPG(stdin string, name string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(Bin(name), args...)
	RunAs(cmd)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err = cmd.Run()
	return o.String(), e.String(), err
}

// RunPG runs a binary from BinDir as the PostgreSQL user and returns its combined output;
// it fails the test (with the output) when the command fails. For pg_verifybackup,
// pg_waldump, pg_dump, ...
func RunPG(t testing.TB, name string, args ...string) string {
	t.Helper()
	SkipShort(t)
	out, err := RunPGErr(name, args...)
	if err != nil {
		t.Fatalf("pgtest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// RunPGErr is RunPG returning the error (with combined output) instead of failing.
func RunPGErr(name string, args ...string) (string, error) {
	cmd := exec.Command(Bin(name), args...)
	RunAs(cmd)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// Controldata runs pg_controldata on a data dir and returns its fields
// ("Database system identifier", "Latest checkpoint's TimeLineID", "Bytes per WAL segment", ...).
func Controldata(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := RunPG(t, "pg_controldata", "-D", dir)
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// ---------------------------------------------------------------------------------------
// Clusters.

// Options configures New.
type Options struct {
	WalSegSizeMB   int               // initdb --wal-segsize (default 16)
	ArchiveCommand string            // if set: archive_mode=on, archive_command=this
	Conf           map[string]string // extra postgresql.conf settings (values are quoted for you)
	NoChecksums    bool              // data checksums are ON by default (initdb -k)
}

// Cluster is one throw-away PostgreSQL server.
type Cluster struct {
	Name      string
	Dir       string // data directory (PGDATA)
	Port      int
	SocketDir string // private unix socket directory
	SystemID  uint64 // from pg_controldata
	Host      string // "127.0.0.1"
	LogFile   string // server log (outside the data dir)
	Root      string // private dir holding socket dir, log and tablespaces (not the data dir for FromDataDir)

	adopted bool // FromDataDir: port/socket passed on the command line
	mu      sync.Mutex
	pid     int // postmaster pid seen after the last successful Start
}

// New creates a cluster with initdb (as postgres, checksums on unless NoChecksums, trust auth,
// superuser postgres) and STARTS it. Start is a no-op on a running cluster, so calling it
// again is harmless. Cleanup stops the server (immediate) and removes everything.
func New(t testing.TB, name string, opts Options) *Cluster {
	t.Helper()
	c := newCluster(t, name)
	c.registerCleanup(t)
	seg := opts.WalSegSizeMB
	if seg == 0 {
		seg = 16
	}
	args := []string{"-D", c.Dir, "-U", PGUser, "-A", "trust", "-E", "UTF8", "--locale=C",
		"--no-sync", fmt.Sprintf("--wal-segsize=%d", seg)}
	if !opts.NoChecksums {
		args = append(args, "-k")
	}
	if out, errOut, err := runPG("", "initdb", args...); err != nil {
		t.Fatalf("pgtest: initdb for %s: %v\n%s%s", name, err, out, errOut)
	}
	conf := map[string]string{
		"wal_level":             "replica",
		"max_wal_senders":       "10",
		"max_replication_slots": "10",
		"shared_buffers":        "32MB",
		"max_connections":       "30",
		"logging_collector":     "off",
		"log_line_prefix":       "%m [%p] ",
		"log_min_messages":      "info",
	}
	if opts.ArchiveCommand != "" {
		conf["archive_mode"] = "on"
		conf["archive_command"] = opts.ArchiveCommand
	}
	hba := "local all all trust\nlocal replication all trust\n" +
		"host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n" +
		"host all all ::1/128 trust\nhost replication all ::1/128 trust\n"
	if err := os.WriteFile(filepath.Join(c.Dir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	_ = Chown(filepath.Join(c.Dir, "pg_hba.conf"))
	c.configureAndStart(t, conf, opts.Conf)
	return c
}

// newCluster allocates what every cluster made here has of its own: a private Root
// (socket dir, server log), a free port, and Dir = Root/data. The caller registers the
// cleanup, after anything that must run after the server stops.
func newCluster(t testing.TB, name string) *Cluster {
	t.Helper()
	Require(t)
	root := TempDir(t)
	return &Cluster{
		Name:      name,
		Root:      root,
		Dir:       filepath.Join(root, "data"),
		SocketDir: mkdirPG(t, filepath.Join(root, "sock")),
		LogFile:   filepath.Join(root, "server.log"),
		Host:      "127.0.0.1",
		Port:      FreePort(t),
	}
}

// configureAndStart appends to postgresql.conf the cluster's own address, port and
// socket dir with hot_standby on, then each of layers in order (a later layer wins),
// reads the system identifier and starts the server.
func (c *Cluster) configureAndStart(t testing.TB, layers ...map[string]string) {
	t.Helper()
	conf := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": c.SocketDir,
		"hot_standby":             "on",
	}
	for _, l := range layers {
		for k, v := range l {
			conf[k] = v
		}
	}
	c.appendConf(t, conf)
	c.readSystemID(t)
	c.Start(t)
}

// FromDataDir adopts an existing data directory (e.g. one restored by walkeeper) like Adopt
// and starts it (pg_ctl start -w: for a recovering cluster it returns once it is consistent
// and accepts read-only connections). Cleanup stops the server and removes dir.
func FromDataDir(t testing.TB, name, dir string) *Cluster {
	t.Helper()
	c := Adopt(t, name, dir)
	c.Start(t)
	return c
}

// Adopt is FromDataDir without starting the server: it gives dir to the postgres user
// (chown -R, chmod 0700, ancestors made traversable, tablespace targets too) and arranges for
// port, socket dir and listen_addresses to be passed on the pg_ctl command line
// (-o "-p N -k DIR -c listen_addresses=127.0.0.1"), leaving postgresql.conf and
// postgresql.auto.conf untouched. Cleanup stops the server and removes dir.
func Adopt(t testing.TB, name, dir string) *Cluster {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c := newCluster(t, name)
	c.Dir, c.adopted = abs, true
	// Cleanups run last-registered-first: register the removal before the stop.
	t.Cleanup(func() { _ = os.RemoveAll(abs) })
	c.registerCleanup(t)
	if err := MakeTraversable(abs); err != nil {
		t.Fatalf("pgtest: making %s reachable: %v", abs, err)
	}
	if err := Chown(abs); err != nil {
		t.Fatalf("pgtest: chown -R %s: %v", abs, err)
	}
	if err := os.Chmod(abs, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// Tablespace targets (pg_tblspc symlinks) must be the postgres user's too.
	if ents, err := os.ReadDir(filepath.Join(abs, "pg_tblspc")); err == nil {
		for _, e := range ents {
			if target, err := filepath.EvalSymlinks(filepath.Join(abs, "pg_tblspc", e.Name())); err == nil {
				_ = MakeTraversable(target)
				_ = Chown(target)
				_ = os.Chmod(target, 0o700)
			}
		}
	}
	c.readSystemID(t)
	return c
}

func (c *Cluster) readSystemID(t testing.TB) {
	t.Helper()
	cd := Controldata(t, c.Dir)
	id, err := strconv.ParseUint(cd["Database system identifier"], 10, 64)
	if err != nil {
		t.Fatalf("pgtest: parsing system identifier from pg_controldata: %v", err)
	}
	c.SystemID = id
}

func (c *Cluster) registerCleanup(t testing.TB) {
	t.Cleanup(func() {
		if c.Running() {
			if _, errOut, err := runPG("", "pg_ctl", "stop", "-D", c.Dir, "-m", "immediate", "-w", "-t", "60"); err != nil {
				t.Logf("pgtest: stopping %s at cleanup: %v %s", c.Name, err, errOut)
				if pid := c.postmasterPID(); pid > 0 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		// The data dir (and postmaster.pid) may be gone already (a test removed it): stop the
		// postmaster we started by its remembered pid.
		c.mu.Lock()
		pid := c.pid
		c.mu.Unlock()
		if pid > 0 && c.isOurPostmaster(pid) {
			_ = syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown
			for i := 0; i < 100 && c.isOurPostmaster(pid); i++ {
				time.Sleep(50 * time.Millisecond)
			}
			if c.isOurPostmaster(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// quoteConf renders a postgresql.conf value, single-quoted (already quoted values are kept).
func quoteConf(v string) string {
	if len(v) >= 2 && strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

func (c *Cluster) appendConf(t testing.TB, settings map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n# pgtest\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteConf(settings[k]))
	}
	f, err := os.OpenFile(filepath.Join(c.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// SetConf appends settings to postgresql.conf (values are quoted for you; later lines win) and
// reloads the server when it runs. Settings that need a restart need Restart.
func (c *Cluster) SetConf(t testing.TB, settings map[string]string) {
	t.Helper()
	c.appendConf(t, settings)
	if c.Running() {
		if out, errOut, err := runPG("", "pg_ctl", "reload", "-D", c.Dir); err != nil {
			t.Fatalf("pgtest: reload %s: %v\n%s%s", c.Name, err, out, errOut)
		}
		// pg_ctl reload only sends SIGHUP; give the postmaster a moment to read the file.
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) serverOpts() string {
	if !c.adopted {
		return ""
	}
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.Port, c.SocketDir)
}

// Start starts the server (pg_ctl start -w -t 120 -l LogFile) unless it is already running.
// If the port was taken in the meantime it retries with another one. On failure it fails the
// test with the tail of the server log.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Running() {
		return
	}
	for attempt := 0; ; attempt++ {
		args := []string{"start", "-w", "-t", "120", "-D", c.Dir, "-l", c.LogFile}
		if o := c.serverOpts(); o != "" {
			args = append(args, "-o", o)
		}
		logStart := c.logSize()
		out, errOut, err := runPG("", "pg_ctl", args...)
		if err == nil {
			c.pid = c.postmasterPID()
			return
		}
		newLog := c.logFrom(logStart)
		if attempt < 5 && strings.Contains(newLog, "could not bind") || attempt < 5 && strings.Contains(newLog, "already in use") {
			p, perr := freePort()
			if perr == nil {
				t.Logf("pgtest: %s: port %d busy, retrying on %d", c.Name, c.Port, p)
				c.Port = p
				if !c.adopted {
					c.appendConf(t, map[string]string{"port": strconv.Itoa(p)})
				}
				continue
			}
		}
		t.Fatalf("pgtest: starting %s (%s) failed: %v\n%s%s\n--- server log tail ---\n%s", c.Name, c.Dir, err, out, errOut, c.LogTail(40))
	}
}

// Stop stops the server with pg_ctl stop -m MODE ("fast", "immediate" or "smart"; "" = fast).
func (c *Cluster) Stop(t testing.TB, mode string) {
	t.Helper()
	if mode == "" {
		mode = "fast"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if out, errOut, err := runPG("", "pg_ctl", "stop", "-D", c.Dir, "-m", mode, "-w", "-t", "120"); err != nil {
		t.Fatalf("pgtest: stopping %s (-m %s): %v\n%s%s\n--- server log tail ---\n%s", c.Name, mode, err, out, errOut, c.LogTail(40))
	}
}

// Restart stops (fast) and starts the server.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	if c.Running() {
		c.Stop(t, "fast")
	}
	c.Start(t)
}

func (c *Cluster) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.Dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	return pid
}

// isOurPostmaster reports whether pid is alive and is a postgres process for c.Dir.
func (c *Cluster) isOurPostmaster(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie (state Z) is dead already.
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
			return false
		}
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 0 && strings.HasSuffix(args[0], "postgres") && strings.Contains(string(b), c.Dir)
}

// Running reports whether the cluster's postmaster is alive.
func (c *Cluster) Running() bool {
	pid := c.postmasterPID()
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

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

// NewStandby takes pg_basebackup -R -X stream -c fast from primary into a new cluster with its
// own port and socket dir (tablespaces are remapped into the standby's Root), applies
// extraConf, and starts it as a hot standby streaming from primary.
func NewStandby(t testing.TB, name string, primary *Cluster, extraConf map[string]string) *Cluster {
	t.Helper()
	c := newCluster(t, name)
	c.registerCleanup(t)
	args := []string{"-D", c.Dir, "-R", "-X", "stream", "-c", "fast", "--no-sync",
		"-d", primary.ConnString("postgres")}
	if locs, err := primary.PsqlErr("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname NOT IN ('pg_default','pg_global')"); err == nil && locs != "" {
		for i, loc := range strings.Split(locs, "\n") {
			nd := mkdirPG(t, filepath.Join(c.Root, fmt.Sprintf("ts%d", i)))
			args = append(args, "--tablespace-mapping="+loc+"="+nd)
		}
	}
	if out, errOut, err := runPG("", "pg_basebackup", args...); err != nil {
		t.Fatalf("pgtest: pg_basebackup for standby %s: %v\n%s%s\n--- primary log tail ---\n%s", name, err, out, errOut, primary.LogTail(20))
	}
	c.configureAndStart(t, extraConf)
	return c
}

// Promote promotes a standby (pg_ctl promote -w) and waits until it accepts writes.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	if out, errOut, err := runPG("", "pg_ctl", "promote", "-w", "-t", "120", "-D", c.Dir); err != nil {
		t.Fatalf("pgtest: promote %s: %v\n%s%s\n--- server log tail ---\n%s", c.Name, err, out, errOut, c.LogTail(40))
	}
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 60*time.Second)
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
