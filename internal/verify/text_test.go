package verify

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestReportWriteText(t *testing.T) {
	for _, tc := range []struct {
		desc string
		rep  Report
		json string // the report as --json prints it, instead of rep
		one  bool
		want []string // lines, in order
	}{
		{"nothing to verify", Report{Server: "pg1", OK: true}, "", false,
			[]string{"Server pg1:", "  no DONE backup to verify", "verify: OK"}},
		{"one backup asked for: no empty note", Report{Server: "pg1", OK: true}, "", true,
			[]string{"Server pg1:", "verify: OK"}},
		{"files and checksums", Report{}, `{"server": "pg1", "ok": false,
			"backups": [{"id": "B1", "name": "before-upgrade", "status": "DONE",
				"files": {"files": 3, "bytes": 3145728, "problems": [{"path": "base/1/2", "problem": "missing"}]}}],
			"archive_problems": ["000000010000000000000004: stored twice"],
			"wal_checksums": {"files": 9, "bytes": 9437184, "problems": [{"name": "000000010000000000000005", "problem": "checksum", "expected": "ab", "got": "cd"}]},
			"problems": ["a", "b", "c"]}`, false,
			[]string{"Server pg1:", "  Backup B1 (before-upgrade), DONE:", "    files: FAILED (1 of 3 files)",
				"      base/1/2: in the manifest but not stored",
				"  archive: FAILED: 000000010000000000000004: stored twice",
				"  WAL checksums: FAILED (1 problems in 9 files)",
				"    WAL 000000010000000000000005: content does not match the index: sha256 ab recorded, cd stored",
				"verify: FAILED, 3 problem(s)"}},
		{"clean files", Report{Server: "pg1", OK: true, Backups: []BackupResult{{ID: "B1", Status: "DONE", Files: &BackupReport{Files: 3, Bytes: 2048}}},
			WALChecksums: &WALReport{Files: 2, Bytes: 2 << 20}}, "", false,
			[]string{"Server pg1:", "  Backup B1, DONE:", "    files: OK (3 files, 2.0 KiB match backup_manifest)", "  WAL checksums: OK (2 files, 2.0 MiB)", "verify: OK"}},
		{"clean files by recorded sums", Report{Server: "pg1", OK: true, Backups: []BackupResult{{ID: "B1", Status: "DONE",
			Files: &BackupReport{Files: 3, Bytes: 2048, Decoded: 1, Objects: 2, ObjectBytes: 1024}}}}, "", false,
			[]string{"Server pg1:", "  Backup B1, DONE:",
				"    files: OK (3 files, 2.0 KiB match backup_manifest by the sums taken at backup; 2 stored objects, 1.0 KiB, unchanged; 1 files decoded)",
				"verify: OK"}},
	} {
		if tc.json != "" {
			// From --json, whose shape is the contract: the test does not depend on the
			// problems' Go types.
			if err := json.Unmarshal([]byte(tc.json), &tc.rep); err != nil {
				t.Fatal(err)
			}
		}
		var b bytes.Buffer
		tc.rep.WriteText(&b, tc.one)
		if got := strings.TrimSuffix(b.String(), "\n"); got != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", tc.desc, got, strings.Join(tc.want, "\n"))
		}
	}
}
