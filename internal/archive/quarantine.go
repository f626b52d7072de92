package archive

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// reasonSuffix names the file beside each quarantined file that says why it was
// refused.
const reasonSuffix = ".reason"

// QuarantineName is the errors/ entry of a file named base refused at t:
// "<base>.<UTC stamp to the nanosecond>", so a name refused twice keeps both copies.
func QuarantineName(base string, t time.Time) string {
	return base + "." + t.UTC().Format("20060102T150405.000000000")
}

// ReasonFile is the path of the reason file beside quarantined file path.
func ReasonFile(path string) string { return path + reasonSuffix }

// QuarantinedFile is a file in errors/ with the reason recorded beside it.
type QuarantinedFile struct {
	File   string    `json:"file"`
	Reason string    `json:"reason"`
	Mtime  time.Time `json:"-"`
}

// noReason stands in for a reason file that is missing (removed by hand, or the
// crash window of ingest's quarantine, which writes it first).
const noReason = "no reason recorded"

// Quarantined lists errorsDir (the quarantine) in name order, each file with its
// reason; a directory that does not exist is an empty quarantine.
func Quarantined(errorsDir string) ([]QuarantinedFile, error) {
	es, err := os.ReadDir(errorsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []QuarantinedFile
	for _, e := range es {
		name := e.Name()
		if e.IsDir() || fsutil.IsTemp(name) || strings.HasSuffix(name, reasonSuffix) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed since the listing
		}
		q := QuarantinedFile{File: name, Reason: noReason, Mtime: fi.ModTime()}
		if b, err := os.ReadFile(ReasonFile(filepath.Join(errorsDir, name))); err == nil {
			q.Reason = strings.TrimSpace(string(b))
		}
		out = append(out, q)
	}
	return out, nil
}
