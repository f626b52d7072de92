package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
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

// testSegment is a 1 MiB segment of system sysid whose first page header is valid for
// name (PostgreSQL 15's magic).
func testSegment(name string, sysid uint64) []byte {
	const size = 1 << 20
	n, err := segments.Parse(name)
	if err != nil {
		panic(err)
	}
	b := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xD110)
	le.PutUint16(b[2:], segments.XLPLongHeader)
	le.PutUint32(b[4:], n.Timeline)
	le.PutUint64(b[8:], uint64(n.StartLSN(size)))
	le.PutUint64(b[24:], sysid)
	le.PutUint32(b[32:], size)
	le.PutUint32(b[36:], 8192)
	return b
}

// TestWaitDurable: a valid copy waiting in incoming/ ends the wait only when the
// caller accepts waiting copies (no daemon would move it), an invalid one never, and a
// segment of another system is refused against the identity the caller knows.
func TestWaitDurable(t *testing.T) {
	ctx := context.Background()
	const seg = "000000010000000000000003"
	yes := func() bool { return true }
	no := func() bool { return false }
	for _, c := range []struct {
		name, file string
		data       []byte
		accept     func() bool
		id         record.Identity
		want       Place
	}{
		{"history waiting, no daemon", "00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"), yes, record.Identity{}, InIncoming},
		{"history waiting, the daemon runs", "00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"), no, record.Identity{}, 0},
		{"invalid history", "00000002.history", []byte("not a history\n"), yes, record.Identity{}, 0},
		{"segment of the known system", seg, testSegment(seg, 7), yes, record.Identity{SystemID: 7, SegSize: 1 << 20}, InIncoming},
		{"segment of another system", seg, testSegment(seg, 8), yes, record.Identity{SystemID: 7, SegSize: 1 << 20}, 0},
		{"segment, no identity known", seg, testSegment(seg, 8), yes, record.Identity{}, InIncoming},
		{"short segment", seg, testSegment(seg, 7)[:8192], yes, record.Identity{SystemID: 7, SegSize: 1 << 20}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := storage.NewLocal(t.TempDir())
			incoming := t.TempDir()
			if err := os.WriteFile(filepath.Join(incoming, c.file), c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := WaitDurable(ctx, store, "pg1", c.file, WaitOptions{Timeout: 30 * time.Millisecond, Poll: 10 * time.Millisecond,
				IncomingDir: incoming, AcceptWaiting: c.accept, Identity: c.id})
			if got != c.want || (c.want == 0) != errors.Is(err, ErrWaitTimeout) {
				t.Fatalf("WaitDurable = %v, %v; want %v", got, err, c.want)
			}
			// Once archived, the archive's copy is what counts, daemon or not.
			archiveAs(t, store, "pg1", c.file, compress.Zstd, c.data)
			if got, err := WaitDurable(ctx, store, "pg1", c.file, WaitOptions{IncomingDir: incoming, AcceptWaiting: c.accept}); got != InArchive || err != nil {
				t.Fatalf("archived: WaitDurable = %v, %v", got, err)
			}
		})
	}
}
