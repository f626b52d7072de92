package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

func TestMaxFileSize(t *testing.T) {
	id := record.Identity{SegSize: 16 << 20}
	for _, c := range []struct {
		kind  segments.Kind
		known bool
		want  int64
	}{
		{segments.KindSegment, true, 16 << 20}, {segments.KindPartial, true, 16 << 20},
		{segments.KindSegment, false, segments.MaxSegSize}, {segments.KindHistory, true, maxSmallFile},
		{segments.KindBackupLabel, false, maxSmallFile},
	} {
		if got := maxFileSize(c.kind, id, c.known); got != c.want {
			t.Errorf("maxFileSize(%v, known %v) = %d, want %d", c.kind, c.known, got, c.want)
		}
	}
}

// TestReadIntoLimit: a read stops one byte past the limit, whatever buffer it was given
// (a file that grew after its size was checked).
func TestReadIntoLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 100_000), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		limit  int64
		bufCap int
		ok     bool
	}{
		{100_000, 10, true}, {100_000, 200_000, true}, {99_999, 10, false}, {99_999, 200_000, false}, {1, 1, false},
	} {
		got, err := readInto(path, make([]byte, 0, c.bufCap), c.limit)
		if c.ok && (err != nil || len(got) != 100_000) {
			t.Errorf("limit %d cap %d: %d bytes, %v", c.limit, c.bufCap, len(got), err)
		}
		if !c.ok && !errors.Is(err, fsutil.ErrTooLarge) {
			t.Errorf("limit %d cap %d: %v, want fsutil.ErrTooLarge", c.limit, c.bufCap, err)
		}
	}
}
