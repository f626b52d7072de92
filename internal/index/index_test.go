package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/record"
)

// both runs f against the badger index directly and through the socket protocol the
// daemon serves, which must behave the same.
func both(t *testing.T, f func(t *testing.T, idx Index)) {
	t.Run("badger", func(t *testing.T) {
		b, err := OpenBadger(filepath.Join(t.TempDir(), "idx"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		f(t, b)
	})
	t.Run("remote", func(t *testing.T) {
		b, err := OpenBadger(filepath.Join(t.TempDir(), "idx"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		sock := filepath.Join(t.TempDir(), "s")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: Handler(b)}
		go srv.Serve(ln)
		defer srv.Close()
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		f(t, NewRemote(hc))
	})
}

func seg(tli uint32, n int) record.WALFile {
	name := fmt.Sprintf("%08X%08X%08X", tli, 0, n)
	return record.WALFile{Name: name, Kind: "segment", Timeline: tli, RawSize: 16 << 20, StoredSize: 1 << 20,
		ArrivedAt: time.Date(2026, 1, 1, 0, 0, n, 0, time.UTC), Key: "pg1/wals/x/" + name}
}

func TestIndex(t *testing.T) {
	both(t, func(t *testing.T, idx Index) {
		ctx := context.Background()
		for i := 1; i <= 5; i++ {
			if err := idx.PutWAL(ctx, "pg1", seg(1, i)); err != nil {
				t.Fatal(err)
			}
		}
		_ = idx.PutWAL(ctx, "pg1", seg(2, 5))
		_ = idx.PutWAL(ctx, "pg1", record.WALFile{Name: "00000002.history", Kind: "history", Timeline: 2, RawSize: 40, StoredSize: 40})
		_ = idx.PutWAL(ctx, "pg2", seg(1, 1))

		got, err := idx.GetWAL(ctx, "pg1", seg(1, 3).Name)
		if err != nil || got.Name != seg(1, 3).Name || !got.ArrivedAt.Equal(seg(1, 3).ArrivedAt) {
			t.Fatalf("get: %+v %v", got, err)
		}
		if _, err := idx.GetWAL(ctx, "pg1", "000000090000000000000001"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
		var names []string
		err = idx.ScanWAL(ctx, "pg1", WALRange{From: seg(1, 2).Name, To: seg(1, 4).Name}, func(f record.WALFile) error {
			names = append(names, f.Name)
			return nil
		})
		if err != nil || len(names) != 2 || names[0] != seg(1, 2).Name || names[1] != seg(1, 3).Name {
			t.Fatalf("range scan: %v %v", names, err)
		}
		names = nil
		_ = idx.ScanWAL(ctx, "pg1", WALRange{}, func(f record.WALFile) error { names = append(names, f.Name); return nil })
		// Name order is (timeline, segment) order, with a timeline's history first.
		want := []string{seg(1, 1).Name, seg(1, 2).Name, seg(1, 3).Name, seg(1, 4).Name, seg(1, 5).Name, "00000002.history", seg(2, 5).Name}
		if fmt.Sprint(names) != fmt.Sprint(want) {
			t.Fatalf("full scan:\n%v\nwant\n%v", names, want)
		}
		st, err := idx.WALStats(ctx, "pg1")
		if err != nil || st.Files != 7 || st.Segments != 6 || st.FirstSegment != seg(1, 1).Name || st.LastSegment != seg(2, 5).Name ||
			len(st.Timelines) != 2 || st.RawBytes != 6*(16<<20)+40 {
			t.Fatalf("stats: %+v %v", st, err)
		}
		if err := idx.DeleteWAL(ctx, "pg1", []string{seg(1, 1).Name, seg(1, 2).Name}); err != nil {
			t.Fatal(err)
		}
		st, _ = idx.WALStats(ctx, "pg1")
		if st.Files != 5 {
			t.Fatalf("after delete: %+v", st)
		}
		stop := errors.New("stop")
		if err := idx.ScanWAL(ctx, "pg1", WALRange{}, func(record.WALFile) error { return stop }); err == nil {
			t.Fatal("callback error lost")
		}

		for _, id := range []string{"20260102T000000", "20260101T000000"} {
			if err := idx.PutBackup(ctx, "pg1", record.Backup{ID: id, Status: record.StatusDone}); err != nil {
				t.Fatal(err)
			}
		}
		bs, err := idx.ListBackups(ctx, "pg1")
		if err != nil || len(bs) != 2 || bs[0].ID != "20260101T000000" {
			t.Fatalf("list backups: %+v %v", bs, err)
		}
		if _, err := idx.GetBackup(ctx, "pg1", "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing backup: %v", err)
		}
		if err := idx.DeleteBackup(ctx, "pg1", "20260101T000000"); err != nil {
			t.Fatal(err)
		}
		if err := idx.DropServer(ctx, "pg1"); err != nil {
			t.Fatal(err)
		}
		st, _ = idx.WALStats(ctx, "pg1")
		bs, _ = idx.ListBackups(ctx, "pg1")
		if st.Files != 0 || len(bs) != 0 {
			t.Fatalf("after drop: %+v %v", st, bs)
		}
		st, _ = idx.WALStats(ctx, "pg2")
		if st.Files != 1 {
			t.Fatalf("drop touched another server: %+v", st)
		}
	})
}

func TestBadgerLockedByAnotherOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "idx")
	a, err := OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := OpenBadger(dir, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestWALTimelines(t *testing.T) {
	both(t, func(t *testing.T, idx Index) {
		ctx := context.Background()
		if spans, err := idx.WALTimelines(ctx, "pg1"); err != nil || len(spans) != 0 {
			t.Fatalf("empty index: %+v %v", spans, err)
		}
		for i := 3; i <= 300; i++ {
			_ = idx.PutWAL(ctx, "pg1", seg(1, i))
		}
		_ = idx.PutWAL(ctx, "pg1", record.WALFile{Name: "000000010000000000000004.00000028.backup", Kind: "backup", Timeline: 1})
		_ = idx.PutWAL(ctx, "pg1", record.WALFile{Name: "000000010000000000000130.partial", Kind: "partial", Timeline: 1})
		_ = idx.PutWAL(ctx, "pg1", record.WALFile{Name: "00000002.history", Kind: "history", Timeline: 2})
		_ = idx.PutWAL(ctx, "pg1", seg(2, 7))
		_ = idx.PutWAL(ctx, "pg1", seg(2, 9))
		_ = idx.PutWAL(ctx, "pg1", record.WALFile{Name: "00000003.history", Kind: "history", Timeline: 3})
		_ = idx.PutWAL(ctx, "pg1", seg(0x1A, 2))
		_ = idx.PutWAL(ctx, "pg0", seg(5, 1))
		_ = idx.PutWAL(ctx, "pg10", seg(6, 1))
		spans, err := idx.WALTimelines(ctx, "pg1")
		if err != nil {
			t.Fatal(err)
		}
		want := []TimelineSpan{
			{Timeline: 1, MinName: seg(1, 3).Name, MaxName: "000000010000000000000130.partial"},
			{Timeline: 2, MinName: seg(2, 7).Name, MaxName: seg(2, 9).Name, History: true},
			{Timeline: 3, History: true},
			{Timeline: 0x1A, MinName: seg(0x1A, 2).Name, MaxName: seg(0x1A, 2).Name},
		}
		if fmt.Sprint(spans) != fmt.Sprint(want) {
			t.Fatalf("spans:\n%+v\nwant\n%+v", spans, want)
		}
	})
}

func TestPutWALBatch(t *testing.T) {
	b, err := OpenBadger(filepath.Join(t.TempDir(), "idx"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	var fs []record.WALFile
	for i := 1; i <= 3000; i++ {
		fs = append(fs, seg(1, i))
	}
	if err := b.PutWALBatch(ctx, "pg1", fs); err != nil {
		t.Fatal(err)
	}
	st, err := b.WALStats(ctx, "pg1")
	if err != nil || st.Segments != 3000 || st.FirstSegment != seg(1, 1).Name || st.LastSegment != seg(1, 3000).Name {
		t.Fatalf("stats after batch: %+v %v", st, err)
	}
	got, err := b.GetWAL(ctx, "pg1", seg(1, 1234).Name)
	if err != nil || got.Key != seg(1, 1234).Key {
		t.Fatalf("get after batch: %+v %v", got, err)
	}
}

// TestWALCodec: the compact record form gives back exactly what was put, whatever the
// fields hold, and values written as JSON by earlier versions are still read.
func TestWALCodec(t *testing.T) {
	name := "000000010000000A000000FF"
	base := record.WALFile{Name: name, Kind: "segment", Timeline: 1, SegNo: 0xAFF, StartLSN: 0xAFF000000, RawSize: 16 << 20, StoredSize: 12345,
		Compression: "zstd", SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		ArrivedAt: time.Date(2026, 11, 24, 15, 4, 5, 123456789, time.UTC), Source: record.SourceArchive,
		Key: "pg1/wals/000000010000000A/" + name + ".zst"}
	cases := []func(f *record.WALFile){
		func(f *record.WALFile) {},
		func(f *record.WALFile) { f.Key = "pg1/elsewhere/" + name },
		func(f *record.WALFile) { f.SHA256 = "ABCDEF" },
		func(f *record.WALFile) { f.SHA256 = "" },
		func(f *record.WALFile) { f.ArrivedAt = time.Time{} },
		func(f *record.WALFile) { f.ArrivedAt = f.ArrivedAt.In(time.FixedZone("", 2*3600)) },
		func(f *record.WALFile) { f.Compression, f.Key = "none", "pg1/wals/000000010000000A/"+name },
		func(f *record.WALFile) { f.RawSize, f.StoredSize = -1, 0 },
		func(f *record.WALFile) { f.Kind, f.Source, f.Compression = "", "", "" },
		func(f *record.WALFile) { f.Kind, f.Source, f.Compression = "odd", "elsewhere", "lz4" },
		func(f *record.WALFile) { f.Source = record.SourceRebuild },
	}
	for i, mod := range cases {
		f := base
		mod(&f)
		got, err := decodeWAL("pg1", name, encodeWAL("pg1", f))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		wantJSON, _ := json.Marshal(f)
		gotJSON, _ := json.Marshal(got)
		if string(gotJSON) != string(wantJSON) {
			t.Fatalf("case %d: round trip\n got %s\nwant %s", i, gotJSON, wantJSON)
		}
		if n := len(encodeWAL("pg1", base)); n > 64 {
			t.Fatalf("compact record is %d bytes", n)
		}
	}
	legacy, _ := json.Marshal(base)
	if got, err := decodeWAL("pg1", name, legacy); err != nil || got != base {
		t.Fatalf("JSON record: %+v %v", got, err)
	}
	enc := encodeWAL("pg1", base)
	for _, bad := range [][]byte{nil, {0x02}, enc[:len(enc)-1], append(append([]byte{}, enc...), 0)} {
		if _, err := decodeWAL("pg1", name, bad); err == nil {
			t.Fatalf("malformed record %x accepted", bad)
		}
	}
}

// FuzzDecodeWAL: arbitrary stored bytes never panic the decoder, and whatever decodes
// encodes back to a record that decodes the same.
func FuzzDecodeWAL(f *testing.F) {
	f.Add(encodeWAL("pg1", seg(1, 5)))
	f.Add([]byte(`{"name":"x"}`))
	f.Add([]byte{walCodecV1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		name := seg(1, 5).Name
		got, err := decodeWAL("pg1", name, b)
		if err != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		again, err := decodeWAL("pg1", name, encodeWAL("pg1", got))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		g1, _ := json.Marshal(got)
		g2, _ := json.Marshal(again)
		if string(g1) != string(g2) {
			t.Fatalf("round trip:\n%s\n%s", g1, g2)
		}
	})
}
