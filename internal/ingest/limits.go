package ingest

import (
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// maxSmallFile is segments.MaxSmallFile: the limit of .history and .backup files.
const maxSmallFile = segments.MaxSmallFile

// maxFileSize is segments.MaxFileSize for the server's identity (its segment size when
// known). The pipeline checks it before reading a file, and bounds the read by it, so
// a huge file in incoming/ costs no memory: it is quarantined by its size alone.
func maxFileSize(kind segments.Kind, id record.Identity, known bool) int64 {
	if !known {
		id.SegSize = 0
	}
	return segments.MaxFileSize(kind, id.SegSize)
}

func tooLarge(size, limit int64, kind segments.Kind) error {
	what := "a WAL segment of this server"
	if kind != segments.KindSegment && kind != segments.KindPartial {
		what = "a " + kind.String() + " file"
	}
	return reject("size %d bytes is larger than %s can be (%d bytes)", size, what, limit)
}
