package segments

import (
	"encoding/binary"
	"fmt"
)

// Page header layout, from PostgreSQL's src/include/access/xlog_internal.h
// (XLogPageHeaderData followed by XLogLongPageHeaderData's extra fields, 8-byte
// aligned, native byte order: walkeeper supports little-endian servers only).
const (
	// LongHeaderSize is sizeof(XLogLongPageHeaderData): the bytes a caller must hand
	// to ParseLongHeader.
	LongHeaderSize = 40

	xlpFirstIsContRecord = 0x0001
	// XLPLongHeader is XLP_LONG_HEADER, set on the first page of every segment.
	XLPLongHeader    = 0x0002
	xlpBkpRemovable  = 0x0004
	xlpAllFlags      = xlpFirstIsContRecord | XLPLongHeader | xlpBkpRemovable
	minXLogBlockSize = 1 << 10
	maxXLogBlockSize = 1 << 16
)

// magics maps XLOG_PAGE_MAGIC to the PostgreSQL major version that writes it. 13..17
// were checked against the releases' xlog_internal.h; 12 and 18 against copies of it.
var magics = map[uint16]int{
	0xD101: 12,
	0xD106: 13,
	0xD10D: 14,
	0xD110: 15,
	0xD113: 16,
	0xD116: 17,
	0xD118: 18,
}

// MagicVersion maps a WAL page magic to the PostgreSQL major version that writes it,
// because WAL from another major version cannot be replayed by this server.
func MagicVersion(magic uint16) (pgMajor int, ok bool) {
	v, ok := magics[magic]
	return v, ok
}

// PageHeader is a WAL segment's first (long) page header, the only part of a
// segment walkeeper needs to read to validate it.
type PageHeader struct {
	Magic     uint16
	Info      uint16
	Timeline  uint32
	PageAddr  LSN
	RemLen    uint32
	SystemID  uint64
	SegSize   uint32
	BlockSize uint32
}

// ParseLongHeader decodes the first page header of a segment. It only checks that the
// bytes are long enough and carry XLP_LONG_HEADER; ValidateSegment judges the values.
func ParseLongHeader(b []byte) (PageHeader, error) {
	if len(b) < LongHeaderSize {
		return PageHeader{}, fmt.Errorf("WAL page header: %d bytes, need %d", len(b), LongHeaderSize)
	}
	le := binary.LittleEndian
	h := PageHeader{
		Magic:     le.Uint16(b[0:]),
		Info:      le.Uint16(b[2:]),
		Timeline:  le.Uint32(b[4:]),
		PageAddr:  LSN(le.Uint64(b[8:])),
		RemLen:    le.Uint32(b[16:]),
		SystemID:  le.Uint64(b[24:]),
		SegSize:   le.Uint32(b[32:]),
		BlockSize: le.Uint32(b[36:]),
	}
	if h.Info&XLPLongHeader == 0 {
		return h, fmt.Errorf("WAL page header: info 0x%04X lacks XLP_LONG_HEADER, not the first page of a segment", h.Info)
	}
	return h, nil
}

// Expect describes what a server's segments must look like; zero fields are not
// checked, so the first segment of an unknown server can teach its identity.
type Expect struct {
	SystemID uint64
	SegSize  uint64
	Magic    uint16
}

// ValidationError is a file that must not be archived. Reason is one readable
// sentence meant for errors/ and for status/check.
type ValidationError struct {
	Name   string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Name == "" {
		return e.Reason
	}
	return e.Name + ": " + e.Reason
}

