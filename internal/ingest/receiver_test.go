package ingest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// rig is an in-process receiver plus the archive pipeline behind it, for one server.
type rig struct {
	home, streaming, incoming string
	idx                       *index.Badger
	store                     *storage.Local
	rcv                       *Receiver
	stopRcv                   func()
	stopPipe                  func()
	log                       *slog.Logger
	// defaults, when set, starts receivers with the production status interval and
	// backoff instead of the tests' shorter ones.
	defaults bool
}

type testWriter struct {
	t  testing.TB
	mu sync.Mutex
	on bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.on {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func newRig(t *testing.T, conninfo string) *rig { t.Helper(); return newRigWith(t, conninfo, false) }

func (r *rig) startReceiver(t *testing.T, conninfo string, reset bool) {
	t.Helper()
	cfg := ReceiverConfig{Server: "pg1", Conninfo: conninfo, SlotName: "walkeeper_pg1", CreateSlot: true,
		StreamingDir: r.streaming, IncomingDir: r.incoming, Reset: reset, StatusInterval: time.Second,
		MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second, Log: r.log,
		ArchivedEnd: func(ctx context.Context) (string, error) {
			st, err := r.idx.WALStats(ctx, "pg1")
			return st.LastSegment, err
		}}
	if r.defaults {
		cfg.StatusInterval, cfg.MinBackoff, cfg.MaxBackoff = 0, 0, 0
	}
	rcv, err := NewReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rcv.Run(ctx) }()
	var once sync.Once
	r.rcv = rcv
	r.stopRcv = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("receiver: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("receiver did not stop within 30s of cancellation")
			}
		})
	}
	t.Cleanup(r.stopRcv)
}

// archived lists the names the index holds for pg1.
func (r *rig) archived(t *testing.T) map[string]record.WALFile {
	t.Helper()
	out := map[string]record.WALFile{}
	if err := r.idx.ScanWAL(context.Background(), "pg1", index.WALRange{}, func(f record.WALFile) error {
		out[f.Name] = f
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitArchived waits until name is in the index.
func (r *rig) waitArchived(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	wktest.Eventually(t, timeout, name+" to be archived", func() bool {
		_, err := r.idx.GetWAL(context.Background(), "pg1", name)
		return err == nil
	})
}

// contiguous fails unless the timeline's segments in names form one run without holes,
// and returns the first and last segment numbers.
func contiguous(t *testing.T, names []string, tli uint32, segSize uint64) (first, last uint64) {
	t.Helper()
	var nums []uint64
	for _, n := range names {
		p, err := segments.Parse(n)
		if err != nil || p.Kind != segments.KindSegment || p.Timeline != tli {
			continue
		}
		nums = append(nums, p.SegNo(segSize))
	}
	if len(nums) == 0 {
		t.Fatalf("no segments of timeline %d in %v", tli, names)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	for i := 1; i < len(nums); i++ {
		if nums[i] != nums[i-1]+1 {
			t.Fatalf("gap in timeline %d: segment %s is followed by %s (archive: %v)", tli,
				segments.SegmentFileName(tli, nums[i-1], segSize), segments.SegmentFileName(tli, nums[i], segSize), names)
		}
	}
	return nums[0], nums[len(nums)-1]
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

const segSize16 = 16 << 20

func mustSegNo(t *testing.T, name string) uint64 {
	t.Helper()
	n, err := segments.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	return n.SegNo(segSize16)
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// daemonReceiver is the receiver state the running daemon serves at /v1/info.
func daemonReceiver(t *testing.T, home string) map[string]any {
	t.Helper()
	c, err := daemon.Dial(home)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := info.Servers["pg1"].Receiver.(map[string]any)
	return rs
}
