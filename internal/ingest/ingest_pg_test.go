package ingest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// realSegment is a real PostgreSQL 15 segment: initdb writes 000000010000000000000001.
func realSegment(t *testing.T) []byte {
	pgtest.SkipShort(t) // initdb is a PostgreSQL binary
	realOnce.Do(func() {
		dir := filepath.Join(pgtest.TempDir(t), "data")
		if out, err := pgtest.RunPGErr("initdb", "-D", dir, "-U", "postgres", "--no-sync"); err != nil {
			realErr = out
			return
		}
		realSeg, _ = os.ReadFile(filepath.Join(dir, "pg_wal", "000000010000000000000001"))
	})
	if realSeg == nil {
		t.Fatalf("initdb: %s", realErr)
	}
	return realSeg
}
