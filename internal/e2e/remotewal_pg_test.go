package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/shellword"
	"github.com/walkeeper/walkeeper/internal/sshtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// cutter is the network between the two "hosts": a TCP relay in front of sshd that
// cuts the next connections after a number of bytes from the client (in the middle of
// the 16 MiB segment the connection carries), as a dropped link would.
type cutter struct {
	ln    net.Listener
	to    string
	after int64
	cuts  atomic.Int64 // connections still to cut
	cut   atomic.Int64 // connections cut so far
	wg    sync.WaitGroup
}

func newCutter(t *testing.T, to string, after int64) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, to: to, after: after}
	go c.serve()
	t.Cleanup(func() { ln.Close(); c.wg.Wait() })
	return c
}

func (c *cutter) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

func (c *cutter) serve() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer in.Close()
			out, err := net.Dial("tcp", c.to)
			if err != nil {
				return
			}
			defer out.Close()
			limit := int64(-1)
			if c.cuts.Add(-1) >= 0 {
				limit = c.after
			}
			go func() { _, _ = io.Copy(in, out); in.Close() }()
			if limit < 0 {
				_, _ = io.Copy(out, in)
				return
			}
			if n, _ := io.CopyN(out, in, limit); n == limit {
				c.cut.Add(1) // cut: both sides see the connection reset
				_ = in.(*net.TCPConn).SetLinger(0)
				_ = out.(*net.TCPConn).SetLinger(0)
			}
		}()
	}
}

// sshVia is sshCmd going through port instead of sshd's.
func sshVia(sshCmd string, sshdPort, port int) string {
	return strings.Replace(sshCmd, fmt.Sprintf("-p %d ", sshdPort), fmt.Sprintf("-p %d ", port), 1)
}

