package ingest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/record"
)

// realSegment is a real PostgreSQL 15 segment: initdb writes 000000010000000000000001.
func realSegment(t *testing.T) []byte {
	pgtest.SkipShort(t) // initdb is a PostgreSQL binary
	realOnce.Do(func() {
		dir := filepath.Join(pgtest.TempDir(t), "data")
		if out, err := pgtest.RunPGErr("initdb", "-D", dir, "-U", "postgres", "--no-sync"); err != nil {
			realErr = out
			return
		}
		realSeg, _ = os.ReadFile(filepath.Join(dir, "pg_wal", "000000010000000000000001"))
	})
	if realSeg == nil {
		t.Fatalf("initdb: %s", realErr)
	}
	return realSeg
}

func TestPipelineCodecs(t *testing.T) {
	seg := realSegment(t)
	for _, codec := range compress.Codecs {
		t.Run(codec, func(t *testing.T) {
			f := newFixture(t, codec)
			f.drop(t, "000000010000000000000001", seg)
			r := f.process(t, "000000010000000000000001")
			if r.Outcome != Archived {
				t.Fatalf("outcome %+v", r)
			}
			if _, err := os.Stat(filepath.Join(f.srv.IncomingDir, "000000010000000000000001")); !os.IsNotExist(err) {
				t.Fatal("incoming file still there after archiving")
			}
			rec, err := f.idx.GetWAL(context.Background(), "pg1", "000000010000000000000001")
			if err != nil || rec.RawSize != int64(len(seg)) || rec.Compression != codec || rec.Timeline != 1 || rec.SegNo != 1 || rec.StartLSN != 0x1000000 {
				t.Fatalf("index record %+v %v", rec, err)
			}
			key, c, err := archive.Find(context.Background(), f.store, "pg1", "000000010000000000000001")
			if err != nil || c != codec || key != rec.Key || !strings.HasSuffix(key, compress.Suffix(codec)) {
				t.Fatalf("find: %s %s %v", key, c, err)
			}
			got, err := archive.Read(context.Background(), f.store, key, c)
			if err != nil || !bytes.Equal(got, seg) {
				t.Fatalf("read back: %v", err)
			}
			st, _ := os.Stat(filepath.Join(f.store.Root(), key))
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("archived file mode %v", st.Mode())
			}
			id, ok := f.p.Identity()
			if !ok || id.SegSize != 16<<20 || id.SystemID == 0 || id.PGVersion != 150000 {
				t.Fatalf("identity learned from the first segment: %+v", id)
			}
		})
	}
}

func TestPipelineDuplicatesAndConflicts(t *testing.T) {
	seg := realSegment(t)
	f := newFixture(t, "zstd")
	name := "000000010000000000000001"
	f.drop(t, name, seg)
	f.process(t, name)

	// Same content again: accepted, nothing quarantined.
	f.drop(t, name, seg)
	if r := f.process(t, name); r.Outcome != Duplicate {
		t.Fatalf("duplicate: %+v", r)
	}
	// Other content under the same name: quarantined, archive untouched.
	other := bytes.Clone(seg)
	other[len(other)-1] ^= 1
	f.drop(t, name, other)
	r := f.process(t, name)
	if r.Outcome != Quarantined || !strings.Contains(r.Reason, "different content") {
		t.Fatalf("conflict: %+v", r)
	}
	key, c, _ := archive.Find(context.Background(), f.store, "pg1", name)
	if got, _ := archive.Read(context.Background(), f.store, key, c); !bytes.Equal(got, seg) {
		t.Fatal("conflicting file overwrote the archive")
	}
	es, _ := os.ReadDir(f.srv.ErrorsDir)
	if len(es) != 2 {
		t.Fatalf("errors/ should hold the file and its reason: %v", es)
	}

	// A stored object without an index record (crash between write and index commit)
	// is recognised as the same file and indexed.
	if err := f.idx.DeleteWAL(context.Background(), "pg1", []string{name}); err != nil {
		t.Fatal(err)
	}
	f.drop(t, name, seg)
	if r := f.process(t, name); r.Outcome != Duplicate {
		t.Fatalf("stored but not indexed: %+v", r)
	}
	if _, err := f.idx.GetWAL(context.Background(), "pg1", name); err != nil {
		t.Fatalf("record not restored: %v", err)
	}
}

func TestPipelineRejects(t *testing.T) {
	seg := realSegment(t)
	f := newFixture(t, "zstd")
	f.p.srv.QuietPeriod = 1 // a short segment is final at once in this test
	wrongPage := "000000010000000000000002"
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"000000010000000000000001", "size", seg[:len(seg)/2]},
		{wrongPage, "page address", seg},
		{"README", "not a WAL file name", []byte("x")},
		{"00000002.history", "", []byte("garbage without tabs\n")},
	}
	for _, c := range cases {
		f.drop(t, c.name, c.data)
		r := f.process(t, c.name)
		if r.Outcome != Quarantined || !strings.Contains(r.Reason, c.want) {
			t.Errorf("%s: %+v, want quarantine mentioning %q", c.name, r, c.want)
		}
	}
	st, _ := f.idx.WALStats(context.Background(), "pg1")
	if st.Files != 0 {
		t.Fatalf("rejected files reached the index: %+v", st)
	}
}

func TestPipelineEnforcesLearnedIdentity(t *testing.T) {
	seg := realSegment(t)
	f := newFixture(t, "zstd")
	f.p.srv.LearnIdentity = func(context.Context) (record.Identity, error) {
		return record.Identity{SystemID: 42, SegSize: 16 << 20, PGVersion: 150004, Source: "server"}, nil
	}
	f.p.EnsureIdentity(context.Background())
	f.drop(t, "000000010000000000000001", seg)
	r := f.process(t, "000000010000000000000001")
	if r.Outcome != Quarantined || !strings.Contains(r.Reason, "system identifier") {
		t.Fatalf("segment of another system: %+v", r)
	}
	// The identity survives a restart: it is stored beside the archive.
	p2, err := NewPipeline(f.srv, f.store, f.idx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := p2.Identity(); !ok || id.SystemID != 42 {
		t.Fatalf("identity after restart: %+v %v", id, ok)
	}
}

// TestReplacedWhileArchivingIsKept: when archive-wal (or the receiver) renames a new file
// over an incoming name while the old one is being archived, only the file that was read
// goes; the newcomer stays for its own turn, and is then judged like any arrival
// (invariant 2: same content a duplicate, other content quarantined, never lost).
func TestReplacedWhileArchivingIsKept(t *testing.T) {
	seg := realSegment(t)
	f := newFixture(t, "zstd")
	name := "000000010000000000000001"
	path := filepath.Join(f.srv.IncomingDir, name)
	f.drop(t, name, seg)
	read, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(seg)
	other[len(other)-1] ^= 1
	// Renamed over the name, as a writer other than Drop could (Drop never replaces).
	over := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(over, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(over, path); err != nil {
		t.Fatal(err)
	}
	if err := unlinkSame(path, read); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, other) {
		t.Fatalf("the newcomer was removed with the file that was read: %v", err)
	}
	// The file that was read goes when it is still the one under the name.
	now, _ := os.Lstat(path)
	if err := unlinkSame(path, now); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the file that was read is still there: %v", err)
	}
}
