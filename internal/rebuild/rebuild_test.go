package rebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// TestServer rebuilds an index from an archive holding every kind of WAL file, a stray
// object, a good backup and two bad backup.info files, and checks each record against
// what the archive holds.
func TestServer(t *testing.T) {
	ctx := context.Background()
	store, idx := newArchive(t)
	const segSize = 16 << 20
	files := map[string][]byte{
		"000000010000000000000002":                 bytes.Repeat([]byte("a"), 1000),
		"000000010000000000000003.partial":         []byte("partial"),
		"000000010000000000000002.00000028.backup": []byte("label"),
		"00000002.history":                         []byte("1\t0/3000000\tno recovery target specified\n"),
	}
	putWAL(t, store, files)
	stray := archive.WALPrefix("pg1") + "0000000100000000/notes.txt"
	bad := archive.WALKey("pg1", "000000010000000000000004", compress.Zstd)
	for k, v := range map[string]string{stray: "x", bad: "not zstd"} {
		if _, err := store.Put(ctx, k, strings.NewReader(v)); err != nil {
			t.Fatal(err)
		}
	}
	good := record.Backup{ID: "20261201T101010", Server: "pg1", Status: record.StatusDone, Timeline: 1}
	if err := basebackup.SaveInfo(ctx, store, good); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, archive.BackupInfoKey("pg1", "20261201T000000"), strings.NewReader(`{"id":"20261130T000000"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, archive.BackupInfoKey("pg1", "20261202T000000"), strings.NewReader(`{`)); err != nil {
		t.Fatal(err)
	}
	// A stale record that the rebuild must drop.
	if err := idx.PutWAL(ctx, "pg1", record.WALFile{Name: "000000010000000000000009", Kind: "segment"}); err != nil {
		t.Fatal(err)
	}

	done := 0
	res, err := Server(ctx, idx, store, "pg1", segSize, func(n int) { done = n })
	if err != nil {
		t.Fatal(err)
	}
	if res.WALFiles != 4 || res.Backups != 1 || done != 6 || len(res.Skipped) != 4 {
		t.Fatalf("result %+v, progress %d", res, done)
	}
	joined := strings.Join(res.Skipped, "\n")
	for _, want := range []string{stray + ": not an archived WAL file", bad + ": unreadable", "20261201T000000/backup.info holds id", "20261202T000000/backup.info"} {
		if !strings.Contains(joined, want) {
			t.Errorf("skipped %q lacks %q", joined, want)
		}
	}
	if _, err := idx.GetWAL(ctx, "pg1", "000000010000000000000009"); err == nil {
		t.Error("a stale record survived the rebuild")
	}
	for name, data := range files {
		rec, err := idx.GetWAL(ctx, "pg1", name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n, _ := segments.Parse(name)
		segNo, start := n.Place(segSize)
		sum := sha256.Sum256(data)
		if rec.Kind != n.Kind.String() || rec.Timeline != n.Timeline || rec.SegNo != segNo || rec.StartLSN != start ||
			rec.RawSize != int64(len(data)) || rec.SHA256 != hex.EncodeToString(sum[:]) || rec.Compression != compress.Zstd ||
			rec.Source != record.SourceRebuild || rec.Key != archive.WALKey("pg1", name, compress.Zstd) {
			t.Errorf("%s: record %+v", name, rec)
		}
	}
	if b, err := idx.GetBackup(ctx, "pg1", good.ID); err != nil || b.Status != record.StatusDone {
		t.Fatalf("backup record %+v %v", b, err)
	}
}
