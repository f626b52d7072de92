package restore_test

import (
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// archiveTree hashes every file of the server's archive and backups (wals/, base/,
// incoming/): what a restore must never touch.
func archiveTree(t *testing.T, serverDir string) map[string]string {
	return wktest.HashTree(t, serverDir, "wals", "base", "incoming")
}

func sameTree(a, b map[string]string) bool { return maps.Equal(a, b) }

func treeNames(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestRestoreNeverHarmsProduction is invariant 8 against a real primary archived by
// walkeeper: restore --force refuses walkeeper's home and every path inside or above
// it, a running cluster's data directory and what contains it, a live tablespace
// (named explicitly, or by default while the server answers), and a link into the
// home, each with one line naming the path and the way out, and the archive, the
// backups and the primary stay as they were. A restored and promoted cluster adds
// nothing to the archive; with --archive it archives its timeline there. A sandbox
// refuses writes even to a session that switches default_transaction_read_only off.
func TestRestoreNeverHarmsProduction(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	primary := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = primary.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	liveTS := primary.Tablespace(t, "ts1")
	primary.Psql(t, "CREATE TABLE prod (id int) TABLESPACE ts1; INSERT INTO prod SELECT generate_series(1, 1000)")
	var bk struct {
		ID string `json:"id"`
	}
	env.JSON(t, &bk, "backup", "pg1")
	env.MustRun(t, "switch-wal", "pg1", "--wait")
	serverDir := filepath.Join(env.Home, "pg1")
	// settle waits until the primary's archiver has nothing left to hand over (the
	// backup's .backup file goes on its own turn) and the daemon has moved everything
	// out of incoming/, so that a snapshot of the archive stays as it is unless
	// something new arrives.
	settle := func(t *testing.T) {
		wktest.Eventually(t, 60*time.Second, "incoming/ drained", func() bool {
			if primary.Psql(t, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'") != "0" {
				return false
			}
			es, _ := os.ReadDir(filepath.Join(serverDir, "incoming"))
			for _, e := range es {
				if !strings.HasPrefix(e.Name(), ".") {
					return false
				}
			}
			return true
		})
	}

	t.Run("refusals", func(t *testing.T) {
		settle(t)
		before := archiveTree(t, serverDir)
		if len(before) == 0 {
			t.Fatal("empty archive")
		}
		scratch := pgtest.TempDir(t)
		link := filepath.Join(scratch, "innocent-looking")
		if err := os.Symlink(serverDir, link); err != nil {
			t.Fatal(err)
		}
		fresh := func(n string) string { return "ts1:" + filepath.Join(scratch, n) }
		for _, c := range []struct {
			name string
			args []string
			want string
		}{
			{"home", []string{env.Home, "--tablespace", fresh("a")}, "is walkeeper's home"},
			{"home/server", []string{serverDir, "--tablespace", fresh("b")}, "is inside walkeeper's home"},
			{"home/server/wals", []string{filepath.Join(serverDir, "wals"), "--tablespace", fresh("c")}, "is inside walkeeper's home"},
			{"home's parent", []string{filepath.Dir(env.Home), "--tablespace", fresh("d")}, "contains walkeeper's home"},
			{"link into home", []string{link, "--tablespace", fresh("f")}, "resolves to " + serverDir},
			{"tablespace in home", []string{filepath.Join(scratch, "g"), "--tablespace", "ts1:" + filepath.Join(serverDir, "wals")}, "tablespace ts1 " + filepath.Join(serverDir, "wals") + " is inside walkeeper's home"},
			{"running cluster", []string{primary.Dir, "--tablespace", fresh("h")}, "is the data directory " + primary.Dir + " of a running PostgreSQL"},
			{"above a running cluster", []string{filepath.Dir(primary.Dir), "--tablespace", fresh("i")}, "contains the data directory " + primary.Dir},
			{"inside a running cluster", []string{filepath.Join(primary.Dir, "base"), "--tablespace", fresh("j")}, "is inside the data directory " + primary.Dir},
			{"live tablespace named", []string{filepath.Join(scratch, "k"), "--tablespace", "ts1:" + liveTS}, "is the tablespace " + liveTS + " of the running PostgreSQL"},
			{"live tablespace by default", []string{filepath.Join(scratch, "l")}, "tablespace ts1 would be restored to its original location " + liveTS + " while server pg1 answers"},
		} {
			r := env.Run(append([]string{"restore", "pg1", bk.ID}, append(c.args, "--force")...)...)
			msg := strings.TrimSpace(r.Stderr)
			t.Logf("%s: exit %d: %s", c.name, r.Code, msg)
			if r.Code != 2 || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("%s: exit %d, stderr %q; want a one-line refusal (exit 2, a bad argument) with %q", c.name, r.Code, msg, c.want)
			}
			if !strings.Contains(msg, "--tablespace") && !strings.Contains(msg, "choose") && !strings.Contains(msg, "stop") {
				t.Errorf("%s: the refusal says no way out: %q", c.name, msg)
			}
		}
		if after := archiveTree(t, serverDir); !sameTree(before, after) {
			t.Errorf("the archive changed:\nbefore %v\nafter  %v", treeNames(before), treeNames(after))
		}
		if _, err := os.Stat(env.Config); err != nil {
			t.Errorf("config file: %v", err)
		}
		if got := primary.Psql(t, "SELECT count(*) FROM prod"); got != "1000" {
			t.Errorf("production's table after the refusals: %s rows", got)
		}
		for _, n := range []string{"a", "g", "k", "l"} {
			if _, err := os.Stat(filepath.Join(scratch, n)); !os.IsNotExist(err) {
				t.Errorf("a refused restore created %s", n)
			}
		}
	})

	// Over ssh the running clusters are found on the remote host (here the same one).
	t.Run("remote-refusals", func(t *testing.T) {
		sshCmd := startSSHD(t)
		settle(t)
		before := archiveTree(t, serverDir)
		scratch := pgtest.TempDir(t)
		for _, c := range []struct {
			name string
			args []string
			want string
		}{
			{"running cluster", []string{primary.Dir, "--tablespace", "ts1:" + filepath.Join(scratch, "a")}, "remote DEST " + primary.Dir + " is the data directory " + primary.Dir + " of a running PostgreSQL"},
			{"above a running cluster", []string{filepath.Dir(primary.Dir), "--tablespace", "ts1:" + filepath.Join(scratch, "b")}, "contains the data directory " + primary.Dir},
			{"live tablespace named", []string{filepath.Join(scratch, "c"), "--tablespace", "ts1:" + liveTS}, "remote tablespace ts1 " + liveTS + " is the tablespace " + liveTS},
			{"live tablespace by default", []string{filepath.Join(scratch, "d")}, "would be restored to its original location " + liveTS + " while server pg1 answers"},
			// The sshd runs on this host: its walkeeper home is refused through ssh too.
			{"home through ssh to this host", []string{env.Home, "--tablespace", "ts1:" + filepath.Join(scratch, "e")}, "remote DEST " + env.Home + " is walkeeper's home"},
			{"inside home through ssh", []string{serverDir, "--tablespace", "ts1:" + filepath.Join(scratch, "f")}, "is inside walkeeper's home"},
			{"home's parent through ssh", []string{filepath.Dir(env.Home), "--tablespace", "ts1:" + filepath.Join(scratch, "g")}, "contains walkeeper's home"},
		} {
			r := env.Run(append([]string{"restore", "pg1", bk.ID, "--remote-ssh-command", sshCmd, "--force"}, c.args...)...)
			msg := strings.TrimSpace(r.Stderr)
			t.Logf("%s: exit %d: %s", c.name, r.Code, msg)
			if r.Code != 2 || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("remote %s: exit %d, stderr %q; want a one-line refusal (exit 2, a bad argument) with %q", c.name, r.Code, msg, c.want)
			}
		}
		if after := archiveTree(t, serverDir); !sameTree(before, after) {
			t.Errorf("the archive changed")
		}
		if got := primary.Psql(t, "SELECT count(*) FROM prod"); got != "1000" {
			t.Errorf("production's table after the remote refusals: %s rows", got)
		}
	})

	// promoted restores the backup, promotes at consistency, writes a row on the new
	// timeline and switches WAL.
	promoted := func(t *testing.T, name string, extra ...string) *pgtest.Cluster {
		dir := pgtest.TempDir(t)
		args := append([]string{"restore", "pg1", bk.ID, filepath.Join(dir, "data"), "--tablespace", "ts1:" + filepath.Join(dir, "ts1"),
			"--target-immediate", "--target-action", "promote"}, extra...)
		env.MustRun(t, args...)
		c := pgtest.FromDataDir(t, name, filepath.Join(dir, "data"))
		c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 60*time.Second)
		c.Psql(t, "INSERT INTO prod VALUES (-1)")
		if tli := c.Psql(t, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"); tli != "00000002" {
			t.Fatalf("promoted onto timeline %s", tli)
		}
		c.Psql(t, "SELECT pg_switch_wal()")
		c.Psql(t, "CHECKPOINT")
		return c
	}
	tl2Archived := func() bool {
		return env.Run("get-wal", "pg1", "00000002.history", filepath.Join(pgtest.TempDir(t), "h")).Code == 0
	}

	t.Run("promoted-restore-does-not-archive", func(t *testing.T) {
		settle(t)
		before := archiveTree(t, serverDir)
		c := promoted(t, "drill")
		if got := c.Psql(t, "SHOW archive_mode"); got != "off" {
			t.Errorf("restored cluster: archive_mode = %s", got)
		}
		if n := c.Psql(t, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'archiver'"); n != "0" {
			t.Errorf("restored cluster runs %s archiver(s)", n)
		}
		// No archiver runs, so nothing can arrive later: a short look is a full proof.
		time.Sleep(2 * time.Second)
		settle(t)
		if got := c.Psql(t, "SELECT archived_count + failed_count FROM pg_stat_archiver"); got != "0" {
			t.Errorf("restored cluster tried to archive %s file(s)", got)
		}
		if tl2Archived() {
			t.Error("the drill's timeline 2 reached the production archive")
		}
		if after := archiveTree(t, serverDir); !sameTree(before, after) {
			var added []string
			for k := range after {
				if _, ok := before[k]; !ok {
					added = append(added, k)
				}
			}
			t.Errorf("the archive changed: added %v", added)
		}
		c.Stop(t, "fast")
	})

	t.Run("promoted-restore-with-archive", func(t *testing.T) {
		c := promoted(t, "archiving", "--archive")
		if got := c.Psql(t, "SHOW archive_mode"); got != "on" {
			t.Errorf("--archive: archive_mode = %s", got)
		}
		wktest.Eventually(t, 60*time.Second, "timeline 2 archived with --archive", tl2Archived)
		c.Stop(t, "fast")
	})

	// A target beyond the archived WAL: the paused standby would wait for WAL forever;
	// the sandbox says so within seconds and removes itself.
	t.Run("sandbox-target-beyond-archive", func(t *testing.T) {
		t.Cleanup(func() { env.Run("sandbox", "stop", "pg1") })
		start := time.Now()
		r := env.Run("sandbox", "pg1", bk.ID, "--target-lsn", "FF/0", "--timeout", "5m")
		if r.Code == 0 || !strings.Contains(r.Stderr, "reached the end of the archived WAL") {
			t.Errorf("sandbox beyond the archive: exit %d %q", r.Code, r.Stderr)
		}
		if d := time.Since(start); d > 2*time.Minute {
			t.Errorf("the refusal took %s", d)
		}
		if out := env.MustRun(t, "sandbox", "status"); !strings.Contains(out, "no sandbox") {
			t.Errorf("status after the failed sandbox: %s", out)
		}
	})

	t.Run("sandbox-read-only", func(t *testing.T) {
		for _, action := range []string{"pause", "promote"} {
			t.Run(action, func(t *testing.T) {
				t.Cleanup(func() { env.Run("sandbox", "stop", "pg1") })
				var sb struct {
					Conninfo string `json:"conninfo"`
					Sandbox  struct {
						DataDir string `json:"data_dir"`
					} `json:"sandbox"`
				}
				env.JSON(t, &sb, "sandbox", "pg1", bk.ID, "--target-immediate", "--target-action", action)
				if out, err := pgtest.RunPGErr("psql", "-X", "-A", "-t", "-d", sb.Conninfo, "-c", "SELECT pg_is_in_recovery(), count(*) FROM prod"); err != nil || strings.TrimSpace(out) != "t|1000" {
					t.Errorf("sandbox: %q %v", out, err)
				}
				for _, sql := range []string{
					"SET default_transaction_read_only = off; CREATE TABLE escaped (id int)",
					"SET default_transaction_read_only = off; BEGIN READ WRITE; INSERT INTO prod VALUES (-2); COMMIT",
					"SET transaction_read_only = off; INSERT INTO prod VALUES (-3)",
				} {
					out, err := pgtest.RunPGErr("psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", sb.Conninfo, "-c", sql)
					if err == nil || !strings.Contains(out, "recovery") && !strings.Contains(out, "read-only") {
						t.Errorf("%q in the sandbox: err %v, output %q", sql, err, out)
					}
				}
				if out, _ := pgtest.RunPGErr("psql", "-X", "-A", "-t", "-d", sb.Conninfo, "-c", "SELECT count(*) FROM prod WHERE id < 0"); strings.TrimSpace(out) != "0" {
					t.Errorf("rows written into the sandbox: %q", out)
				}
				hba, err := os.ReadFile(filepath.Join(sb.Sandbox.DataDir, "pg_hba.conf"))
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(string(hba), "\n") {
					f := strings.Fields(line)
					if len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] == "local" {
						continue
					}
					if len(f) < 5 || f[3] != "127.0.0.1/32" && f[3] != "::1/128" {
						t.Errorf("sandbox pg_hba.conf line not local: %q", line)
					}
				}
				out, _ := pgtest.RunPGErr("psql", "-X", "-A", "-t", "-d", sb.Conninfo, "-c", "SHOW hba_file")
				if strings.TrimSpace(out) != filepath.Join(sb.Sandbox.DataDir, "pg_hba.conf") {
					t.Errorf("hba_file = %q", out)
				}
				env.MustRun(t, "sandbox", "stop", "pg1")
			})
		}
	})
}

