//go:build race

package pgtest

// raceEnabled: the test binary runs under the race detector, so Walkeeper builds the
// walkeeper binary with -race too (the daemon's goroutines are where races would live).
const raceEnabled = true
