package restore

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// LowerPriority sets the nice value of every thread of this process. On Linux
// setpriority(PRIO_PROCESS, 0) changes the calling thread only, and a Go program's work
// runs on whichever of its threads the scheduler picks: the prefetcher that reniced
// itself that way decompressed at nice 0 on the runtime's other threads, competing
// with PostgreSQL's startup process for the CPU. Threads the runtime creates later are
// cloned from a reniced one and inherit the value; a second pass catches one created
// during the first. The prefetcher runs below PostgreSQL's startup process, which
// replays WAL on one core, so that it only uses what replay leaves idle: on a 2-core
// host a prefetcher at the same priority slowed replay down more than it saved.
func LowerPriority(nice int) error {
	for pass := 0; pass < 2; pass++ {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("lower priority: %w", err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && err != unix.ESRCH {
				return fmt.Errorf("lower priority of thread %d: %w", tid, err)
			}
		}
	}
	return nil
}
