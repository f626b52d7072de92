package ingest

import (
	"errors"
	"os"
	"testing"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// TestDropExactCopy: a source whose content is not the size stat gave (here a /proc
// file, which stats as 0 bytes and reads as more) is never renamed into incoming/.
func TestDropExactCopy(t *testing.T) {
	incoming := t.TempDir()
	if _, err := Drop(incoming, "/proc/self/status"); !errors.Is(err, fsutil.ErrShortCopy) {
		t.Fatalf("Drop of a file that changed while copied: %v, want ErrShortCopy", err)
	}
	if es, _ := os.ReadDir(incoming); len(es) != 0 {
		t.Fatalf("incoming/ holds %v after a refused drop", es)
	}
}
