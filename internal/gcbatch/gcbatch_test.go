package gcbatch

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTune: the collector is off up to Limit, and an environment setting wins.
func TestTune(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	Tune()
	if p := debug.SetGCPercent(100); p != -1 {
		t.Fatalf("GC percent %d after Tune", p)
	}
	if l := debug.SetMemoryLimit(-1); l != Limit {
		t.Fatalf("memory limit %d after Tune", l)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOGC", "200")
	Tune()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GOGC set: GC percent %d", p)
	}
}
