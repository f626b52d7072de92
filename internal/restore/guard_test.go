package restore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/record"
)

func TestRelation(t *testing.T) {
	for _, c := range []struct{ p, d, want string }{
		{"/a/b", "/a/b", "is"},
		{"/a/b/c", "/a/b", "inside"},
		{"/a", "/a/b", "above"},
		{"/", "/a/b", "above"},
		{"/a/bc", "/a/b", ""},
		{"/a/b", "/a/bc", ""},
		{"/x", "/a", ""},
	} {
		if got := relation(c.p, c.d); got != c.want {
			t.Errorf("relation(%s, %s) = %q, want %q", c.p, c.d, got, c.want)
		}
	}
}

func TestCheckHome(t *testing.T) {
	home := "/srv/wk"
	scratch := []string{"/srv/wk/pg1/sandbox"}
	for _, c := range []struct {
		path string
		want string // "" = allowed
	}{
		{"/srv/wk", "is walkeeper's home"},
		{"/srv/wk/pg1", "is inside walkeeper's home"},
		{"/srv/wk/pg1/wals", "is inside walkeeper's home"},
		{"/srv/wk/pg1/wals/0000000100000000", "is inside walkeeper's home"},
		{"/srv", "contains walkeeper's home"},
		{"/", "contains walkeeper's home"},
		{"/srv/wk/pg1/sandbox", ""},
		{"/srv/wk/pg1/sandbox/data", ""},
		{"/srv/wk/pg1/sandboxes", "is inside walkeeper's home"},
		{"/srv/wk2", ""},
		{"/var/lib/pg", ""},
	} {
		err := checkHome(target{label: "DEST", path: c.path, resolved: c.path}, home, scratch)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
		if err != nil && (!IsUsage(err) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), c.path)) {
			t.Errorf("%s: want a one-line usage error naming the path: %v", c.path, err)
		}
	}
}

func TestCheckLive(t *testing.T) {
	live := []LiveCluster{{PID: 42, DataDir: "/pg/main", Tablespaces: []string{"/ts/one"}}}
	for _, c := range []struct{ path, want string }{
		{"/pg/main", "is the data directory /pg/main of a running PostgreSQL (pid 42)"},
		{"/pg/main/base", "is inside the data directory /pg/main"},
		{"/pg", "contains the data directory /pg/main"},
		{"/", "contains the data directory"},
		{"/ts/one", "is the tablespace /ts/one of the running PostgreSQL in /pg/main"},
		{"/ts/one/PG_15_1", "is inside the tablespace /ts/one"},
		{"/ts", "contains the tablespace /ts/one"},
		{"/pg/main2", ""},
		{"/ts/two", ""},
	} {
		err := checkLive(target{label: "DEST", path: c.path, resolved: c.path}, live)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
	}
}

func TestCheckOriginal(t *testing.T) {
	ts := []TablespaceTarget{{Name: "ts1", Location: "/prod/ts1", Target: "/prod/ts1"}, {Name: "ts2", Location: "/prod/ts2", Target: "/new/ts2", relocated: true}}
	up := func(context.Context) (string, bool) { return "db1:5432", true }
	down := func(context.Context) (string, bool) { return "db1:5432", false }
	asked := false
	spy := func(context.Context) (string, bool) { asked = true; return "", true }
	ctx := context.Background()
	err := checkOriginal(ctx, "pg1", ts, up)
	if err == nil || !strings.Contains(err.Error(), "tablespace ts1 would be restored to its original location /prod/ts1 while server pg1 answers at db1:5432") ||
		!strings.Contains(err.Error(), "--tablespace ts1:PATH") {
		t.Errorf("original location while up: %v", err)
	}
	if err := checkOriginal(ctx, "pg1", ts, down); err != nil {
		t.Errorf("server down (the disaster case) must pass: %v", err)
	}
	all := []TablespaceTarget{ts[0], ts[1]}
	all[0].relocated = true // named with --tablespace ts1:/prod/ts1: the DBA's choice
	if err := checkOriginal(ctx, "pg1", all, spy); err != nil || asked {
		t.Errorf("all relocated: %v, server asked %v", err, asked)
	}
	if err := checkOriginal(ctx, "pg1", ts, nil); err != nil {
		t.Errorf("no probe: %v", err)
	}
	// A tablespace the backup knows no name of (a pg_tblspc link without a
	// pg_tablespace row) is named by its OID, which --tablespace takes.
	nameless := []TablespaceTarget{{OID: 99999, Location: "/prod/x", Target: "/prod/x"}}
	if err := checkOriginal(ctx, "pg1", nameless, up); err == nil || !strings.Contains(err.Error(), "tablespace 99999 would be restored") ||
		!strings.Contains(err.Error(), "--tablespace 99999:PATH") {
		t.Errorf("nameless tablespace: %v", err)
	}
}

