package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// realBackup takes a pg_basebackup -Fp of a real cluster with the given manifest checksum
// algorithm and returns the directory.
func realBackup(t *testing.T, pg *pgtest.Cluster, alg string) string {
	if cm := pgtest.ClientMajor(); cm != 0 && pg.Major > cm {
		t.Skipf("pg_basebackup %d cannot copy a PostgreSQL %d server", cm, pg.Major)
	}
	dir := filepath.Join(pgtest.TempDir(t), "bk")
	pgtest.RunPG(t, "pg_basebackup", "-d", pg.ConnString(""), "-D", dir, "-Fp", "-X", "none",
		"--manifest-checksums="+alg, "-c", "fast")
	return dir
}

// TestVerifyFilesAgainstPostgres checks our reading of manifests against backups
// PostgreSQL wrote, for CRC32C and SHA256, and that each kind of damage is named the way
// pg_verifybackup (the oracle) also rejects it.
func TestVerifyFilesAgainstPostgres(t *testing.T) {
	pg := pgtest.New(t, "manifest", pgtest.Options{})
	pg.Psql(t, "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
	ctx := context.Background()
	t.Run("tampered manifest", func(t *testing.T) { parseManifestRejectsTampering(t, pg) })
	for _, alg := range []string{"CRC32C", "SHA256", "NONE"} {
		t.Run(alg, func(t *testing.T) {
			dir := realBackup(t, pg, alg)
			m := loadManifest(t, dir)
			if len(m.Files) < 100 || m.Files[0].ChecksumAlgorithm != alg && alg != "NONE" {
				t.Fatalf("manifest: %d files, first %+v", len(m.Files), m.Files[0])
			}
			rep, err := VerifyFiles(ctx, m, dirSource{dir}, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 0 || rep.Files != len(m.Files) || rep.Bytes == 0 {
				t.Fatalf("a fresh pg_basebackup does not verify: %+v", rep)
			}

			// Corrupt one byte of a relation file (same size), drop one file, add one.
			var victim string
			for _, f := range m.Files {
				if strings.HasPrefix(f.Path, "base/") && f.Size >= 8192 {
					victim = f.Path
					break
				}
			}
			p := filepath.Join(dir, victim)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[4000] ^= 0xFF
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, "PG_VERSION")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "stray.conf"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := pgtest.Chown(filepath.Join(dir, "stray.conf")); err != nil {
				t.Fatal(err)
			}
			rep, err = VerifyFiles(ctx, m, dirSource{dir}, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Problem{}
			for _, pr := range rep.Problems {
				got[pr.Path] = pr
			}
			if got["PG_VERSION"].Problem != "missing" || got["stray.conf"].Problem != "extra" {
				t.Fatalf("problems: %+v", rep.Problems)
			}
			wantCorrupt := 3
			if alg == "NONE" {
				wantCorrupt = 2 // same size, no checksum: undetectable by design
				if _, ok := got[victim]; ok {
					t.Fatalf("NONE manifest reported %s", victim)
				}
			} else {
				pr := got[victim]
				if pr.Problem != "checksum" || !strings.HasPrefix(pr.Expected, alg+" ") || pr.Expected == pr.Got ||
					!strings.Contains(pr.String(), victim) {
					t.Fatalf("corrupted %s: %+v", victim, pr)
				}
			}
			if len(rep.Problems) != wantCorrupt {
				t.Fatalf("problems: %+v", rep.Problems)
			}
			// The oracle agrees that the directory is damaged.
			if out, err := pgtest.RunPGErr("pg_verifybackup", "-n", dir); err == nil {
				t.Fatalf("pg_verifybackup accepted the damaged backup:\n%s", out)
			}

			// A truncated file is a size problem.
			if err := os.WriteFile(p, b[:100], 0o600); err != nil {
				t.Fatal(err)
			}
			rep, _ = VerifyFiles(ctx, m, dirSource{dir}, 1, nil)
			for _, pr := range rep.Problems {
				if pr.Path == victim && (pr.Problem != "size" || pr.Got != "100 bytes") {
					t.Fatalf("truncated: %+v", pr)
				}
			}
		})
	}
}

// parseManifestRejectsTampering runs on a real manifest (a subtest, to share the cluster).
func parseManifestRejectsTampering(t *testing.T, pg *pgtest.Cluster) {
	dir := realBackup(t, pg, "CRC32C")
	data, err := os.ReadFile(filepath.Join(dir, "backup_manifest"))
	if err != nil {
		t.Fatal(err)
	}
	m := loadManifest(t, dir)
	// Change one listed checksum: the manifest's own checksum no longer matches.
	i := strings.Index(string(data), `"Checksum": "`)
	bad := []byte(string(data))
	bad[i+len(`"Checksum": "`)] ^= 1
	if _, err := ParseManifest(bad); err == nil || !strings.Contains(err.Error(), "manifest checksum mismatch") {
		t.Fatalf("tampered manifest: %v", err)
	}
	if _, err := ParseManifest(data[:len(data)/2]); err == nil {
		t.Fatal("truncated manifest accepted")
	}
	if m.Version != 1 || len(m.WALRanges) != 1 || m.WALRanges[0].Timeline != 1 {
		t.Fatalf("manifest header: %+v", m.WALRanges)
	}
}
