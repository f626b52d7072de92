package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestClusterBasics(t *testing.T) {
	t.Parallel()
	c := New(t, "basic", Options{})
	if !c.Running() {
		t.Fatal("cluster not running after New")
	}
	c.Start(t) // idempotent
	if got := c.Psql(t, "SELECT 1+1"); got != "2" {
		t.Fatalf("SELECT 1+1 = %q", got)
	}
	if got := c.Psql(t, "CREATE TABLE t(a int); INSERT INTO t SELECT generate_series(1,10); SELECT count(*) FROM t"); got != "10" {
		t.Fatalf("count = %q", got)
	}
	if got := c.Psql(t, "SHOW data_checksums"); got != "on" {
		t.Fatalf("data_checksums = %q", got)
	}
	if _, err := c.PsqlErr("SELECT * FROM nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("PsqlErr on bad SQL: %v", err)
	}
	sysid := c.Psql(t, "SELECT system_identifier FROM pg_control_system()")
	if sysid != strconv.FormatUint(c.SystemID, 10) || c.SystemID == 0 {
		t.Fatalf("SystemID %d, server says %s", c.SystemID, sysid)
	}
	cd := Controldata(t, c.Dir)
	if cd["Bytes per WAL segment"] != "16777216" {
		t.Fatalf("controldata: %v", cd)
	}

	// pgx on ConnString.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 10 {
		t.Fatalf("pgx count %d %v", n, err)
	}
	conn.Close(ctx)

	// pgconn + pglogrepl on ReplConnString (physical replication).
	rc, err := pgconn.Connect(ctx, c.ReplConnString())
	if err != nil {
		t.Fatal(err)
	}
	sys, err := pglogrepl.IdentifySystem(ctx, rc)
	if err != nil {
		t.Fatalf("IDENTIFY_SYSTEM: %v", err)
	}
	if sys.SystemID != strconv.FormatUint(c.SystemID, 10) || sys.Timeline != 1 || sys.DBName != "" {
		t.Fatalf("IDENTIFY_SYSTEM = %+v", sys)
	}
	rc.Close(ctx)
	// psql accepts the same replication conninfo.
	if out, err := c.PsqlConn(c.ReplConnString(), "IDENTIFY_SYSTEM"); err != nil || !strings.HasPrefix(out, sysid+"|1|") {
		t.Fatalf("psql IDENTIFY_SYSTEM: %q %v", out, err)
	}

	c.PgBench(t, "-i", "-s", "1", "-q")
	out := c.PgBench(t, "-t", "20", "-c", "2")
	if !strings.Contains(out, "number of transactions actually processed: 40") {
		t.Fatalf("pgbench output: %s", out)
	}

	ts := c.Tablespace(t, "ts1")
	c.Psql(t, "CREATE TABLE tt(a int) TABLESPACE ts1; INSERT INTO tt VALUES (1)")
	if ents, _ := os.ReadDir(ts); len(ents) == 0 {
		t.Fatalf("tablespace dir %s empty", ts)
	}

	c.SetConf(t, map[string]string{"work_mem": "7MB"})
	c.WaitFor(t, "SHOW work_mem", "7MB", 10*time.Second)
	c.Restart(t)
	if got := c.Psql(t, "SELECT a FROM tt"); got != "1" {
		t.Fatalf("after restart: %q", got)
	}
	c.Stop(t, "fast")
	if c.Running() {
		t.Fatal("running after Stop")
	}
	if !strings.Contains(c.Log(), "database system is shut down") {
		t.Fatalf("log lacks shutdown message:\n%s", c.LogTail(10))
	}
}

func TestArchiveCommand(t *testing.T) {
	t.Parallel()
	arch := TempDir(t)
	c := New(t, "archiving", Options{
		WalSegSizeMB:   1,
		ArchiveCommand: "test ! -f " + arch + "/%f && cp %p " + arch + "/%f",
	})
	wal := c.Psql(t, "CREATE TABLE x AS SELECT generate_series(1,1000) a; SELECT pg_walfile_name(pg_current_wal_lsn())")
	c.Psql(t, "SELECT pg_switch_wal()")
	c.WaitFor(t, "SELECT last_archived_wal >= '"+wal+"' FROM pg_stat_archiver", "t", 30*time.Second)
	st, err := os.Stat(filepath.Join(arch, wal))
	if err != nil {
		t.Fatalf("archived segment missing: %v", err)
	}
	if st.Size() != 1<<20 {
		t.Fatalf("segment size %d, want 1MiB", st.Size())
	}
	if !c.ToolsMatch() {
		t.Logf("PostgreSQL %d: no pg_waldump of that major to read the archived segment with", c.Major)
		return
	}
	// pg_waldump as an oracle on the archived segment.
	out := RunPG(t, "pg_waldump", filepath.Join(arch, wal))
	if !strings.Contains(out, "rmgr:") {
		t.Fatalf("pg_waldump: %s", out)
	}
}

