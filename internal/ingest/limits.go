package ingest

import (
	"errors"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// maxSmallFile bounds the files that are not segments (.history, .backup labels):
// PostgreSQL writes them in a few hundred bytes; a history file of thousands of
// timelines stays well under a megabyte.
const maxSmallFile = 16 << 20

// maxFileSize is the largest file of kind that can be valid for the server: its segment
// size (or the largest segment size PostgreSQL allows while the server's is unknown)
// for segments and .partial files, maxSmallFile for the others. The pipeline checks
// it before reading a file, and bounds the read by it, so a huge file in incoming/
// costs no memory: it is quarantined by its size alone.
func maxFileSize(kind segments.Kind, id record.Identity, known bool) int64 {
	switch kind {
	case segments.KindSegment, segments.KindPartial:
		if known && id.SegSize != 0 {
			return int64(id.SegSize)
		}
		return segments.MaxSegSize
	}
	return maxSmallFile
}

// errTooLarge is readInto's answer for a file that grew past its limit while read.
var errTooLarge = errors.New("file larger than its limit")

func tooLarge(size, limit int64, kind segments.Kind) error {
	what := "a WAL segment of this server"
	if kind != segments.KindSegment && kind != segments.KindPartial {
		what = "a " + kind.String() + " file"
	}
	return reject("size %d bytes is larger than %s can be (%d bytes)", size, what, limit)
}
