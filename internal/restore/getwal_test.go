package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

const testSeg = 1 << 20 // 1 MiB segments keep the tests small

// putArchived stores content under name as the ingest pipeline would (zstd).
func putArchived(t *testing.T, store storage.Store, server, name string, data []byte) {
	t.Helper()
	enc, err := compress.EncodeAll(compress.Zstd, 0, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), archive.WALKey(server, name, compress.Zstd), bytes.NewReader(enc)); err != nil {
		t.Fatal(err)
	}
}

func segData(name string) []byte {
	b := bytes.Repeat([]byte(name), testSeg/len(name)+1)
	return b[:testSeg]
}

func newArchive(t *testing.T) (*storage.Local, string) {
	home := t.TempDir()
	store := storage.NewLocal(home)
	id, _ := json.Marshal(record.Identity{SystemID: 1, SegSize: testSeg})
	if _, err := store.Put(context.Background(), archive.IdentityKey("pg1"), bytes.NewReader(id)); err != nil {
		t.Fatal(err)
	}
	return store, home
}

func TestGetFallbacks(t *testing.T) {
	ctx := context.Background()
	store, home := newArchive(t)
	seg := func(tli uint32, n uint64) string { return segments.SegmentFileName(tli, n, testSeg) }
	putArchived(t, store, "pg1", seg(1, 1), segData(seg(1, 1)))
	putArchived(t, store, "pg1", seg(1, 2)+".partial", segData("partial-archived----"))
	putArchived(t, store, "pg1", "00000002.history", []byte("1\t0/2000000\tx\n"))
	streaming := filepath.Join(home, "pg1", "streaming")
	os.MkdirAll(streaming, 0o700)
	live := make([]byte, testSeg)
	copy(live, "live partial")
	os.WriteFile(filepath.Join(streaming, seg(2, 3)+".partial"), live, 0o600)

	dir := t.TempDir()
	cases := []struct {
		name, from string
		want       []byte
	}{
		{seg(1, 1), FromArchive, segData(seg(1, 1))},
		{seg(1, 2), FromArchivedPartial, segData("partial-archived----")},
		{seg(2, 3), FromStreamingPartial, live},
		{"00000002.history", FromArchive, []byte("1\t0/2000000\tx\n")},
	}
	for _, c := range cases {
		dest := filepath.Join(dir, "RECOVERYXLOG")
		from, err := Get(ctx, store, "pg1", c.name, dest, GetOptions{StreamingDir: streaming})
		if err != nil || from != c.from {
			t.Fatalf("%s: from %q err %v, want %q", c.name, from, err, c.from)
		}
		got, _ := os.ReadFile(dest)
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: content differs", c.name)
		}
	}
	for _, n := range []string{seg(1, 4), "00000003.history"} {
		_, err := Get(ctx, store, "pg1", n, filepath.Join(dir, "x"), GetOptions{StreamingDir: streaming})
		if !errors.Is(err, ErrNotArchived) {
			t.Errorf("%s: want ErrNotArchived, got %v", n, err)
		}
	}
	// A .partial is never served for a history file or when asked by its own name only.
	if _, err := Get(ctx, store, "pg1", "bad/name", filepath.Join(dir, "x"), GetOptions{}); err == nil {
		t.Error("bad name accepted")
	}

	// A standby under archive_mode = always archives what restore_command returns
	// under the name it asked for: neither partial is served to it, complete
	// segments and history files are. A recovery that ends still gets the partial.
	data := t.TempDir()
	pgwal := filepath.Join(data, "pg_wal")
	os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700)
	os.WriteFile(filepath.Join(data, "postgresql.conf"), []byte("archive_mode = always\n"), 0o600)
	dest := filepath.Join(pgwal, "RECOVERYXLOG")
	if from, err := Get(ctx, store, "pg1", seg(2, 3), dest, GetOptions{StreamingDir: streaming}); err != nil || from != FromStreamingPartial {
		t.Errorf("always, no standby.signal: from %q err %v, want the streaming partial", from, err)
	}
	os.WriteFile(filepath.Join(data, "standby.signal"), nil, 0o600)
	for _, n := range []string{seg(1, 2), seg(2, 3)} {
		if _, err := Get(ctx, store, "pg1", n, dest, GetOptions{StreamingDir: streaming}); !errors.Is(err, ErrOnlyPartial) || !errors.Is(err, ErrNotArchived) {
			t.Errorf("%s for an archive_mode = always standby: want ErrOnlyPartial, got %v", n, err)
		}
	}
	for _, n := range []string{seg(1, 1), "00000002.history"} {
		if from, err := Get(ctx, store, "pg1", n, dest, GetOptions{StreamingDir: streaming}); err != nil || from != FromArchive {
			t.Errorf("%s for an archive_mode = always standby: from %q err %v", n, from, err)
		}
	}
	// A standby that follows the archive (no target) gets complete segments only; one
	// with a target inside the partial (the sandbox) gets the partial.
	os.WriteFile(filepath.Join(data, "postgresql.conf"), []byte("archive_mode = on\n"), 0o600)
	if _, err := Get(ctx, store, "pg1", seg(2, 3), dest, GetOptions{StreamingDir: streaming}); !errors.Is(err, ErrPartialNotFinal) || !errors.Is(err, ErrNotArchived) {
		t.Errorf("standby without a target: want ErrPartialNotFinal, got %v", err)
	}
	os.WriteFile(filepath.Join(data, "postgresql.auto.conf"), []byte("recovery_target_time = '2026-12-01 10:00:00+00'\n"), 0o600)
	if from, err := Get(ctx, store, "pg1", seg(2, 3), dest, GetOptions{StreamingDir: streaming}); err != nil || from != FromStreamingPartial {
		t.Errorf("standby with a target: from %q err %v, want the streaming partial", from, err)
	}
}

