package basebackup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/flatjson"
)

// contentsSample is a contents list as a backup writes it, with every kind of entry and
// the strings that need escapes.
func contentsSample(tb testing.TB) []byte {
	mt := time.Date(2026, 12, 1, 23, 35, 51, 0, time.UTC)
	es := []Entry{
		{Path: "PG_VERSION", Type: TypeFile, Mode: 0o600, Size: 3, ModTime: mt, Key: "pg1/base/X/data/bundles/000001.zst", Codec: "zstd", Offset: 234, Solid: true},
		{Path: "base", Type: TypeDir, Mode: 0o700, ModTime: mt.Add(123456789)},
		{Path: "base/1/1247", Type: TypeFile, Mode: 0o600, Size: 1 << 30, ModTime: mt, Key: "pg1/base/X/data/pgdata/base/1/1247.zst", Codec: "zstd", StoredSize: 4711},
		{Path: "base/1/old", Type: TypeFile, Mode: 0o600, Size: 8192, ModTime: mt, Key: "pg1/base/X/data/bundles/000002.zst", Codec: "zstd", StoredSize: 99, Bundle: true, Offset: 1 << 40},
		{Path: "pg_tblspc/16385", Type: TypeSymlink, Mode: 0o777, ModTime: mt, Link: "/srv/ts \"one\"\\x"},
		{Tablespace: 16385, Path: "PG_15_202209061/16384/16386", Type: TypeFile, Mode: 0o600, ModTime: mt},
		{Path: "odd name\twith\nescapes é \u2028", Type: TypeFile, Mode: 0o644, Size: 1, ModTime: mt, Key: "k", Codec: "none"},
	}
	data, err := json.Marshal(contentsFile{Version: formatVersion, BackupID: "20261201T233630", Entries: es})
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func TestScanContentsTakesWhatBackupWrites(t *testing.T) {
	data := contentsSample(t)
	got, ok := flatjson.Scan(data, scanContents)
	if !ok {
		t.Fatal("the fast path did not take a contents list written by encoding/json")
	}
	var want contentsFile
	if err := jsonv2.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast path:\n%+v\nencoding/json/v2:\n%+v", got, want)
	}
}

// A long entries array is read in two parts on two cores, with the result of one
// reading, and a part that does not read fails the whole fast path.
func TestScanContentsInParts(t *testing.T) {
	big := contentsFile{Version: 2, BackupID: "b", Objects: []StoredObject{{Key: "k", Size: 1, XXH64: "00"}}}
	for i := range 20000 {
		big.Entries = append(big.Entries, Entry{Path: fmt.Sprintf("base/5/%d", i), Type: TypeFile, Size: int64(i),
			ModTime: time.Unix(int64(i%7), 0).UTC(), Key: "pg1/b/bundles/000001.zst", Codec: "zstd", Solid: true, Offset: int64(i) * 8192, Sum: "0a0b0c0d"})
	}
	data, err := json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < splitEntriesAt {
		t.Fatalf("%d bytes: too short to be split", len(data))
	}
	got, ok := flatjson.Scan(data, scanContents)
	if !ok || !reflect.DeepEqual(got, big) {
		t.Fatalf("fast path: ok %v, %d entries, want %d", ok, len(got.Entries), len(big.Entries))
	}
	// A damaged entry in the first part, and in the second.
	for _, at := range []int{len(data) / 4, len(data) * 3 / 4} {
		bad := bytes.Clone(data)
		i := at + bytes.Index(bad[at:], []byte(`"size":`)) + len(`"size":`)
		bad[i] = 'x'
		if _, ok := flatjson.Scan(bad, scanContents); ok {
			t.Fatalf("a damaged size at byte %d passed the fast path", i)
		}
		if _, err := decodeContents(bad); err == nil {
			t.Fatalf("a damaged size at byte %d decoded", i)
		}
	}
}

// FuzzDecodeContents: whatever the fast path accepts, encoding/json/v2 accepts with the
// same result; with the entries read in two parts from 64 bytes on.
func FuzzDecodeContents(f *testing.F) {
	defer func(n int) { splitEntriesAt = n }(splitEntriesAt)
	splitEntriesAt = 64
	f.Add(contentsSample(f))
	f.Add([]byte(`{"version":2,"backup_id":"x","entries":[]}`))
	f.Add([]byte(`{"version":2,"entries":[{"path":"a","size":-0,"mtime":"2026-01-02T03:04:05.5+01:00"}]} `))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := flatjson.Scan(data, scanContents)
		if !ok {
			return
		}
		var want contentsFile
		if err := jsonv2.Unmarshal(data, &want); err != nil {
			t.Fatalf("fast path accepted what encoding/json/v2 rejects (%v): %q", err, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nfast path %+v\nencoding/json/v2 %+v", data, got, want)
		}
	})
}

