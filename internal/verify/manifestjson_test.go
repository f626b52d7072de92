package verify

import (
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/walkeeper/walkeeper/internal/flatjson"
)

// manifestSample is backup_manifest as PostgreSQL 17 writes it (15's lacks the
// System-Identifier line), with an encoded path.
const manifestSample = `{ "PostgreSQL-Backup-Manifest-Version": 2,
"System-Identifier": 7442335095419281234,
"Files": [
{ "Path": "backup_label", "Size": 234, "Last-Modified": "2026-12-01 23:36:31 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "aa2602d0" },
{ "Encoded-Path": "6f6464097061746a", "Size": 0, "Last-Modified": "2026-12-01 23:35:51 GMT", "Checksum-Algorithm": "SHA256", "Checksum": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
{ "Path": "base/1/112", "Size": 8192, "Last-Modified": "2026-12-01 23:35:52 GMT" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/14000028", "End-LSN": "0/14000138" }
],
"Manifest-Checksum": "1f0d8e38f38a2ab7f21d5f1fd5f4a4fd6f3a8c8e5b3b1c4e9d2a7f6b5c4d3e2f"}
`

func TestScanManifestTakesWhatPostgresWrites(t *testing.T) {
	got, ok := flatjson.Scan([]byte(manifestSample), scanManifest)
	if !ok {
		t.Fatal("the fast path did not take a manifest as PostgreSQL writes it")
	}
	var want Manifest
	if err := jsonv2.Unmarshal([]byte(manifestSample), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast path:\n%+v\nencoding/json/v2:\n%+v", got, want)
	}
}

// FuzzDecodeManifest: whatever the fast path accepts, encoding/json/v2 accepts with the
// same result.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(manifestSample))
	f.Add([]byte(`{"Files":[],"WAL-Ranges":[{"Timeline":4294967295}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := flatjson.Scan(data, scanManifest)
		if !ok {
			return
		}
		var want Manifest
		if err := jsonv2.Unmarshal(data, &want); err != nil {
			t.Fatalf("fast path accepted what encoding/json/v2 rejects (%v): %q", err, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nfast path %+v\nencoding/json/v2 %+v", data, got, want)
		}
	})
}
