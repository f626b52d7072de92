package restore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// memSource is a backup held in memory: restore's side of the Source contract,
// exercised without a PostgreSQL (the PostgreSQL tests use real backups).
type memSource struct {
	b        record.Backup
	entries  []Entry
	data     map[string][]byte
	manifest []byte
}

func (m *memSource) Backups(context.Context) ([]record.Backup, error) {
	return []record.Backup{m.b}, nil
}
func (m *memSource) Resolve(bs []record.Backup, ref string) (record.Backup, error) {
	return m.b, nil
}
func (m *memSource) Contents(context.Context, string) ([]Entry, error) { return m.entries, nil }
func (m *memSource) Open(_ context.Context, e Entry) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m.data[fmt.Sprint(e.Tablespace, e.Path)])), nil
}
func (m *memSource) Manifest(context.Context, string) ([]byte, error) { return m.manifest, nil }

func (m *memSource) add(ts uint32, p, typ string, content []byte, link string) {
	e := Entry{Tablespace: ts, Path: p, Type: typ, Mode: 0o600, Size: int64(len(content)), Link: link, ModTime: time.Unix(1700000000, 0)}
	if typ == "dir" {
		e.Mode = 0o700
	}
	m.entries = append(m.entries, e)
	if typ == "file" {
		m.data[fmt.Sprint(ts, p)] = content
	}
}

