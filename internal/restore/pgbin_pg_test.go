package restore

import (
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// TestFindPGBinRefusesOtherMajor: binaries of another major than the backup's are
// refused before anything is restored, naming both majors; the backup's own major and an
// unknown version pass.
func TestFindPGBinRefusesOtherMajor(t *testing.T) {
	pgtest.SkipShort(t)
	deb := pgtest.DefaultBinDir
	if d, err := FindPGBin(deb, 150018); err != nil || d != deb {
		t.Fatalf("15's binaries for a backup of 15: %q, %v", d, err)
	}
	if _, err := FindPGBin(deb, 0); err != nil {
		t.Fatalf("unknown backup version: %v", err)
	}
	_, err := FindPGBin(deb, 160004)
	if err == nil || !strings.Contains(err.Error(), "binaries are PostgreSQL 15, but the backup is of PostgreSQL 16") {
		t.Fatalf("15's binaries for a backup of 16: %v", err)
	}
	if _, ok := err.(*UsageError); !ok {
		t.Fatalf("an explicit --pg-bin of the wrong major is a usage error, got %T", err)
	}
	if d13, err := pgtest.MajorBinDir(13); err == nil {
		if _, err := FindPGBin(d13, 150018); err == nil || !strings.Contains(err.Error(), "binaries are PostgreSQL 13, but the backup is of PostgreSQL 15") {
			t.Fatalf("13's binaries for a backup of 15: %v", err)
		}
	}
}
