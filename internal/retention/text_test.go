package retention

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/record"
)

func TestResultWriteText(t *testing.T) {
	end := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	r := &Result{Server: "pg1", DryRun: true, Policy: "REDUNDANCY 1", WALPolicy: "main", MinimumRedundancy: 1,
		Resumed: []string{"B0"},
		Backups: []BackupResult{
			{ID: "B1", Name: "old", Status: "DONE", Timeline: 1, EndTime: end, Reason: "beyond REDUNDANCY 1"},
			{ID: "B2", Status: "DONE", Timeline: 1, EndTime: end.Add(time.Hour), Keep: true, Pinned: true, Reason: "pinned"},
			{ID: "B3", Status: "FAILED", Timeline: 1, Skipped: "minimum_redundancy"},
		},
		HasCutoff: true, KeepFromLSN: "0/5000000",
		WAL:      []RangeResult{{Timeline: 1, First: "000000010000000000000001", Last: "000000010000000000000004", Reason: "before B2", Files: 5, Segments: 4, Bytes: 4 << 20}},
		WALFiles: 5, WALSegments: 4, WALBytes: 4 << 20,
		KeepHistory: []uint32{2, 3}, Notes: []string{"B3 failed"}}
	var b bytes.Buffer
	r.WriteText(&b)
	for _, want := range []string{
		"pg1: retention_policy REDUNDANCY 1, wal_retention_policy main, minimum_redundancy 1 (dry run: nothing deleted)\n",
		"would finish the interrupted deletion of backup B0\n",
		"B1 (old)  DONE    2026-11-30 10:00:00Z  1   OBSOLETE (would be deleted)",
		"B2        DONE    2026-11-30 11:00:00Z  1   KEEP (pinned)",
		"B3        FAILED  -                     1   OBSOLETE, not deleted: minimum_redundancy",
		"WAL to delete (WAL from LSN 0/5000000 is kept on every timeline):\n",
		"1   000000010000000000000001  000000010000000000000004  4         5      4.0 MiB  before B2",
		"total to delete: 4 segments, 5 files, 4.0 MiB stored\n",
		"history files kept (never deleted): timelines 2, 3\n",
		"note: B3 failed\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	b.Reset()
	(&Result{Server: "pg1", Policy: "RECOVERY WINDOW OF 7 DAYS"}).WriteText(&b)
	if !strings.Contains(b.String(), "(applied)\nno backups\n\nWAL: nothing deleted (no DONE backup anchors WAL retention)\n") {
		t.Errorf("empty run:\n%s", b.String())
	}
}

func TestWriteKeepText(t *testing.T) {
	var b bytes.Buffer
	WriteKeepText(&b, "pg1", record.Backup{ID: "B1", Keep: true, Status: record.StatusDone})
	if b.String() != "pg1: backup B1 pinned: retention keeps it and the WAL it needs to reach consistency\n" {
		t.Errorf("pinned: %q", b.String())
	}
	b.Reset()
	WriteKeepText(&b, "pg1", record.Backup{ID: "B1", Status: "FAILED"})
	if b.String() != "pg1: backup B1 released: the retention policy applies to it again\nnote: backup B1 is FAILED, not DONE: it cannot be restored\n" {
		t.Errorf("released: %q", b.String())
	}
}
