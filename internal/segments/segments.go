// Package segments is walkeeper's single source of truth for PostgreSQL WAL file names,
// LSN and segment arithmetic for any wal_segment_size, timeline history files and
// first-page header validation. It is pure logic: it never touches the disk, so every
// other package can trust one implementation of these easy-to-get-wrong rules.
package segments

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// LSN is a PostgreSQL XLogRecPtr: a byte position in the endless WAL stream. It is a
// distinct type so that positions cannot be mixed up with sizes or segment numbers.
type LSN uint64

// ParseLSN reads the "X/Y" form PostgreSQL prints (pg_current_wal_lsn, pg_controldata,
// history and backup label files), so user input such as --target-lsn and server output
// go through one strict parser. Both halves are 1 to 8 hex digits, either case.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("parse LSN %q: missing '/'", s)
	}
	h, err := parseHex32(hi)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: high part: %w", s, err)
	}
	l, err := parseHex32(lo)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: low part: %w", s, err)
	}
	return LSN(uint64(h)<<32 | uint64(l)), nil
}

// parseHex32 accepts 1..8 hex digits and nothing else (no sign, prefix or underscores,
// which strconv would tolerate in some modes).
func parseHex32(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	if len(s) > 8 {
		return 0, fmt.Errorf("%q has more than 8 hex digits", s)
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		d, ok := hexVal(s[i], true)
		if !ok {
			return 0, fmt.Errorf("%q is not hexadecimal", s)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

func hexVal(c byte, allowLower bool) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case allowLower && c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// String prints the LSN exactly as PostgreSQL does (upper-case hex, no padding), so
// values can be pasted into recovery settings and compared with server output.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// Segment size limits, from PostgreSQL's WalSegMinSize and WalSegMaxSize: initdb
// --wal-segsize accepts only powers of two in this range.
const (
	MinSegSize = 1 << 20
	MaxSegSize = 1 << 30
)

// ValidSegSize tells whether PostgreSQL could have been initialised with this
// wal_segment_size; every other function assumes a size that passes it.
func ValidSegSize(size uint64) bool {
	return size >= MinSegSize && size <= MaxSegSize && size&(size-1) == 0
}

// SegNoOf gives the XLogSegNo holding lsn. Segment numbers are timeline-independent,
// which is what makes them the key for ordering and gap detection.
func SegNoOf(lsn LSN, segSize uint64) uint64 {
	return uint64(lsn) / segSize
}

// SegStart is the LSN of a segment's first byte, the page address its first page
// header must carry.
func SegStart(segNo uint64, segSize uint64) LSN {
	return LSN(segNo * segSize)
}

// SegmentsPerLog is how many segments share one "log" (the middle 8 hex digits of a
// name): it is why names are not simply the segment number in hex.
func SegmentsPerLog(segSize uint64) uint64 {
	return 0x100000000 / segSize
}

// Kind says which of the file types PostgreSQL archives a name denotes, because each
// is validated and stored differently.
type Kind int

// The kinds of files archive_command and the streaming receiver deliver.
const (
	// KindSegment is a complete WAL segment, "000000010000000000000002".
	KindSegment Kind = iota + 1
	// KindHistory is a timeline history file, "00000002.history".
	KindHistory
	// KindBackupLabel is a backup history file, "000000010000000000000002.00000028.backup".
	KindBackupLabel
	// KindPartial is an incomplete segment kept at a timeline switch or by a
	// streaming receiver, "000000010000000000000002.partial".
	KindPartial
)

// String gives the short names used in the index and in --json output.
func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "segment"
	case KindHistory:
		return "history"
	case KindBackupLabel:
		return "backup"
	case KindPartial:
		return "partial"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Name is a parsed archive file name, so callers never slice name strings themselves.
type Name struct {
	Kind     Kind
	Timeline uint32
	// Log and Seg are the second and third 8-hex groups of a segment-like name: Log is
	// segno / SegmentsPerLog, Seg is segno % SegmentsPerLog (a segment count, not bytes).
	Log, Seg uint32
	// Offset is the byte offset inside the segment, only for .backup files.
	Offset uint32
	// Raw is the file name as given.
	Raw string
}

const (
	segNameLen     = 24
	historySuffix  = ".history"
	partialSuffix  = ".partial"
	backupSuffix   = ".backup"
	backupNameLen  = segNameLen + 1 + 8 + len(backupSuffix)
	historyNameLen = 8 + len(historySuffix)
)

// Parse accepts exactly the names PostgreSQL writes and nothing else, because a file
// in incoming/ whose name we misread could be archived under the wrong position.
// PostgreSQL writes upper-case hex, so lower case is rejected, as are path separators,
// other suffixes and timeline 0.
func Parse(name string) (Name, error) {
	n := Name{Raw: name}
	bad := func(why string) (Name, error) {
		return Name{}, fmt.Errorf("WAL file name %q: %s", name, why)
	}
	if strings.ContainsAny(name, `/\`) {
		return bad("contains a path separator")
	}
	switch {
	case len(name) == segNameLen:
		n.Kind = KindSegment
	case len(name) == historyNameLen && strings.HasSuffix(name, historySuffix):
		n.Kind = KindHistory
	case len(name) == segNameLen+len(partialSuffix) && strings.HasSuffix(name, partialSuffix):
		n.Kind = KindPartial
	case len(name) == backupNameLen && strings.HasSuffix(name, backupSuffix) && name[segNameLen] == '.':
		n.Kind = KindBackupLabel
		off, ok := upperHex32(name[segNameLen+1 : segNameLen+9])
		if !ok {
			return bad("backup offset is not 8 upper-case hex digits")
		}
		n.Offset = off
	default:
		return bad("not a segment, .history, .partial or .backup name")
	}
	tli, ok := upperHex32(name[0:8])
	if !ok {
		return bad("timeline is not 8 upper-case hex digits")
	}
	if tli == 0 {
		return bad("timeline 0 does not exist")
	}
	n.Timeline = tli
	if n.Kind == KindHistory {
		return n, nil
	}
	if n.Log, ok = upperHex32(name[8:16]); !ok {
		return bad("log part is not 8 upper-case hex digits")
	}
	if n.Seg, ok = upperHex32(name[16:24]); !ok {
		return bad("segment part is not 8 upper-case hex digits")
	}
	return n, nil
}

func upperHex32(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var v uint32
	for i := 0; i < 8; i++ {
		d, ok := hexVal(s[i], false)
		if !ok {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// SegNo is the timeline-independent segment number. It is only meaningful for a
// segment-like name that passes ValidFor(segSize).
func (n Name) SegNo(segSize uint64) uint64 {
	return uint64(n.Log)*SegmentsPerLog(segSize) + uint64(n.Seg)
}

// StartLSN is the position of the segment's first byte; for a .backup file it is the
// backup's start location (segment start plus the name's offset).
func (n Name) StartLSN(segSize uint64) LSN {
	l := SegStart(n.SegNo(segSize), segSize)
	if n.Kind == KindBackupLabel {
		l += LSN(n.Offset)
	}
	return l
}

// Place is where a file sits in the WAL stream, as the index records it: its segment
// number and StartLSN, or zeros for a history file (which has no position) or when
// the segment size is not known (0). This is the one place a record's position is
// derived from its name.
func (n Name) Place(segSize uint64) (segNo uint64, start LSN) {
	if n.Kind == KindHistory || segSize == 0 {
		return 0, 0
	}
	return n.SegNo(segSize), n.StartLSN(segSize)
}

// ValidFor rejects names PostgreSQL could not have produced with this segment size
// (e.g. ...00000100 with 16 MiB segments, which allow only 00..FF per log), so such a
// file is refused instead of being indexed at a wrong position.
func (n Name) ValidFor(segSize uint64) error {
	if !ValidSegSize(segSize) {
		return fmt.Errorf("WAL file name %q: %d is not a valid segment size", n.Raw, segSize)
	}
	if n.Kind == KindHistory {
		return nil
	}
	if per := SegmentsPerLog(segSize); uint64(n.Seg) >= per {
		return fmt.Errorf("WAL file name %q: segment part %08X is out of range for segment size %d (at most %08X)",
			n.Raw, n.Seg, segSize, per-1)
	}
	if n.Kind == KindBackupLabel && uint64(n.Offset) >= segSize {
		return fmt.Errorf("WAL file name %q: backup offset %08X is beyond segment size %d", n.Raw, n.Offset, segSize)
	}
	return nil
}

// SegmentName gives the 24-character segment a .partial or .backup file belongs to,
// which is what restore_command asks for and what the archive is sorted by. It returns
// "" for a history file.
func (n Name) SegmentName() string {
	if n.Kind == KindHistory {
		return ""
	}
	return fmt.Sprintf("%08X%08X%08X", n.Timeline, n.Log, n.Seg)
}

// SegmentFileName is PostgreSQL's XLogFileName: the name a segment has on timeline tli.
func SegmentFileName(tli uint32, segNo uint64, segSize uint64) string {
	per := SegmentsPerLog(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, uint32(segNo/per), uint32(segNo%per))
}

// SegmentForLSN names the segment holding lsn on timeline tli (PostgreSQL's
// XLByteToSeg followed by XLogFileName), e.g. for "walkeeper get-wal" targets.
func SegmentForLSN(tli uint32, lsn LSN, segSize uint64) string {
	return SegmentFileName(tli, SegNoOf(lsn, segSize), segSize)
}

// HistoryFileName is PostgreSQL's TLHistoryFileName.
func HistoryFileName(tli uint32) string {
	return fmt.Sprintf("%08X%s", tli, historySuffix)
}

// isPow2 is used for block sizes.
func isPow2(v uint64) bool { return v != 0 && bits.OnesCount64(v) == 1 }
