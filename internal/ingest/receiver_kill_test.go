package ingest

import (
	"sync"
	"testing"
	"time"
)

// commitLog records when each commit of a writer returned.
type commitLog struct {
	mu    sync.Mutex
	times []time.Time
	err   error
}

func (l *commitLog) snapshot() ([]time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.times...), l.err
}

// longestGap is the longest time between two consecutive commits from the last one
// before t on: the time a kill at t kept commits waiting.
func longestGap(times []time.Time, t time.Time) time.Duration {
	i := len(times) - 1
	for i > 0 && !times[i].Before(t) {
		i--
	}
	var gap time.Duration
	for ; i+1 < len(times); i++ {
		gap = max(gap, times[i+1].Sub(times[i]))
	}
	return gap
}

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	for _, c := range []struct {
		times []time.Time
		kill  int
		want  time.Duration
	}{
		// The gap spanning the kill counts, earlier gaps do not.
		{at(0, 5000, 5010, 5020, 6500, 6510), 5015, 1480 * time.Millisecond},
		{at(0, 10, 20, 30), 25, 10 * time.Millisecond},
		{at(0, 10, 900, 910), 15, 890 * time.Millisecond},
	} {
		if got := longestGap(c.times, t0.Add(time.Duration(c.kill)*time.Millisecond)); got != c.want {
			t.Errorf("longestGap(kill at %d) = %v, want %v", c.kill, got, c.want)
		}
	}
}
