package basebackup

import (
	"hash/crc32"
	"math/rand"
	"testing"
)

// TestCRC32CCombine: joining the sums of two parts gives the sum of the whole, for
// empty parts, odd lengths and a large file's 4 MiB chunks.
func TestCRC32CCombine(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	data := make([]byte, 9<<20)
	rng.Read(data)
	for _, cut := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {3, 5}, {1000, 7}, {4 << 20, 4 << 20}, {4 << 20, 1}, {17, 9<<20 - 17}} {
		a, b := data[:cut[0]], data[cut[0]:cut[0]+cut[1]]
		want := crc32.Checksum(data[:cut[0]+cut[1]], castagnoli)
		got := crc32cCombine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), int64(len(b)))
		if got != want {
			t.Fatalf("cut %v: combined %08x, whole %08x", cut, got, want)
		}
	}
	// Three chunks, joined in order, as the writer joins a file's chunks.
	var sum uint32
	for off := 0; off < len(data); off += 4 << 20 {
		part := data[off:min(off+4<<20, len(data))]
		sum = crc32cCombine(sum, crc32.Checksum(part, castagnoli), int64(len(part)))
	}
	if want := crc32.Checksum(data, castagnoli); sum != want {
		t.Fatalf("chunks: %08x, whole %08x", sum, want)
	}
}

// TestManifestCRC32C: PostgreSQL's spelling of a CRC-32C (little-endian bytes).
func TestManifestCRC32C(t *testing.T) {
	// CRC-32C of "123456789" is 0xe3069283; backup_manifest writes 839206e3.
	if got := ManifestCRC32C(crc32.Checksum([]byte("123456789"), castagnoli)); got != "839206e3" {
		t.Fatalf("got %s", got)
	}
	if got := ManifestCRC32C(0); got != "00000000" {
		t.Fatalf("empty: %s", got)
	}
}
