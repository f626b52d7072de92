package verify

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

func TestFirstChecksumAlgorithm(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"Files": [{"Path": "a", "Size": 1, "Checksum-Algorithm": "CRC32C", "Checksum": "x"}]}`, "CRC32C"},
		{"{\"Files\": [{\"Checksum-Algorithm\" :\n \"SHA256\"}, {\"Checksum-Algorithm\": \"CRC32C\"}]}", "SHA256"},
		{`{"Files": [{"Path": "a", "Size": 1}]}`, ""}, // no checksums
		{`{"Checksum-Algorithm": "MD5"}`, ""},         // not one PostgreSQL writes
		{`{"Checksum-Algorithm": 3}`, ""},             // not a string
		{`{"Checksum-Algorithm": "CRC32C`, ""},        // cut
		{`"Checksum-Algorithm"`, ""},                  // nothing after
	} {
		if got := firstChecksumAlgorithm([]byte(tc.in)); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCompareResumsOtherAlgorithms: sums taken ahead with the first entry's algorithm
// serve the files whose entries name it; a file whose entry names another is read
// again with that one, so a good file passes and a damaged one is caught either way.
func TestCompareResumsOtherAlgorithms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	content := map[string]string{"a": "alpha", "b": "bravo", "c": "charlie", "d": "delta"}
	for name, data := range content {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	crc := func(s string) string {
		return hex.EncodeToString(binary.LittleEndian.AppendUint32(nil, crc32.Checksum([]byte(s), crc32.MakeTable(crc32.Castagnoli))))
	}
	sha := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	m := &Manifest{Files: []ManifestFile{
		{Path: "a", Size: 5, ChecksumAlgorithm: "CRC32C", Checksum: crc("alpha")},
		{Path: "b", Size: 5, ChecksumAlgorithm: "SHA256", Checksum: sha("bravo")},
		{Path: "c", Size: 7, ChecksumAlgorithm: "SHA256", Checksum: sha("not charlie")},
		{Path: "d", Size: 5, ChecksumAlgorithm: "CRC32C", Checksum: crc("not delta")},
	}}
	src := dirSource{dir}
	stored, err := src.Files(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sums := sumFiles(ctx, src, stored, func(int) string { return "CRC32C" }, 2, nil)
	rep, err := compare(ctx, match(m, stored), src, stored, sums, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 4 || rep.Bytes != 22 || len(rep.Problems) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for i, want := range []struct{ path, expected string }{{"c", "SHA256 " + sha("not charlie")}, {"d", "CRC32C " + crc("not delta")}} {
		p := rep.Problems[i]
		if p.Path != want.path || p.Problem != "checksum" || p.Expected != want.expected {
			t.Fatalf("problem %d: %+v, want a checksum mismatch of %s", i, p, want.path)
		}
	}
	// What VerifyFiles reports, with the algorithm of each entry from the start.
	vrep, err := VerifyFiles(ctx, m, src, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vrep.Files != rep.Files || vrep.Bytes != rep.Bytes || len(vrep.Problems) != 2 || vrep.Problems[0] != rep.Problems[0] || vrep.Problems[1] != rep.Problems[1] {
		t.Fatalf("VerifyFiles %+v, compare %+v", vrep, rep)
	}
}
