package restore

import (
	"reflect"
	"testing"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// TestSegmentCandidates028: PostgreSQL's recovery test 028 history (timeline 3 left
// timeline 2 at 0/3018C48, before timeline 2 itself began at 0/3018CB0): segments are
// tried in XLogFileReadAnyTLI's order, and an ordinary history keeps its answer.
func TestSegmentCandidates028(t *testing.T) {
	const seg = 16 << 20
	tl := &Timelines{History: map[uint32][]segments.HistoryEntry{
		2: {{Timeline: 1, SwitchLSN: 0x3018CB0}},
		3: {{Timeline: 1, SwitchLSN: 0x3018CB0}, {Timeline: 2, SwitchLSN: 0x3018C48}},
		5: {{Timeline: 1, SwitchLSN: 0x3000000}, {Timeline: 4, SwitchLSN: 0x5000000}},
	}}
	for _, tt := range []struct {
		tli   uint32
		segNo uint64
		want  []uint32
	}{
		{3, 2, []uint32{1}},
		{3, 3, []uint32{3, 2, 1}},
		{3, 4, []uint32{3, 2, 1}},
		{2, 2, []uint32{1}},
		{2, 3, []uint32{2, 1}},
		{5, 2, []uint32{1}},
		{5, 3, []uint32{4, 1}},
		{5, 5, []uint32{5, 4, 1}},
		{1, 9, []uint32{1}},
	} {
		if got := tl.SegmentCandidates(tt.tli, tt.segNo, seg); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SegmentCandidates(%d, %d) = %v, want %v", tt.tli, tt.segNo, got, tt.want)
		}
	}
}