// listOf is c as a backup holds it.
func listOf(c contentsFile) contentsList {
	l := contentsList{version: c.Version, backupID: c.BackupID, objects: c.Objects}
	if c.Entries != nil {
		l.entries = make([]*Entry, len(c.Entries))
		for i := range c.Entries {
			l.entries[i] = &c.Entries[i]
		}
	}
	return l
}

// encodeContentsParts writes c's JSON in n parts, as compressContents does before it
// compresses each.
func encodeContentsParts(c contentsList, n int) ([][]byte, error) {
	parts := make([][]byte, n)
	for i := range n {
		var err error
		if parts[i], err = encodeContentsPart(c, i, n); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// encodeContents writes c's JSON in one part.
func encodeContents(c contentsFile) ([]byte, error) {
	parts, err := encodeContentsParts(listOf(c), 1)
	if err != nil {
		return nil, err
	}
	return parts[0], nil
}

// encodeContents writes the very bytes json.Marshal writes, so readers of any version
// read what it writes.
func TestEncodeContentsIsJSONMarshal(t *testing.T) {
	var c contentsFile
	if err := json.Unmarshal(contentsSample(t), &c); err != nil {
		t.Fatal(err)
	}
	c.Entries = append(c.Entries,
		Entry{Path: "x<y>&z", Type: TypeFile, Sum: "0a0b0c0d", ModTime: time.Date(1999, 1, 2, 3, 4, 5, 600, time.FixedZone("", 3600))},
		Entry{Path: "bad\xffutf8", Type: TypeDir})
	c.Objects = []StoredObject{{Key: "pg1/base/X/data/bundles/000001.zst", Size: 12345, XXH64: "0123456789abcdef"}, {Key: "k\"", Size: 0}}
	for _, tc := range []contentsFile{c, {Version: 2, BackupID: "b"}, {Version: 1, Entries: []Entry{}}} {
		want, err := json.Marshal(tc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeContents(tc)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("encodeContents:\n%s\njson.Marshal:\n%s", got, want)
		}
		for n := 1; n <= 4; n++ {
			parts, err := encodeContentsParts(listOf(tc), n)
			if err != nil {
				t.Fatal(err)
			}
			if j := bytes.Join(parts, nil); string(j) != string(want) {
				t.Fatalf("%d parts joined:\n%s\njson.Marshal:\n%s", n, j, want)
			}
		}
	}
	// Enough entries for one part per core, compressed as frames that decode as one.
	big := contentsFile{Version: 2, BackupID: "b", Objects: c.Objects}
	for i := range 20000 {
		big.Entries = append(big.Entries, Entry{Path: fmt.Sprintf("base/5/%d", i), Type: TypeFile, Size: int64(i), ModTime: time.Unix(int64(i), 0).UTC(), Sum: "00000000"})
	}
	want, err := json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := compressContents(listOf(big))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := compress.DecodeAll(compress.Zstd, packed, nil); err != nil || string(got) != string(want) {
		t.Fatalf("compressContents decodes to %d bytes (%v), want json.Marshal's %d", len(got), err, len(want))
	}
	// A time json.Marshal refuses is refused the same way.
	tc := contentsFile{Entries: []Entry{{ModTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	if _, err := encodeContents(tc); err == nil {
		t.Fatal("encodeContents took a year json.Marshal refuses")
	}
}

// FuzzEncodeContents: for any entry, encodeContents writes what json.Marshal writes.
func FuzzEncodeContents(f *testing.F) {
	f.Add(uint32(0), "base/1/1247", "file", "pg1/k.zst", "link", int64(8192), int64(-1), int64(1733100000123456789), true, "00ff00ff")
	f.Add(uint32(7), "a\"\\\x01é\u2028<", "dir", "", "\xff", int64(0), int64(1<<40), int64(-62135596800), false, "")
	f.Fuzz(func(t *testing.T, ts uint32, p, typ, key, link string, size, off, ns int64, solid bool, sum string) {
		c := contentsFile{Version: 2, BackupID: p, Entries: []Entry{{Tablespace: ts, Path: p, Type: typ, Key: key, Link: link, Size: size,
			Offset: off, StoredSize: off / 3, ModTime: time.Unix(0, ns).UTC(), Solid: solid, Bundle: !solid, Sum: sum, Codec: typ}},
			Objects: []StoredObject{{Key: key, Size: size, XXH64: sum}}}
		want, werr := json.Marshal(c)
		got, gerr := encodeContents(c)
		if (werr == nil) != (gerr == nil) || string(got) != string(want) {
			t.Fatalf("encodeContents %q (%v), json.Marshal %q (%v)", got, gerr, want, werr)
		}
	})
}
