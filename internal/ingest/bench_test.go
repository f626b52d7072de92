package ingest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// benchSegments returns real WAL segments for the benchmarks: those in
// $WALKEEPER_BENCH_WAL (scripts/bench.sh fills it with pgbench's WAL), else a few made by a
// throwaway cluster.
func benchSegments(b *testing.B) []string {
	dir := os.Getenv("WALKEEPER_BENCH_WAL")
	if dir == "" {
		b.Skip("set WALKEEPER_BENCH_WAL to a directory of real WAL segments (scripts/bench.sh does)")
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if len(e.Name()) == 24 {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		b.Fatalf("no WAL segments in %s", dir)
	}
	return out
}

func benchPipeline(b *testing.B, workers int) (*Pipeline, string, func()) {
	home := b.TempDir()
	idx, err := index.OpenBadger(filepath.Join(home, "index"), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := PipelineConfig{Name: "bench", IncomingDir: filepath.Join(home, "bench", "incoming"), ErrorsDir: filepath.Join(home, "bench", "errors"),
		Compression: "zstd", Workers: workers}
	p, err := NewPipeline(srv, storage.NewLocal(home), idx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	if err := fsutil.MkdirAll(srv.IncomingDir, 0o700); err != nil {
		b.Fatal(err)
	}
	return p, srv.IncomingDir, func() { idx.Close() }
}

// BenchmarkPipeline measures validate+compress+store+index+unlink throughput of raw WAL
// with the default zstd level and one worker per core, as the daemon runs by default; it
// reports MB/s in all and per core.
func BenchmarkPipeline(b *testing.B) {
	segs := benchSegments(b)
	data := make([][]byte, len(segs))
	var total int64
	for i, s := range segs {
		d, err := os.ReadFile(s)
		if err != nil {
			b.Fatal(err)
		}
		data[i] = d
		total += int64(len(d))
	}
	cores := runtime.GOMAXPROCS(0)
	b.SetBytes(total)
	var elapsed, cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		p, in, done := benchPipeline(b, cores)
		for i, s := range segs {
			if err := os.WriteFile(filepath.Join(in, filepath.Base(s)), data[i], 0o600); err != nil {
				b.Fatal(err)
			}
		}
		work := make(chan string, len(segs))
		for _, s := range segs {
			work <- filepath.Base(s)
		}
		close(work)
		b.StartTimer()
		t0, c0 := time.Now(), cpuTime()
		var wg sync.WaitGroup
		for range cores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for name := range work {
					r, err := p.Process(context.Background(), name)
					if err != nil || r.Outcome != Archived {
						b.Errorf("%s: %v %+v", name, err, r)
					}
				}
			}()
		}
		wg.Wait()
		elapsed += time.Since(t0)
		cpu += cpuTime() - c0
		b.StopTimer()
		done()
		b.StartTimer()
	}
	mbs := float64(total) * float64(b.N) / elapsed.Seconds() / 1e6
	b.ReportMetric(mbs/float64(cores), "MB/s/core")
	// Raw WAL per CPU-second of this process: what one core sustains, and stable when
	// other work shares the machine (wall-clock figures are not).
	b.ReportMetric(float64(total)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDropToIndexed measures the latency from a completed durable drop into
// incoming/ (archive-wal's return) to the committed index entry, through the real
// watcher; it reports p50 and p99 in milliseconds.
func BenchmarkDropToIndexed(b *testing.B) {
	segs := benchSegments(b)
	results := make(chan time.Time, 1)
	var in string
	stop := func() {}
	// start runs a fresh pipeline: segment names are archived once per server, so every
	// pass over the segments needs a new archive.
	start := func() {
		stop()
		p, dir, done := benchPipeline(b, 2)
		ctx, cancel := context.WithCancel(context.Background())
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			_ = p.Run(ctx, func(r Result) {
				if r.Outcome == Archived {
					results <- r.Indexed
				}
			})
		}()
		in = dir
		stop = func() { cancel(); <-finished; done() }
		time.Sleep(100 * time.Millisecond)
	}
	start()
	defer func() { stop() }()
	var lat []time.Duration
	n := 0
	for b.Loop() {
		s := segs[n%len(segs)]
		f, err := os.Open(s)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fsutil.WriteAtomic(filepath.Join(in, filepath.Base(s)), f, 0o600); err != nil {
			b.Fatal(err)
		}
		// The drop is complete when archive-wal would return to PostgreSQL: the file is
		// durable in incoming/. Latency runs from there to the committed index entry.
		t0 := time.Now()
		f.Close()
		lat = append(lat, (<-results).Sub(t0))
		n++
		if n%len(segs) == 0 {
			b.StopTimer()
			start()
			b.StartTimer()
		}
	}
	if os.Getenv("WALKEEPER_BENCH_VERBOSE") != "" {
		b.Logf("latencies in arrival order: %v", lat)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
