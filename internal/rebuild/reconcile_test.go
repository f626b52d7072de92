package rebuild

import (
	"bytes"
	"context"
	"testing"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/record"
)

// TestReconcile: an index that matches the archive is left alone; one that lost
// records (a WAL file, a backup) gets them back as a full rebuild gives them; a record
// of a file no longer archived stays (evidence of a loss, not the index's to hide).
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	store, idx := newArchive(t)
	const segSize = 16 << 20
	files := map[string][]byte{}
	for _, name := range []string{"000000010000000000000002", "000000010000000000000003", "00000002.history"} {
		files[name] = bytes.Repeat([]byte(name), 100)
	}
	putWAL(t, store, files)
	for _, id := range []string{"20261201T101010", "20261201T111111"} {
		if err := basebackup.SaveInfo(ctx, store, record.Backup{ID: id, Server: "pg1", Status: record.StatusDone, Timeline: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Server(ctx, idx, store, "pg1", segSize, nil); err != nil {
		t.Fatal(err)
	}
	want, err := idx.WALStats(ctx, "pg1")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Reconcile(ctx, idx, store, "pg1", segSize); err != nil || !d.Empty() {
		t.Fatalf("reconcile of a matching index: %+v, %v", d, err)
	}

	// What a damaged memtable log loses, and a record left of a deleted file.
	if err := idx.DeleteWAL(ctx, "pg1", []string{"000000010000000000000003"}); err != nil {
		t.Fatal(err)
	}
	if err := idx.DeleteBackup(ctx, "pg1", "20261201T111111"); err != nil {
		t.Fatal(err)
	}
	if err := idx.PutWAL(ctx, "pg1", record.WALFile{Name: "000000010000000000000009", Kind: "segment"}); err != nil {
		t.Fatal(err)
	}
	d, err := Reconcile(ctx, idx, store, "pg1", segSize)
	if err != nil {
		t.Fatal(err)
	}
	if d.WALAdded != 1 || d.BackupsAdded != 1 {
		t.Fatalf("reconcile of a damaged index: %+v", d)
	}
	got, err := idx.WALStats(ctx, "pg1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Files != want.Files+1 || got.RawBytes != want.RawBytes || got.StoredBytes != want.StoredBytes || got.FirstSegment != want.FirstSegment {
		t.Fatalf("stats after reconcile %+v, after a full rebuild %+v (and the stale record)", got, want)
	}
	if _, err := idx.GetWAL(ctx, "pg1", "000000010000000000000009"); err != nil {
		t.Fatalf("the record of a file gone from the archive was dropped: %v", err)
	}
	if bs, err := idx.ListBackups(ctx, "pg1"); err != nil || len(bs) != 2 {
		t.Fatalf("backups after reconcile: %d, %v", len(bs), err)
	}
	if d, err := Reconcile(ctx, idx, store, "pg1", segSize); err != nil || !d.Empty() {
		t.Fatalf("second reconcile: %+v, %v", d, err)
	}
}
