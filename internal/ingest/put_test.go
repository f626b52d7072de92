package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// headerSegment is a segment of segSize bytes whose first page header is valid for name.
func headerSegment(name string, segSize uint64) []byte {
	n, _ := segments.Parse(name)
	b := make([]byte, segSize)
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xD110)
	le.PutUint16(b[2:], segments.XLPLongHeader)
	le.PutUint32(b[4:], n.Timeline)
	le.PutUint64(b[8:], uint64(n.StartLSN(segSize)))
	le.PutUint64(b[24:], 7)
	le.PutUint32(b[32:], uint32(segSize))
	le.PutUint32(b[36:], 8192)
	b[segSize-1] = 0x5a // a body cut short loses this
	return b
}

// endless is a body that never ends: put-wal must stop reading at its bound.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) { e.n += int64(len(p)); return len(p), nil }

// TestPut: put-wal publishes exactly the bodies that can be whole, and a refused body
// leaves incoming/ empty (no temp file either).
func TestPut(t *testing.T) {
	const seg = "000000010000000000000003"
	const mib = 1 << 20
	full := headerSegment(seg, mib)
	hist := []byte("1\t0/3000000\tno recovery target specified\n")
	cases := []struct {
		name     string
		file     string
		body     io.Reader
		size     int64
		identity uint64 // segment size in the archive's identity, 0: none
		refused  string // "" publishes
	}{
		{"segment, identity unknown", seg, bytes.NewReader(full), -1, 0, ""},
		{"segment, identity known", seg, bytes.NewReader(full), -1, mib, ""},
		{"segment with sender's size", seg, bytes.NewReader(full), mib, mib, ""},
		{"history file", "00000002.history", bytes.NewReader(hist), -1, mib, ""},
		{"partial with sender's size", seg + ".partial", bytes.NewReader(full[:mib/2]), mib / 2, mib, ""},
		{"segment cut short, identity known", seg, bytes.NewReader(full[:mib/2]), -1, mib, "is 524288 bytes, a segment of this server is 1048576"},
		// Half of a 1 MiB segment is a valid segment size by itself: the header's claim
		// is what catches it when no identity is known yet.
		{"segment cut short, identity unknown", seg, bytes.NewReader(full[:mib/2]), -1, 0, "is 524288 bytes, a segment of this server is 1048576"},
		{"partial cut short", seg + ".partial", bytes.NewReader(full[:mib/4]), mib / 2, mib, "the sender's file 524288"},
		{"segment longer than the server's", seg, bytes.NewReader(append(full, 0)), -1, mib, "larger than a segment of this server can be (1048576 bytes)"},
		{"endless body", seg, &endless{}, -1, mib, "larger than a segment"},
		{"sender's size too large", seg, bytes.NewReader(full), 2 * mib, mib, "sender's size 2097152 is larger"},
		{"empty body", "00000002.history", strings.NewReader(""), -1, mib, "empty body"},
		{"not a WAL name", "postgresql.conf", bytes.NewReader(hist), -1, mib, "postgresql.conf"},
		{"path in the name", "../" + seg, bytes.NewReader(full), -1, mib, "put-wal ../"},
		{"lower-case hex", strings.ToLower("00000001000000000000000A"), bytes.NewReader(full), -1, mib, "refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			home := t.TempDir()
			store := storage.NewLocal(home)
			ctx := context.Background()
			if c.identity != 0 {
				if err := archive.SaveIdentity(ctx, store, "pg1", record.Identity{SystemID: 7, SegSize: c.identity, Magic: 0xD110}); err != nil {
					t.Fatal(err)
				}
			}
			incoming := filepath.Join(home, "pg1", "incoming")
			dst, err := Put(ctx, store, "pg1", incoming, c.file, c.body, PutOptions{Size: c.size})
			ents, _ := os.ReadDir(incoming)
			if c.refused != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.refused) {
					t.Fatalf("Put = %v, want refused with %q", err, c.refused)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				if len(ents) != 0 {
					t.Fatalf("incoming/ holds %v after a refused body", ents)
				}
				return
			}
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if dst != filepath.Join(incoming, c.file) || len(ents) != 1 {
				t.Fatalf("published %s, incoming/ holds %v", dst, ents)
			}
			if e, ok := c.body.(*endless); ok && e.n > 2*mib {
				t.Fatalf("read %d bytes of an endless body", e.n)
			}
		})
	}
}

// TestPutTwice: the same body twice is success with one copy (PostgreSQL archives again
// when put-wal's exit status was lost with the connection); another body under the
// same name never replaces the first (invariant 2: it waits beside it for ingest).
func TestPutTwice(t *testing.T) {
	const seg = "000000010000000000000003"
	home := t.TempDir()
	store := storage.NewLocal(home)
	incoming := filepath.Join(home, "pg1", "incoming")
	body := headerSegment(seg, 1<<20)
	for i := 0; i < 2; i++ {
		if _, err := Put(context.Background(), store, "pg1", incoming, seg, bytes.NewReader(body), PutOptions{Size: -1}); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(incoming); len(ents) != 1 {
		t.Fatalf("same body twice: incoming/ holds %v", ents)
	}
	other := append([]byte(nil), body...)
	other[100] = 1
	if _, err := Put(context.Background(), store, "pg1", incoming, seg, bytes.NewReader(other), PutOptions{Size: -1}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(incoming, seg))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the first copy was replaced (%v)", err)
	}
	if ents, _ := os.ReadDir(incoming); len(ents) != 2 {
		t.Fatalf("other body: incoming/ holds %v, want the first and a duplicate beside it", ents)
	}
}
