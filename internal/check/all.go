package check

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Parallel is how many servers RunAll checks at once: an unreachable one costs a
// connect timeout, which should not add up over `check all`.
const Parallel = 4

// RunAll runs the checks of every server, Parallel at a time, and returns their
// results in the order of deps.
func RunAll(ctx context.Context, deps []Deps) []Result {
	return runAll(ctx, deps, Parallel, Run)
}

func runAll(ctx context.Context, deps []Deps, parallel int, run func(context.Context, Deps) []Result) []Result {
	per := make([][]Result, len(deps))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, d := range deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			per[i] = run(ctx, d)
		}()
	}
	wg.Wait()
	results := []Result{}
	for _, rs := range per {
		results = append(results, rs...)
	}
	return results
}

// WriteText renders results for a DBA: a heading per server, one line per check, the
// hint after a failure.
func WriteText(w io.Writer, results []Result) {
	last := ""
	for _, r := range results {
		if r.Server != last {
			fmt.Fprintf(w, "Server %s:\n", r.Server)
			last = r.Server
		}
		if r.OK {
			fmt.Fprintf(w, "  %s: OK (%s)\n", r.Check, r.Detail)
			continue
		}
		line := fmt.Sprintf("  %s: FAILED (%s)", r.Check, r.Detail)
		if r.Hint != "" {
			line += " hint: " + r.Hint
		}
		fmt.Fprintln(w, line)
	}
}
