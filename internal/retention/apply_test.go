package retention

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// fixture is a server's archive on a local store with its badger index.
type fixture struct {
	t     *testing.T
	root  string
	store *storage.Local
	bdg   *index.Badger
	idx   index.Index // bdg, or a socket client of it
}

const srv = "pg1"

func newFixture(t *testing.T, remote bool) *fixture {
	t.Helper()
	f := &fixture{t: t, root: filepath.Join(t.TempDir(), "home")}
	f.store = storage.NewLocal(f.root)
	b, err := index.OpenBadger(filepath.Join(t.TempDir(), "idx"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f.bdg, f.idx = b, b
	if remote {
		f.idx = remoteIndex(t, b)
	}
	return f
}

// remoteIndex serves b over a unix socket the way the daemon does and returns a client.
func remoteIndex(t *testing.T, b index.Index) index.Index {
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: index.Handler(b)}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return index.NewRemote(&http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}})
}

var ctx = context.Background()

// file archives one WAL file (content: its name) and indexes it.
func (f *fixture) file(name string) {
	f.t.Helper()
	n, err := segments.Parse(name)
	if err != nil {
		f.t.Fatal(err)
	}
	key := archive.WALKey(srv, name, "none")
	data := []byte("wal " + name)
	if _, err := f.store.Put(ctx, key, bytes.NewReader(data)); err != nil {
		f.t.Fatal(err)
	}
	rec := record.WALFile{Name: name, Kind: n.Kind.String(), Timeline: n.Timeline, RawSize: seg, StoredSize: int64(len(data)),
		Compression: "none", ArrivedAt: now, Source: record.SourceArchive, Key: key}
	if n.Kind != segments.KindHistory {
		rec.SegNo = n.SegNo(seg)
		rec.StartLSN = n.StartLSN(seg)
	}
	if err := f.idx.PutWAL(ctx, srv, rec); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) segs(tli uint32, from, to uint64) {
	for s := from; s <= to; s++ {
		f.file(segments.SegmentFileName(tli, s, seg))
	}
}

