package basebackup

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

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

// FuzzDecodeContents: whatever the fast path accepts, encoding/json/v2 accepts with the
// same result.
func FuzzDecodeContents(f *testing.F) {
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
