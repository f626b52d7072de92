package verify

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/basebackup/bbtest"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// TestVerifyDecodesEachBundleOnce: verify reads by stored object, so each solid bundle
// is decoded exactly once, every file is checked against the manifest, and a damaged
// bundle is reported for each of its files.
func TestVerifyDecodesEachBundleOnce(t *testing.T) {
	ctx := context.Background()
	store := storage.NewLocal(t.TempDir())
	rng := rand.New(rand.NewSource(3))
	var files []bbtest.File
	for i := 0; i < 500; i++ {
		files = append(files, bbtest.File{Path: fmt.Sprintf("base/%d/%d", i%3, i), Data: bytes.Repeat([]byte{byte(i)}, 1+rng.Intn(9000))})
	}
	files = append(files, bbtest.File{Path: "base/0/big", Data: bytes.Repeat([]byte("big"), 100000)})
	b := bbtest.Write(t, store, "pg1", "20261124T100000", files, 32<<10, 64<<10, nil)
	if b.Bundles < 10 {
		t.Fatalf("only %d bundles", b.Bundles)
	}
	before := basebackup.SolidDecodes()
	rep, err := VerifyBackup(ctx, store, b.Info, FileOptions{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := basebackup.SolidDecodes() - before; got != int64(b.Bundles) {
		t.Fatalf("%d bundle decodes for %d bundles", got, b.Bundles)
	}
	if !rep.OK() || rep.Files != len(files) {
		t.Fatalf("report: %+v", rep)
	}

	// Damage one bundle: each of its files is unreadable, the others pass.
	key := archive.BackupDataPrefix("pg1", b.Info.ID) + "bundles/000002.zst"
	if _, err := store.Put(ctx, key, bytes.NewReader([]byte("not zstd"))); err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyBackup(ctx, store, b.Info, FileOptions{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Problems) == 0 || len(rep.Problems) >= len(files)/2 {
		t.Fatalf("damaged bundle: %d problems of %d files", len(rep.Problems), len(files))
	}
	for _, p := range rep.Problems {
		if p.Problem != "unreadable" {
			t.Fatalf("problem %v", p)
		}
	}
}
