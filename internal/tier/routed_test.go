package tier

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// TestRouted: each server's keys go to its own tiers; a repository is opened once, and
// only when the local tier cannot answer; a repository that cannot be opened is an
// error naming the server, never "not found".
func TestRouted(t *testing.T) {
	ctx := context.Background()
	local, remote := storage.NewLocal(t.TempDir()), storage.NewLocal(t.TempDir())
	opened := 0
	r := NewRouted(local, map[string]Opener{
		"pg1": func(context.Context) (storage.Store, error) { opened++; return remote, nil },
		"down": func(context.Context) (storage.Store, error) {
			return nil, errors.New("dial tcp 10.0.0.9:443: connection refused")
		},
	})
	put(t, local, "pg1/wals/a", "local a")
	put(t, remote, "pg1/wals/b", "remote b")
	put(t, remote, "pg2/wals/x", "pg2 has no repository: never read from there")
	put(t, local, "pg2/wals/y", "pg2 local")

	if got, err := read(t, r, "pg1/wals/a"); err != nil || got != "local a" || opened != 0 {
		t.Fatalf("local hit: %q %v, repository opened %d times (want 0)", got, err, opened)
	}
	if got, err := read(t, r, "pg1/wals/b"); err != nil || got != "remote b" || opened != 1 {
		t.Fatalf("repository fallback: %q %v, opened %d", got, err, opened)
	}
	if _, err := r.Get(ctx, "pg2/wals/x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("pg2 read another server's repository: %v", err)
	}
	var keys []string
	collect := func(i storage.Info) error { keys = append(keys, i.Key); return nil }
	if err := r.List(ctx, "pg1/", collect); err != nil || strings.Join(keys, " ") != "pg1/wals/a pg1/wals/b" {
		t.Errorf("List pg1/: %v %v", keys, err)
	}
	keys = nil
	if err := r.List(ctx, "pg", collect); err != nil || strings.Join(keys, " ") != "pg1/wals/a pg1/wals/b pg2/wals/x pg2/wals/y" {
		// "pg" matches pg1's repository, which holds a stray pg2 key: listed as stored.
		t.Errorf("List pg: %v %v", keys, err)
	}
	if opened != 1 {
		t.Errorf("repository opened %d times, want once", opened)
	}
	_, err := r.Get(ctx, "down/wals/z")
	if err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "repository of down: dial tcp") {
		t.Errorf("unreachable repository: %v, want an error naming the server and the cause", err)
	}
	down := false
	retry := NewRouted(local, map[string]Opener{"pg1": func(context.Context) (storage.Store, error) {
		if !down {
			down = true
			return nil, errors.New("no route to host")
		}
		return remote, nil
	}})
	if _, err := retry.Get(ctx, "pg1/wals/b"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("first open fails: %v", err)
	}
	if got, err := read(t, retry, "pg1/wals/b"); err != nil || got != "remote b" {
		t.Errorf("a repository back after a failed open is not used: %q %v", got, err)
	}
	if s, err := r.Repository(ctx, "pg2"); s != nil || err != nil {
		t.Errorf("Repository(pg2) = %v, %v; want none", s, err)
	}
}
