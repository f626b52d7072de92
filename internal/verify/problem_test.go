package verify

import (
	"encoding/json"
	"testing"
)

// TestProblemJSONAndText: one Problem type serves backup files and WAL files, and
// `verify --json` prints each exactly as the two former types did (path or name first,
// empty fields left out); the text lines are unchanged.
func TestProblemJSONAndText(t *testing.T) {
	for _, c := range []struct {
		p          Problem
		json, text string
	}{
		{Problem{Path: "base/1/1259", Problem: "checksum", Expected: "SHA256 ab", Got: "SHA256 cd"},
			`{"path":"base/1/1259","problem":"checksum","expected":"SHA256 ab","got":"SHA256 cd"}`,
			"base/1/1259: checksum mismatch: manifest SHA256 ab, stored file SHA256 cd"},
		{Problem{Path: "PG_VERSION", Problem: "missing", Expected: "3 bytes"},
			`{"path":"PG_VERSION","problem":"missing","expected":"3 bytes"}`,
			"PG_VERSION: in the manifest but not stored"},
		{Problem{Path: "x", Problem: "extra"}, `{"path":"x","problem":"extra"}`, "x: stored but not in the manifest"},
		{Problem{Path: "y", Problem: "unreadable", Detail: "EOF"}, `{"path":"y","problem":"unreadable","detail":"EOF"}`, "y: unreadable: EOF"},
		{Problem{Name: "000000010000000000000003", Problem: "checksum", Expected: "aa", Got: "bb"},
			`{"name":"000000010000000000000003","problem":"checksum","expected":"aa","got":"bb"}`,
			"WAL 000000010000000000000003: content does not match the index: sha256 aa recorded, bb stored"},
		{Problem{Name: "000000010000000000000004", Problem: "not-stored"},
			`{"name":"000000010000000000000004","problem":"not-stored"}`,
			"WAL 000000010000000000000004: in the index but not in the archive"},
		{Problem{Name: "00000002.history", Problem: "not-indexed"},
			`{"name":"00000002.history","problem":"not-indexed"}`,
			"WAL 00000002.history: in the archive but not in the index (run `walkeeper index rebuild`)"},
		{Problem{Name: "000000010000000000000005", Problem: "unreadable", Detail: "zstd: corrupt"},
			`{"name":"000000010000000000000005","problem":"unreadable","detail":"zstd: corrupt"}`,
			"WAL 000000010000000000000005: unreadable: zstd: corrupt"},
	} {
		b, err := json.Marshal(c.p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.json {
			t.Errorf("json %s, want %s", b, c.json)
		}
		if s := c.p.String(); s != c.text {
			t.Errorf("text %q, want %q", s, c.text)
		}
	}
}