// --tablespace takes a tablespace's name or its OID (the only handle of a nameless one).
func TestTablespaceTargetsByOID(t *testing.T) {
	b := record.Backup{ID: "b1", Tablespaces: []record.Tablespace{{OID: 16384, Name: "ts1", Location: "/prod/ts1"}, {OID: 99999, Location: "/prod/x"}}}
	for _, c := range []struct {
		reloc map[string]string
		want  []string // targets, or the error's text
	}{
		{map[string]string{"ts1": "/a", "99999": "/b"}, []string{"/a", "/b"}},
		{map[string]string{"16384": "/a"}, []string{"/a", "/prod/x"}},
		{map[string]string{"ts1": "/a", "16384": "/b"}, []string{"relocated twice"}},
		{map[string]string{"ts9": "/a"}, []string{`no tablespace "ts9" (its tablespaces: ts1, 99999)`}},
	} {
		got, err := tablespaceTargets(b, c.reloc, "/dest")
		if err != nil {
			if len(c.want) != 1 || !strings.Contains(err.Error(), c.want[0]) {
				t.Errorf("%v: %v, want %v", c.reloc, err, c.want)
			}
			continue
		}
		if len(got) != len(c.want) {
			t.Fatalf("%v: %+v", c.reloc, got)
		}
		for i, g := range got {
			if g.Target != c.want[i] || g.relocated != (c.want[i] != b.Tablespaces[i].Location) {
				t.Errorf("%v: %s -> %s (relocated %v), want %s", c.reloc, g.label(), g.Target, g.relocated, c.want[i])
			}
		}
	}
}

