package basebackup

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

func TestReports(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	store := storage.NewLocal(home)
	idx, err := index.OpenBadger(filepath.Join(home, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	b1 := record.Backup{ID: "20261201T100000", Server: "pg1", Label: "walkeeper B1", Status: record.StatusDone, Timeline: 1,
		BeginLSN: segments.LSN(0x2000028), EndLSN: segments.LSN(0x2000100), BeginWAL: "000000010000000000000002", EndWAL: "000000010000000000000002",
		BeginTime: t0, EndTime: t0.Add(90 * time.Second), PGVersion: 150004, SystemID: 7, SegSize: 16 << 20,
		Size: 30 << 20, StoredSize: 10 << 20, Files: 1000, Compression: "zstd", CompressionLevel: 3}
	b2 := record.Backup{ID: "20261201T110000", Server: "pg1", Name: "nightly", Status: "FAILED", Error: "connection lost", Keep: true,
		BeginTime: t0.Add(time.Hour)}
	for _, b := range []record.Backup{b1, b2} {
		if err := idx.PutBackup(ctx, "pg1", b); err != nil {
			t.Fatal(err)
		}
	}
	serverDir := filepath.Join(home, "pg1")
	rows, bs, err := ListRows(ctx, idx, serverDir, "pg1")
	if err != nil || len(rows) != 2 || len(bs) != 2 {
		t.Fatalf("ListRows = %+v, %v", rows, err)
	}
	if r := rows[0]; r.ID != b1.ID || r.BeginLSN != "0/2000028" || r.EndLSN != "0/2000100" || r.EndTime == nil || !r.EndTime.Equal(b1.EndTime) {
		t.Errorf("row of a DONE backup = %+v", r)
	}
	if r := rows[1]; r.EndTime != nil || r.BeginLSN != "" || !r.Keep || r.Error != "connection lost" {
		t.Errorf("row of a failed backup = %+v", r)
	}
	var w bytes.Buffer
	WriteRows(&w, "pg1", rows)
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], "20261201T110000  nightly  FAILED (keep)  -") ||
		!strings.Contains(lines[2], "0/2000028  0/2000100  30 MiB  10 MiB  0") {
		t.Errorf("list-backups (newest first):\n%s", w.String())
	}
	w.Reset()
	WriteRows(&w, "pg1", nil)
	if w.String() != "pg1: no backups\n" {
		t.Errorf("no backups: %q", w.String())
	}

	if b, err := Find(ctx, idx, serverDir, "pg1", "nightly"); err != nil || b.ID != b2.ID {
		t.Errorf("Find(nightly) = %s, %v", b.ID, err)
	}
	if _, err := Find(ctx, idx, serverDir, "pg1", "nope"); err == nil || !strings.HasPrefix(err.Error(), "pg1: ") {
		t.Errorf("Find(nope) = %v, want an error naming the server", err)
	}

	// No backup.info in the store: the index record stands in.
	d, err := Describe(ctx, idx, store, serverDir, "pg1", "oldest", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != b1.ID || d.InfoKey != archive.BackupInfoKey("pg1", b1.ID) || d.DataPrefix != archive.BackupDataPrefix("pg1", b1.ID) || d.Tablespaces == nil || d.Objects != 0 {
		t.Errorf("Describe = %+v", d)
	}
	w.Reset()
	d.WriteText(&w)
	for _, want := range []string{
		"Backup 20261201T100000 of pg1:\n",
		"  Status:              DONE\n",
		"  PostgreSQL version:  15.4 (150004)\n",
		"  Begin LSN / WAL:     0/2000028 / 000000010000000000000002\n",
		"  Stored:              10 MiB (zstd level 3, ratio 3.0x)\n",
		"  Tablespaces:         none\n",
		"  backup.info:         " + archive.BackupInfoKey("pg1", b1.ID) + "\n",
	} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("show-backup lacks %q:\n%s", want, w.String())
		}
	}
	w.Reset()
	WriteDone(&w, "pg1", b1, 1234*time.Millisecond)
	if want := "pg1: backup 20261201T100000 DONE in 1.2s: 30 MiB in 1000 files, 10 MiB stored, ratio 3.0x, WAL 000000010000000000000002 to 000000010000000000000002\n"; w.String() != want {
		t.Errorf("WriteDone = %q, want %q", w.String(), want)
	}
}

func TestServerOptions(t *testing.T) {
	cfg, err := config.Parse([]byte("[walkeeper]\nhome = /srv/wk\n\n[pg1]\nconninfo = host=a\nstreaming_conninfo = host=a user=rep\n"+
		"backup_compression = gzip\nbackup_compression_level = 5\nparallel_jobs = 3\nbackup_wait_timeout = 2m\nstreaming_archiver = on\nslot_name = wk1\n"), "/srv/wk.conf")
	if err != nil {
		t.Fatal(err)
	}
	o := ServerOptions(cfg.Servers[0])
	if o.Server != "pg1" || o.ServerDir != "/srv/wk/pg1" || o.Conninfo != "host=a" || o.StreamingConninfo != "host=a user=rep" ||
		o.Compression != "gzip" || o.CompressionLevel != 5 || o.Jobs != 3 || o.WaitTimeout != 2*time.Minute || !o.StreamingArchiver || o.SlotName != "wk1" ||
		o.ApplicationName != "walkeeper" {
		t.Errorf("ServerOptions = %+v", o)
	}
}