func testSource(oldTS string) *memSource {
	m := &memSource{data: map[string][]byte{}, manifest: []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`)}
	m.b = record.Backup{ID: "20261124T100000", Status: record.StatusDone, Timeline: 1, SegSize: testSeg,
		BeginLSN: segments.SegStart(2, testSeg) + 0x28, EndLSN: segments.SegStart(2, testSeg) + 0x200,
		EndTime:     time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
		Tablespaces: []record.Tablespace{{OID: 16400, Name: "ts1", Location: oldTS}}}
	m.add(0, "base", "dir", nil, "")
	m.add(0, "base/1", "dir", nil, "")
	m.add(0, "base/1/1259", "file", bytes.Repeat([]byte("r"), 300000), "")
	m.add(0, "PG_VERSION", "file", []byte("15\n"), "")
	m.add(0, "backup_label", "file", []byte("START WAL LOCATION: 0/200028\n"), "")
	m.add(0, "postgresql.auto.conf", "file", []byte("work_mem = '8MB'"), "")
	m.add(0, "pg_tblspc", "dir", nil, "")
	m.add(0, "pg_tblspc/16400", "symlink", nil, oldTS)
	m.add(16400, "PG_15_202209061", "dir", nil, "")
	m.add(16400, "PG_15_202209061/5", "dir", nil, "")
	m.add(16400, "PG_15_202209061/5/16401", "file", []byte("tablespace data"), "")
	return m
}

func TestRestoreLocal(t *testing.T) {
	ctx := context.Background()
	store, home := newArchive(t)
	for i := uint64(2); i <= 5; i++ {
		n := segments.SegmentFileName(1, i, testSeg)
		putArchived(t, store, "pg1", n, segData(n))
	}
	putArchived(t, store, "pg1", segments.SegmentFileName(1, 6, testSeg)+".partial", segData("the partial"))
	putArchived(t, store, "pg1", "00000002.history", []byte("1\t0/700000\tlater\n"))
	tl, err := LoadTimelines(ctx, store, "pg1")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	oldTS := filepath.Join(work, "old-ts")
	src := testSource(oldTS)
	dest := filepath.Join(work, "restored")
	newTS := filepath.Join(work, "new-ts")
	choice, err := CheckBackup(src.b, Target{}, tl)
	if err != nil {
		t.Fatal(err)
	}
	if choice.TLI != 1 {
		// Timeline 2 branched at 0/700000, after the backup: the default follows it.
		if choice.TLI != 2 {
			t.Fatalf("timeline %d", choice.TLI)
		}
	}
	choice.TLI, choice.Setting = 1, ""
	var progressTotal, progressSum int64
	o := Options{Server: "pg1", Source: src, Store: store, Timelines: tl, Choice: choice, Dest: dest,
		Tablespaces: map[string]string{"ts1": newTS}, WAL: WALCopy, StreamingDir: filepath.Join(home, "pg1", "streaming"), Jobs: 3,
		Progress: func(total int64) func(int64) {
			progressTotal = total
			return func(n int64) { progressSum += n }
		}}
	o.Tablespaces["nope"] = "/x"
	if _, err := Run(ctx, o); err == nil || !IsUsage(err) || !strings.Contains(err.Error(), `no tablespace "nope" (its tablespaces: ts1)`) {
		t.Fatalf("unknown tablespace: %v", err)
	}
	delete(o.Tablespaces, "nope")
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("a refused restore created DEST")
	}
	o.Jobs = 1 // progress callbacks are then sequential
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 7 || res.WALFiles != 6 {
		// 4 segments + the partial + the history file.
		t.Errorf("files %d, WAL files %d", res.Files, res.WALFiles)
	}
	if progressSum < progressTotal || progressTotal == 0 {
		t.Errorf("progress %d of %d", progressSum, progressTotal)
	}
	fi, _ := os.Stat(dest)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("DEST mode %v", fi.Mode().Perm())
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "base/1/1259")); !bytes.Equal(got, src.data["0base/1/1259"]) {
		t.Error("data file differs")
	}
	link, err := os.Readlink(filepath.Join(dest, "pg_tblspc/16400"))
	if err != nil || link != newTS {
		t.Errorf("pg_tblspc link %q %v, want %s", link, err, newTS)
	}
	if got, _ := os.ReadFile(filepath.Join(newTS, "PG_15_202209061/5/16401")); string(got) != "tablespace data" {
		t.Error("tablespace file not relocated")
	}
	if _, err := os.Stat(oldTS); !os.IsNotExist(err) {
		t.Error("original tablespace location touched")
	}
	auto, _ := os.ReadFile(filepath.Join(dest, "postgresql.auto.conf"))
	for _, want := range []string{"work_mem = '8MB'\n", "restore_command = 'cp pg_wal/walkeeper_wal/%f %p'", "recovery_end_command = 'rm -rf pg_wal/walkeeper_wal'", "recovery_target_timeline = '1'"} {
		if !strings.Contains(string(auto), want) {
			t.Errorf("postgresql.auto.conf lacks %q:\n%s", want, auto)
		}
	}
	if !exists(filepath.Join(dest, "recovery.signal")) || !exists(filepath.Join(dest, "pg_wal/archive_status")) {
		t.Error("recovery.signal or pg_wal/archive_status missing")
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "backup_manifest")); !bytes.Equal(got, src.manifest) {
		t.Error("backup_manifest not left in DEST")
	}
	walDir := filepath.Join(dest, CopyWALDir)
	ents, _ := os.ReadDir(walDir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := "000000010000000000000002 000000010000000000000003 000000010000000000000004 000000010000000000000005 000000010000000000000006 00000002.history"
	if strings.Join(got, " ") != want {
		t.Errorf("copied WAL %v\nwant %s", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(walDir, "000000010000000000000006")); !bytes.Equal(b, segData("the partial")) {
		t.Error("the .partial was not copied under its segment name")
	}

	// Invariant 7: a second restore into the same DEST is refused, nothing touched.
	before, _ := os.ReadFile(filepath.Join(dest, "postgresql.auto.conf"))
	if _, err := Run(ctx, o); err == nil || !IsUsage(err) || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("restore into non-empty DEST: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dest, "postgresql.auto.conf")); !bytes.Equal(before, after) {
		t.Error("refused restore changed DEST")
	}
	// A non-empty tablespace target is refused too.
	dest2 := filepath.Join(work, "restored2")
	o2 := o
	o2.Dest = dest2
	if _, err := Run(ctx, o2); err == nil || !strings.Contains(err.Error(), newTS+" is not empty") {
		t.Fatalf("restore into non-empty tablespace target: %v", err)
	}
	if exists(dest2) {
		t.Error("refused restore created DEST")
	}
	// --force replaces the content (a stray file disappears), --target-lsn bounds the WAL.
	os.WriteFile(filepath.Join(dest, "stray"), []byte("x"), 0o600)
	o.Force = true
	o.Target = Target{LSN: segments.SegStart(3, testSeg) + 10, HasLSN: true, Action: ActionPromote}
	o.WAL, o.RestoreCommand = WALGet, "/bin/walkeeper get-wal pg1 %f %p"
	if _, err := Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dest, "stray")) || exists(walDir) {
		t.Error("--force left old content")
	}
	auto, _ = os.ReadFile(filepath.Join(dest, "postgresql.auto.conf"))
	if strings.Count(string(auto), "restore_command") != 1 || !strings.Contains(string(auto), "recovery_target_lsn = '0/30000A'") ||
		!strings.Contains(string(auto), "recovery_target_action = 'promote'") || !strings.Contains(string(auto), "recovery_end_command = 'rm -rf pg_wal/walkeeper_spool'") {
		t.Errorf("postgresql.auto.conf after --force:\n%s", auto)
	}
	// copy-wal with an LSN target ships only up to the target's segment (+1).
	wal, err := planWAL(ctx, store, "pg1", src.b, 1, tl, o.Target, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(wal) != 4 || wal[len(wal)-1].name != "000000010000000000000004" {
		t.Errorf("LSN-bounded WAL: %v", wal)
	}
	// A gap before the backup's end is an error.
	src.b.EndLSN = segments.SegStart(9, testSeg)
	if _, err := planWAL(ctx, store, "pg1", src.b, 1, tl, Target{}, "", ""); err == nil || !strings.Contains(err.Error(), "000000010000000000000007, needed to reach the backup's end") {
		t.Errorf("gap: %v", err)
	}
}

func TestRewriteTablespaceMap(t *testing.T) {
	got := rewriteTablespaceMap([]byte("16400 /old/a\n16401 /old/b b\n"), map[uint32]string{16400: "/new/a"})
	if string(got) != "16400 /new/a\n16401 /old/b b\n" {
		t.Errorf("%q", got)
	}
}
