package crypt

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/basebackup/bbtest"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/rebuild"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/verify"
)

// TestCallersUnchanged runs the archive's readers on an encrypted store as they run on
// a local one: WAL stored as ingest stores it is found and read back, index rebuild
// records the sizes Put returned (so Reconcile, which compares them with List's,
// finds nothing to do), and a synthetic base backup (solid bundles, a large file,
// contents list, manifest) verifies clean, and fails verification once one of its
// bundles is damaged in the inner store.
func TestCallersUnchanged(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	idx, err := index.OpenBadger(filepath.Join(t.TempDir(), "idx"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	const segSize = 16 << 20
	files := map[string][]byte{}
	stored := map[string]int64{}
	for i, name := range []string{"000000010000000000000002", "000000010000000000000003", "00000002.history"} {
		files[name] = bytes.Repeat([]byte(name), 1000*(i+1))
		enc, err := compress.EncodeAll(compress.Zstd, 0, files[name], nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.Put(ctx, archive.WALKey("pg1", name, compress.Zstd), bytes.NewReader(enc))
		if err != nil || n != int64(len(enc)) {
			t.Fatalf("put %s: %d, %v", name, n, err)
		}
		stored[name] = n
	}
	for name, data := range files {
		got, err := archive.ReadWAL(ctx, s, "pg1", name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadWAL %s: %v", name, err)
		}
	}
	res, err := rebuild.Server(ctx, idx, s, "pg1", segSize, nil)
	if err != nil || res.WALFiles != len(files) || len(res.Skipped) != 0 {
		t.Fatalf("rebuild: %+v, %v", res, err)
	}
	for name := range files {
		rec, err := idx.GetWAL(ctx, "pg1", name)
		if err != nil || rec.StoredSize != stored[name] || rec.RawSize != int64(len(files[name])) {
			t.Fatalf("%s: record %+v (put returned %d), %v", name, rec, stored[name], err)
		}
	}
	if d, err := rebuild.Reconcile(ctx, idx, s, "pg1", segSize); err != nil || !d.Empty() {
		t.Fatalf("reconcile after a rebuild: %+v, %v", d, err)
	}

	var bfiles []bbtest.File
	for i := range 40 {
		bfiles = append(bfiles, bbtest.File{Path: fmt.Sprintf("base/1/%d", 1000+i), Data: plaintext(3000 + i)})
	}
	bfiles = append(bfiles, bbtest.File{Path: "base/1/big", Data: plaintext(300 << 10)})
	b := bbtest.Write(t, s, "pg1", "20261201T101010", bfiles, 8<<10, 40<<10, nil)
	if b.Bundles < 2 {
		t.Fatalf("%d bundles, want several", b.Bundles)
	}
	rep, err := verify.VerifyBackup(ctx, s, b.Info, verify.FileOptions{Workers: 2})
	if err != nil || len(rep.Problems) != 0 || rep.Manifest != "" || rep.Files != len(bfiles) {
		t.Fatalf("verify of the encrypted backup: %+v, %v", rep, err)
	}
	ids, err := archive.ListBackupIDs(ctx, s, "pg1")
	if err != nil || len(ids) != 1 || ids[0] != b.Info.ID {
		t.Fatalf("ListBackupIDs: %q, %v", ids, err)
	}
	if got, err := basebackup.LoadInfo(ctx, s, "pg1", b.Info.ID); err != nil || got.ID != b.Info.ID {
		t.Fatalf("LoadInfo: %+v, %v", got, err)
	}

	// Damage the second bundle where the inner store keeps it.
	bundle := ""
	if err := s.List(ctx, archive.BackupDataPrefix("pg1", b.Info.ID), func(i storage.Info) error {
		if strings.Contains(i.Key, "bundles/000002") {
			bundle = i.Key
		}
		return nil
	}); err != nil || bundle == "" {
		t.Fatalf("no second bundle: %v", err)
	}
	raw := rawObject(t, inner, bundle)
	raw[HeaderSize+100] ^= 1
	writeRaw(t, inner, bundle, raw)
	rep, err = verify.VerifyBackup(ctx, s, b.Info, verify.FileOptions{Workers: 2})
	if err == nil && len(rep.Problems) == 0 {
		t.Fatal("verify passed a backup whose bundle was damaged")
	}
	if msg := fmt.Sprint(err, rep.Problems); !strings.Contains(msg, bundle) || !strings.Contains(msg, ErrCorrupt.Error()) {
		t.Fatalf("verify of a damaged bundle does not name it: %s", msg)
	}
}
