package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// validSeg is a segment whose first page header passes ingest's validation for the
// test archive's identity (system 1, 1 MiB segments, PostgreSQL 15's magic).
func validSeg(name string, fill byte) []byte {
	n, err := segments.Parse(name)
	if err != nil {
		panic(err)
	}
	b := bytes.Repeat([]byte{fill}, testSeg)
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xD110)
	le.PutUint16(b[2:], segments.XLPLongHeader)
	le.PutUint32(b[4:], n.Timeline)
	le.PutUint64(b[8:], uint64(n.StartLSN(testSeg)))
	le.PutUint32(b[16:], 0)
	le.PutUint64(b[24:], 1)
	le.PutUint32(b[32:], testSeg)
	le.PutUint32(b[36:], 8192)
	return b
}

func dropFile(t *testing.T, incoming, name string, data []byte) {
	t.Helper()
	if _, err := ingest.DropData(incoming, name, data); err != nil {
		t.Fatal(err)
	}
}

// TestGetFromIncoming (invariant 9): what archive-wal made durable in incoming/ is
// served at once, validated; an invalid copy is never served (the next valid copy in
// arrival order is); history files waiting there are timelines restore knows.
func TestGetFromIncoming(t *testing.T) {
	ctx := context.Background()
	store, home := newArchive(t)
	incoming := filepath.Join(home, "pg1", "incoming")
	seg := func(tli uint32, n uint64) string { return segments.SegmentFileName(tli, n, testSeg) }
	good := validSeg(seg(1, 3), 'a')
	dropFile(t, incoming, seg(1, 3), good)
	bad := validSeg(seg(1, 4), 'b')
	binary.LittleEndian.PutUint64(bad[24:], 99) // another system
	dropFile(t, incoming, seg(1, 4), bad)
	hist := []byte("1\t0/500000\tno recovery target specified\n")
	dropFile(t, incoming, "00000002.history", hist)
	dropFile(t, incoming, "00000003.history", []byte("not a history\n"))

	o := GetOptions{IncomingDir: incoming}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	for _, c := range []struct {
		name string
		want []byte
	}{{seg(1, 3), good}, {"00000002.history", hist}} {
		from, err := Get(ctx, store, "pg1", c.name, dest, o)
		if err != nil || from != FromIncoming {
			t.Fatalf("%s: from %q err %v, want %q", c.name, from, err, FromIncoming)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, c.want) {
			t.Fatalf("%s: content differs", c.name)
		}
	}
	for _, name := range []string{seg(1, 4), "00000003.history"} {
		if _, err := Get(ctx, store, "pg1", name, dest, o); !errors.Is(err, ErrNotArchived) {
			t.Errorf("invalid %s served: %v", name, err)
		}
	}
	// Without incoming/ the files are invisible (what broke before).
	if _, err := Get(ctx, store, "pg1", seg(1, 3), dest, GetOptions{}); !errors.Is(err, ErrNotArchived) {
		t.Fatalf("without IncomingDir: %v", err)
	}
	// A valid later copy behind an invalid first one is the one served (and archived).
	good4 := validSeg(seg(1, 4), 'c')
	dropFile(t, incoming, seg(1, 4), good4)
	if from, err := Get(ctx, store, "pg1", seg(1, 4), dest, o); err != nil || from != FromIncoming {
		t.Fatalf("later valid copy: %q %v", from, err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, good4) {
		t.Fatal("served another copy than the valid one")
	}
	tl, err := LoadTimelines(ctx, store, "pg1", incoming)
	if err != nil {
		t.Fatal(err)
	}
	if tl.Newest() != 2 || !bytes.Equal(tl.Raw[2], hist) {
		t.Fatalf("timelines with incoming/: newest %d", tl.Newest())
	}
	// Archived meanwhile: the archive copy is served, no gap in the hand-over.
	putArchived(t, store, "pg1", seg(1, 3), good)
	os.Remove(filepath.Join(incoming, seg(1, 3)))
	if from, err := Get(ctx, store, "pg1", seg(1, 3), dest, o); err != nil || from != FromArchive {
		t.Fatalf("after ingest: %q %v", from, err)
	}
}

// TestPartialOnlyWhereRecoveryWantsIt: a .partial is served for the newest timeline's
// last segment only; once a later timeline's history says its timeline was left in
// that segment (a promotion), or a later segment of its timeline exists, it is not.
func TestPartialOnlyWhereRecoveryWantsIt(t *testing.T) {
	ctx := context.Background()
	store, home := newArchive(t)
	incoming := filepath.Join(home, "pg1", "incoming")
	seg := func(tli uint32, n uint64) string { return segments.SegmentFileName(tli, n, testSeg) }
	putArchived(t, store, "pg1", seg(1, 5)+".partial", segData("old timeline's partial"))
	putArchived(t, store, "pg1", seg(1, 7)+".partial", segData("superseded partial"))
	putArchived(t, store, "pg1", seg(1, 8), segData(seg(1, 8)))
	o := GetOptions{IncomingDir: incoming}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if from, err := Get(ctx, store, "pg1", seg(1, 5), dest, o); err != nil || from != FromArchivedPartial {
		t.Fatalf("newest timeline's partial: %q %v", from, err)
	}
	if _, err := Get(ctx, store, "pg1", seg(1, 7), dest, o); !errors.Is(err, ErrNotArchived) {
		t.Errorf("a partial followed by a later segment was served: %v", err)
	}
	// Timeline 1 was left at 0/580000, inside segment 5: its partial is history now,
	// also while the history file only waits in incoming/.
	dropFile(t, incoming, "00000002.history", []byte("1\t0/580000\tno recovery target specified\n"))
	if _, err := Get(ctx, store, "pg1", seg(1, 5), dest, o); !errors.Is(err, ErrNotArchived) {
		t.Errorf("an older timeline's partial was served after the switch: %v", err)
	}
	// The new timeline's own partial is wanted.
	putArchived(t, store, "pg1", seg(2, 6)+".partial", segData("new timeline's partial"))
	if from, err := Get(ctx, store, "pg1", seg(2, 6), dest, o); err != nil || from != FromArchivedPartial {
		t.Fatalf("new timeline's partial: %q %v", from, err)
	}
}

// TestHugeWaitingFileNotRead: a file far larger than any valid file of its kind waits
// in incoming/ (a segment's name, a .partial's, a history file's), with the identity
// known and with it unknown (a zeroed header claims no segment size). get-wal does not
// serve it and restore's timeline discovery ignores it, without reading it: the
// memory allocated stays far below the file's size (it was read whole before).
func TestHugeWaitingFileNotRead(t *testing.T) {
	ctx := context.Background()
	const huge = 256 << 20
	for _, known := range []bool{true, false} {
		store, home := newArchive(t)
		if !known {
			if err := store.Delete(ctx, archive.IdentityKey("pg1")); err != nil {
				t.Fatal(err)
			}
		}
		incoming := filepath.Join(home, "pg1", "incoming")
		names := []string{segments.SegmentFileName(1, 3, testSeg), segments.SegmentFileName(1, 4, testSeg) + ".partial", "00000002.history"}
		for _, n := range names {
			if err := os.MkdirAll(incoming, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(incoming, n), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(filepath.Join(incoming, n), huge); err != nil {
				t.Fatal(err)
			}
		}
		o := GetOptions{IncomingDir: incoming}
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, n := range []string{names[0], segments.SegmentFileName(1, 4, testSeg), names[2]} {
			if _, err := Get(ctx, store, "pg1", n, dest, o); !errors.Is(err, ErrNotArchived) {
				t.Errorf("known %v: %s: %v, want not archived", known, n, err)
			}
		}
		// A FIFO under a segment's name is no file to serve, and must not block.
		fifo := segments.SegmentFileName(1, 5, testSeg)
		if err := syscall.Mkfifo(filepath.Join(incoming, fifo), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Get(ctx, store, "pg1", fifo, dest, o); !errors.Is(err, ErrNotArchived) {
			t.Errorf("known %v: a FIFO was served: %v", known, err)
		}
		tl, err := LoadTimelines(ctx, store, "pg1", incoming)
		if err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if tl.Newest() != 1 {
			t.Errorf("known %v: a %d MiB history file became timeline %d", known, huge>>20, tl.Newest())
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
			t.Errorf("known %v: %d MiB allocated to turn down %d MiB files", known, alloc>>20, huge>>20)
		}
	}
}
