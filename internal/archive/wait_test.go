package archive

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// archiveAs stores data as ingest would: compressed with codec at WALKey.
func archiveAs(t *testing.T, store storage.Store, server, name, codec string, data []byte) {
	t.Helper()
	enc, err := compress.EncodeAll(codec, 0, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), WALKey(server, name, codec), bytes.NewReader(enc)); err != nil {
		t.Fatal(err)
	}
}

func TestWaitArchived(t *testing.T) {
	ctx := context.Background()
	const name = "000000010000000000000003"
	t.Run("arrives while waiting", func(t *testing.T) {
		store := storage.NewLocal(t.TempDir())
		done := make(chan error, 1)
		go func() { done <- WaitArchived(ctx, store, "pg1", name, time.Minute, 10*time.Millisecond) }()
		time.Sleep(50 * time.Millisecond)
		archiveAs(t, store, "pg1", name, compress.Zstd, []byte("x"))
		if err := <-done; err != nil {
			t.Errorf("WaitArchived = %v, want nil once the file is archived", err)
		}
	})
	t.Run("already archived, any codec", func(t *testing.T) {
		store := storage.NewLocal(t.TempDir())
		archiveAs(t, store, "pg1", name, compress.None, []byte("x"))
		if err := WaitArchived(ctx, store, "pg1", name, 0, time.Hour); err != nil {
			t.Errorf("WaitArchived = %v", err)
		}
	})
	t.Run("times out", func(t *testing.T) {
		store := storage.NewLocal(t.TempDir())
		archiveAs(t, store, "pg1", "000000010000000000000002", compress.Zstd, []byte("x"))
		err := WaitArchived(ctx, store, "pg1", name, 30*time.Millisecond, 10*time.Millisecond)
		if !errors.Is(err, ErrWaitTimeout) || !strings.Contains(err.Error(), name) {
			t.Errorf("WaitArchived = %v, want ErrWaitTimeout naming %s", err, name)
		}
	})
	t.Run("ends with its context", func(t *testing.T) {
		store := storage.NewLocal(t.TempDir())
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := WaitArchived(cctx, store, "pg1", name, time.Minute, time.Hour); !errors.Is(err, context.Canceled) {
			t.Errorf("WaitArchived = %v, want context.Canceled", err)
		}
	})
}
