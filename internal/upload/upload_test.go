package upload

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/basebackup/bbtest"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// flaky is a repository that records the order of Puts and fails while down.
type flaky struct {
	storage.Store
	mu   sync.Mutex
	down bool
	puts []string
}

func (f *flaky) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		_, _ = io.Copy(io.Discard, io.LimitReader(r, 100)) // a connection cut mid-body
		return 0, errors.New("503 SlowDown")
	}
	n, err := f.Store.Put(ctx, key, r)
	f.mu.Lock()
	f.puts = append(f.puts, key)
	f.mu.Unlock()
	return n, err
}

func (f *flaky) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *flaky) order() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.puts...)
}

func put(t *testing.T, s storage.Store, key, body string) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func walKey(n int) string {
	return archive.WALKey("pg1", "00000001000000000000000"+string(rune('0'+n)), "zstd")
}

// TestUploader: what was archived before the daemon started and what is archived while
// it runs reaches the repository byte for byte; a DONE backup goes up with its
// backup.info last, a backup in progress not at all; while the repository fails,
// nothing local is touched and the uploads resume when it is back.
func TestUploader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	localDir := t.TempDir()
	local := storage.NewLocal(localDir)
	remote := &flaky{Store: storage.NewLocal(t.TempDir())}
	put(t, local, walKey(1), "segment 1")
	put(t, local, walKey(2), "segment 2")
	put(t, remote.Store, walKey(1), "segment 1") // uploaded by an earlier daemon
	b := bbtest.Write(t, local, "pg1", "20261202T010000", []bbtest.File{
		{Path: "PG_VERSION", Data: []byte("15\n")}, {Path: "base/1/1259", Data: make([]byte, 300<<10)},
	}, 1<<10, 1<<20, nil)
	started := record.Backup{ID: "20261202T020000", Server: "pg1", Status: record.StatusStarted, Timeline: 1}
	if err := basebackup.SaveInfo(ctx, local, started); err != nil {
		t.Fatal(err)
	}
	put(t, local, archive.BackupPrefix("pg1", started.ID)+"bundles/000001.zst", "half a backup")

	u := New(Options{Server: "pg1", Local: local, Remote: remote, Rescan: 50 * time.Millisecond, Retry: 10 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()

	infoKey := archive.BackupInfoKey("pg1", b.Info.ID)
	eventually(t, "the backup's backup.info in the repository", func() bool {
		for _, k := range remote.order() {
			if k == infoKey {
				return true
			}
		}
		return false
	})
	puts := remote.order()
	seenInfo, members := false, 0
	for _, k := range puts {
		switch {
		case k == infoKey:
			seenInfo = true
		case strings.HasPrefix(k, archive.BackupPrefix("pg1", b.Info.ID)):
			members++
			if seenInfo {
				t.Errorf("%s uploaded after its backup.info: %v", k, puts)
			}
		}
	}
	if members < 4 {
		t.Errorf("the backup's objects uploaded: %v", puts)
	}
	for _, k := range puts {
		if k == walKey(1) {
			t.Errorf("%s was uploaded again though the repository held it", k)
		}
		if strings.Contains(k, started.ID) {
			t.Errorf("%s of a backup in progress was uploaded", k)
		}
	}

	remote.setDown(true)
	put(t, local, walKey(3), "segment 3")
	u.Archived(walKey(3))
	eventually(t, "the failure in the stats", func() bool { return u.Stats().LastError != "" })
	if s := u.Stats(); s.Pending != 1 || s.OldestPending.IsZero() {
		t.Errorf("stats while down: %+v, want 1 pending", s)
	}
	if _, err := local.Stat(ctx, walKey(3)); err != nil {
		t.Fatalf("the local copy went while the repository was down: %v", err)
	}
	if _, err := remote.Stat(ctx, walKey(3)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a failed upload left an object: %v", err)
	}
	remote.setDown(false)
	eventually(t, "segment 3 in the repository", func() bool {
		rc, err := remote.Get(ctx, walKey(3))
		if err != nil {
			return false
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		return string(got) == "segment 3"
	})
	eventually(t, "nothing pending", func() bool { return u.Stats().Pending == 0 })

	// A pin rewrites backup.info: the newer local copy goes up again.
	time.Sleep(20 * time.Millisecond)
	b.Info.Keep = true
	if err := basebackup.SaveInfo(ctx, local, b.Info); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pinned backup.info in the repository", func() bool {
		got, err := basebackup.LoadInfo(ctx, remote, "pg1", b.Info.ID)
		return err == nil && got.Keep
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLocalWALRetention: a local WAL copy goes only once the repository holds the same
// size, and only when old enough.
func TestLocalWALRetention(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	localDir := t.TempDir()
	local, remote := storage.NewLocal(localDir), storage.NewLocal(t.TempDir())
	put(t, local, walKey(1), "old, uploaded")
	put(t, local, walKey(2), "old, the repository's copy differs")
	put(t, local, walKey(3), "new")
	put(t, remote, walKey(2), "short")
	old := time.Now().Add(-2 * time.Hour)
	for _, n := range []int{1, 2} {
		p := filepath.Join(localDir, filepath.FromSlash(walKey(n)))
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	u := New(Options{Server: "pg1", Local: local, Remote: remote, Rescan: 20 * time.Millisecond, LocalWALRetention: time.Hour})
	go func() { _ = u.Run(ctx) }()
	eventually(t, "the uploaded old copy removed locally", func() bool {
		_, err := local.Stat(ctx, walKey(1))
		return errors.Is(err, storage.ErrNotFound)
	})
	time.Sleep(100 * time.Millisecond)
	for _, n := range []int{2, 3} {
		if _, err := local.Stat(ctx, walKey(n)); err != nil {
			t.Errorf("%s removed locally: %v", path.Base(walKey(n)), err)
		}
	}
	if _, err := remote.Stat(ctx, walKey(1)); err != nil {
		t.Errorf("the repository's copy: %v", err)
	}
}
