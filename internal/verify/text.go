package verify

import (
	"fmt"
	"io"
	"strings"

	"github.com/walkeeper/walkeeper/internal/textout"
)

// WriteText renders the report for a DBA; one says a single backup was asked for
// (then no "no DONE backup" line).
func (rep Report) WriteText(w io.Writer, one bool) {
	fmt.Fprintf(w, "Server %s:\n", rep.Server)
	if len(rep.Backups) == 0 && !one {
		fmt.Fprintf(w, "  no DONE backup to verify\n")
	}
	for _, b := range rep.Backups {
		name := b.ID
		if b.Name != "" {
			name += " (" + b.Name + ")"
		}
		fmt.Fprintf(w, "  Backup %s, %s:\n", name, b.Status)
		if f := b.Files; f != nil {
			if f.Mismatch != "" {
				fmt.Fprintf(w, "    backup_manifest: FAILED: %s\n", f.Mismatch)
			}
			switch {
			case f.Manifest != "":
				fmt.Fprintf(w, "    files: FAILED: %s\n", f.Manifest)
			case len(f.Problems) == 0 && f.Objects > 0:
				fmt.Fprintf(w, "    files: OK (%d files, %s match backup_manifest by the sums taken at backup; %d stored objects, %s, unchanged; %d files decoded)\n",
					f.Files, textout.Bytes(f.Bytes), f.Objects, textout.Bytes(f.ObjectBytes), f.Decoded)
			case len(f.Problems) == 0:
				fmt.Fprintf(w, "    files: OK (%d files, %s match backup_manifest)\n", f.Files, textout.Bytes(f.Bytes))
			default:
				fmt.Fprintf(w, "    files: FAILED (%d of %d files)\n", len(f.Problems), f.Files)
				for _, p := range f.Problems {
					fmt.Fprintf(w, "      %s\n", p)
				}
			}
		}
		if b.Error != "" {
			fmt.Fprintf(w, "    WAL: FAILED: %s\n", b.Error)
		}
		if ch := b.WAL; ch != nil {
			var tl []string
			for _, s := range ch.Spans {
				tl = append(tl, fmt.Sprint(s.Timeline))
			}
			span := fmt.Sprintf("%s .. %s, timeline %s", ch.Start, ch.End, strings.Join(tl, " -> "))
			if ch.OK() {
				fmt.Fprintf(w, "    WAL: OK (%d segments %s, no gap)\n", ch.Needed, span)
			} else {
				fmt.Fprintf(w, "    WAL: FAILED (%d of %d segments missing, %s)\n", ch.Needed-ch.Present, ch.Needed, span)
				for _, g := range ch.Gaps {
					fmt.Fprintf(w, "      %s\n", g)
				}
				for _, p := range ch.Problems {
					fmt.Fprintf(w, "      %s\n", p)
				}
			}
		}
	}
	for _, p := range rep.ArchiveProblems {
		fmt.Fprintf(w, "  archive: FAILED: %s\n", p)
	}
	if wr := rep.WALChecksums; wr != nil {
		if len(wr.Problems) == 0 {
			fmt.Fprintf(w, "  WAL checksums: OK (%d files, %s)\n", wr.Files, textout.Bytes(wr.Bytes))
		} else {
			fmt.Fprintf(w, "  WAL checksums: FAILED (%d problems in %d files)\n", len(wr.Problems), wr.Files)
			for _, p := range wr.Problems {
				fmt.Fprintf(w, "    %s\n", p)
			}
		}
	}
	if rep.OK {
		fmt.Fprintf(w, "verify: OK\n")
	} else {
		fmt.Fprintf(w, "verify: FAILED, %d problem(s)\n", len(rep.Problems))
	}
}
