// Package bufpool recycles large byte buffers (WAL segments, their compressed forms)
// across a long-running process.
//
// Not a sync.Pool: every GC empties that one, and a fresh 16 MiB buffer costs page faults
// (tens of milliseconds on a VM) on the latency path of the next segment. A Pool keeps a
// bounded number of buffers for good instead.
package bufpool

// Pool keeps up to its capacity of buffers, each at most maxCap bytes.
type Pool struct {
	ch     chan []byte
	maxCap int
}

// New returns a pool that keeps up to n buffers of at most maxCap bytes each (larger ones
// are left to the GC).
func New(n, maxCap int) *Pool { return &Pool{ch: make(chan []byte, n), maxCap: maxCap} }

// Get returns an empty buffer with room for at least size bytes: a kept one when the
// next in line is large enough, else a new one.
func (p *Pool) Get(size int) []byte {
	select {
	case b := <-p.ch:
		if cap(b) >= size {
			return b[:0]
		}
	default:
	}
	return make([]byte, 0, size)
}

// Put hands a buffer back (dropped when the pool is full or the buffer too large).
func (p *Pool) Put(b []byte) {
	if cap(b) == 0 || cap(b) > p.maxCap {
		return
	}
	select {
	case p.ch <- b[:0]:
	default:
	}
}
