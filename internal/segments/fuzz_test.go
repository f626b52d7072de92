package segments

import (
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"000000010000000000000002", "00000002.history", "000000010000000000000002.00000028.backup",
		"000000010000000000000002.partial", "0000000a00000016000000b3", "", "a/b", "00000000.history",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if Dir(s) != "" {
				t.Fatalf("Dir(%q) = %q for a rejected name", s, Dir(s))
			}
			return
		}
		if n.Raw != s || n.Timeline == 0 {
			t.Fatalf("Parse(%q) = %+v", s, n)
		}
		again, err := Parse(n.Raw)
		if err != nil || again != n {
			t.Fatalf("Parse(%q) does not round-trip: %+v, %v", s, again, err)
		}
		if n.Kind == KindHistory {
			if HistoryFileName(n.Timeline) != s || Dir(s) != HistoryDir {
				t.Fatalf("history %q does not round-trip", s)
			}
			return
		}
		if n.SegmentName() != s[:24] || Dir(s) != s[:16] {
			t.Fatalf("%q: SegmentName %q Dir %q", s, n.SegmentName(), Dir(s))
		}
		for _, size := range []uint64{MinSegSize, 16 << 20, MaxSegSize} {
			if n.ValidFor(size) != nil {
				continue
			}
			if got := SegmentFileName(n.Timeline, n.SegNo(size), size); got != s[:24] {
				t.Fatalf("%q size %d: SegmentFileName = %q", s, size, got)
			}
		}
	})
}

func FuzzParseLongHeader(f *testing.F) {
	f.Add(synthHeader(PageHeader{Magic: 0xD110, Info: XLPLongHeader, Timeline: 1, PageAddr: 0x1000000, SystemID: 1, SegSize: 16 << 20, BlockSize: 8192}))
	f.Add(make([]byte, 40))
	f.Add([]byte{1, 2, 3})
	name, _ := Parse("000000010000000000000001")
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseLongHeader(b)
		if err == nil {
			if h.Info&XLPLongHeader == 0 || len(b) < LongHeaderSize {
				t.Fatalf("accepted %x", b)
			}
			if got := synthHeader(h); string(got[:16]) != string(b[:16]) || string(got[24:40]) != string(b[24:40]) {
				t.Fatalf("header does not round-trip: %x vs %x", got, b[:40])
			}
		}
		// Must never panic, whatever the bytes and size.
		_ = ValidateSegment(name, int64(len(b)), b, Expect{})
		_ = ValidateSegment(name, 16<<20, b, Expect{SystemID: 1, SegSize: 16 << 20, Magic: 0xD110})
	})
}

func FuzzParseHistory(f *testing.F) {
	f.Add(uint32(2), []byte("1\t0/3000000\tno recovery target specified\n"))
	f.Add(uint32(4), []byte("# c\n\n1\t0/3000000\tx\r\n2 0/5000000\n3\t1/0\tat restore point \"p\"\n"))
	f.Add(uint32(1), []byte("garbage"))
	f.Fuzz(func(t *testing.T, tli uint32, data []byte) {
		h, err := ParseHistory(tli, data)
		if err != nil {
			return
		}
		for i, e := range h {
			if e.Timeline == 0 || e.Timeline >= tli || (i > 0 && (e.Timeline <= h[i-1].Timeline || e.SwitchLSN < h[i-1].SwitchLSN)) {
				t.Fatalf("ParseHistory(%d, %q) returned an inconsistent %+v", tli, data, h)
			}
			if TimelineAt(h, tli, e.SwitchLSN) == e.Timeline {
				t.Fatalf("switch point %s still on timeline %d", e.SwitchLSN, e.Timeline)
			}
			if e.SwitchLSN > 0 && !CanReach(h, tli, e.Timeline, e.SwitchLSN-1) && (i == 0 || h[i-1].SwitchLSN < e.SwitchLSN) {
				t.Fatalf("timeline %d cannot reach %d just before its switch point", e.Timeline, tli)
			}
		}
		_, _ = ParseBackupLabel(data)
		_ = ValidateBackupLabel(data)
	})
}
