package verify

import (
	"testing"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// BenchmarkFindChain: the gap finder over an archive of 200k segments (about 3 TiB of
// 16 MiB WAL) on two timelines, as `check` runs it for the oldest backup.
func BenchmarkFindChain(b *testing.B) {
	const n = 200_000
	names := make([]string, 0, n)
	for s := uint64(1); s <= n/2; s++ {
		names = append(names, seg(1, s))
	}
	for s := uint64(n / 2); s < n; s++ {
		if s%10_000 != 0 {
			names = append(names, seg(2, s))
		}
	}
	in := ChainInput{SegSize: mb16, Start: seg(1, 10), Segments: names,
		History: map[uint32][]segments.HistoryEntry{2: {sw(1, at(n/2, 0x1000))}}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch, err := FindChain(in)
		if err != nil || len(ch.Gaps) != 10 {
			b.Fatalf("%v %d gaps", err, len(ch.Gaps))
		}
	}
}
