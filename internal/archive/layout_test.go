package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// TestKeysAreTheOnDiskLayout pins every key to the exact string existing archives
// hold: a change here orphans them.
func TestKeysAreTheOnDiskLayout(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{WALPrefix("pg1"), "pg1/wals/"},
		{HistoryPrefix("pg1"), "pg1/wals/history/"},
		{WALKey("pg1", "000000010000000000000002", compress.Zstd), "pg1/wals/0000000100000000/000000010000000000000002.zst"},
		{WALKey("pg1", "000000020000000100000000.partial", compress.Gzip), "pg1/wals/0000000200000001/000000020000000100000000.partial.gz"},
		{WALKey("pg1", "000000010000000000000002.00000028.backup", compress.None), "pg1/wals/0000000100000000/000000010000000000000002.00000028.backup"},
		{WALKey("pg1", "00000003.history", compress.Zstd), "pg1/wals/history/00000003.history.zst"},
		{IdentityKey("pg1"), "pg1/identity.json"},
		{BackupsPrefix("pg1"), "pg1/base/"},
		{BackupPrefix("pg1", "20261201T101010"), "pg1/base/20261201T101010/"},
		{BackupInfoKey("pg1", "20261201T101010"), "pg1/base/20261201T101010/backup.info"},
		{BackupManifestKey("pg1", "20261201T101010"), "pg1/base/20261201T101010/backup_manifest"},
		{BackupContentsKey("pg1", "20261201T101010"), "pg1/base/20261201T101010/contents.json.zst"},
		{BackupContentsV1Key("pg1", "20261201T101010"), "pg1/base/20261201T101010/contents.json"},
		{BackupDataPrefix("pg1", "20261201T101010"), "pg1/base/20261201T101010/data/"},
		{IncomingDir("/h/pg1"), "/h/pg1/incoming"},
		{ErrorsDir("/h/pg1"), "/h/pg1/errors"},
		{StreamingDir("/h/pg1"), "/h/pg1/streaming"},
		{DupName("000000010000000000000002", 42), "000000010000000000000002.wk-dup-00000000000000000042"},
		{QuarantineName("x", time.Date(2026, 12, 1, 10, 0, 0, 5, time.FixedZone("", 3600))), "x.20261201T090000.000000005"},
		{ReasonFile("/h/pg1/errors/x.1"), "/h/pg1/errors/x.1.reason"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestDir(t *testing.T) {
	for name, want := range map[string]string{
		"000000010000000000000002":                 "0000000100000000",
		"000000020000000100000000.partial":         "0000000200000001",
		"000000010000000000000002.00000028.backup": "0000000100000000",
		"000000010000000000000002.01000000.backup": "0000000100000000",
		"000000010000000000000100":                 "0000000100000000",
		"00000003.history":                         "history",
		"garbage":                                  "",
		"a/000000010000000000000002":               "",
		"../000000010000000000000002":              "",
	} {
		if got := Dir(name); got != want {
			t.Errorf("Dir(%q) = %q, want %q", name, got, want)
		}
	}
	// A segment's directory is the timeline and log of its name, for every legal
	// segment size, across log boundaries (the checks segments' round trip held before
	// Dir moved here).
	for size := uint64(segments.MinSegSize); size <= segments.MaxSegSize; size <<= 1 {
		per := segments.SegmentsPerLog(size)
		for _, segNo := range []uint64{0, 1, per - 1, per, per + 1, 3*per - 1, 0xFFFFFFFF*per + per - 1} {
			for _, tli := range []uint32{1, 2, 0xFFFFFFFF} {
				fn := segments.SegmentFileName(tli, segNo, size)
				if got := Dir(fn); got != fn[:16] {
					t.Fatalf("size %d: Dir(%q) = %q, want %q", size, fn, got, fn[:16])
				}
			}
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, tt := range []struct {
		key  string
		want Key
		err  string
	}{
		{key: "pg1/wals/0000000100000000/000000010000000000000002.zst", want: Key{Kind: KeyWAL, Server: "pg1", Name: "000000010000000000000002", Codec: compress.Zstd, Canonical: true}},
		{key: "pg1/wals/history/00000003.history", want: Key{Kind: KeyWAL, Server: "pg1", Name: "00000003.history", Codec: compress.None, Canonical: true}},
		{key: "pg1/wals/0000000100000000/000000010000000000000002.partial.gz", want: Key{Kind: KeyWAL, Server: "pg1", Name: "000000010000000000000002.partial", Codec: compress.Gzip, Canonical: true}},
		// A WAL file in another directory is still one, but not where Find looks.
		{key: "pg1/wals/0000000100000001/000000010000000000000002.zst", want: Key{Kind: KeyWAL, Server: "pg1", Name: "000000010000000000000002", Codec: compress.Zstd}},
		{key: "pg1/wals/000000010000000000000002", want: Key{Kind: KeyWAL, Server: "pg1", Name: "000000010000000000000002", Codec: compress.None}},
		{key: "pg1/identity.json", want: Key{Kind: KeyIdentity, Server: "pg1"}},
		{key: "pg1/base/20261201T101010/backup.info", want: Key{Kind: KeyBackupInfo, Server: "pg1", BackupID: "20261201T101010"}},
		{key: "pg1/base/20261201T101010/backup_manifest", want: Key{Kind: KeyBackupManifest, Server: "pg1", BackupID: "20261201T101010"}},
		{key: "pg1/base/20261201T101010/contents.json.zst", want: Key{Kind: KeyBackupContents, Server: "pg1", BackupID: "20261201T101010"}},
		{key: "pg1/base/20261201T101010/contents.json", want: Key{Kind: KeyBackupContents, Server: "pg1", BackupID: "20261201T101010"}},
		{key: "pg1/base/20261201T101010/data/bundles/000001.zst", want: Key{Kind: KeyBackupData, Server: "pg1", BackupID: "20261201T101010", Path: "bundles/000001.zst"}},
		{key: "pg1/wals/0000000100000000/000000010000000000000002.zst.zst", err: "not an archived WAL file"},
		{key: "pg1/wals/0000000100000000/notes.txt", err: "not an archived WAL file"},
		{key: "pg1/base/20261201T101010/other", err: "not a file of the backup format"},
		{key: "pg1/base/20261201T101010/data/", err: "not a file of the backup format"},
		{key: "pg1/base/backup.info", err: "not a file of a backup"},
		{key: "pg1/incoming/000000010000000000000002", err: "not in the archive's layout"},
		{key: "identity.json", err: "not under a server"},
		{key: "", err: "not under a server"},
	} {
		got, err := ParseKey(tt.key)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), tt.key+": ") {
				t.Errorf("ParseKey(%q) = %+v, %v; want error %q naming the key", tt.key, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseKey(%q): %v", tt.key, err)
			continue
		}
		got.WAL = segments.Name{}
		if got != tt.want {
			t.Errorf("ParseKey(%q) = %+v, want %+v", tt.key, got, tt.want)
		}
	}
}

// TestIsWALKeyOf: the keys retention may delete for a name are exactly its canonical
// keys in the server's archive.
func TestIsWALKeyOf(t *testing.T) {
	const name = "000000010000000000000002"
	for key, want := range map[string]bool{
		"pg1/wals/0000000100000000/000000010000000000000002":     true,
		"pg1/wals/0000000100000000/000000010000000000000002.zst": true,
		"pg1/wals/0000000100000000/000000010000000000000002.gz":  true,
		"pg2/wals/0000000100000000/000000010000000000000002.zst": false, // another server
		"pg1/wals/0000000100000001/000000010000000000000002.zst": false, // another directory
		"pg1/wals/0000000100000000/000000010000000000000003.zst": false, // another file
		"pg1/wals/0000000100000000/000000010000000000000002.x":   false,
		"pg1/base/0000000100000000/000000010000000000000002.zst": false,
		"pg1/wals/000000010000000000000002.zst":                  false,
		"../pg1/wals/0000000100000000/000000010000000000000002":  false,
	} {
		if got := IsWALKeyOf("pg1", name, key); got != want {
			t.Errorf("IsWALKeyOf(%q) = %v, want %v", key, got, want)
		}
	}
}

// FuzzParseKey: a key that parses as a WAL file round-trips through WALKey when it is
// canonical, and Dir agrees with segments.Parse on every name.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		"pg1/wals/0000000100000000/000000010000000000000002.zst", "pg1/wals/history/00000003.history",
		"pg1/base/x/backup.info", "pg1/base/x/data/pgdata/PG_VERSION", "pg1/identity.json", "a/b", "",
		"000000010000000000000002.00000028.backup", "00000002.history",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, perr := segments.Parse(s)
		switch d := Dir(s); {
		case perr != nil && d != "":
			t.Fatalf("Dir(%q) = %q for a rejected name", s, d)
		case perr == nil && n.Kind == segments.KindHistory && d != historyDir:
			t.Fatalf("Dir(%q) = %q for a history file", s, d)
		case perr == nil && n.Kind != segments.KindHistory && d != s[:16]:
			t.Fatalf("Dir(%q) = %q", s, d)
		}
		k, err := ParseKey(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), s+": ") {
				t.Fatalf("error %q does not name the key", err)
			}
			return
		}
		switch k.Kind {
		case KeyWAL:
			if k.Canonical != (WALKey(k.Server, k.Name, k.Codec) == s) {
				t.Fatalf("%q: Canonical %v", s, k.Canonical)
			}
			if k.WAL.Raw != k.Name {
				t.Fatalf("%q: name %q parsed as %q", s, k.Name, k.WAL.Raw)
			}
		case KeyIdentity:
			if IdentityKey(k.Server) != s {
				t.Fatalf("%q: not the identity key of %q", s, k.Server)
			}
		case KeyBackupInfo:
			if BackupInfoKey(k.Server, k.BackupID) != s {
				t.Fatalf("%q: not the backup.info of %q/%q", s, k.Server, k.BackupID)
			}
		case KeyBackupData:
			if BackupDataPrefix(k.Server, k.BackupID)+k.Path != s {
				t.Fatalf("%q: data %q/%q/%q", s, k.Server, k.BackupID, k.Path)
			}
		}
	})
}

