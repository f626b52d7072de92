package retention

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/walkeeper/walkeeper/internal/textout"
)

// WriteText renders a run for the DBA: backups with their verdicts, WAL ranges,
// totals and notes.
func (r *Result) WriteText(w io.Writer) {
	mode := "applied"
	if r.DryRun {
		mode = "dry run: nothing deleted"
	}
	fmt.Fprintf(w, "%s: retention_policy %s, wal_retention_policy %s, minimum_redundancy %d (%s)\n",
		r.Server, r.Policy, r.WALPolicy, r.MinimumRedundancy, mode)
	for _, id := range r.Resumed {
		verb := "finished"
		if r.DryRun {
			verb = "would finish"
		}
		fmt.Fprintf(w, "%s the interrupted deletion of backup %s\n", verb, id)
	}
	if len(r.Backups) == 0 {
		fmt.Fprintln(w, "no backups")
	} else {
		rows := make([][]string, 0, len(r.Backups))
		for _, b := range r.Backups {
			decision := "KEEP"
			switch {
			case b.Keep && b.Pinned:
				decision = "KEEP (pinned)"
			case !b.Keep && b.Deleted:
				decision = "OBSOLETE, deleted"
			case !b.Keep && b.Skipped != "":
				decision = "OBSOLETE, not deleted: " + b.Skipped
			case !b.Keep && r.DryRun:
				decision = "OBSOLETE (would be deleted)"
			case !b.Keep:
				decision = "OBSOLETE"
			}
			end := "-"
			if !b.EndTime.IsZero() {
				end = b.EndTime.UTC().Format("2006-01-02 15:04:05Z")
			}
			id := b.ID
			if b.Name != "" {
				id += " (" + b.Name + ")"
			}
			rows = append(rows, []string{id, b.Status, end, strconv.FormatUint(uint64(b.Timeline), 10), decision, b.Reason})
		}
		textout.Table(w, []string{"BACKUP", "STATUS", "END TIME", "TL", "DECISION", "REASON"}, rows)
	}
	fmt.Fprintln(w)
	if !r.HasCutoff {
		fmt.Fprintln(w, "WAL: nothing deleted (no DONE backup anchors WAL retention)")
	} else {
		verb := "deleted"
		if r.DryRun {
			verb = "to delete"
		}
		if len(r.WAL) == 0 {
			fmt.Fprintf(w, "WAL: nothing %s (WAL from LSN %s is kept on every timeline)\n", verb, r.KeepFromLSN)
		} else {
			fmt.Fprintf(w, "WAL %s (WAL from LSN %s is kept on every timeline):\n", verb, r.KeepFromLSN)
			rows := make([][]string, 0, len(r.WAL))
			for _, wr := range r.WAL {
				rows = append(rows, []string{strconv.FormatUint(uint64(wr.Timeline), 10), wr.First, wr.Last,
					strconv.FormatInt(wr.Segments, 10), strconv.FormatInt(wr.Files, 10), textout.Bytes(wr.Bytes), wr.Reason})
			}
			textout.Table(w, []string{"TL", "FROM", "TO", "SEGMENTS", "FILES", "STORED", "REASON"}, rows)
			fmt.Fprintf(w, "total %s: %d segments, %d files, %s stored\n", verb, r.WALSegments, r.WALFiles, textout.Bytes(r.WALBytes))
		}
	}
	if len(r.KeepHistory) > 0 {
		var tl []string
		for _, t := range r.KeepHistory {
			tl = append(tl, strconv.FormatUint(uint64(t), 10))
		}
		fmt.Fprintf(w, "history files kept (never deleted): timelines %s\n", strings.Join(tl, ", "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
