package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configures New.
type Options struct {
	WalSegSizeMB   int               // initdb --wal-segsize (default 16)
	ArchiveCommand string            // if set: archive_mode=on, archive_command=this
	Conf           map[string]string // extra postgresql.conf settings (values are quoted for you)
	NoChecksums    bool              // data checksums are ON by default (initdb -k)
	Major          int               // server binaries of this major (0: BinDir's); see RequireMajor
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
	BinDir    string // server binaries (postgres, initdb, pg_ctl) of the data dir's major
	Major     int    // the data dir's PostgreSQL major (PG_VERSION)

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
	if opts.Major != 0 {
		d, err := MajorBinDir(opts.Major)
		if err != nil {
			t.Fatalf("pgtest: %s: %v", name, err)
		}
		c.BinDir = d
	}
	c.registerCleanup(t)
	seg := opts.WalSegSizeMB
	if seg == 0 {
		seg = 16
	}
	args := []string{"-D", c.Dir, "-U", PGUser, "-A", "trust", "-E", "UTF8", "--locale=C",
		"--no-sync", fmt.Sprintf("--wal-segsize=%d", seg)}
	if !opts.NoChecksums {
		args = append(args, "-k")
	} else if m, err := ServerMajor(c.BinDir); err == nil && m >= 18 {
		// 18's initdb turns checksums on by default.
		args = append(args, "--no-data-checksums")
	}
	if out, errOut, err := c.run("", "initdb", args...); err != nil {
		t.Fatalf("pgtest: initdb for %s: %v\n%s%s", name, err, out, errOut)
	}
	c.readMajor(t)
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
		BinDir:    BinDir(),
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
	c.readMajor(t)
	d, err := MajorBinDir(c.Major)
	if err != nil {
		t.Fatalf("pgtest: adopting %s, a PostgreSQL %d data dir: %v", abs, c.Major, err)
	}
	c.BinDir = d
	c.readSystemID(t)
	return c
}

// readMajor sets c.Major from the data dir's PG_VERSION.
func (c *Cluster) readMajor(t testing.TB) {
	t.Helper()
	m, err := dataDirMajor(c.Dir)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", c.Name, err)
	}
	c.Major = m
}

func (c *Cluster) readSystemID(t testing.TB) {
	t.Helper()
	id, err := systemIdentifier(c.Dir)
	if err != nil {
		t.Fatalf("pgtest: system identifier of %s: %v", c.Name, err)
	}
	c.SystemID = id
}

func (c *Cluster) registerCleanup(t testing.TB) {
	t.Cleanup(func() {
		if c.Running() {
			if _, errOut, err := c.run("", "pg_ctl", "stop", "-D", c.Dir, "-m", "immediate", "-w", "-t", "60"); err != nil {
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
		if out, errOut, err := c.run("", "pg_ctl", "reload", "-D", c.Dir); err != nil {
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
	if err := c.TryStart(t); err != nil {
		t.Fatal(err)
	}
}

// TryStart is Start returning the failure (with the tail of the server log) instead of
// failing the test: for a server that is meant to stop, such as a recovery that must
// not go on.
func (c *Cluster) TryStart(t testing.TB) error {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Running() {
		return nil
	}
	for attempt := 0; ; attempt++ {
		args := []string{"start", "-w", "-t", "120", "-D", c.Dir, "-l", c.LogFile}
		if o := c.serverOpts(); o != "" {
			args = append(args, "-o", o)
		}
		logStart := c.logSize()
		out, errOut, err := c.run("", "pg_ctl", args...)
		if err == nil {
			c.pid = c.postmasterPID()
			return nil
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
		return fmt.Errorf("pgtest: starting %s (%s) failed: %v\n%s%s\n--- server log tail ---\n%s", c.Name, c.Dir, err, out, errOut, c.LogTail(40))
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
	if out, errOut, err := c.run("", "pg_ctl", "stop", "-D", c.Dir, "-m", mode, "-w", "-t", "120"); err != nil {
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

// NewStandby takes pg_basebackup -R -X stream -c fast from primary into a new cluster with its
// own port and socket dir (tablespaces are remapped into the standby's Root), applies
// extraConf, and starts it as a hot standby streaming from primary. pg_basebackup refuses a
// server newer than itself: with a primary newer than the client tools the test is skipped.
func NewStandby(t testing.TB, name string, primary *Cluster, extraConf map[string]string) *Cluster {
	t.Helper()
	if cm := ClientMajor(); cm != 0 && primary.Major > cm {
		t.Skipf("pgtest: standby %s: pg_basebackup %d (%s) cannot copy a PostgreSQL %d server", name, cm, ClientBinDir(), primary.Major)
	}
	c := newCluster(t, name)
	c.BinDir, c.Major = primary.BinDir, primary.Major
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
	if c.Major < 14 {
		c.plainPrimaryConninfo(t, primary)
	}
	c.configureAndStart(t, extraConf)
	return c
}

// Promote promotes a standby (pg_ctl promote -w) and waits until it accepts writes.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	if out, errOut, err := c.run("", "pg_ctl", "promote", "-w", "-t", "120", "-D", c.Dir); err != nil {
		t.Fatalf("pgtest: promote %s: %v\n%s%s\n--- server log tail ---\n%s", c.Name, err, out, errOut, c.LogTail(40))
	}
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 60*time.Second)
}

// plainPrimaryConninfo replaces the primary_conninfo that PostgreSQL 15's pg_basebackup -R
// wrote to postgresql.auto.conf with the primary's plain ConnString: it lists every libpq
// option of 15's libpq, and 13's walreceiver refuses sslsni (libpq 14+).
func (c *Cluster) plainPrimaryConninfo(t testing.TB, primary *Cluster) {
	t.Helper()
	p := filepath.Join(c.Dir, "postgresql.auto.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "primary_conninfo") {
			keep = append(keep, l)
		}
	}
	keep = append(keep, "primary_conninfo = "+quoteConf(primary.ConnString("postgres")))
	if err := os.WriteFile(p, []byte(strings.Join(keep, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}