// TestNamelessTablespace: a pg_tblspc link without a pg_tablespace row (left behind,
// or planted) is sent by the server as a tablespace with no name. Restore names it by
// its OID, refuses its original location while the server answers and says how to
// relocate it, and --tablespace OID:PATH relocates it.
func TestNamelessTablespace(t *testing.T) {
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	primary := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = primary.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	orphan := filepath.Join(primary.Root, "orphan")
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(primary.Dir, "pg_tblspc", "99999")
	if err := os.Symlink(orphan, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{orphan, link} {
		if err := pgtest.Chown(p); err != nil {
			t.Fatal(err)
		}
	}
	var bk struct {
		ID string `json:"id"`
	}
	env.JSON(t, &bk, "backup", "pg1")
	dest := filepath.Join(pgtest.TempDir(t), "data")
	r := env.Run("restore", "pg1", bk.ID, dest)
	if msg := strings.TrimSpace(r.Stderr); r.Code != 2 || !strings.Contains(msg, "tablespace 99999 would be restored to its original location "+orphan) ||
		!strings.Contains(msg, "--tablespace 99999:PATH") {
		t.Errorf("default restore: exit %d %q; want the refusal naming 99999 and how to relocate it", r.Code, msg)
	}
	moved := filepath.Join(pgtest.TempDir(t), "ts")
	env.MustRun(t, "restore", "pg1", bk.ID, dest, "--tablespace", "99999:"+moved)
	if got, err := os.Readlink(filepath.Join(dest, "pg_tblspc", "99999")); err != nil || got != moved {
		t.Errorf("pg_tblspc/99999 -> %q (%v), want %s", got, err, moved)
	}
}