func TestResolvePath(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	realDir, _ := filepath.EvalSymlinks(dir)
	for _, c := range []struct{ in, want string }{
		{filepath.Join(dir, "link"), filepath.Join(realDir, "real")},
		{filepath.Join(dir, "link", "new", "deeper"), filepath.Join(realDir, "real", "new", "deeper")},
		{filepath.Join(dir, "nothing", "here"), filepath.Join(realDir, "nothing", "here")},
	} {
		if got := resolvePath(c.in); got != c.want {
			t.Errorf("resolvePath(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

// A link to walkeeper's home is refused like the home itself, and two targets that
// are one directory through a link are refused.
func TestGuardTargetsSymlinks(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, "pg1", "wals"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(home, "pg1"), filepath.Join(dir, "innocent")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "other"), filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	g := Guard{Home: home}
	if got, want := resolvePath(filepath.Join(dir, "alias", "x")), filepath.Join(resolvePath(dir), "other", "x"); got != want {
		t.Errorf("dangling link: %s, want %s", got, want)
	}
	err := guardTargets(context.Background(), Options{Server: "pg1", Dest: filepath.Join(dir, "innocent"), Guard: g}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "resolves to") || !strings.Contains(err.Error(), "inside walkeeper's home") {
		t.Errorf("link into home: %v", err)
	}
	ts := []TablespaceTarget{{Name: "ts1", Target: filepath.Join(dir, "alias", "ts")}}
	err = guardTargets(context.Background(), Options{Server: "pg1", Dest: filepath.Join(dir, "other"), Guard: g, Tablespaces: map[string]string{"ts1": ""}}, ts, nil)
	if err == nil || !strings.Contains(err.Error(), "overlap once symlinks are resolved") {
		t.Errorf("tablespace through a link into DEST: %v", err)
	}
	if err := guardTargets(context.Background(), Options{Server: "pg1", Dest: filepath.Join(dir, "fine"), Guard: g}, nil, nil); err != nil {
		t.Errorf("a plain new directory: %v", err)
	}
	// A remote restore: the home check is local-only.
	if err := guardTargets(context.Background(), Options{Server: "pg1", Dest: home, Remote: []string{"ssh", "x"}, Guard: g}, nil, nil); err != nil {
		t.Errorf("remote DEST equal to the local home's path: %v", err)
	}
}

func TestParseRemoteProbe(t *testing.T) {
	out := "REAL 0 /real/dest\nREAL 1 /t s/x\nLIVE 100 /pg/a b\nLIVE 120 /pg/a b\nLIVE 130 /pg/c\nTBLSPC /pg/a b /ts/1\nTBLSPC /pg/c /ts/2\nRUNNING /x\nWALKEEPER-OK\n"
	real, live := parseRemoteProbe(out, []string{"/dest", "/ts"})
	if real[0] != "/real/dest" || real[1] != "/t s/x" {
		t.Errorf("real: %q", real)
	}
	if len(live) != 2 || live[0].PID != 100 || live[0].DataDir != "/pg/a b" || len(live[0].Tablespaces) != 1 || live[0].Tablespaces[0] != "/ts/1" ||
		live[1].DataDir != "/pg/c" || live[1].Tablespaces[0] != "/ts/2" {
		t.Errorf("live: %+v", live)
	}
}

// The clusters this host runs are found (when there is one: the PostgreSQL tests
// prove it against a real one).
func TestLocalClustersNoPanic(t *testing.T) {
	for _, c := range LocalClusters() {
		if !filepath.IsAbs(c.DataDir) || c.PID <= 0 {
			t.Errorf("bad cluster %+v", c)
		}
	}
}

func TestArchiveSettings(t *testing.T) {
	if s := ArchiveSettings(false); len(s) != 1 || s[0] != (Setting{"archive_mode", "off"}) {
		t.Errorf("default: %v", s)
	}
	if s := ArchiveSettings(true); len(s) != 0 {
		t.Errorf("--archive: %v", s)
	}
}

// TestArchiveConf: the archive_mode = off a restore writes says, in
// postgresql.auto.conf itself, that it overrides postgresql.conf and how to archive
// anyway; every line of the note is a comment.
func TestArchiveConf(t *testing.T) {
	if s := ArchiveConf(true); s != "" {
		t.Errorf("--archive: %q", s)
	}
	s := ArchiveConf(false)
	for _, want := range []string{"wins over postgresql.conf", "--archive", "ALTER SYSTEM SET archive_mode", "\narchive_mode = 'off'\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("ArchiveConf(false) lacks %q:\n%s", want, s)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(line, "#") && line != "archive_mode = 'off'" {
			t.Errorf("line %q is neither a comment nor the setting", line)
		}
	}
}

func TestLocalOnlyHBA(t *testing.T) {
	in := `# comment
local   all             all                                     peer
local   replication     all                                     trust  # trailing
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
host    all             all             0.0.0.0/0               md5
host    "my db"         alice           10.0.0.0/8              md5
hostssl all             all             0.0.0.0/0               cert
host    all             bob             127.0.0.1 255.255.255.255 trust
host    all             carol           db.example.com          md5
hostnossl all           all             all                     md5 \
        clientcert=verify-ca
include_dir conf.d
host    all             all             ::/0                    md5
`
	got := string(LocalOnlyHBA([]byte(in)))
	want := `# walkeeper sandbox: the restored pg_hba.conf narrowed to local connections
local all all peer
local replication all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
host all all 127.0.0.1/32 md5
host all bob 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 md5 clientcert=verify-ca
hostnossl all all ::1/128 md5 clientcert=verify-ca
host all all ::1/128 md5
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := string(LocalOnlyHBA(nil)); !strings.Contains(got, "local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\n") {
		t.Errorf("empty pg_hba: %s", got)
	}
	if got := string(LocalOnlyHBA([]byte("host all all 10.1.0.0/16 trust\n"))); strings.Contains(got, "trust") {
		t.Errorf("a remote-only trust line survived: %s", got)
	}
}

func FuzzLocalOnlyHBA(f *testing.F) {
	f.Add([]byte("host all all 0.0.0.0/0 md5\nlocal all all peer\n"))
	f.Add([]byte("host \"a b\" all 127.0.0.1 255.0.0.0 trust \\\n x=1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := string(LocalOnlyHBA(in))
		for _, line := range strings.Split(out, "\n") {
			toks := hbaTokens(line)
			if len(toks) == 0 || strings.HasPrefix(toks[0], "#") || toks[0] == "local" {
				continue
			}
			if len(toks) < 5 || toks[3] != "127.0.0.1/32" && toks[3] != "::1/128" {
				t.Fatalf("non-loopback line %q from %q", line, in)
			}
		}
	})
}

// BenchmarkLocalClusters is the cost every local restore pays to find the running
// clusters (one /proc scan).
func BenchmarkLocalClusters(b *testing.B) {
	for i := 0; i < b.N; i++ {
		LocalClusters()
	}
}

// The remote probe, run by the local shell (a remote host that is this host, as with
// ssh to localhost), finds walkeeper's home by identity: the home itself, what lies
// inside it (also not created yet, also through a link) and what contains it; other
// directories pass, and so does everything when the boot id says another host.
func TestHomeOnRemote(t *testing.T) {
	base := t.TempDir()
	home := filepath.Join(base, "home")
	other := filepath.Join(base, "other")
	for _, d := range []string{filepath.Join(home, "pg1", "wals"), other} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(home, "pg1"), filepath.Join(other, "link")); err != nil {
		t.Fatal(err)
	}
	roots := []string{home, filepath.Join(home, "pg1", "wals"), filepath.Join(home, "new", "dir"), base, "/",
		filepath.Join(other, "link"), filepath.Join(other, "dest"), other}
	want := []string{"is", "inside", "inside", "above", "above", "inside", "", ""}
	out, err := exec.Command("sh", "-c", remoteProbeScript(roots)+"true\n").Output()
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	ri := parseRemoteIdentity(string(out))
	for i, r := range roots {
		if got := homeOnRemote(ri, i, home); got != want[i] {
			t.Errorf("%s: %q, want %q (ids %v)", r, got, want[i], ri.ids[i])
		}
	}
	ri.boot = "another-host"
	if got := homeOnRemote(ri, 0, home); got != "" {
		t.Errorf("another host's %s: %q, want none", home, got)
	}
}