func put(t *testing.T, store storage.Store, key string, data []byte) {
	t.Helper()
	if _, err := store.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func putWAL(t *testing.T, store storage.Store, name, codec string, data []byte) {
	t.Helper()
	enc, err := compress.EncodeAll(codec, 0, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	put(t, store, WALKey("pg1", name, codec), enc)
}

// segment makes a segment of segSize with a valid long page header.
func segment(name string, segSize uint64) []byte {
	n, _ := segments.Parse(name)
	b := make([]byte, segSize)
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xD110)
	le.PutUint16(b[2:], segments.XLPLongHeader)
	le.PutUint32(b[4:], n.Timeline)
	le.PutUint64(b[8:], uint64(n.StartLSN(segSize)))
	le.PutUint64(b[24:], 7)
	le.PutUint32(b[32:], uint32(segSize))
	le.PutUint32(b[36:], 8192)
	return b
}

func TestReadSide(t *testing.T) {
	ctx := context.Background()
	store := storage.NewLocal(t.TempDir())
	const segSize = 1 << 20
	seg1, seg2 := "000000010000000000000001", "000000010000000000000002"

	if ok, err := HasWAL(ctx, store, "pg1"); err != nil || ok {
		t.Fatalf("empty archive: HasWAL %v %v", ok, err)
	}
	if n, err := SegSize(ctx, store, "pg1"); err != nil || n != 0 {
		t.Fatalf("empty archive: SegSize %d %v", n, err)
	}
	if _, _, err := Find(ctx, store, "pg1", seg1); !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), seg1) {
		t.Fatalf("Find of a missing file: %v", err)
	}
	if _, err := LoadIdentity(ctx, store, "pg1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("LoadIdentity without one: %v", err)
	}

	putWAL(t, store, seg1, compress.Gzip, segment(seg1, segSize))
	putWAL(t, store, seg2, compress.Zstd, segment(seg2, segSize))
	putWAL(t, store, "000000010000000000000003.partial", compress.Zstd, []byte("partial"))
	putWAL(t, store, "000000010000000000000004.00000028.backup", compress.None, []byte("label"))
	putWAL(t, store, "00000002.history", compress.Zstd, []byte("1\t0/2000000\tno recovery target specified\n"))
	put(t, store, WALPrefix("pg1")+"0000000100000000/stray.txt", []byte("x"))

	key, codec, err := Find(ctx, store, "pg1", seg1)
	if err != nil || codec != compress.Gzip || key != WALKey("pg1", seg1, compress.Gzip) {
		t.Fatalf("Find = %q %q %v", key, codec, err)
	}
	got, err := Read(ctx, store, key, codec)
	if err != nil || !bytes.Equal(got, segment(seg1, segSize)) {
		t.Fatalf("Read: %v", err)
	}
	buf := make([]byte, 0, segSize)
	got, err = ReadInto(ctx, store, WALKey("pg1", seg2, compress.Zstd), compress.Zstd, buf)
	if err != nil || !bytes.Equal(got, segment(seg2, segSize)) || &got[:1][0] != &buf[:1][0] {
		t.Fatalf("ReadInto did not decode into the buffer: %v", err)
	}
	if got, err := ReadWAL(ctx, store, "pg1", "00000002.history"); err != nil || !strings.HasPrefix(string(got), "1\t") {
		t.Fatalf("ReadWAL history: %q %v", got, err)
	}
	if _, err := Read(ctx, store, WALKey("pg1", seg2, compress.Zstd), compress.Gzip); err == nil || !strings.Contains(err.Error(), "decompress "+WALKey("pg1", seg2, compress.Zstd)) {
		t.Fatalf("Read with the wrong codec: %v", err)
	}

	var names, bad []string
	if err := ListWAL(ctx, store, "pg1", func(i storage.Info, k Key, err error) error {
		if err != nil {
			bad = append(bad, err.Error())
		} else {
			names = append(names, k.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != 5 || len(bad) != 1 || !strings.Contains(bad[0], "stray.txt") {
		t.Fatalf("ListWAL: %v, bad %v", names, bad)
	}
	var hist []uint32
	if err := ListHistory(ctx, store, "pg1", func(_ storage.Info, k Key) error { hist = append(hist, k.WAL.Timeline); return nil }); err != nil || len(hist) != 1 || hist[0] != 2 {
		t.Fatalf("ListHistory: %v %v", hist, err)
	}
	// The newest complete segment: not the newer .partial or .backup.
	if last, err := NewestSegment(ctx, store, "pg1"); err != nil || last != seg2 {
		t.Fatalf("NewestSegment = %q %v", last, err)
	}
	if ok, err := HasWAL(ctx, store, "pg1"); err != nil || !ok {
		t.Fatalf("HasWAL %v %v", ok, err)
	}
	// Without an identity, the segment size comes from the first segment's header.
	if n, err := SegSize(ctx, store, "pg1"); err != nil || n != segSize {
		t.Fatalf("SegSize from a header = %d %v", n, err)
	}
	id := record.Identity{SystemID: 7, SegSize: 16 << 20, Magic: 0xD110, Source: "test", LearnedAt: time.Unix(1, 0).UTC()}
	if err := SaveIdentity(ctx, store, "pg1", id); err != nil {
		t.Fatal(err)
	}
	if back, err := LoadIdentity(ctx, store, "pg1"); err != nil || back != id {
		t.Fatalf("LoadIdentity = %+v %v", back, err)
	}
	if n, err := SegSize(ctx, store, "pg1"); err != nil || n != 16<<20 {
		t.Fatalf("SegSize from the identity = %d %v", n, err)
	}
	put(t, store, IdentityKey("pg2"), []byte("{"))
	if _, err := LoadIdentity(ctx, store, "pg2"); err == nil || !strings.Contains(err.Error(), IdentityKey("pg2")) {
		t.Fatalf("a damaged identity: %v", err)
	}
}

func TestListBackupIDs(t *testing.T) {
	ctx := context.Background()
	store := storage.NewLocal(t.TempDir())
	for _, k := range []string{
		BackupInfoKey("pg1", "20261201T101010"), BackupInfoKey("pg1", "20261130T000000"),
		BackupDataPrefix("pg1", "20261201T101010") + "pgdata/backup.info", // a data object named so
		BackupManifestKey("pg1", "20261129T000000"),                       // no backup.info: not a backup
		BackupInfoKey("pg10", "20261128T000000"),                          // another server
	} {
		put(t, store, k, []byte("{}"))
	}
	ids, err := ListBackupIDs(ctx, store, "pg1")
	if err != nil || strings.Join(ids, " ") != "20261130T000000 20261201T101010" {
		t.Fatalf("ListBackupIDs = %v %v", ids, err)
	}
}

func TestQuarantined(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "errors")
	if q, err := Quarantined(dir); err != nil || len(q) != 0 {
		t.Fatalf("missing errors/: %v %v", q, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, QuarantineName("000000010000000000000002", time.Unix(10, 0)))
	b := filepath.Join(dir, QuarantineName("000000010000000000000003", time.Unix(20, 0)))
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(ReasonFile(a), []byte("2026-12-01T00:00:00Z x: conflict\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := Quarantined(dir)
	if err != nil || len(q) != 2 {
		t.Fatalf("Quarantined = %+v %v", q, err)
	}
	if q[0].File != filepath.Base(a) || q[0].Reason != "2026-12-01T00:00:00Z x: conflict" || q[1].Reason != "no reason recorded" {
		t.Fatalf("Quarantined = %+v", q)
	}
	if err := os.Chmod(dir, 0); err == nil && os.Getuid() != 0 {
		defer os.Chmod(dir, 0o700)
		if _, err := Quarantined(dir); err == nil {
			t.Fatal("an unreadable errors/ is not an error")
		}
	}
}
