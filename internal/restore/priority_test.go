package restore

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestLowerPriorityAllThreads runs LowerPriority in a child process (it cannot be
// undone without privileges) and checks the nice value of every one of its threads.
func TestLowerPriorityAllThreads(t *testing.T) {
	if os.Getenv("WALKEEPER_LOWER_PRIORITY_CHILD") == "1" {
		if err := LowerPriority(10); err != nil {
			t.Fatal(err)
		}
		// Make the runtime start more threads after the call, too.
		done := make(chan bool)
		for i := 0; i < 4; i++ {
			go func() {
				x := 0
				for j := 0; j < 20_000_000; j++ {
					x += j
				}
				done <- x > 0
			}()
		}
		for i := 0; i < 4; i++ {
			<-done
		}
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// Field 19 is the nice value; the command name (field 2) has no spaces here.
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
			if nice, _ := strconv.Atoi(f[16]); nice != 10 {
				t.Errorf("thread %s at nice %d, want 10", e.Name(), nice)
			}
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLowerPriorityAllThreads$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WALKEEPER_LOWER_PRIORITY_CHILD=1", "GOMAXPROCS=4")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
