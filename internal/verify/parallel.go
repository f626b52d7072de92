package verify

import (
	"context"
	"sync"
	"sync/atomic"
)

// parallel runs check(0..n-1) on up to workers goroutines (at least one) and gathers the
// problems found, unordered, with the bytes read. It stops early when ctx ends.
func parallel[P any](ctx context.Context, workers, n int, check func(i int) (*P, int64)) ([]P, int64) {
	var (
		mu       sync.Mutex
		next     atomic.Int64
		bytes    atomic.Int64
		wg       sync.WaitGroup
		problems []P
	)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				p, b := check(i)
				bytes.Add(b)
				if p != nil {
					mu.Lock()
					problems = append(problems, *p)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return problems, bytes.Load()
}
