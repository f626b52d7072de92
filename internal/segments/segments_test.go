package segments

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in      string
		want    LSN
		wantErr bool
	}{
		{"0/0", 0, false},
		{"16/B374D848", 0x16B374D848, false},
		{"16/b374d848", 0x16B374D848, false},
		{"FFFFFFFF/FFFFFFFF", ^LSN(0), false},
		{"0/3000000", 0x3000000, false},
		{"00000001/00000000", 1 << 32, false},
		{"", 0, true},
		{"16", 0, true},
		{"/1", 0, true},
		{"1/", 0, true},
		{"1/2/3", 0, true},
		{"100000000/0", 0, true},
		{"0/100000000", 0, true},
		{"+1/0", 0, true},
		{"0x1/0", 0, true},
		{"1_0/0", 0, true},
		{" 1/0", 0, true},
		{"G/0", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLSN(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseLSN(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("ParseLSN(%q) = %X, want %X", tt.in, uint64(got), uint64(tt.want))
		}
		if err != nil && !strings.Contains(err.Error(), tt.in) {
			t.Errorf("ParseLSN(%q) error %q does not name the input", tt.in, err)
		}
	}
}

func TestLSNString(t *testing.T) {
	tests := []struct {
		l    LSN
		want string
	}{
		{0, "0/0"},
		{0x16B374D848, "16/B374D848"},
		{0x3000000, "0/3000000"},
		{^LSN(0), "FFFFFFFF/FFFFFFFF"},
		{1 << 32, "1/0"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("LSN(%X).String() = %q, want %q", uint64(tt.l), got, tt.want)
		}
		back, err := ParseLSN(tt.want)
		if err != nil || back != tt.l {
			t.Errorf("round trip %q: %X, %v", tt.want, uint64(back), err)
		}
	}
}

func TestValidSegSize(t *testing.T) {
	tests := []struct {
		size uint64
		want bool
	}{
		{0, false}, {1, false}, {1 << 19, false}, {1 << 20, true}, {1 << 24, true},
		{1 << 30, true}, {1 << 31, false}, {3 << 20, false}, {(1 << 24) + 1, false}, {1<<20 - 1, false},
	}
	for _, tt := range tests {
		if got := ValidSegSize(tt.size); got != tt.want {
			t.Errorf("ValidSegSize(%d) = %v, want %v", tt.size, got, tt.want)
		}
	}
}

func TestSegmentMath(t *testing.T) {
	tests := []struct {
		segSize uint64
		perLog  uint64
		lsn     LSN
		segNo   uint64
		name    string
	}{
		{16 << 20, 256, 0x16B374D848, 0x16B3, "0000000100000016000000B3"},
		{16 << 20, 256, 0x1000000FF, 0x100, "000000010000000100000000"},
		{16 << 20, 256, 0xFFFFFFFF, 0xFF, "0000000100000000000000FF"},
		{1 << 20, 4096, 0x123456789, 0x1234, "000000010000000100000234"},
		{1 << 30, 4, 0x2C0000000, 11, "000000010000000200000003"},
		{64 << 20, 64, 0x0, 0, "000000010000000000000000"},
	}
	for _, tt := range tests {
		if got := SegmentsPerLog(tt.segSize); got != tt.perLog {
			t.Errorf("SegmentsPerLog(%d) = %d, want %d", tt.segSize, got, tt.perLog)
		}
		if got := SegNoOf(tt.lsn, tt.segSize); got != tt.segNo {
			t.Errorf("SegNoOf(%s, %d) = %d, want %d", tt.lsn, tt.segSize, got, tt.segNo)
		}
		if got := SegmentForLSN(1, tt.lsn, tt.segSize); got != tt.name {
			t.Errorf("SegmentForLSN(1, %s, %d) = %q, want %q", tt.lsn, tt.segSize, got, tt.name)
		}
		if got := SegStart(tt.segNo, tt.segSize); got > tt.lsn || uint64(tt.lsn-got) >= tt.segSize {
			t.Errorf("SegStart(%d, %d) = %s does not contain %s", tt.segNo, tt.segSize, got, tt.lsn)
		}
	}
}

// TestRoundTripAllSizes walks names across log boundaries for every legal segment size.
func TestRoundTripAllSizes(t *testing.T) {
	for size := uint64(MinSegSize); size <= MaxSegSize; size <<= 1 {
		per := SegmentsPerLog(size)
		if per*size != 1<<32 {
			t.Fatalf("size %d: %d segments per log do not fill 4 GiB", size, per)
		}
		for _, segNo := range []uint64{0, 1, per - 1, per, per + 1, 3*per - 1, 0xFFFFFFFF*per + per - 1} {
			for _, tli := range []uint32{1, 2, 0xFFFFFFFF} {
				fn := SegmentFileName(tli, segNo, size)
				n, err := Parse(fn)
				if err != nil {
					t.Fatalf("size %d segNo %d: Parse(%q): %v", size, segNo, fn, err)
				}
				if n.Kind != KindSegment || n.Timeline != tli || n.SegNo(size) != segNo {
					t.Fatalf("size %d: Parse(%q) = %+v, SegNo %d, want segNo %d tli %d", size, fn, n, n.SegNo(size), segNo, tli)
				}
				if err := n.ValidFor(size); err != nil {
					t.Fatalf("size %d: %v", size, err)
				}
				start := n.StartLSN(size)
				if start != SegStart(segNo, size) || SegmentForLSN(tli, start, size) != fn ||
					SegmentForLSN(tli, start+LSN(size-1), size) != fn {
					t.Fatalf("size %d: %q start %s does not round-trip", size, fn, start)
				}
				if segNo > 0 && SegmentForLSN(tli, start-1, size) != SegmentFileName(tli, segNo-1, size) {
					t.Fatalf("size %d: byte before %q is not in the previous segment", size, fn)
				}
				if n.SegmentName() != fn {
					t.Fatalf("size %d: SegmentName of %q wrong", size, fn)
				}
				if gotNo, gotStart := n.Place(size); gotNo != segNo || gotStart != start {
					t.Fatalf("size %d: Place of %q = %d, %s", size, fn, gotNo, gotStart)
				}
			}
		}
		// The first out-of-range Seg value must be rejected for this size.
		bad := Name{Kind: KindSegment, Timeline: 1, Seg: uint32(min(per, 0xFFFFFFFF)), Raw: "x"}
		if per <= 0xFFFFFFFF {
			if err := bad.ValidFor(size); err == nil {
				t.Errorf("size %d: Seg %X accepted", size, per)
			}
		}
	}
	// The example from the brief.
	if got := SegmentFileName(1, SegNoOf(0xFFFFFFFF, 16<<20)+1, 16<<20); got != "000000010000000100000000" {
		t.Errorf("segment after 0000000100000000000000FF = %q", got)
	}
	if SegmentsPerLog(1<<30) != 4 {
		t.Errorf("1 GiB: SegmentsPerLog = %d", SegmentsPerLog(1<<30))
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Name
		wantErr string
	}{
		{in: "000000010000000000000002", want: Name{Kind: KindSegment, Timeline: 1, Log: 0, Seg: 2}},
		{in: "0000000A00000016000000B3", want: Name{Kind: KindSegment, Timeline: 10, Log: 0x16, Seg: 0xB3}},
		{in: "00000002.history", want: Name{Kind: KindHistory, Timeline: 2}},
		{in: "000000010000000000000002.00000028.backup", want: Name{Kind: KindBackupLabel, Timeline: 1, Seg: 2, Offset: 0x28}},
		{in: "000000010000000000000002.partial", want: Name{Kind: KindPartial, Timeline: 1, Seg: 2}},
		{in: "0000000a00000016000000b3", wantErr: "upper-case"},
		{in: "00000000000000000000000A", wantErr: "timeline 0"},
		{in: "00000000.history", wantErr: "timeline 0"},
		{in: "0000000100000000000000", wantErr: "not a segment"},
		{in: "0000000100000000000000022", wantErr: "not a segment"},
		{in: "pg_wal/000000010000000000", wantErr: "path separator"},
		{in: "../00000001000000000002", wantErr: "path separator"},
		{in: "000000010000000000000002.gz", wantErr: "not a segment"},
		{in: "000000010000000000000002.partial.zst", wantErr: "not a segment"},
		{in: "000000010000000000000002.0000002g.backup", wantErr: "backup offset"},
		{in: "000000010000000000000002X00000028.backup", wantErr: "not a segment"},
		{in: "0000000G.history", wantErr: "timeline"},
		{in: "00000001.HISTORY", wantErr: "not a segment"},
		{in: "", wantErr: "not a segment"},
		{in: "00000001000000000000000 ", wantErr: "segment part"},
		{in: "000000010000000X00000002", wantErr: "log part"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("Parse(%q) err = %v, want one naming the file and %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		tt.want.Raw = tt.in
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestNameMethods(t *testing.T) {
	const s16 = 16 << 20
	tests := []struct {
		name     string
		segNo    uint64
		start    LSN
		segName  string
		validErr bool
	}{
		{"000000010000000000000002", 2, 0x2000000, "000000010000000000000002", false},
		{"000000020000000100000000.partial", 256, 0x100000000, "000000020000000100000000", false},
		{"000000010000000000000002.00000028.backup", 2, 0x2000028, "000000010000000000000002", false},
		{"000000010000000000000100", 256, 0x100000000, "000000010000000000000100", true},
		{"000000010000000000000002.01000000.backup", 2, 0x3000000, "000000010000000000000002", true},
		{"00000003.history", 0, 0, "", false},
	}
	for _, tt := range tests {
		n, err := Parse(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if n.Kind != KindHistory {
			if got := n.SegNo(s16); got != tt.segNo {
				t.Errorf("%s SegNo = %d, want %d", tt.name, got, tt.segNo)
			}
			if got := n.StartLSN(s16); got != tt.start {
				t.Errorf("%s StartLSN = %s, want %s", tt.name, got, tt.start)
			}
		}
		if got := n.SegmentName(); got != tt.segName {
			t.Errorf("%s SegmentName = %q, want %q", tt.name, got, tt.segName)
		}
		if gotNo, gotStart := n.Place(s16); n.Kind != KindHistory && (gotNo != tt.segNo || gotStart != tt.start) ||
			n.Kind == KindHistory && (gotNo != 0 || gotStart != 0) {
			t.Errorf("%s Place = %d, %s, want %d, %s", tt.name, gotNo, gotStart, tt.segNo, tt.start)
		}
		if gotNo, gotStart := n.Place(0); gotNo != 0 || gotStart != 0 {
			t.Errorf("%s Place without a segment size = %d, %s", tt.name, gotNo, gotStart)
		}
		if err := n.ValidFor(s16); (err != nil) != tt.validErr {
			t.Errorf("%s ValidFor = %v, want error %v", tt.name, err, tt.validErr)
		}
	}
	n, _ := Parse("000000010000000000000002")
	if n.ValidFor(12345) == nil {
		t.Error("ValidFor accepted a bad segment size")
	}
	if HistoryFileName(0x1A) != "0000001A.history" {
		t.Errorf("HistoryFileName = %q", HistoryFileName(0x1A))
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{KindSegment: "segment", KindHistory: "history", KindBackupLabel: "backup", KindPartial: "partial", 0: "Kind(0)"}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), k.String(), s)
		}
	}
}

func TestParseHistory(t *testing.T) {
	tests := []struct {
		name    string
		tli     uint32
		data    string
		want    []HistoryEntry
		wantErr string
	}{
		{name: "pg15", tli: 2, data: "1\t0/3000000\tno recovery target specified\n",
			want: []HistoryEntry{{1, 0x3000000, "no recovery target specified"}}},
		{name: "three", tli: 4, data: "1\t0/3000000\tno recovery target specified\n\n2\t0/5000150\tbefore 2026-01-01 00:00:00+00\n# comment\n3\t1/A0\tat restore point \"x\"\n",
			want: []HistoryEntry{{1, 0x3000000, "no recovery target specified"}, {2, 0x5000150, "before 2026-01-01 00:00:00+00"}, {3, 0x1000000A0, "at restore point \"x\""}}},
		{name: "skips a timeline, crlf, no reason", tli: 5, data: "1\t0/3000000\r\n3 0/4000000  reason\r\n",
			want: []HistoryEntry{{1, 0x3000000, ""}, {3, 0x4000000, "reason"}}},
		{name: "empty", tli: 2, data: "", want: nil},
		{name: "bad tli", tli: 3, data: "1\t0/3000000\tx\nx\t0/4000000\ty\n", wantErr: "line 2"},
		{name: "bad lsn", tli: 3, data: "1\t0-3000000\tx\n", wantErr: "line 1"},
		{name: "missing lsn", tli: 3, data: "1\n", wantErr: "line 1"},
		{name: "not ancestor", tli: 2, data: "2\t0/3000000\tx\n", wantErr: "not an ancestor"},
		{name: "not increasing", tli: 5, data: "2\t0/3000000\tx\n1\t0/4000000\tx\n", wantErr: "does not follow"},
		// PostgreSQL's recovery test 028: a PITR that stopped on timeline 1 before timeline
		// 2's switch point, then promoted: switch points go backwards, and it is valid.
		{name: "lsn backwards (028)", tli: 3, data: "1\t0/3018CB0\tno recovery target specified\n\n2\t0/3018C48\tat restore point \"rp\"\n",
			want: []HistoryEntry{{1, 0x3018CB0, "no recovery target specified"}, {2, 0x3018C48, "at restore point \"rp\""}}},
		{name: "tli zero", tli: 5, data: "0\t0/5000000\tx\n", wantErr: "timeline 0"},
		{name: "signed", tli: 5, data: "+1\t0/5000000\tx\n", wantErr: "decimal"},
	}
	for _, tt := range tests {
		got, err := ParseHistory(tt.tli, []byte(tt.data))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: entry %d = %+v, want %+v", tt.name, i, got[i], tt.want[i])
			}
		}
	}
}

func TestTimelineAtAndCanReach(t *testing.T) {
	// Timeline 4's path: 1 until 0/3000000, 2 until 0/5000000, then 4 (3 was a dead branch).
	h := []HistoryEntry{{1, 0x3000000, ""}, {2, 0x5000000, ""}}
	at := []struct {
		lsn  LSN
		want uint32
	}{{0, 1}, {0x2FFFFFF, 1}, {0x3000000, 2}, {0x4FFFFFF, 2}, {0x5000000, 4}, {^LSN(0), 4}}
	for _, tt := range at {
		if got := TimelineAt(h, 4, tt.lsn); got != tt.want {
			t.Errorf("TimelineAt(%s) = %d, want %d", tt.lsn, got, tt.want)
		}
	}
	// The 028 shape: timeline 3 left timeline 2 at 0/3018C48, before timeline 2 itself
	// began (0/3018CB0): timeline 2 owns no position, 1 runs straight into 3.
	h028 := []HistoryEntry{{1, 0x3018CB0, ""}, {2, 0x3018C48, ""}}
	for _, tt := range []struct {
		lsn  LSN
		want uint32
	}{{0, 1}, {0x3018C47, 1}, {0x3018C48, 3}, {0x3018CB0, 3}, {0x4000000, 3}} {
		if got := TimelineAt(h028, 3, tt.lsn); got != tt.want {
			t.Errorf("028: TimelineAt(%s) = %d, want %d", tt.lsn, got, tt.want)
		}
	}
	if TimelineAt(nil, 1, 0x123) != 1 {
		t.Error("TimelineAt with no history is not the target")
	}
	reach := []struct {
		tli  uint32
		lsn  LSN
		want bool
	}{
		{4, 0, true}, {4, 0x9000000, true},
		{1, 0x2000000, true}, {1, 0x2FFFFFF, true}, {1, 0x3000000, false}, {1, 0x4000000, false},
		{2, 0x4000000, true}, {2, 0x5000000, false},
		{3, 0x4000000, false}, {5, 0x1000, false},
	}
	for _, tt := range reach {
		if got := CanReach(h, 4, tt.tli, tt.lsn); got != tt.want {
			t.Errorf("CanReach(target 4, tli %d, %s) = %v, want %v", tt.tli, tt.lsn, got, tt.want)
		}
	}
}

func TestValidateHistory(t *testing.T) {
	good := []byte("1\t0/3000000\tno recovery target specified\n")
	tests := []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{"00000002.history", good, false},
		{"00000001.history", good, true},
		{"00000002.history", []byte(""), true},
		{"00000002.history", []byte("garbage\n"), true},
		{"00000002.history", []byte("2\t0/3000000\tx\n"), true},
		{"000000020000000000000002", good, true},
	}
	for _, tt := range tests {
		n, err := Parse(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		err = ValidateHistory(n, tt.data)
		if (err != nil) != tt.wantErr {
			t.Errorf("ValidateHistory(%s, %q) = %v, wantErr %v", tt.name, tt.data, err, tt.wantErr)
		}
		var ve *ValidationError
		if err != nil && (!errors.As(err, &ve) || !strings.Contains(err.Error(), tt.name)) {
			t.Errorf("ValidateHistory error %v is not a ValidationError naming the file", err)
		}
	}
}

const pg15Backup = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-11-24 14:00:00 UTC
LABEL: pg_basebackup base backup
START TIMELINE: 1
STOP TIME: 2026-11-24 14:00:01 UTC
STOP TIMELINE: 1
`

func TestBackupLabel(t *testing.T) {
	b, err := ParseBackupLabel([]byte(pg15Backup))
	if err != nil {
		t.Fatal(err)
	}
	if b.StartLSN != 0x2000028 || b.StopLSN != 0x2000100 || b.StartSegment != "000000010000000000000002" || b.Label != "pg_basebackup base backup" {
		t.Errorf("ParseBackupLabel = %+v", b)
	}
	tests := []struct {
		data    string
		wantErr bool
	}{
		{pg15Backup, false},
		{strings.ReplaceAll(pg15Backup, "\n", "\r\n"), false},
		{"", true},
		{"hello\n", true},
		{"START WAL LOCATION: 0/2000028\n", true},
		{"START WAL LOCATION: zz (file 000000010000000000000002)\n", true},
		{"START WAL LOCATION: 0/2000028 (file 00000001000000000000000x)\n", true},
		{"CHECKPOINT LOCATION: 0/2000060\nSTART WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n", true},
	}
	for _, tt := range tests {
		err := ValidateBackupLabel([]byte(tt.data))
		if (err != nil) != tt.wantErr {
			t.Errorf("ValidateBackupLabel(%q) = %v, wantErr %v", tt.data, err, tt.wantErr)
		}
		var ve *ValidationError
		if err != nil && !errors.As(err, &ve) {
			t.Errorf("ValidateBackupLabel error %v is not a ValidationError", err)
		}
	}
}

func TestMagicVersion(t *testing.T) {
	tests := []struct {
		magic uint16
		want  int
		ok    bool
	}{{0xD106, 13, true}, {0xD10D, 14, true}, {0xD110, 15, true}, {0xD113, 16, true}, {0xD116, 17, true}, {0x1234, 0, false}, {0, 0, false}}
	for _, tt := range tests {
		v, ok := MagicVersion(tt.magic)
		if v != tt.want || ok != tt.ok {
			t.Errorf("MagicVersion(0x%04X) = %d, %v; want %d, %v", tt.magic, v, ok, tt.want, tt.ok)
		}
	}
}

// synthHeader builds a first page header the way PostgreSQL lays it out.
func synthHeader(h PageHeader) []byte {
	b := make([]byte, LongHeaderSize)
	le := binary.LittleEndian
	le.PutUint16(b[0:], h.Magic)
	le.PutUint16(b[2:], h.Info)
	le.PutUint32(b[4:], h.Timeline)
	le.PutUint64(b[8:], uint64(h.PageAddr))
	le.PutUint32(b[16:], h.RemLen)
	le.PutUint64(b[24:], h.SystemID)
	le.PutUint32(b[32:], h.SegSize)
	le.PutUint32(b[36:], h.BlockSize)
	return b
}

func TestParseLongHeader(t *testing.T) {
	want := PageHeader{Magic: 0xD110, Info: XLPLongHeader, Timeline: 3, PageAddr: 0x12000000, RemLen: 7,
		SystemID: 7300000000000000001, SegSize: 16 << 20, BlockSize: 8192}
	got, err := ParseLongHeader(synthHeader(want))
	if err != nil || got != want {
		t.Fatalf("ParseLongHeader = %+v, %v; want %+v", got, err, want)
	}
	short := want
	short.Info = 0
	if _, err := ParseLongHeader(synthHeader(short)); err == nil {
		t.Error("accepted a header without XLP_LONG_HEADER")
	}
	if _, err := ParseLongHeader(make([]byte, 39)); err == nil {
		t.Error("accepted 39 bytes")
	}
}

func TestValidateSegmentSynthetic(t *testing.T) {
	const seg = 16 << 20
	const sys = 7300000000000000001
	base := PageHeader{Magic: 0xD110, Info: XLPLongHeader, Timeline: 2, PageAddr: 0x2000000, SystemID: sys, SegSize: seg, BlockSize: 8192}
	exp := Expect{SystemID: sys, SegSize: seg, Magic: 0xD110}
	mod := func(f func(*PageHeader)) []byte { h := base; f(&h); return synthHeader(h) }
	tests := []struct {
		desc    string
		name    string
		size    int64
		hdr     []byte
		exp     Expect
		wantErr string
	}{
		{"ok", "000000020000000000000002", seg, synthHeader(base), exp, ""},
		{"ok, no expectations", "000000020000000000000002", seg, synthHeader(base), Expect{}, ""},
		{"older tli on first page", "000000030000000000000002", seg, synthHeader(base), exp, ""},
		{"partial short", "000000020000000000000002.partial", 8192, synthHeader(base), exp, ""},
		{"partial too big", "000000020000000000000002.partial", seg + 1, synthHeader(base), exp, "larger than"},
		{"newer tli", "000000010000000000000002", seg, synthHeader(base), exp, "timeline 2"},
		{"tli 0", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.Timeline = 0 }), exp, "timeline 0"},
		{"renamed", "000000020000000000000003", seg, synthHeader(base), exp, "page address 0/2000000 does not match name 000000020000000000000003 (expects 0/3000000)"},
		{"truncated", "000000020000000000000002", 12345, synthHeader(base), exp, "size 12345 is not the segment size 16777216"},
		{"tiny", "000000020000000000000002", 10, synthHeader(base)[:10], exp, "too small"},
		{"sysid", "000000020000000000000002", seg, synthHeader(base), Expect{SystemID: 42}, "system identifier 7300000000000000001 is not this server's 42"},
		{"bad magic", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.Magic = 0x1234 }), exp, "not a WAL file: bad magic 0x1234"},
		{"big endian", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.Magic = 0x10D1 }), exp, "big-endian"},
		{"other version", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.Magic = 0xD113 }), exp, "PostgreSQL 16"},
		{"short header", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.Info = 0 }), exp, "long header"},
		{"bad flags", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.Info = 0x12 }), exp, "info bits"},
		{"hdr seg size", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.SegSize = 64 << 20 }), exp, "segment size 67108864 is not the segment size 16777216"},
		{"hdr seg size invalid", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.SegSize = 12345 }), Expect{}, "not a valid"},
		{"blcksz", "000000020000000000000002", seg, mod(func(h *PageHeader) { h.BlockSize = 3000 }), exp, "block size"},
		{"history", "00000002.history", seg, synthHeader(base), exp, "not a WAL segment"},
		{"name impossible", "000000020000000000000102", seg, synthHeader(base), exp, "impossible"},
	}
	for _, tt := range tests {
		n, err := Parse(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		err = ValidateSegment(n, tt.size, tt.hdr, tt.exp)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.desc, err)
			}
			continue
		}
		var ve *ValidationError
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ve) || ve.Name != tt.name {
			t.Errorf("%s: err = %v, want ValidationError with %q", tt.desc, err, tt.wantErr)
		}
	}
	n, _ := Parse("000000020000000000000002")
	err := ValidateSegment(n, seg, synthHeader(base), Expect{SegSize: 3})
	var ve *ValidationError
	if err == nil || errors.As(err, &ve) {
		t.Errorf("invalid expectation: err = %v, want a plain error", err)
	}
}

func TestLSNText(t *testing.T) {
	type doc struct {
		L LSN `json:"l"`
	}
	b, err := json.Marshal(doc{L: LSN(0x16B374D848)})
	if err != nil || string(b) != `{"l":"16/B374D848"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"l":"0/3000028"}`), &d); err != nil || d.L != 0x3000028 {
		t.Fatalf("unmarshal: %v %v", d.L, err)
	}
	if err := json.Unmarshal([]byte(`{"l":"zz"}`), &d); err == nil {
		t.Fatal("bad LSN accepted")
	}
}