func TestStandbyAndFromDataDir(t *testing.T) {
	t.Parallel()
	p := New(t, "primary", Options{})
	p.Tablespace(t, "tsp")
	p.Psql(t, "CREATE TABLE r(a int) TABLESPACE tsp; INSERT INTO r VALUES (42)")

	s := NewStandby(t, "standby", p, nil)
	if s.Port == p.Port || s.Dir == p.Dir {
		t.Fatal("standby shares port or dir")
	}
	if s.SystemID != p.SystemID {
		t.Fatalf("standby system id %d != %d", s.SystemID, p.SystemID)
	}
	if got := s.Psql(t, "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("standby in recovery = %q", got)
	}
	p.Psql(t, "INSERT INTO r VALUES (43)")
	s.WaitFor(t, "SELECT count(*) FROM r", "2", 30*time.Second)

	// A plain pg_basebackup copy adopted with FromDataDir starts and has the data.
	bdir := filepath.Join(t.TempDir(), "copy") // root-owned 0700 parent: FromDataDir must cope
	tsCopy := filepath.Join(t.TempDir(), "tscopy")
	for _, d := range []string{bdir, tsCopy} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := MakeTraversable(d); err != nil {
			t.Fatal(err)
		}
		if err := Chown(d); err != nil {
			t.Fatal(err)
		}
	}
	loc := p.Psql(t, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname='tsp'")
	RunPG(t, "pg_basebackup", "-d", p.ConnString(""), "-D", bdir, "-X", "stream", "-c", "fast",
		"--tablespace-mapping="+loc+"="+tsCopy, "--manifest-checksums=SHA256")
	switch {
	case p.ToolsMatch():
		RunPG(t, "pg_verifybackup", bdir)
	case p.Major < 17: // 15's pg_verifybackup reads the version 1 manifest, not the WAL
		RunPG(t, "pg_verifybackup", "-n", bdir)
	default:
		t.Logf("PostgreSQL %d: its version 2 manifest needs a newer pg_verifybackup", p.Major)
	}
	var cp *Cluster
	var pid int
	t.Run("copy", func(t *testing.T) {
		cp = FromDataDir(t, "copy", bdir)
		if !cp.Running() {
			t.Fatal("copy not running")
		}
		if cp.Port == p.Port {
			t.Fatal("copy shares primary's port")
		}
		if got := cp.Psql(t, "SELECT string_agg(a::text, ',' ORDER BY a) FROM r"); got != "42,43" {
			t.Fatalf("copy rows = %q", got)
		}
		if got := cp.Psql(t, "SHOW port"); got != strconv.Itoa(cp.Port) {
			t.Fatalf("copy port = %q want %d", got, cp.Port)
		}
		if got := cp.Psql(t, "SHOW unix_socket_directories"); got != cp.SocketDir {
			t.Fatalf("copy socket dir = %q", got)
		}
		cp.Restart(t)
		cp.Psql(t, "INSERT INTO r VALUES (44)")
		pid = cp.postmasterPID()
	})
	// The subtest's cleanup stopped the server and removed the data dir.
	if pid == 0 || cp.isOurPostmaster(pid) {
		t.Fatalf("copy postmaster %d still running after cleanup", pid)
	}
	if _, err := os.Stat(bdir); !os.IsNotExist(err) {
		t.Fatalf("copy data dir not removed: %v", err)
	}

	// Promote the standby.
	s.Promote(t)
	s.Psql(t, "INSERT INTO r VALUES (100)")
	if got := s.Psql(t, "SELECT timeline_id FROM pg_control_checkpoint()"); got == "" {
		t.Fatal("no timeline")
	}
}

func TestRunAsAndTempDir(t *testing.T) {
	t.Parallel()
	Require(t)
	d := TempDir(t)
	st, err := os.Stat(d)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("TempDir mode %v %v", st.Mode(), err)
	}
	cmd := exec.Command("sh", "-c", "id -un; echo $HOME; touch "+d+"/f")
	RunAs(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if IsRoot() && !strings.HasPrefix(string(out), "postgres\n") {
		t.Fatalf("RunAs ran as %q", out)
	}
	if a, b := FreePort(t), FreePort(t); a == b || a == 0 {
		t.Fatalf("FreePort %d %d", a, b)
	}
}

// TestWalkeeperBuild builds the walkeeper binary; set WALKEEPER_TEST_BUILD=1 to run it here
// (the other packages' integration tests exercise it anyway).
func TestWalkeeperBuild(t *testing.T) {
	if os.Getenv("WALKEEPER_TEST_BUILD") != "1" {
		t.Skip("set WALKEEPER_TEST_BUILD=1 to build ./cmd/walkeeper")
	}
	bin := Walkeeper(t)
	cmd := exec.Command(bin, "--help")
	RunAs(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s --help as postgres: %v\n%s", bin, err, out)
	}
	if Walkeeper(t) != bin {
		t.Fatal("not built once")
	}
}
