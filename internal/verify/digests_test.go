package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/basebackup/bbtest"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// TestVerifyByRecordedSums: a backup that recorded its sums and objects verifies
// without a decode; --deep decodes each bundle once; a changed, truncated or missing
// object is reported with the files it holds (decoded to name them), and nothing else;
// a recorded sum that disagrees with the manifest is a checksum problem.
func TestVerifyByRecordedSums(t *testing.T) {
	ctx := context.Background()
	store := storage.NewLocal(t.TempDir())
	rng := rand.New(rand.NewSource(7))
	var files []bbtest.File
	for i := range 400 {
		data := make([]byte, rng.Intn(9000))
		rng.Read(data[:len(data)/3])
		files = append(files, bbtest.File{Path: fmt.Sprintf("base/%d/%d", i%3, i), Data: data})
	}
	big := make([]byte, 300000)
	rng.Read(big)
	files = append(files, bbtest.File{Path: "base/0/big", Data: big})
	b := bbtest.WriteRecorded(t, store, "pg1", "20261202T100000", files, 32<<10, 64<<10)
	if b.Bundles < 10 {
		t.Fatalf("only %d bundles", b.Bundles)
	}
	verifyWith := func(deep bool) BackupReport {
		t.Helper()
		rep, err := VerifyBackup(ctx, store, b.Info, FileOptions{Workers: 2, Deep: deep})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	before := basebackup.SolidDecodes()
	rep := verifyWith(false)
	if !rep.OK() || rep.Files != len(files) || rep.Decoded != 0 || rep.Objects != b.Bundles+1 {
		t.Fatalf("healthy backup by recorded sums: %+v", rep)
	}
	if d := basebackup.SolidDecodes() - before; d != 0 {
		t.Fatalf("%d bundles decoded to verify by recorded sums", d)
	}
	before = basebackup.SolidDecodes()
	if rep := verifyWith(true); !rep.OK() || rep.Decoded != len(files) {
		t.Fatalf("deep: %+v", rep)
	}
	if d := basebackup.SolidDecodes() - before; d != int64(b.Bundles) {
		t.Fatalf("deep: %d decodes for %d bundles", d, b.Bundles)
	}

	entries, objs, err := basebackup.ContentsAndObjects(ctx, store, "pg1", b.Info.ID)
	if err != nil {
		t.Fatal(err)
	}
	members := func(key string) map[string]bool {
		m := map[string]bool{}
		for _, e := range entries {
			if e.Key == key && e.Size > 0 {
				m[e.Path] = true
			}
		}
		return m
	}
	// only checks that the problems are the damaged object's own files' (at least one),
	// or, when none of them is, the object's alone.
	only := func(rep BackupReport, name, kind string, want map[string]bool) {
		t.Helper()
		objects, named := 0, 0
		for _, p := range rep.Problems {
			switch {
			case p.Path == name && p.Problem == kind:
				objects++
			case want[p.Path]:
				named++
			default:
				t.Fatalf("problem outside the damaged object %s: %v", name, p)
			}
		}
		if objects+min(named, 1) != 1 || rep.OK() {
			t.Fatalf("damaged %s: %d object problems, %d of %d files named: %+v", name, objects, named, len(want), rep.Problems)
		}
		for _, p := range rep.Problems {
			if p.Path == name && !strings.HasPrefix(p.String(), "stored object "+name+": ") {
				t.Fatalf("object problem reads %q", p)
			}
		}
	}
	prefix := archive.BackupDataPrefix("pg1", b.Info.ID)
	restore := func(key string, data []byte) {
		if _, err := store.Put(ctx, key, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(key string) []byte {
		r, err := store.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	// One byte of a bundle changed.
	key := prefix + "bundles/000003.zst"
	good := read(key)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0x40
	restore(key, bad)
	rep = verifyWith(false)
	only(rep, "bundles/000003.zst", "object", members(key))
	if rep.Decoded != len(members(key)) {
		t.Fatalf("decoded %d files to name the damage, the object holds %d", rep.Decoded, len(members(key)))
	}
	// Truncated: the same.
	restore(key, good[:len(good)-10])
	only(verifyWith(false), "bundles/000003.zst", "object", members(key))
	// Stored anew with other bytes of the same content: every file decodes and matches,
	// and the object itself is the problem (restore checks the frames it holds).
	var plain []byte
	if plain, err = compress.DecodeAll(compress.Zstd, good, nil); err != nil {
		t.Fatal(err)
	}
	other, err := compress.EncodeSolid(compress.Zstd, 9, plain)
	if err != nil {
		t.Fatal(err)
	}
	restore(key, other)
	rep = verifyWith(false)
	only(rep, "bundles/000003.zst", "object", map[string]bool{})
	// The large file's object gone: the file is unreadable.
	bigKey := ""
	for _, e := range entries {
		if e.Path == "base/0/big" {
			bigKey = e.Key
		}
	}
	restore(key, good)
	bigData := read(bigKey)
	if err := store.Delete(ctx, bigKey); err != nil {
		t.Fatal(err)
	}
	rep = verifyWith(false)
	only(rep, strings.TrimPrefix(bigKey, prefix), "object-unreadable", map[string]bool{"base/0/big": true})
	if len(rep.Problems) != 1 || rep.Problems[0].Problem != "unreadable" {
		t.Fatalf("large file's object gone: %v", rep.Problems)
	}
	restore(bigKey, bigData)
	if rep := verifyWith(false); !rep.OK() {
		t.Fatalf("repaired: %+v", rep.Problems)
	}

	// A recorded sum that is not the manifest's: found without decoding.
	for i := range entries {
		if entries[i].Path == "base/1/7" {
			entries[i].Sum = "deadbeef"
		}
	}
	cjson, err := json.Marshal(map[string]any{"version": 2, "backup_id": b.Info.ID, "entries": entries, "objects": objs})
	if err != nil {
		t.Fatal(err)
	}
	cdata, err := compress.EncodeAll(compress.Zstd, 1, cjson, nil)
	if err != nil {
		t.Fatal(err)
	}
	restore(archive.BackupContentsKey("pg1", b.Info.ID), cdata)
	rep = verifyWith(false)
	if len(rep.Problems) != 1 || rep.Problems[0].Path != "base/1/7" || rep.Problems[0].Problem != "checksum" || rep.Problems[0].Got != "CRC32C deadbeef" {
		t.Fatalf("wrong recorded sum: %+v", rep.Problems)
	}
	// --deep sums the file itself: it matches.
	if rep := verifyWith(true); !rep.OK() {
		t.Fatalf("deep with a wrong recorded sum: %+v", rep.Problems)
	}
}