// ValidateSegment enforces invariant 3 on a segment or .partial before it is archived.
// size is the file size, header at least its first LongHeaderSize bytes.
//
// A segment must be exactly the segment size; a .partial may be any size from one
// page header up to the segment size. The first page must carry a known magic (equal
// to exp.Magic when set), XLP_LONG_HEADER and no unknown flag bits, the server's system
// identifier, a segment size equal to exp.SegSize (when set) and valid, a WAL block
// size that is a power of two in 1..64 KiB, and the page address the name implies.
//
// Timeline rule: 1 <= xlp_tli <= the name's timeline. Equality is not required: when a
// server switches timeline mid-segment, the first segment of the new timeline is a copy
// of the old one's head and keeps the old xlp_tli on its first page. PostgreSQL itself
// (XLogReaderValidatePageHeader plus recovery's tliInHistory check) only rejects a page
// whose timeline goes backwards or is not on the expected timeline's path, which can
// never be newer than the timeline the file is named for.
//
// Failures of the file are *ValidationError; a bad exp (invalid SegSize) is a plain error.
func ValidateSegment(name Name, size int64, header []byte, exp Expect) error {
	fail := func(format string, args ...any) error {
		return &ValidationError{Name: name.Raw, Reason: fmt.Sprintf(format, args...)}
	}
	if name.Kind != KindSegment && name.Kind != KindPartial {
		return fail("is a %s file, not a WAL segment", name.Kind)
	}
	if exp.SegSize != 0 && !ValidSegSize(exp.SegSize) {
		return fmt.Errorf("validate %s: expected segment size %d is not a valid wal_segment_size", name.Raw, exp.SegSize)
	}
	if size < LongHeaderSize || len(header) < LongHeaderSize {
		return fail("size %d is too small to hold a WAL page header", min(size, int64(len(header))))
	}
	h, err := ParseLongHeader(header)
	magicVer, known := MagicVersion(h.Magic)
	switch {
	case !known:
		if v, swapped := MagicVersion(h.Magic>>8 | h.Magic<<8); swapped {
			return fail("not a WAL file this host can read: magic 0x%04X is big-endian PostgreSQL %d WAL", h.Magic, v)
		}
		return fail("not a WAL file: bad magic 0x%04X", h.Magic)
	case exp.Magic != 0 && h.Magic != exp.Magic:
		want, _ := MagicVersion(exp.Magic)
		return fail("WAL magic 0x%04X is PostgreSQL %d, this server writes 0x%04X (PostgreSQL %d)", h.Magic, magicVer, exp.Magic, want)
	case err != nil:
		return fail("first page has no long header (info 0x%04X)", h.Info)
	case h.Info&^xlpAllFlags != 0:
		return fail("invalid info bits 0x%04X in the first page header", h.Info)
	case exp.SystemID != 0 && h.SystemID != exp.SystemID:
		return fail("system identifier %d is not this server's %d", h.SystemID, exp.SystemID)
	case !ValidSegSize(uint64(h.SegSize)):
		return fail("page header's segment size %d is not a valid wal_segment_size", h.SegSize)
	case exp.SegSize != 0 && uint64(h.SegSize) != exp.SegSize:
		return fail("page header's segment size %d is not the segment size %d", h.SegSize, exp.SegSize)
	case h.BlockSize < minXLogBlockSize || h.BlockSize > maxXLogBlockSize || !isPow2(uint64(h.BlockSize)):
		return fail("page header's WAL block size %d is not a power of two between 1 and 64 KiB", h.BlockSize)
	}
	segSize := uint64(h.SegSize)
	switch name.Kind {
	case KindSegment:
		if uint64(size) != segSize {
			return fail("size %d is not the segment size %d", size, segSize)
		}
	case KindPartial:
		if uint64(size) > segSize {
			return fail("size %d is larger than the segment size %d", size, segSize)
		}
	}
	if err := name.ValidFor(segSize); err != nil {
		return fail("name is impossible for segment size %d", segSize)
	}
	if want := name.StartLSN(segSize); h.PageAddr != want {
		return fail("page address %s does not match name %s (expects %s)", h.PageAddr, name.SegmentName(), want)
	}
	if h.Timeline == 0 || h.Timeline > name.Timeline {
		return fail("page header's timeline %d is not in 1..%d (the name's timeline)", h.Timeline, name.Timeline)
	}
	return nil
}