// TestPrefetchSpool runs the prefetcher in-process: get-wal serves from the archive,
// the prefetcher fills the next N segments, the following get-wal calls are served
// from the spool by rename, and segments PostgreSQL went past are dropped.
func TestPrefetchSpool(t *testing.T) {
	ctx := context.Background()
	store, _ := newArchive(t)
	names := archiveSegments(t, store, 6)
	pgwal := t.TempDir()
	spool := filepath.Join(pgwal, SpoolDirName)
	done := make(chan PrefetchStats, 4)
	start := func(sp string) error {
		if sp != spool {
			t.Errorf("spool %s, want %s", sp, spool)
		}
		go func() {
			st, err := Prefetch(ctx, store, "pg1", sp, 2)
			if err != nil {
				t.Errorf("prefetch: %v", err)
			}
			done <- st
		}()
		return nil
	}
	old := PrefetchIdle
	PrefetchIdle = 300 * time.Millisecond
	defer func() { PrefetchIdle = old }()
	o := GetOptions{Prefetch: 3, StartPrefetcher: start}
	dest := filepath.Join(pgwal, "RECOVERYXLOG")
	from, err := Get(ctx, store, "pg1", names[0], dest, o)
	if err != nil || from != FromArchive {
		t.Fatalf("first: %s %v", from, err)
	}
	// The prefetcher fetches in parallel: wait for the whole window, not just its end.
	waitFor(t, func() bool {
		return exists(filepath.Join(spool, names[1])) && exists(filepath.Join(spool, names[2])) && exists(filepath.Join(spool, names[3]))
	})
	if exists(filepath.Join(spool, names[4])) {
		t.Error("prefetched beyond the window of 3")
	}
	for i := 1; i < 6; i++ {
		from, err := Get(ctx, store, "pg1", names[i], dest, o)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(dest)
		if !bytes.Equal(got, segData(names[i])) {
			t.Fatalf("%s: wrong content from %s", names[i], from)
		}
		if i <= 3 && from != FromSpool {
			t.Errorf("%s served from %s, want spool", names[i], from)
		}
		if i < 5 {
			waitFor(t, func() bool { return exists(filepath.Join(spool, names[i+1])) })
		}
	}
	// End of the archive: the prefetcher stops at the missing segment 7 and exits idle.
	select {
	case st := <-done:
		if st.Fetched < 5 {
			t.Errorf("prefetched %d segments, want at least 5", st.Fetched)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("prefetcher did not exit after being idle")
	}
	// A spool filled under another boot is not trusted.
	os.WriteFile(filepath.Join(spool, names[2]), []byte("torn"), 0o600)
	os.WriteFile(filepath.Join(spool, bootFile), []byte("other-boot\n"), 0o600)
	from, err = Get(ctx, store, "pg1", names[2], dest, GetOptions{Prefetch: 3})
	if err != nil || from != FromArchive {
		t.Fatalf("after reboot: %s %v", from, err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, segData(names[2])) {
		t.Error("served a spooled file from another boot")
	}
}

// TestPrefetchPlacesInPGWAL: with a real pg_wal (archive_status/ present) the
// prefetcher links each segment into pg_wal marked .done, and get-wal answers such a
// segment with FromPGWAL (exit 1, so PostgreSQL reads it there); a file of the same name
// that was already in pg_wal is never taken for ours.
func TestPrefetchPlacesInPGWAL(t *testing.T) {
	ctx := context.Background()
	store, _ := newArchive(t)
	names := archiveSegments(t, store, 6)
	pgwal := t.TempDir()
	if err := os.Mkdir(filepath.Join(pgwal, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Not the prefetcher's: say, left by the base backup.
	foreign := []byte("not the archived segment")
	os.WriteFile(filepath.Join(pgwal, names[3]), foreign, 0o600)
	spool := filepath.Join(pgwal, SpoolDirName)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := func(sp string) error {
		go func() { _, _ = Prefetch(ctx, store, "pg1", sp, 2) }()
		return nil
	}
	o := GetOptions{Prefetch: 3, StartPrefetcher: start}
	dest := filepath.Join(pgwal, "RECOVERYXLOG")
	if from, err := Get(ctx, store, "pg1", names[0], dest, o); err != nil || from != FromArchive {
		t.Fatalf("first: %s %v", from, err)
	}
	waitFor(t, func() bool {
		return exists(filepath.Join(pgwal, "archive_status", names[1]+".done")) && exists(filepath.Join(pgwal, "archive_status", names[2]+".done")) && exists(filepath.Join(spool, names[3]))
	})
	for i := 1; i <= 2; i++ {
		os.Remove(dest)
		from, err := Get(ctx, store, "pg1", names[i], dest, o)
		if err != nil || from != FromPGWAL {
			t.Fatalf("%s: from %s, %v; want %s", names[i], from, err, FromPGWAL)
		}
		if exists(dest) {
			t.Errorf("%s: %%p written although PostgreSQL is told to read pg_wal", names[i])
		}
		if got, _ := os.ReadFile(filepath.Join(pgwal, names[i])); !bytes.Equal(got, segData(names[i])) {
			t.Fatalf("pg_wal/%s is not the archived segment", names[i])
		}
		if exists(filepath.Join(spool, names[i])) {
			t.Errorf("spool/%s kept after it was handed over", names[i])
		}
	}
	// names[3] was in pg_wal before: it stays untouched and is served through %p.
	from, err := Get(ctx, store, "pg1", names[3], dest, o)
	if err != nil || from != FromSpool {
		t.Fatalf("%s: from %s, %v; want %s", names[3], from, err, FromSpool)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, segData(names[3])) {
		t.Fatalf("%s: wrong content through %%p", names[3])
	}
	if got, _ := os.ReadFile(filepath.Join(pgwal, names[3])); !bytes.Equal(got, foreign) {
		t.Errorf("pg_wal/%s (not ours) was changed", names[3])
	}
	if exists(filepath.Join(pgwal, "archive_status", names[3]+".done")) {
		t.Errorf("marked a file that is not ours .done")
	}
	// Replay jumps back (a restart): what lies outside the new window leaves the spool,
	// but a copy in pg_wal stays PostgreSQL's (with its .done), and is no longer taken
	// for the prefetcher's.
	waitFor(t, func() bool { return exists(filepath.Join(pgwal, names[5])) })
	if _, err := Get(ctx, store, "pg1", names[0], dest, o); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !exists(filepath.Join(spool, names[5])) })
	if !exists(filepath.Join(pgwal, names[5])) || !exists(filepath.Join(pgwal, "archive_status", names[5]+".done")) {
		t.Errorf("pg_wal/%s or its .done was taken back", names[5])
	}
	if placed(spool, pgwal, names[5]) {
		t.Errorf("pg_wal/%s still counts as the prefetcher's without its spool entry", names[5])
	}
}

// archiveSegments archives timeline 1's segments 1..n of pg1 and returns their names.
func archiveSegments(t *testing.T, store storage.Store, n uint64) []string {
	t.Helper()
	var names []string
	for i := uint64(1); i <= n; i++ {
		name := segments.SegmentFileName(1, i, testSeg)
		names = append(names, name)
		putArchived(t, store, "pg1", name, segData(name))
	}
	return names
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out at %s", time.Now())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPrefetchFastPathShell runs the restore_command's shell test in /bin/sh: a segment
// the prefetcher placed under this boot is answered "read pg_wal" (exit 1) and the
// request recorded; a spool of another boot (its unsynced files may be empty after an
// OS crash), a file in pg_wal that is not the spool's, or a symlink runs get-wal.
func TestPrefetchFastPathShell(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "pg_wal", SpoolDirName)
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "fake-walkeeper")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 42\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	seg := "000000010000000000000003"
	run := func() int {
		t.Helper()
		cmd := strings.NewReplacer("%f", seg, "%p", "pg_wal/RECOVERYXLOG").Replace(GetWALCommand(fake, "", "pg1", 8))
		c := exec.Command("/bin/sh", "-c", cmd)
		c.Dir = dir
		err := c.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	os.WriteFile(filepath.Join(spool, seg), []byte("segment"), 0o600)
	if err := os.Link(filepath.Join(spool, seg), filepath.Join(dir, "pg_wal", seg)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(spool, bootFile), []byte(bootID()+"\n"), 0o600)
	if got := run(); got != 1 {
		t.Fatalf("placed segment under this boot: exit %d, want 1", got)
	}
	if w, _ := os.ReadFile(filepath.Join(spool, wantedFile)); strings.TrimSpace(string(w)) != seg {
		t.Fatalf(".wanted holds %q", w)
	}
	os.WriteFile(filepath.Join(spool, bootFile), []byte("another-boot\n"), 0o600)
	if got := run(); got != 42 {
		t.Fatalf("spool of another boot: exit %d, want get-wal's", got)
	}
	os.Remove(filepath.Join(spool, bootFile))
	if got := run(); got != 42 {
		t.Fatalf("spool without a boot file: exit %d, want get-wal's", got)
	}
	os.WriteFile(filepath.Join(spool, bootFile), []byte(bootID()+"\n"), 0o600)
	os.Remove(filepath.Join(dir, "pg_wal", seg))
	os.WriteFile(filepath.Join(dir, "pg_wal", seg), []byte("segment"), 0o600)
	if got := run(); got != 42 {
		t.Fatalf("a copy in pg_wal that is not the spool's: exit %d, want get-wal's", got)
	}
	os.Remove(filepath.Join(dir, "pg_wal", seg))
	os.Symlink(filepath.Join(spool, seg), filepath.Join(dir, "pg_wal", seg))
	if got := run(); got != 42 {
		t.Fatalf("a symlink in pg_wal: exit %d, want get-wal's", got)
	}
}
