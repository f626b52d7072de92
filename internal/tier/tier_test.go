package tier

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/storage"
)

func put(t *testing.T, s storage.Store, key, body string) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, s storage.Store, key string) (string, error) {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// TestTiers: reads prefer the local tier and fall back to the repository; lists hold
// each key once; writes stay local; deletes reach both.
func TestTiers(t *testing.T) {
	ctx := context.Background()
	local, remote := storage.NewLocal(t.TempDir()), storage.NewLocal(t.TempDir())
	s := New(local, remote)
	put(t, local, "pg1/wals/a", "local a")
	put(t, remote, "pg1/wals/a", "remote a")
	put(t, remote, "pg1/wals/b", "remote b")
	put(t, local, "pg1/wals/c", "local c")
	put(t, remote, "pg2/wals/x", "other server")

	for key, want := range map[string]string{"pg1/wals/a": "local a", "pg1/wals/b": "remote b", "pg1/wals/c": "local c"} {
		if got, err := read(t, s, key); err != nil || got != want {
			t.Errorf("Get %s = %q, %v; want %q", key, got, err, want)
		}
		if i, err := s.Stat(ctx, key); err != nil || i.Size != int64(len(want)) {
			t.Errorf("Stat %s = %+v, %v; want size %d", key, i, err, len(want))
		}
	}
	if _, err := s.Get(ctx, "pg1/wals/z"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get of a key in neither tier: %v, want ErrNotFound", err)
	}
	var keys []string
	var sizes []int64
	if err := s.List(ctx, "pg1/", func(i storage.Info) error {
		keys, sizes = append(keys, i.Key), append(sizes, i.Size)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, " ") != "pg1/wals/a pg1/wals/b pg1/wals/c" || sizes[0] != int64(len("local a")) {
		t.Errorf("List: %v %v", keys, sizes)
	}

	put(t, s, "pg1/wals/d", "new")
	if _, err := remote.Stat(ctx, "pg1/wals/d"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Put reached the repository (the uploader's job): %v", err)
	}
	if err := s.Delete(ctx, "pg1/wals/a"); err != nil {
		t.Fatal(err)
	}
	for _, st := range []storage.Store{local, remote} {
		if _, err := st.Stat(ctx, "pg1/wals/a"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete left a copy: %v", err)
		}
	}
	if err := s.Delete(ctx, "pg1/wals/b"); err != nil {
		t.Errorf("Delete of a repository-only key: %v", err)
	}
	if err := s.Delete(ctx, "pg1/wals/b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Delete of a key in neither tier: %v, want ErrNotFound", err)
	}
	if New(local, nil) != storage.Store(local) {
		t.Error("without a repository the store is the local one")
	}
}

// batcher is a repository that deletes in batches and counts them.
type batcher struct {
	storage.Store
	batches [][]string
}

func (b *batcher) DeleteMany(ctx context.Context, keys []string) error {
	b.batches = append(b.batches, keys)
	for _, k := range keys {
		if err := b.Store.Delete(ctx, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// TestDeleteMany: a batch reaches both tiers, the repository in one batch per server.
func TestDeleteMany(t *testing.T) {
	ctx := context.Background()
	local := storage.NewLocal(t.TempDir())
	remote := &batcher{Store: storage.NewLocal(t.TempDir())}
	r := NewRouted(local, map[string]Opener{"pg1": func(context.Context) (storage.Store, error) { return remote, nil }})
	var keys []string
	for i := range 20 {
		k := "pg1/wals/" + string(rune('a'+i))
		keys = append(keys, k)
		if i%2 == 0 {
			put(t, local, k, "x")
		}
		put(t, remote.Store, k, "x")
	}
	put(t, local, "pg2/wals/a", "no repository")
	if err := r.DeleteMany(ctx, append(keys, "pg2/wals/a", "pg1/wals/never")); err != nil {
		t.Fatal(err)
	}
	if len(remote.batches) != 1 || len(remote.batches[0]) != 21 {
		t.Errorf("repository batches: %d (sizes %v), want one of 21", len(remote.batches), remote.batches)
	}
	for _, k := range append(keys, "pg2/wals/a") {
		if _, err := r.Stat(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s left: %v", k, err)
		}
	}
}

// down is a repository that cannot be reached.
type down struct{ storage.Store }

func (down) List(context.Context, string, func(storage.Info) error) error {
	return errors.New("dial tcp: connection refused")
}

// TestDegradedList: with Degraded set, a listing goes on with the local tier alone
// when the repository cannot be listed, and says why; unset, it is an error.
func TestDegradedList(t *testing.T) {
	ctx := context.Background()
	local := storage.NewLocal(t.TempDir())
	put(t, local, "pg1/wals/a", "x")
	s := &Store{Local: local, Remote: down{}}
	if err := s.List(ctx, "pg1/", func(storage.Info) error { return nil }); err == nil {
		t.Fatal("a repository that cannot be listed is not an error")
	}
	var cause error
	s.Degraded = func(err error) { cause = err }
	var keys []string
	if err := s.List(ctx, "pg1/", func(i storage.Info) error { keys = append(keys, i.Key); return nil }); err != nil || len(keys) != 1 || cause == nil {
		t.Fatalf("degraded List: %v %v, cause %v", keys, err, cause)
	}
}
