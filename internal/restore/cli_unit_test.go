package restore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/record"
)

func TestPlace(t *testing.T) {
	cwd, _ := os.Getwd()
	for _, tc := range []struct {
		desc      string
		p         Placement
		want      Placed
		wantUsage string // "" for no error
	}{
		{"local defaults to get-wal, paths made absolute", Placement{Dest: "data", Tablespaces: []string{"ts1:ts/one"}, Prefetch: 8},
			Placed{WAL: WALGet, Dest: filepath.Join(cwd, "data"), Tablespaces: map[string]string{"ts1": filepath.Join(cwd, "ts/one")}}, ""},
		{"local copy-wal", Placement{Dest: "/d", CopyWAL: true}, Placed{WAL: WALCopy, Dest: "/d", Tablespaces: map[string]string{}}, ""},
		{"remote copies WAL", Placement{Dest: "/d", RemoteSSHCommand: "ssh -p 2222 'pg@db2'", Tablespaces: []string{"ts1:/t1"}},
			Placed{WAL: WALCopy, Remote: []string{"ssh", "-p", "2222", "pg@db2"}, Dest: "/d", Tablespaces: map[string]string{"ts1": "/t1"}}, ""},
		{"remote get-wal", Placement{Dest: "/d", RemoteSSHCommand: "ssh db2", GetWAL: true}, Placed{}, "--get-wal with --remote-ssh-command"},
		{"remote relative dest", Placement{Dest: "d", RemoteSSHCommand: "ssh db2"}, Placed{}, `DEST "d": a remote destination must be an absolute path`},
		{"remote relative tablespace", Placement{Dest: "/d", RemoteSSHCommand: "ssh db2", Tablespaces: []string{"ts1:t1"}}, Placed{},
			"--tablespace ts1:t1: a remote path must be absolute"},
		{"bad ssh quoting", Placement{Dest: "/d", RemoteSSHCommand: "ssh 'db2"}, Placed{}, "quote"},
		{"prefetch too deep", Placement{Dest: "/d", Prefetch: 65}, Placed{}, "--prefetch 65: want 0 to 64"},
		{"prefetch negative", Placement{Dest: "/d", Prefetch: -1}, Placed{}, "--prefetch -1: want 0 to 64"},
		{"tablespace without path", Placement{Dest: "/d", Tablespaces: []string{"ts1"}}, Placed{}, `--tablespace "ts1": want NAME:PATH`},
		{"tablespace twice", Placement{Dest: "/d", Tablespaces: []string{"ts1:/a", "ts1:/b"}}, Placed{}, "--tablespace ts1 given twice"},
		{"remote fetches WAL back through ssh", Placement{Dest: "/d", RemoteSSHCommand: "ssh postgres@db2", WALSSHCommand: "ssh -p 22 wk@backup"},
			Placed{WAL: WALGet, Remote: []string{"ssh", "postgres@db2"}, Dest: "/d", Tablespaces: map[string]string{},
				WALSSH: []string{"ssh", "-p", "22", "wk@backup"}, WALSSHCommand: "ssh -p 22 wk@backup"}, ""},
		{"remote get-wal through ssh, with the remote binary", Placement{Dest: "/d", RemoteSSHCommand: "ssh db2", GetWAL: true,
			WALSSHCommand: "ssh wk@backup", RemoteBinary: "/usr/bin/walkeeper"},
			Placed{WAL: WALGet, Remote: []string{"ssh", "db2"}, Dest: "/d", Tablespaces: map[string]string{},
				WALSSH: []string{"ssh", "wk@backup"}, WALSSHCommand: "ssh wk@backup", RemoteBinary: "/usr/bin/walkeeper"}, ""},
		{"wal-ssh and copy-wal", Placement{Dest: "/d", WALSSHCommand: "ssh wk@backup", CopyWAL: true}, Placed{}, "choose one"},
		{"remote binary without wal-ssh", Placement{Dest: "/d", RemoteSSHCommand: "ssh db2", RemoteBinary: "/usr/bin/walkeeper"}, Placed{},
			"--remote-walkeeper /usr/bin/walkeeper: it fetches WAL through --wal-ssh-command"},
		{"remote binary relative", Placement{Dest: "/d", WALSSHCommand: "ssh wk@b", RemoteBinary: "walkeeper"}, Placed{}, "must be an absolute path"},
		{"standby local", Placement{Dest: "/d", Standby: true, PrimaryConninfo: "host=db1"},
			Placed{WAL: WALGet, Dest: "/d", Tablespaces: map[string]string{}, Standby: true, PrimaryConninfo: "host=db1"}, ""},
		{"standby with a target time", Placement{Dest: "/d", Standby: true, Target: Target{Time: time.Unix(1, 0)}}, Placed{},
			"--standby with --target-time: a standby follows the archive with no end"},
		{"standby with a target name and action", Placement{Dest: "/d", Standby: true, Target: Target{Name: "p", Action: ActionPromote}}, Placed{},
			"--standby with --target-name: "},
		{"standby immediate", Placement{Dest: "/d", Standby: true, Target: Target{Immediate: true}}, Placed{}, "--standby with --target-immediate"},
		{"standby with copy-wal", Placement{Dest: "/d", Standby: true, CopyWAL: true}, Placed{}, "would never replay more"},
		{"standby with copy-wal streams from the primary", Placement{Dest: "/d", Standby: true, CopyWAL: true, PrimaryConninfo: "host=db1"},
			Placed{WAL: WALCopy, Dest: "/d", Tablespaces: map[string]string{}, Standby: true, PrimaryConninfo: "host=db1"}, ""},
		{"remote standby needs WAL on demand", Placement{Dest: "/d", Standby: true, RemoteSSHCommand: "ssh db2"}, Placed{},
			`--standby with --remote-ssh-command alone (its WAL is copied up front): the copied WAL ends where the archive ends now, and the standby would never replay more; fetch WAL from the archive with --wal-ssh-command "ssh USER@THIS-HOST"`},
		{"primary-conninfo without standby", Placement{Dest: "/d", PrimaryConninfo: "host=db1"}, Placed{}, "--primary-conninfo is for a standby: add --standby"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := Place(tc.p)
			if tc.wantUsage != "" {
				if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.wantUsage) {
					t.Fatalf("Place = %+v, %v; want a usage error with %q", got, err, tc.wantUsage)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Place = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSandboxBackupRef(t *testing.T) {
	for _, tc := range []struct {
		id   string
		t    Target
		want string
	}{
		{"", Target{Time: time.Now()}, "auto"},
		{"", Target{HasLSN: true}, "auto"},
		{"", Target{XID: "100"}, "latest"},
		{"", Target{Immediate: true}, "latest"},
		{"oldest", Target{Time: time.Now()}, "oldest"},
	} {
		if got := SandboxBackupRef(tc.id, tc.t); got != tc.want {
			t.Errorf("SandboxBackupRef(%q, %+v) = %q, want %q", tc.id, tc.t, got, tc.want)
		}
	}
}

func TestCheckSandbox(t *testing.T) {
	serverDir := t.TempDir()
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pause := Target{XID: "100", Action: ActionPause}
	for _, tc := range []struct {
		desc  string
		o     SandboxOptions
		usage bool
		want  string
	}{
		{"no target", SandboxOptions{ServerDir: serverDir}, true, "sandbox needs a recovery target"},
		{"shutdown", SandboxOptions{ServerDir: serverDir, Target: Target{XID: "1", Action: ActionShutdown}}, true, "--target-action shutdown"},
		{"bad tablespace", SandboxOptions{ServerDir: serverDir, Target: pause, Tablespaces: []string{"x"}}, true, `--tablespace "x"`},
		{"root not empty", SandboxOptions{ServerDir: serverDir, Target: pause, Root: busy}, true, "sandbox directory " + busy + " is not empty"},
		{"guard", SandboxOptions{ServerDir: serverDir, Target: pause, Root: filepath.Join(serverDir, "x"), Guard: Guard{Home: filepath.Dir(serverDir)}}, true, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			o := tc.o
			_, err := checkSandbox(&o)
			if err == nil || IsUsage(err) != tc.usage || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkSandbox = %v; want usage=%v with %q", err, tc.usage, tc.want)
			}
		})
	}
	o := SandboxOptions{ServerDir: serverDir, Target: pause, Tablespaces: []string{"ts1:/t1"}}
	reloc, err := checkSandbox(&o)
	if err != nil || o.Root != filepath.Join(serverDir, "sandbox") || !reflect.DeepEqual(reloc, map[string]string{"ts1": "/t1"}) {
		t.Errorf("checkSandbox = %v, %v; root %s", reloc, err, o.Root)
	}
	if err := SaveSandbox(serverDir, SandboxState{Server: "pg1", Root: "/x/sandbox", Port: 5999}); err != nil {
		t.Fatal(err)
	}
	o = SandboxOptions{Server: "pg1", ServerDir: serverDir, Target: pause}
	if _, err := checkSandbox(&o); err == nil || IsUsage(err) || !strings.Contains(err.Error(), "pg1 already has a sandbox in /x/sandbox (port 5999): walkeeper sandbox stop pg1") {
		t.Errorf("a second sandbox: %v", err)
	}
	if sbs, err := ReadSandboxStatuses(context.Background(), []string{serverDir, t.TempDir()}); err != nil || len(sbs) != 1 || sbs[0].Running || sbs[0].Port != 5999 {
		t.Errorf("ReadSandboxStatuses = %+v, %v", sbs, err)
	}
	var b bytes.Buffer
	WriteSandboxTable(&b, nil)
	if b.String() != "no sandbox\n" {
		t.Errorf("empty table: %q", b.String())
	}
	b.Reset()
	WriteSandboxTable(&b, []SandboxStatus{{SandboxState: SandboxState{Server: "pg1", BackupID: "B1", Target: "xid 100", Port: 5999, Root: "/r"}}})
	if !strings.Contains(b.String(), "pg1     B1      xid 100  stopped") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestArchiveLagWarning(t *testing.T) {
	empty := t.TempDir()
	backlog := t.TempDir()
	if err := os.WriteFile(filepath.Join(backlog, "000000010000000000000009"), make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	up, down := func() bool { return true }, func() bool { return false }
	for _, tc := range []struct {
		desc    string
		dir     string
		running func() bool
		t       Target
		want    string
	}{
		{"immediate: nothing to say", backlog, down, Target{Immediate: true}, ""},
		{"all well", empty, up, Target{}, ""},
		{"daemon down with a backlog", backlog, down, Target{}, "warning: pg1: the walkeeper daemon is not running and 1 WAL files (2.0 KiB) wait in " + backlog},
		{"daemon down", empty, down, Target{}, "warning: pg1: the walkeeper daemon is not running: WAL archived from now on waits in " + empty},
		{"daemon behind", backlog, up, Target{}, "warning: pg1: 1 WAL files (2.0 KiB) wait in " + backlog + ", not yet archived by the daemon"},
	} {
		got := ArchiveLagWarning("pg1", tc.dir, tc.running, tc.t)
		if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) || strings.Contains(got, "\n") {
			t.Errorf("%s: %q, want %q...", tc.desc, got, tc.want)
		}
	}
}

func TestResultWriteText(t *testing.T) {
	b := record.Backup{ID: "20261201T100000", EndTime: time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC)}
	res := Result{Server: "pg1", Dest: "/d", Remote: "db2", Timeline: 2, Target: "xid 100", WALMode: WALCopy, Files: 1200, Bytes: 3 << 20,
		WALFiles: 4, WALBytes: 4 << 20, RestoreCommand: "cp %p", Seconds: 1.25,
		Tablespaces: []TablespaceTarget{{OID: 16400, Name: "ts1", Target: "/t1"}}}
	var w bytes.Buffer
	res.WriteText(&w, b)
	want := `restored backup 20261201T100000 of pg1 (ended 2026-12-01 10:05:00 UTC) into db2:/d: 1200 files, 3.0 MiB in 1.2s
tablespace ts1 (oid 16400): /t1
recovery: to xid 100 on timeline 2
WAL: 4 files (4.0 MiB) copied into /d/` + CopyWALDir + `
restore_command = 'cp %p'
archiving: off (archive_mode = off in postgresql.auto.conf, which wins over postgresql.conf; --archive keeps the server's archive settings)
start it on the remote host, as the ssh user, with: pg_ctl -D /d start
`
	if w.String() != want {
		t.Errorf("WriteText:\n%s\nwant\n%s", w.String(), want)
	}
}

// TestResultWriteTextBinaries: the start command names the binaries found for the backup's
// major; when none were found it says so and which major's pg_ctl to use.
func TestResultWriteTextBinaries(t *testing.T) {
	b := record.Backup{ID: "20261201T100000", EndTime: time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC), PGVersion: 160004}
	for _, c := range []struct {
		res  Result
		want string
	}{
		{Result{Dest: "/d", PGBin: "/usr/lib/postgresql/16/bin"}, "start it with: /usr/lib/postgresql/16/bin/pg_ctl -D /d start\n"},
		{Result{Dest: "/d", PGBin: "/opt/pg 16/bin", Owner: "postgres"}, `start it with: su postgres -c ''\''/opt/pg 16/bin/pg_ctl'\'' -D /d start'` + "\n"},
		{Result{Dest: "/d", PGBinNote: "pg_ctl for PostgreSQL 16 not found"}, "binaries: pg_ctl for PostgreSQL 16 not found; start it with PostgreSQL 16's pg_ctl\nstart it with: pg_ctl -D /d start\n"},
	} {
		var w bytes.Buffer
		c.res.WriteText(&w, b)
		if !strings.HasSuffix(w.String(), c.want) {
			t.Errorf("WriteText %+v ends:\n%s\nwant the end\n%s", c.res, w.String(), c.want)
		}
	}
}