// TestRemoteArchive: two hosts simulated honestly: PostgreSQL (OS user postgres) on the
// "database host", walkeeper's home owned by the walkeeper OS user (0700) on the "backup
// host", and between them only sshd on a loopback port with key authentication. Every
// WAL file pgbench writes reaches the archive through ssh (archive_command = ssh ...
// put-wal ... || exit 1, then archive-wal --ssh), while connections are cut in the middle
// of segments: PostgreSQL retries, its archiver never dies, nothing partial is archived,
// nothing is lost, and each file comes back byte-identical through get-wal over ssh.
func TestRemoteArchive(t *testing.T) {
	pgtest.SkipShort(t)
	env := wktest.NewRemote(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	if _, code, _ := asPostgres(t, "ls "+env.Home); code == 0 {
		t.Fatalf("the postgres user can read walkeeper's home %s", env.Home)
	}
	sshd := sshtest.Start(t, pgtest.WalkeeperUser)
	ssh := sshd.Command(t, pgtest.PGUser, pgtest.WalkeeperUser)
	link := newCutter(t, fmt.Sprintf("127.0.0.1:%d", sshd.Port), 4<<20)
	viaNet := sshVia(ssh, sshd.Port, link.port())
	remote := env.Bin + " --config " + env.Config // walkeeper as the ssh user runs it there

	copies := pgtest.TempDir(t) // the oracle: what PostgreSQL handed over
	pg := pgtest.New(t, "db1", pgtest.Options{
		ArchiveCommand: fmt.Sprintf("cp %%p %s/%%f && %s %s put-wal pg1 %%f < %%p || exit 1", copies, viaNet, remote),
		Conf:           map[string]string{"wal_keep_size": "1GB"},
	})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	archiver := pg.Psql(t, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'")

	// Phase 1: the ssh-only archive_command, the first 3 connections cut after 4 MiB.
	link.cuts.Store(3)
	pg.PgBench(t, "-i", "-s", "6", "-q")
	last := lastSwitchedSegment(t, pg)
	pg.Psql(t, "SELECT pg_switch_wal()")
	pg.WaitFor(t, "SELECT last_archived_wal >= '"+last+"' FROM pg_stat_archiver", "t", 120*time.Second)
	if got := link.cut.Load(); got != 3 {
		t.Fatalf("%d connections cut, want 3", got)
	}

	// Phase 2: archive-wal --ssh (the binary on the database host), 2 more cuts.
	link.cuts.Store(2)
	pg.Psql(t, fmt.Sprintf("ALTER SYSTEM SET archive_command = %s", sqlQuote(fmt.Sprintf(
		"cp %%p %s/%%f && %s archive-wal --ssh %s --remote-command %s pg1 %%p", copies, env.Bin, shq(viaNet), shq(remote)))))
	pg.Psql(t, "SELECT pg_reload_conf()")
	pg.Psql(t, "CREATE TABLE bulk AS SELECT g, md5(g::text) FROM generate_series(1, 400000) g")
	last = lastSwitchedSegment(t, pg)
	pg.Psql(t, "SELECT pg_switch_wal()")
	pg.WaitFor(t, "SELECT last_archived_wal >= '"+last+"' FROM pg_stat_archiver", "t", 120*time.Second)
	if got := link.cut.Load(); got != 5 {
		t.Fatalf("%d connections cut, want 5", got)
	}

	failed := pg.Psql(t, "SELECT failed_count FROM pg_stat_archiver")
	if failed == "0" {
		t.Fatalf("PostgreSQL counted no failed archive_command with 5 connections cut")
	}
	if now := pg.Psql(t, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'"); now != archiver {
		t.Fatalf("the archiver restarted (pid %s -> %s): a cut connection's status reached PostgreSQL above 125\n%s", archiver, now, pg.LogTail(30))
	}
	if strings.Contains(pg.Log(), "exit code 255") {
		t.Fatalf("PostgreSQL saw exit code 255:\n%s", pg.LogTail(30))
	}
	drained(t, env, 60*time.Second)
	if errs := listDir(t, filepath.Join(env.Home, "pg1", "errors")); len(errs) != 0 {
		t.Fatalf("files in errors/ (a partial body archived?): %v", errs)
	}

	// Every file PostgreSQL handed over comes back byte-identical, fetched over ssh by
	// the postgres user: the restore_command form without walkeeper on the host.
	files := listDir(t, copies)
	if len(files) < 8 {
		t.Fatalf("want many segments, PostgreSQL archived %d files", len(files))
	}
	for _, f := range files {
		want, err := os.ReadFile(filepath.Join(copies, f))
		if err != nil {
			t.Fatal(err)
		}
		got, code, stderr := asPostgres(t, fmt.Sprintf("%s %s get-wal pg1 %s -", ssh, remote, f))
		if code != 0 || !bytes.Equal(got, want) {
			t.Fatalf("%s through ssh: exit %d, %d bytes (want %d identical) %s", f, code, len(got), len(want), stderr)
		}
	}
	// A missing file: exit 1 through ssh, nothing written.
	got, code, _ := asPostgres(t, fmt.Sprintf("%s %s get-wal pg1 0000000100000000000000FE -", ssh, remote))
	if code != 1 || len(got) != 0 {
		t.Fatalf("missing file through ssh: exit %d with %d bytes, want exit 1 and nothing", code, len(got))
	}

	// get-wal --ssh with the binary on the restored host: to a path, and the exit
	// statuses PostgreSQL needs (1: no such file; 255 on a connection that cannot be
	// made, unless a standby, which retries on 1).
	dir := pgtest.TempDir(t)
	dest := filepath.Join(dir, "RECOVERYXLOG")
	getSSH := func(extra string, sshCmd, name string) int {
		_, code, _ := asPostgres(t, fmt.Sprintf("%s get-wal %s --ssh %s --remote-command %s pg1 %s %s", env.Bin, extra, shq(sshCmd), shq(remote), name, dest))
		return code
	}
	if c := getSSH("", ssh, files[len(files)-1]); c != 0 {
		t.Fatalf("get-wal --ssh: exit %d", c)
	}
	b, err := os.ReadFile(dest)
	want, _ := os.ReadFile(filepath.Join(copies, files[len(files)-1]))
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("get-wal --ssh wrote %d bytes that differ from what PostgreSQL archived (%v)", len(b), err)
	}
	os.Remove(dest)
	if c := getSSH("", ssh, "0000000100000000000000FE"); c != 1 {
		t.Fatalf("get-wal --ssh of a missing file: exit %d, want 1", c)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("get-wal --ssh of a missing file left a file at the destination")
	}
	dead := sshVia(ssh, sshd.Port, pgtest.FreePort(t))
	if c := getSSH("", dead, files[0]); c != 255 {
		t.Fatalf("get-wal --ssh, backup host unreachable: exit %d, want 255 (recovery stops rather than ending short)", c)
	}
	if c := getSSH("--standby", dead, files[0]); c != 1 {
		t.Fatalf("get-wal --ssh --standby, backup host unreachable: exit %d, want 1 (the standby retries)", c)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed fetches left %v beside %%p", ents)
	}
}

// asPostgres runs a shell command line as the postgres OS user and returns its stdout
// and exit status.
func asPostgres(t *testing.T, line string) ([]byte, int, string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", line)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	pgtest.RunAs(cmd)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.Bytes(), 0, errb.String()
	case errors.As(err, &ee):
		return out.Bytes(), ee.ExitCode(), errb.String()
	}
	t.Fatalf("%s: %v", line, err)
	return nil, 0, ""
}

func shq(s string) string { return shellword.Quote(s) }

// sqlQuote quotes s as an SQL string literal.
func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