// backup stores a backup (backup.info, a manifest and some data files) and indexes it.
func (f *fixture) backup(id, status string, tli uint32, bs, es uint64, end time.Time, keep bool) record.Backup {
	f.t.Helper()
	b := record.Backup{ID: id, Server: srv, Label: "walkeeper " + id, Status: status, Keep: keep, Timeline: tli,
		BeginLSN: segments.LSN(bs*seg + 0x28), EndLSN: segments.LSN(es*seg + 0x100),
		BeginWAL: segments.SegmentFileName(tli, bs, seg), EndWAL: segments.SegmentFileName(tli, es, seg),
		BeginTime: end.Add(-time.Hour), EndTime: end, SegSize: seg, Compression: "none"}
	if err := basebackup.SaveInfo(ctx, f.store, b); err != nil {
		f.t.Fatal(err)
	}
	for _, k := range []string{archive.BackupManifestKey(srv, id), archive.BackupContentsKey(srv, id),
		archive.BackupDataPrefix(srv, id) + "pgdata/PG_VERSION", archive.BackupDataPrefix(srv, id) + "pgdata/base/1/1259",
		archive.BackupDataPrefix(srv, id) + "16385/PG_15_202209061/5/16386"} {
		if _, err := f.store.Put(ctx, k, strings.NewReader("data of "+k)); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.idx.PutBackup(ctx, srv, b); err != nil {
		f.t.Fatal(err)
	}
	return b
}

// snapshot renders every stored file (relative path and content), every index record
// and every directory under the server, so two states compare as strings.
func (f *fixture) snapshot() string {
	f.t.Helper()
	var lines []string
	_ = filepath.Walk(f.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(f.root, p)
		if fi.IsDir() {
			lines = append(lines, "dir "+rel)
			return nil
		}
		b, _ := os.ReadFile(p)
		lines = append(lines, fmt.Sprintf("file %s %q", rel, b))
		return nil
	})
	if err := f.bdg.ScanWAL(ctx, srv, index.WALRange{}, func(w record.WALFile) error {
		lines = append(lines, fmt.Sprintf("wal %+v", w))
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	bs, err := f.bdg.ListBackups(ctx, srv)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, b := range bs {
		lines = append(lines, fmt.Sprintf("backup %+v", b))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (f *fixture) walNames() []string {
	var out []string
	_ = f.bdg.ScanWAL(ctx, srv, index.WALRange{}, func(w record.WALFile) error { out = append(out, w.Name); return nil })
	return out
}

func (f *fixture) backupIDs() []string {
	bs, _ := f.bdg.ListBackups(ctx, srv)
	var out []string
	for _, b := range bs {
		out = append(out, b.ID+":"+b.Status)
	}
	return out
}

func (f *fixture) applier(policy string) *Applier {
	f.t.Helper()
	cfg, err := ParseConfig(policy, "main", 0, 7*Day)
	if err != nil {
		f.t.Fatal(err)
	}
	return &Applier{Index: f.idx, Store: f.store, Server: srv, SegSize: seg, Config: cfg, Now: func() time.Time { return now }}
}

// standard builds the scenario: four DONE backups on timeline 1 with the oldest
// pinned, a failed one past its grace, WAL with a .backup label, a .partial and a second
// timeline with its history file.
func (f *fixture) standard() {
	f.segs(1, 1, 40)
	f.file("000000010000000000000010.00000028.backup")
	f.file("000000010000000000000029.partial")
	f.file("00000002.history")
	f.segs(2, 41, 45)
	f.backup("20261101T000000", StatusDone, 1, 5, 6, days(23), true)
	f.backup("20261105T000000", StatusFailed, 1, 9, 9, days(19), false)
	f.backup("20261110T000000", StatusDone, 1, 16, 17, days(14), false)
	f.backup("20261115T000000", StatusDone, 1, 30, 31, days(9), false)
	f.backup("20261120T000000", StatusDone, 2, 43, 44, days(4), false)
}

// wantAfterStandard: REDUNDANCY 2 keeps the two newest, the pinned oldest keeps its
// begin..end (segments 5 and 6), everything before the newer kept backup's begin
// (segment 30) goes, the history file and the .partial above the cutoff stay.
func wantAfterStandard() []string {
	var want []string
	for _, s := range []uint64{5, 6} {
		want = append(want, segments.SegmentFileName(1, s, seg))
	}
	for s := uint64(30); s <= 40; s++ {
		want = append(want, segments.SegmentFileName(1, s, seg))
	}
	want = append(want, "000000010000000000000029.partial")
	want = append(want, "00000002.history")
	for s := uint64(41); s <= 45; s++ {
		want = append(want, segments.SegmentFileName(2, s, seg))
	}
	sort.Strings(want)
	return want
}

func TestRunRedundancyPinned(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(map[bool]string{false: "badger", true: "remote"}[remote], func(t *testing.T) {
			f := newFixture(t, remote)
			f.standard()
			a := f.applier("REDUNDANCY 2")
			a.Batch = 3 // several batches per range

			before := f.snapshot()
			dry, err := a.Run(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			if after := f.snapshot(); after != before {
				t.Fatalf("--dry-run changed the archive or the index:\nbefore\n%s\nafter\n%s", before, after)
			}
			// Segments 1..4 and 7..29 (0x1D) go: 27 segments plus the .backup label.
			if len(dry.WAL) != 2 || dry.WALSegments != 4+23 || dry.WALFiles != 4+23+1 ||
				dry.WAL[0].First != "000000010000000000000001" || dry.WAL[0].Last != "000000010000000000000004" ||
				dry.WAL[1].First != "000000010000000000000007" || dry.WAL[1].Last != "00000001000000000000001D" {
				t.Fatalf("dry run WAL: %+v", dry.WAL)
			}
			verdict := map[string]BackupResult{}
			for _, b := range dry.Backups {
				verdict[b.ID] = b
				if b.Deleted {
					t.Fatalf("dry run deleted %s", b.ID)
				}
			}
			if !verdict["20261101T000000"].Keep || verdict["20261101T000000"].PITR || !strings.Contains(verdict["20261101T000000"].Reason, "pinned") ||
				verdict["20261110T000000"].Keep || verdict["20261105T000000"].Keep ||
				!verdict["20261115T000000"].Keep || !verdict["20261120T000000"].Keep {
				t.Fatalf("dry run verdicts: %+v", dry.Backups)
			}

			res, err := a.Run(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if res.WALFiles != dry.WALFiles || res.WALBytes != dry.WALBytes || res.WALBytes == 0 {
				t.Fatalf("run deleted %d files / %d bytes, dry run announced %d / %d", res.WALFiles, res.WALBytes, dry.WALFiles, dry.WALBytes)
			}
			if got, want := fmt.Sprint(f.backupIDs()), "[20261101T000000:DONE 20261115T000000:DONE 20261120T000000:DONE]"; got != want {
				t.Fatalf("backups left: %s, want %s", got, want)
			}
			if got, want := fmt.Sprint(f.walNames()), fmt.Sprint(wantAfterStandard()); got != want {
				t.Fatalf("WAL left in the index:\n%s\nwant\n%s", got, want)
			}
			// Files and index agree exactly.
			var files []string
			if err := f.store.List(ctx, srv+"/wals/", func(i storage.Info) error { files = append(files, filepath.Base(i.Key)); return nil }); err != nil {
				t.Fatal(err)
			}
			sort.Strings(files)
			if fmt.Sprint(files) != fmt.Sprint(wantAfterStandard()) {
				t.Fatalf("WAL files left:\n%v\nwant\n%v", files, wantAfterStandard())
			}
			for _, id := range []string{"20261105T000000", "20261110T000000"} {
				if _, err := os.Stat(filepath.Join(f.root, srv, "base", id)); !os.IsNotExist(err) {
					t.Fatalf("deleted backup %s left its directory: %v", id, err)
				}
			}
			for _, id := range []string{"20261101T000000", "20261115T000000", "20261120T000000"} {
				if _, err := basebackup.LoadInfo(ctx, f.store, srv, id); err != nil {
					t.Fatalf("kept backup %s: %v", id, err)
				}
			}
			// A second run has nothing left to do.
			snap := f.snapshot()
			again, err := a.Run(ctx, false)
			if err != nil || again.WALFiles != 0 || len(again.WAL) != 0 {
				t.Fatalf("second run: %+v %v", again, err)
			}
			for _, b := range again.Backups {
				if !b.Keep || b.Deleted {
					t.Fatalf("second run: %+v", again.Backups)
				}
			}
			if f.snapshot() != snap {
				t.Fatal("second run changed the archive")
			}
		})
	}
}

// TestRunInterrupted: a run killed half way (a backup marked and half deleted, a WAL
// range's files deleted but not their index records) is finished by the next run,
// without error, to the same state as an uninterrupted run.
func TestRunInterrupted(t *testing.T) {
	ref := newFixture(t, false)
	ref.standard()
	if _, err := ref.applier("REDUNDANCY 2").Run(ctx, false); err != nil {
		t.Fatal(err)
	}
	want := ref.snapshot()

	f := newFixture(t, false)
	f.standard()
	// An earlier deletion of 20261110T000000 died half way: marked "being deleted",
	// part of its content gone (its manifest could not be deleted).
	b, err := f.idx.GetBackup(ctx, srv, "20261110T000000")
	if err != nil {
		t.Fatal(err)
	}
	broken := failingStore{Store: f.store, failSuffix: "backup_manifest"}
	if err := basebackup.Delete(ctx, broken, f.idx, filepath.Join(f.root, srv), srv, b); err == nil {
		t.Fatal("delete through a failing store succeeded")
	}
	if info, err := basebackup.LoadInfo(ctx, f.store, srv, b.ID); err != nil || !beingDeleted(info) {
		t.Fatalf("half-deleted backup.info: %+v %v", info, err)
	}
	if rec, _ := f.idx.GetBackup(ctx, srv, b.ID); !beingDeleted(rec) {
		t.Fatalf("half-deleted index record: %+v", rec)
	}
	// A backup being deleted is never a candidate for anything.
	a := f.applier("REDUNDANCY 2")
	in, live, deleting, err := a.BuildInput(ctx)
	if err != nil || len(deleting) != 1 || len(live) != 4 || len(in.Backups) != 4 {
		t.Fatalf("input with a DELETING backup: %v %d %d", err, len(live), len(deleting))
	}

	// This run dies after deleting 9 WAL objects: batches of 3 records.
	a.Batch = 3
	a.failAfterFiles = 9
	res, err := a.Run(ctx, false)
	if !errors.Is(err, errInjected) {
		t.Fatalf("interrupted run: %v", err)
	}
	if len(res.Resumed) != 1 || res.Resumed[0] != "20261110T000000" {
		t.Fatalf("resumed: %v", res.Resumed)
	}
	// The interruption left index records of files already gone, never the reverse.
	orphanRecords := 0
	_ = f.bdg.ScanWAL(ctx, srv, index.WALRange{}, func(w record.WALFile) error {
		if _, err := f.store.Stat(ctx, w.Key); errors.Is(err, storage.ErrNotFound) {
			orphanRecords++
		}
		return nil
	})
	// Range 1..4 went in batches {1,2,3} {4}, range 7..29's first batch {7,8,9} too; of
	// the next batch {10,11,12} two objects were deleted, and none of its records, when
	// the run died.
	if orphanRecords != 2 {
		t.Fatalf("after the interruption %d index records point at deleted files, want 2", orphanRecords)
	}
	_ = f.store.List(ctx, srv+"/wals/", func(i storage.Info) error {
		if _, err := f.bdg.GetWAL(ctx, srv, strings.TrimSuffix(filepath.Base(i.Key), "")); err != nil {
			t.Errorf("file %s has no index record: %v", i.Key, err)
		}
		return nil
	})

	// Also delete half of a range's files by hand (as an operator or an earlier crash might).
	for s := uint64(20); s < 25; s++ {
		if err := f.store.Delete(ctx, archive.WALKey(srv, segments.SegmentFileName(1, s, seg), "none")); err != nil {
			t.Fatal(err)
		}
	}
	a.failAfterFiles = 0
	if _, err := a.Run(ctx, false); err != nil {
		t.Fatalf("run after the interruption: %v", err)
	}
	if got := f.snapshot(); got != want {
		t.Fatalf("state after the resumed run differs from an uninterrupted run:\n%s\nwant\n%s", got, want)
	}
}

// failingStore fails to delete keys with a suffix, as a crash in the middle would stop.
type failingStore struct {
	storage.Store
	failSuffix string
}

func (s failingStore) Delete(ctx context.Context, key string) error {
	if strings.HasSuffix(key, s.failSuffix) {
		return errors.New("injected delete failure")
	}
	return s.Store.Delete(ctx, key)
}

// failingDeleter's DeleteBackup fails, as a crash after backup.info is gone would.
type failingDeleter struct{ index.Index }

func (failingDeleter) DeleteBackup(context.Context, string, string) error {
	return errors.New("injected index failure")
}

// TestResumeAfterInfoGone: a crash between deleting backup.info and dropping the index
// record leaves only a "being deleted" record; the next run drops it at once (not after
// failed_backup_grace).
func TestResumeAfterInfoGone(t *testing.T) {
	f := newFixture(t, false)
	f.segs(1, 1, 10)
	b := f.backup("20261110T000000", StatusDone, 1, 3, 4, days(3), false)
	f.backup("20261111T000000", StatusDone, 1, 6, 7, days(2), false)
	if err := basebackup.Delete(ctx, f.store, failingDeleter{f.idx}, filepath.Join(f.root, srv), srv, b); err == nil {
		t.Fatal("delete with a failing index succeeded")
	}
	if _, err := basebackup.LoadInfo(ctx, f.store, srv, b.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("backup.info after the interrupted delete: %v", err)
	}
	if rec, err := f.idx.GetBackup(ctx, srv, b.ID); err != nil || !beingDeleted(rec) {
		t.Fatalf("index record after the interrupted delete: %+v %v", rec, err)
	}
	res, err := f.applier("REDUNDANCY 1").Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Resumed) != "[20261110T000000]" || fmt.Sprint(f.backupIDs()) != "[20261111T000000:DONE]" {
		t.Fatalf("resumed %v, backups left %v", res.Resumed, f.backupIDs())
	}
	if _, err := os.Stat(filepath.Join(f.root, srv, "base", b.ID)); !os.IsNotExist(err) {
		t.Fatalf("directory of the deleted backup: %v", err)
	}
	if got := f.walNames(); len(got) != 5 || got[0] != segments.SegmentFileName(1, 6, seg) {
		t.Fatalf("WAL left: %v", got)
	}
}

// TestStaleIndexPinSkipped: a backup pinned in backup.info but not (yet) in the index is
// not deleted: backup.info is re-read before each deletion.
func TestStaleIndexPinSkipped(t *testing.T) {
	f := newFixture(t, false)
	f.segs(1, 1, 10)
	b := f.backup("20261110T000000", StatusDone, 1, 3, 4, days(3), false)
	f.backup("20261111T000000", StatusDone, 1, 6, 7, days(2), false)
	b.Keep = true
	if err := basebackup.SaveInfo(ctx, f.store, b); err != nil {
		t.Fatal(err)
	}
	res, err := f.applier("REDUNDANCY 1").Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Backups[0].Deleted || !strings.Contains(res.Backups[0].Skipped, "pinned in backup.info") {
		t.Fatalf("stale pin: %+v", res.Backups[0])
	}
	if _, err := basebackup.LoadInfo(ctx, f.store, srv, b.ID); err != nil {
		t.Fatal(err)
	}
}

func TestSetKeep(t *testing.T) {
	f := newFixture(t, true)
	f.segs(1, 1, 10)
	f.backup("20261110T000000", StatusDone, 1, 3, 4, days(3), false)
	f.backup("20261111T000000", StatusDone, 1, 6, 7, days(2), false)
	if _, err := SetKeep(ctx, f.idx, f.store, srv, "20261110T000000", true); err != nil {
		t.Fatal(err)
	}
	info, _ := basebackup.LoadInfo(ctx, f.store, srv, "20261110T000000")
	rec, _ := f.idx.GetBackup(ctx, srv, "20261110T000000")
	if !info.Keep || !rec.Keep {
		t.Fatalf("pin: backup.info keep=%v, index keep=%v", info.Keep, rec.Keep)
	}
	res, err := f.applier("REDUNDANCY 1").Run(ctx, false)
	if err != nil || len(f.backupIDs()) != 2 {
		t.Fatalf("pinned backup deleted: %v %v", f.backupIDs(), err)
	}
	// Its begin..end (3, 4) stays, 1, 2 and 5 go.
	if res.WALSegments != 3 || len(f.walNames()) != 7 || f.walNames()[0] != segments.SegmentFileName(1, 3, seg) {
		t.Fatalf("WAL after pinned run: %v", f.walNames())
	}
	if _, err := SetKeep(ctx, f.idx, f.store, srv, "20261110T000000", false); err != nil {
		t.Fatal(err)
	}
	info, _ = basebackup.LoadInfo(ctx, f.store, srv, "20261110T000000")
	rec, _ = f.idx.GetBackup(ctx, srv, "20261110T000000")
	if info.Keep || rec.Keep {
		t.Fatalf("release: backup.info keep=%v, index keep=%v", info.Keep, rec.Keep)
	}
	if _, err := f.applier("REDUNDANCY 1").Run(ctx, false); err != nil || fmt.Sprint(f.backupIDs()) != "[20261111T000000:DONE]" {
		t.Fatalf("released backup: %v %v", f.backupIDs(), err)
	}
	if _, err := SetKeep(ctx, f.idx, f.store, srv, "20261110T000000", true); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("pin of a deleted backup: %v", err)
	}
}

func TestLockServer(t *testing.T) {
	dir := t.TempDir()
	l, err := LockServer(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := LockServer(c, dir); err == nil || !strings.Contains(err.Error(), "holds it") {
		t.Fatalf("second lock: %v", err)
	}
	l.Unlock()
	l2, err := LockServer(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	l2.Unlock()
}

// TestDeleteRefusesKeysOutsideTheArchive: a WAL record whose key is not the file's own
// key in the server's archive (a damaged or hand-edited index) never deletes that
// object; the file's own key, in any codec, is deleted.
func TestDeleteRefusesKeysOutsideTheArchive(t *testing.T) {
	f := newFixture(t, false)
	b := f.backup("20261201T000000", record.StatusDone, 1, 2, 2, now, false)
	a := &Applier{Store: f.store, Index: f.idx, Server: srv, SegSize: seg}
	name := segments.SegmentFileName(1, 3, seg)
	for _, key := range []string{
		archive.BackupInfoKey(srv, b.ID),                                 // another kind of object
		archive.WALKey("pg2", name, "none"),                              // another server's
		archive.WALKey(srv, segments.SegmentFileName(1, 4, seg), "none"), // another file
		archive.WALPrefix(srv) + "0000000100000001/" + name,              // another directory
	} {
		if _, err := f.store.Put(ctx, key, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		err := a.deleteWALObject(ctx, name, key)
		if err == nil || !strings.Contains(err.Error(), "points outside the archive") || !strings.Contains(err.Error(), key) {
			t.Fatalf("key %s: %v", key, err)
		}
		if _, err := f.store.Stat(ctx, key); err != nil {
			t.Fatalf("key %s was deleted: %v", key, err)
		}
	}
	for _, codec := range []string{"none", "zstd", "gzip"} {
		key := archive.WALKey(srv, name, codec)
		if _, err := f.store.Put(ctx, key, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		if err := a.deleteWALObject(ctx, name, key); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if _, err := f.store.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s not deleted: %v", key, err)
		}
	}
}
