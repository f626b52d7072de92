//go:build !race

package pgtest

// raceEnabled is false: the test binary was built without -race.
const raceEnabled = false
