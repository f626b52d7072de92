package check

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/config"
)

func TestRunAllOrderAndBound(t *testing.T) {
	var deps []Deps
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		deps = append(deps, Deps{Server: &config.Server{Name: n}})
	}
	var mu sync.Mutex
	running, most := 0, 0
	run := func(_ context.Context, d Deps) []Result {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond) // long enough for the others to pile up
		mu.Lock()
		running--
		mu.Unlock()
		return []Result{{Server: d.Server.Name, Check: "one", OK: true}, {Server: d.Server.Name, Check: "two"}}
	}
	got := runAll(context.Background(), deps, 3, run)
	if len(got) != 14 {
		t.Fatalf("%d results, want 14", len(got))
	}
	for i, r := range got {
		if want := deps[i/2].Server.Name; r.Server != want {
			t.Errorf("result %d is of %s, want %s (results in the order of the servers)", i, r.Server, want)
		}
	}
	if most > 3 || most < 2 {
		t.Errorf("%d servers checked at once, want at most 3 (and more than one)", most)
	}
	if got := runAll(context.Background(), nil, 3, run); got == nil || len(got) != 0 {
		t.Errorf("no servers: %#v, want an empty list (JSON [])", got)
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	WriteText(&b, []Result{
		{Server: "pg1", Check: CheckErrors, OK: true, Detail: "none"},
		{Server: "pg1", Check: CheckDaemon, Detail: "not running", Hint: "start `walkeeper watch`"},
		{Server: "pg2", Check: CheckErrors, Detail: "2 file(s)"},
	})
	want := "Server pg1:\n  " + CheckErrors + ": OK (none)\n  " + CheckDaemon + ": FAILED (not running) hint: start `walkeeper watch`\n" +
		"Server pg2:\n  " + CheckErrors + ": FAILED (2 file(s))\n"
	if b.String() != want {
		t.Errorf("WriteText:\n%s\nwant\n%s", b.String(), want)
	}
}
