package segments

// MaxSmallFile bounds the files that are not segments (.history, .backup labels):
// PostgreSQL writes them in a few hundred bytes; a history file of thousands of
// timelines stays well under a megabyte.
const MaxSmallFile = 16 << 20

// MaxFileSize is the largest file of kind that can be valid for a server whose
// wal_segment_size is segSize (0 when it is not known yet: then the largest segment
// size PostgreSQL allows) for segments and .partial files, MaxSmallFile for the others.
// Every reader of an unvalidated file (ingest, and get-wal or restore serving a copy
// waiting in incoming/) checks this before reading and bounds its read by it, so a
// huge file dropped into incoming/ costs no memory.
func MaxFileSize(kind Kind, segSize uint64) int64 {
	switch kind {
	case KindSegment, KindPartial:
		if segSize != 0 {
			return int64(segSize)
		}
		return MaxSegSize
	}
	return MaxSmallFile
}
