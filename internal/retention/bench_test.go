package retention

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// benchSegments is the size of the synthetic archive (WALKEEPER_BENCH_SEGMENTS
// overrides it for quick experiments).
var benchSegments = func() uint64 {
	if n, err := strconv.ParseUint(os.Getenv("WALKEEPER_BENCH_SEGMENTS"), 10, 64); err == nil && n >= 100_000 {
		return n
	}
	return 1_000_000
}()

// buildBenchIndex writes a synthetic index of n segments on timeline 1 (records only:
// the store holds no WAL files, so every deletion meets a missing object, which
// Apply tolerates) and four backups: REDUNDANCY 2 with the oldest pinned, as in the
// issue, so ~95% of the archive is deleted.
func buildBenchIndex(tb testing.TB, dir string, n uint64) {
	b, err := index.OpenBadger(dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	arrived := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]record.WALFile, 0, 20000)
	for s := uint64(0); s < n; s++ {
		name := segments.SegmentFileName(1, s, seg)
		batch = append(batch, record.WALFile{Name: name, Kind: "segment", Timeline: 1, SegNo: s, StartLSN: segments.SegStart(s, seg),
			RawSize: seg, StoredSize: 4 << 20, Compression: "zstd", SHA256: strings.Repeat("ab", 32),
			ArrivedAt: arrived.Add(time.Duration(s) * time.Second), Source: record.SourceArchive, Key: archive.WALKey(srv, name, "zstd")})
		if len(batch) == cap(batch) || s == n-1 {
			if err := b.PutWALBatch(ctx, srv, batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i, at := range []uint64{1000, n / 2, n - n/20, n - 10} {
		id := fmt.Sprintf("2026110%dT000000", i+1)
		end := now.Add(-time.Duration(10-i) * Day)
		if err := b.PutBackup(ctx, srv, record.Backup{ID: id, Server: srv, Status: record.StatusDone, Keep: i == 0, Timeline: 1,
			BeginLSN: segments.LSN(at*seg + 0x28), EndLSN: segments.LSN((at+1)*seg + 0x100),
			BeginTime: end.Add(-time.Hour), EndTime: end, SegSize: seg}); err != nil {
			tb.Fatal(err)
		}
	}
}

// timedIndex measures the time spent in the index's scans and deletes.
type timedIndex struct {
	index.Index
	del, scan atomic.Int64
}

func (t *timedIndex) DeleteWAL(ctx context.Context, s string, n []string) error {
	t0 := time.Now()
	defer func() { t.del.Add(int64(time.Since(t0))) }()
	return t.Index.DeleteWAL(ctx, s, n)
}
func (t *timedIndex) ScanWAL(ctx context.Context, s string, r index.WALRange, fn func(record.WALFile) error) error {
	t0 := time.Now()
	defer func() { t.scan.Add(int64(time.Since(t0))) }()
	return t.Index.ScanWAL(ctx, s, r, fn)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM reads the process's peak resident set size in bytes.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// rssParts reads the anonymous and file-backed parts of the current RSS in bytes.
func rssParts() (anon, file int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1, -1
	}
	for _, l := range strings.Split(string(data), "\n") {
		for _, p := range []struct {
			name string
			dst  *int64
		}{{"RssAnon:", &anon}, {"RssFile:", &file}} {
			if v, ok := strings.CutPrefix(l, p.name); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				*p.dst = kb << 10
			}
		}
	}
	return anon, file
}

// resetHWM makes the peak RSS start again from the current RSS (Linux >= 4.0), so the
// figure covers only what follows, not building the synthetic index.
func resetHWM() error { return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkRetention1M: a plan (dry run: BuildInput, Evaluate and a count of each range
// through the index) and its application over an index of 1,000,000 segments, opened
// fresh as a CLI run would. Reports seconds for each phase and the peak RSS of the
// process while they run. Run with -benchtime 1x (scripts/bench-retention.sh).
func BenchmarkRetention1M(b *testing.B) {
	for range b.N {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "idx")
		buildBenchIndex(b, dir, benchSegments)
		store := storage.NewLocal(filepath.Join(b.TempDir(), "home"))
		restoreGC := TuneGC() // as `walkeeper retention` runs
		runtime.GC()
		debug.FreeOSMemory()
		if err := resetHWM(); err != nil {
			b.Logf("cannot reset VmHWM (%v): the peak includes building the index", err)
		}
		stopSampler, samplerDone := make(chan struct{}), make(chan struct{})
		var maxAnon, maxFile int64
		go func() {
			defer close(samplerDone)
			for {
				select {
				case <-stopSampler:
					return
				case <-time.After(50 * time.Millisecond):
				}
				an, fi := rssParts()
				maxAnon, maxFile = max(maxAnon, an), max(maxFile, fi)
			}
		}()
		b.StartTimer()

		t0, c0 := time.Now(), cpuTime()
		idx, err := index.OpenBadger(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		cfg, _ := ParseConfig("REDUNDANCY 2", "main", 0, 7*Day)
		ti := &timedIndex{Index: idx}
		a := &Applier{Index: ti, Store: store, Server: srv, ServerDir: filepath.Join(store.Root(), srv), SegSize: seg, Config: cfg,
			Now: func() time.Time { return now }}
		dry, err := a.Run(ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		t1, c1 := time.Now(), cpuTime()
		res, err := a.Run(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		t2, c2 := time.Now(), cpuTime()
		b.Logf("apply: DeleteWAL %v, ScanWAL %v (both runs)", time.Duration(ti.del.Load()), time.Duration(ti.scan.Load()))
		if err := idx.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		restoreGC()

		want := int64(1000 + (benchSegments - benchSegments/20 - 1001 - 1))
		if dry.WALSegments != want || res.WALSegments != want {
			b.Fatalf("deleted %d segments (dry run %d), want %d", res.WALSegments, dry.WALSegments, want)
		}
		left := 0
		idx2, err := index.OpenBadger(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		spans, _ := idx2.WALTimelines(ctx, srv)
		_ = idx2.ScanWAL(ctx, srv, index.WALRange{}, func(record.WALFile) error { left++; return nil })
		idx2.Close()
		if uint64(left) != benchSegments-uint64(want) || len(spans) != 1 {
			b.Fatalf("%d records left, want %d", left, benchSegments-uint64(want))
		}
		hwm := vmHWM()
		close(stopSampler)
		<-samplerDone
		b.Logf("peak RssAnon %d MB, peak RssFile %d MB", maxAnon>>20, maxFile>>20)
		b.ReportMetric(t1.Sub(t0).Seconds(), "plan-s")
		b.ReportMetric(t2.Sub(t1).Seconds(), "apply-s")
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MB")
		b.ReportMetric(float64(res.WALSegments), "segments-deleted")
		b.ReportMetric((c1 - c0).Seconds(), "plan-cpu-s")
		b.ReportMetric((c2 - c1).Seconds(), "apply-cpu-s")
		if la, err := os.ReadFile("/proc/loadavg"); err == nil {
			b.Logf("load average during the run: %s", strings.TrimSpace(string(la)))
		}
		b.Logf("%d segments: plan (dry run) %.2fs, apply %.2fs (%d segments, %s), peak RSS %.0f MB",
			benchSegments, t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), res.WALSegments, fmt.Sprint(res.WALBytes>>30, " GiB stored"), float64(hwm)/(1<<20))
	}
}
