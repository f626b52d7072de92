package basebackup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

func TestResolve(t *testing.T) {
	bs := []record.Backup{
		{ID: "20260101T000000", Status: record.StatusFailed, Name: "broken"},
		{ID: "20260102T000000", Status: record.StatusDone, Name: "monday"},
		{ID: "20260103T000000", Status: record.StatusDone},
		{ID: "20260104T000000", Status: record.StatusFailed},
		{ID: "20260105T000000", Status: record.StatusWaitingWAL},
	}
	for _, tc := range []struct{ ref, want, err string }{
		{"latest", "20260103T000000", ""},
		{"oldest", "20260102T000000", ""},
		{"monday", "20260102T000000", ""},
		{"broken", "20260101T000000", ""},
		{"20260104T000000", "20260104T000000", ""},
		{"nope", "", `backup "nope" not found`},
	} {
		b, err := Resolve(bs, tc.ref)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "20260102T000000 (monday)") {
				t.Errorf("%s: error %v, want %q listing the backups", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || b.ID != tc.want {
			t.Errorf("%s: got %q %v, want %s", tc.ref, b.ID, err, tc.want)
		}
	}
	if _, err := Resolve(bs[:1], "latest"); err == nil || !strings.Contains(err.Error(), "no DONE backup") {
		t.Errorf("latest with only FAILED backups: %v", err)
	}
	if _, err := Resolve(nil, "oldest"); err == nil || !strings.Contains(err.Error(), "no backups") {
		t.Errorf("oldest of nothing: %v", err)
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"", "latest", "oldest", "auto", "20260101T000000", "a/b"} {
		if ValidName(n) == nil {
			t.Errorf("%q accepted", n)
		}
	}
	for _, n := range []string{"monday", "before-upgrade", "v15.4"} {
		if err := ValidName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
}

func TestTryLock(t *testing.T) {
	dir := t.TempDir()
	a, err := TryLock(filepath.Join(dir, "pg1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(filepath.Join(dir, "pg1")); !errors.Is(err, ErrBackupRunning) {
		t.Fatalf("second lock of pg1: %v", err)
	}
	b, err := TryLock(filepath.Join(dir, "pg2"))
	if err != nil {
		t.Fatalf("another server must back up in parallel: %v", err)
	}
	b.Unlock()
	a.Unlock()
	c, err := TryLock(filepath.Join(dir, "pg1"))
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	c.Unlock()
}

// TestOpenEntryChecksSize: objects made of several frames (zstd) or members (gzip), as
// the pipeline writes them, decode as one stream; content shorter or longer than
// recorded fails to read.
// A file of 16 MiB or more is read frame by frame on several goroutines
// (compress.NewFramesReader): the size checks hold there too, through Read and through
// WriteTo (io.Copy's path).
func TestOpenEntryChecksSize(t *testing.T) {
	for _, tc := range []struct {
		codec string
		part  int
	}{{compress.Zstd, 5000}, {compress.Gzip, 5000}, {compress.None, 5000}, {compress.Zstd, chunkSize}, {compress.Gzip, chunkSize}} {
		codec := tc.codec
		t.Run(fmt.Sprintf("%s/%d", codec, 6*tc.part), func(t *testing.T) {
			ctx := context.Background()
			store := storage.NewLocal(t.TempDir())
			var obj, want []byte
			for i := range 6 {
				part := bytes.Repeat([]byte{byte('a' + i)}, tc.part)
				want = append(want, part...)
				var err error
				obj, err = compress.EncodeAll(codec, 3, part, obj)
				if err != nil {
					t.Fatal(err)
				}
			}
			key := "pg1/base/x/data/pgdata/f" + compress.Suffix(codec)
			if _, err := store.Put(ctx, key, bytes.NewReader(obj)); err != nil {
				t.Fatal(err)
			}
			e := Entry{Path: "f", Type: TypeFile, Size: int64(len(want)), Key: key, Codec: codec, ModTime: time.Now()}
			for _, how := range []string{"Read", "WriteTo"} {
				read := func(e Entry) ([]byte, error) {
					r, err := OpenEntry(ctx, store, e)
					if err != nil {
						return nil, err
					}
					defer r.Close()
					if how == "Read" {
						return io.ReadAll(r)
					}
					var buf bytes.Buffer
					_, err = io.Copy(&buf, r)
					return buf.Bytes(), err
				}
				e := e
				got, err := read(e)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: read back: %v (len %d)", how, err, len(got))
				}
				e.Size++
				if _, err := read(e); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("%s: short object: %v", how, err)
				}
				e.Size -= 2
				if _, err := read(e); err == nil {
					t.Fatalf("%s: long object read without error", how)
				}
				empty := Entry{Path: "empty", Type: TypeFile}
				if got, err := read(empty); err != nil || len(got) != 0 {
					t.Fatalf("%s: empty file: %v %q", how, err, got)
				}
			}
		})
	}
}

type fakeScanner []record.WALFile

func (f fakeScanner) ScanWAL(ctx context.Context, server string, r index.WALRange, fn func(record.WALFile) error) error {
	for _, w := range f {
		if w.Name >= r.From && (r.To == "" || w.Name < r.To) {
			if err := fn(w); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestLinkedWAL: WAL belongs to a backup from its begin WAL to the next DONE backup's
// begin WAL; FAILED backups do not cut the range.
func TestLinkedWAL(t *testing.T) {
	var wal fakeScanner
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003",
		"000000010000000000000004", "000000010000000000000005", "00000002.history", "000000020000000000000005"} {
		wal = append(wal, record.WALFile{Name: n, RawSize: 100, StoredSize: 10})
	}
	bs := []record.Backup{
		{ID: "a", Status: record.StatusDone, BeginWAL: "000000010000000000000002"},
		{ID: "b", Status: record.StatusFailed, BeginWAL: "000000010000000000000003"},
		{ID: "c", Status: record.StatusDone, BeginWAL: "000000010000000000000004"},
		{ID: "d", Status: record.StatusFailed},
	}
	got, err := LinkedWAL(context.Background(), wal, "pg1", bs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a": 2, "b": 1, "c": 4, "d": 0}
	for id, n := range want {
		if got[id].Count != n || got[id].Bytes != int64(100*n) || got[id].StoredBytes != int64(10*n) {
			t.Errorf("%s: %+v, want %d files", id, got[id], n)
		}
	}
}

type fakeIndex struct {
	calls []string
	recs  map[string]record.Backup
}

func (f *fakeIndex) PutBackup(ctx context.Context, server string, b record.Backup) error {
	f.calls = append(f.calls, "put "+b.Status)
	f.recs[b.ID] = b
	return nil
}

func (f *fakeIndex) DeleteBackup(ctx context.Context, server, id string) error {
	f.calls = append(f.calls, "delete")
	delete(f.recs, id)
	return nil
}

// TestDelete: a kept backup is refused; otherwise content, backup.info and the index
// record all go, backup.info having first been marked FAILED.
func TestDelete(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	store := storage.NewLocal(home)
	b := record.Backup{ID: "20260101T000000", Server: "pg1", Status: record.StatusDone, Keep: true}
	if err := SaveInfo(ctx, store, b); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{archive.BackupManifestKey("pg1", b.ID), archive.BackupContentsKey("pg1", b.ID), archive.BackupDataPrefix("pg1", b.ID) + "pgdata/base/1/1234.zst"} {
		if _, err := store.Put(ctx, k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	idx := &fakeIndex{recs: map[string]record.Backup{b.ID: b}}
	err := Delete(ctx, store, idx, filepath.Join(home, "pg1"), "pg1", b)
	if !errors.Is(err, ErrKept) || !strings.Contains(err.Error(), "keep pg1 20260101T000000 --release") {
		t.Fatalf("kept backup: %v", err)
	}
	// The index may be stale: backup.info's keep counts too.
	stale := b
	stale.Keep = false
	if err := Delete(ctx, store, idx, filepath.Join(home, "pg1"), "pg1", stale); !errors.Is(err, ErrKept) {
		t.Fatalf("kept in backup.info: %v", err)
	}
	b.Keep = false
	if err := SaveInfo(ctx, store, b); err != nil {
		t.Fatal(err)
	}
	if err := Delete(ctx, store, idx, filepath.Join(home, "pg1"), "pg1", b); err != nil {
		t.Fatal(err)
	}
	if keys, _ := Keys(ctx, store, "pg1", b.ID); len(keys) != 0 {
		t.Fatalf("left behind: %v", keys)
	}
	if got := strings.Join(idx.calls, ","); got != "put FAILED,delete" {
		t.Fatalf("index calls %s", got)
	}
	if _, err := os.Stat(filepath.Join(home, "pg1", "base", b.ID)); !os.IsNotExist(err) {
		t.Fatalf("directory left: %v", err)
	}
}

// TestOpenEntryBundle: files sharing a solid bundle object read back alone, in any
// order, each at its offset of the decompressed bundle.
func TestOpenEntryBundle(t *testing.T) {
	for _, codec := range []string{compress.Zstd, compress.Gzip, compress.None} {
		ctx := context.Background()
		store := storage.NewLocal(t.TempDir())
		key := "pg1/base/x/data/bundles/000001" + compress.Suffix(codec)
		members := []*Entry{{Path: "a", Type: TypeFile}, {Path: "b", Type: TypeFile}, {Path: "c", Type: TypeFile}}
		raws := [][]byte{bytes.Repeat([]byte("a"), 7000), []byte("bee"), bytes.Repeat([]byte("cd"), 9000)}
		var raw []byte
		for i, e := range members {
			e.Size, e.Key, e.Codec, e.Solid, e.Offset = int64(len(raws[i])), key, codec, true, int64(len(raw))
			raw = append(raw, raws[i]...)
		}
		c := &chunk{members: members, raw: raw}
		compressBundle(c, codec, 3)
		if c.err != nil {
			t.Fatal(c.err)
		}
		if _, err := store.Put(ctx, key, bytes.NewReader(c.out)); err != nil {
			t.Fatal(err)
		}
		for i := len(members) - 1; i >= 0; i-- {
			r, err := OpenEntry(ctx, store, *members[i])
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, raws[i]) {
				t.Fatalf("%s member %d: %v, %d bytes", codec, i, err, len(got))
			}
		}
	}
}

// TestOpenEntryBundleV1: a format-version-1 bundle (one frame per member, each at its
// stored offset) still reads back, member by member.
func TestOpenEntryBundleV1(t *testing.T) {
	ctx := context.Background()
	store := storage.NewLocal(t.TempDir())
	key := "pg1/base/x/data/bundles/000001.zst"
	raws := [][]byte{bytes.Repeat([]byte("a"), 7000), []byte("bee"), bytes.Repeat([]byte("cd"), 9000)}
	var obj []byte
	var members []Entry
	for i, r := range raws {
		start := len(obj)
		out, err := compress.EncodeAll(compress.Zstd, 3, r, obj)
		if err != nil {
			t.Fatal(err)
		}
		obj = out
		members = append(members, Entry{Path: "m" + strconv.Itoa(i), Type: TypeFile, Size: int64(len(r)), Key: key, Codec: compress.Zstd,
			Bundle: true, Offset: int64(start), StoredSize: int64(len(obj) - start)})
	}
	if _, err := store.Put(ctx, key, bytes.NewReader(obj)); err != nil {
		t.Fatal(err)
	}
	for i := len(members) - 1; i >= 0; i-- {
		r, err := OpenEntry(ctx, store, members[i])
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, raws[i]) {
			t.Fatalf("member %d: %v, %d bytes", i, err, len(got))
		}
	}
}

// TestPlanReads: file entries are grouped by the object storing them, a bundle's
// members in offset order, units largest first, each entry with its position in the
// input; other entries are left out.
func TestPlanReads(t *testing.T) {
	es := []Entry{
		{Path: "d", Type: TypeDir},
		{Path: "l", Type: TypeSymlink, Link: "/x"},
		{Path: "b2", Type: TypeFile, Size: 10, Key: "B", Solid: true, Offset: 30},
		{Path: "big", Type: TypeFile, Size: 1000, Key: "big.zst"},
		{Path: "a1", Type: TypeFile, Size: 20, Key: "A", Solid: true, Offset: 0},
		{Path: "b1", Type: TypeFile, Size: 30, Key: "B", Solid: true, Offset: 0},
		{Path: "empty", Type: TypeFile},
		{Path: "v1", Type: TypeFile, Size: 5, Key: "V1", Bundle: true, Offset: 9},
		{Path: "v1b", Type: TypeFile, Size: 5, Key: "V1", Bundle: true, Offset: 0},
	}
	var got []string
	for _, u := range PlanReads(es) {
		var names []string
		for j, e := range u.Entries {
			names = append(names, e.Path)
			if es[u.Positions[j]].Path != e.Path {
				t.Fatalf("unit %s: entry %s at position %d, which holds %s", u.Key, e.Path, u.Positions[j], es[u.Positions[j]].Path)
			}
		}
		got = append(got, u.Key+":"+strings.Join(names, ",")+":"+strconv.FormatInt(u.Size, 10))
	}
	want := []string{"big.zst:big:1000", "B:b1,b2:40", "A:a1:20", "V1:v1:5", "V1:v1b:5", ":empty:0"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("plan %v, want %v", got, want)
	}
}

// TestReadUnitDamagedBundle: a bundle that does not decode reaches each member as a
// failing reader (verify reports every file), and a member recorded past the end of
// its bundle fails alone.
func TestReadUnitDamagedBundle(t *testing.T) {
	ctx := context.Background()
	store := storage.NewLocal(t.TempDir())
	good, err := compress.EncodeSolid(compress.Zstd, 3, []byte("aaaabbbb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, "pg1/base/x/data/bundles/000001.zst", bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, "pg1/base/x/data/bundles/000002.zst", strings.NewReader("garbage")); err != nil {
		t.Fatal(err)
	}
	mk := func(key, p string, off, size int64) Entry {
		return Entry{Path: p, Type: TypeFile, Key: key, Codec: compress.Zstd, Solid: true, Offset: off, Size: size}
	}
	k1, k2 := "pg1/base/x/data/bundles/000001.zst", "pg1/base/x/data/bundles/000002.zst"
	plan := PlanReads([]Entry{mk(k1, "a", 0, 4), mk(k1, "b", 4, 4), mk(k1, "past", 6, 4), mk(k2, "c", 0, 1), mk(k2, "d", 1, 1)})
	got := map[string]string{}
	before := SolidDecodes()
	for _, u := range plan {
		if err := u.Read(ctx, store, func(e Entry, r io.Reader) error {
			data, err := io.ReadAll(r)
			if err != nil {
				got[e.Path] = "error"
			} else {
				got[e.Path] = string(data)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if d := SolidDecodes() - before; d != 2 {
		t.Fatalf("%d decodes for 2 bundles", d)
	}
	want := map[string]string{"a": "aaaa", "b": "bbbb", "past": "error", "c": "error", "d": "error"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
}

// TestStreamRefusesStrayLinks: a tar stream with a symbolic link anywhere but
// pg_tblspc/<oid> of the data directory is refused (PostgreSQL sends no other).
func TestStreamRefusesStrayLinks(t *testing.T) {
	for _, c := range []struct {
		ts   uint32
		name string
		ok   bool
	}{
		{0, "pg_tblspc/16400", true},
		{0, "evil", false},
		{0, "base/1/evil", false},
		{0, "pg_tblspc/notanoid", false},
		{16400, "PG_15_202209061", false},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: c.name, Typeflag: tar.TypeSymlink, Linkname: "/elsewhere", Mode: 0o777}); err != nil {
			t.Fatal(err)
		}
		tw.Close()
		p := newPipeline(context.Background(), streamOptions{store: storage.NewLocal(t.TempDir()), server: "pg1", id: "x", codec: compress.Zstd, level: 1, jobs: 1, writers: 1})
		err := feedTar(p, buf.Bytes(), c.ts, len(buf.Bytes()))
		p.finish()
		if c.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "refused")) {
			t.Errorf("tablespace %d %s: %v", c.ts, c.name, err)
		}
	}
}
