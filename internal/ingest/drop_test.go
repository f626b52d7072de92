package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDropSegmentSize: archive-wal refuses a segment whose size is not the server's
// segment size, and leaves nothing in incoming/ (PostgreSQL keeps it and retries).
func TestDropSegmentSize(t *testing.T) {
	src := filepath.Join(t.TempDir(), "000000010000000000000001")
	if err := os.WriteFile(src, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	incoming := t.TempDir()
	if _, err := Drop(incoming, src, 16<<20); err == nil || !strings.Contains(err.Error(), "size 1048576 is not the server's WAL segment size 16777216") {
		t.Fatalf("Drop of a short segment: %v", err)
	}
	if es, _ := os.ReadDir(incoming); len(es) != 0 {
		t.Fatalf("incoming/ holds %v after a refused drop", es)
	}
	if _, err := Drop(incoming, src, 1<<20); err != nil {
		t.Fatalf("Drop of a segment of the server's size: %v", err)
	}
}
