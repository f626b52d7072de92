package supervisor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/rebuild"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

const (
	testSysID  = 7300000000000000001
	testSegSiz = 1 << 20
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// loadConfig parses a configuration with home and the given server sections.
func loadConfig(t *testing.T, home string, sections ...string) *config.Config {
	t.Helper()
	text := fmt.Sprintf("[walkeeper]\nhome = %s\n\n%s\n", home, strings.Join(sections, "\n"))
	cfg, err := config.Parse([]byte(text), filepath.Join(home, "walkeeper.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// segment is a valid PostgreSQL 15 WAL segment of testSegSiz bytes for name.
func segment(t *testing.T, name string) []byte {
	t.Helper()
	n, err := segments.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, testSegSiz)
	le := binary.LittleEndian
	le.PutUint16(b[0:], 0xD110)
	le.PutUint16(b[2:], segments.XLPLongHeader)
	le.PutUint32(b[4:], n.Timeline)
	le.PutUint64(b[8:], uint64(n.StartLSN(testSegSiz)))
	le.PutUint64(b[24:], testSysID)
	le.PutUint32(b[32:], testSegSiz)
	le.PutUint32(b[36:], 8192)
	return b
}

func TestSelectServers(t *testing.T) {
	cfg := loadConfig(t, t.TempDir(), "[pg1]\nconninfo = host=a", "[pg2]\nconninfo = host=b\nactive = false", "[pg3]\nconninfo = host=c")
	for _, tc := range []struct {
		names   []string
		want    string
		wantErr string
	}{
		{nil, "pg1 pg3", ""},
		{[]string{"pg2"}, "pg2", ""}, // named: watched even when inactive
		{[]string{"pg3", "pg1"}, "pg3 pg1", ""},
		{[]string{"nope"}, "", "nope"},
	} {
		got, err := SelectServers(cfg, tc.names)
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("SelectServers(%q) = %v, %v; want an error naming %q", tc.names, names, err, tc.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(names, " ") != tc.want {
			t.Errorf("SelectServers(%q) = %v, %v; want %s", tc.names, names, err, tc.want)
		}
	}
	none := loadConfig(t, t.TempDir(), "[pg1]\nconninfo = host=a\nactive = false")
	if _, err := SelectServers(none, nil); err == nil || !strings.Contains(err.Error(), "no active server") {
		t.Errorf("no active server: %v", err)
	}
}

func TestStateRecord(t *testing.T) {
	st := NewState(daemon.Info{PID: 42})
	st.Record("pg1", ingest.Result{Outcome: ingest.Archived})
	st.Record("pg1", ingest.Result{Outcome: ingest.Archived})
	st.Record("pg1", ingest.Result{Outcome: ingest.Duplicate})
	st.Record("pg1", ingest.Result{Outcome: ingest.Quarantined, Name: "000000010000000000000007", Reason: "bad magic"})
	st.Update("pg2", func(s *daemon.ServerState) { s.Watching = true })
	snap := st.Snapshot()
	p := snap.Servers["pg1"]
	if snap.PID != 42 || p.Archived != 2 || p.Duplicates != 1 || p.Quarantined != 1 ||
		p.LastError != "000000010000000000000007: bad magic" || p.LastErrorAt.IsZero() || !snap.Servers["pg2"].Watching {
		t.Errorf("snapshot = %+v", snap)
	}
	snap.Servers["pg1"] = daemon.ServerState{}
	if st.Snapshot().Servers["pg1"].Archived != 2 {
		t.Error("a snapshot shares its map with the state")
	}
}

func TestRebuildLost(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	cfg := loadConfig(t, home, "[pg1]\nconninfo = host=a", "[pg2]\nconninfo = host=b")
	store := storage.NewLocal(home)
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002"} {
		enc, err := compress.EncodeAll(compress.Zstd, 0, segment(t, n), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, archive.WALKey("pg1", n, compress.Zstd), bytes.NewReader(enc)); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := index.OpenBadger(filepath.Join(home, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	count := func(server string) int {
		n := 0
		if err := idx.ScanWAL(ctx, server, index.WALRange{}, func(record.WALFile) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := RebuildLost(ctx, cfg.Servers, idx, store, quiet()); err != nil {
		t.Fatal(err)
	}
	if count("pg1") != 2 || count("pg2") != 0 {
		t.Fatalf("after the rebuild: pg1 %d records, pg2 %d; want 2 and 0", count("pg1"), count("pg2"))
	}
	st, err := idx.WALStats(ctx, "pg1")
	if err != nil || st.LastSegment != "000000010000000000000002" {
		t.Errorf("stats after the rebuild (segment size from the header, no identity file): %+v, %v", st, err)
	}
	// An index that holds the server is not rebuilt: a file gone from the archive since
	// keeps its record.
	if err := store.Delete(ctx, archive.WALKey("pg1", "000000010000000000000002", compress.Zstd)); err != nil {
		t.Fatal(err)
	}
	if err := RebuildLost(ctx, cfg.Servers, idx, store, quiet()); err != nil {
		t.Fatal(err)
	}
	if count("pg1") != 2 {
		t.Errorf("an index that was not lost was rebuilt: %d records", count("pg1"))
	}
}

// Run end to end without PostgreSQL: the lock, the local API, a pipeline that archives
// a file dropped in incoming/, the services it was given, a clean stop.
func TestRun(t *testing.T) {
	home, err := os.MkdirTemp("", "wksup") // short: the socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	cfg := loadConfig(t, home, "[pg1]\nconninfo = host=a\nparallel_jobs = 1")
	started := make(chan *Env, 1)
	o := Options{Config: cfg, Servers: cfg.Servers, Version: "test", Log: quiet(),
		Identity: func(context.Context, string) (record.Identity, error) {
			return record.Identity{SystemID: testSysID, SegSize: testSegSiz, Magic: 0xD110, Source: "test"}, nil
		},
		Services: []Service{{Name: "probe", Run: func(ctx context.Context, env *Env) error {
			started <- env
			<-ctx.Done()
			return nil
		}}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	var env *Env
	select {
	case env = <-started:
	case err := <-done:
		t.Fatalf("Run returned before its services started: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the service was not started")
	}
	if len(env.Servers) != 1 || env.Index == nil || env.Store == nil || env.State == nil || env.Config != cfg {
		t.Errorf("service env = %+v", env)
	}
	if err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "another walkeeper watch") {
		t.Errorf("a second daemon on the same home: %v", err)
	}
	src := filepath.Join(t.TempDir(), "000000010000000000000003")
	if err := os.WriteFile(src, segment(t, "000000010000000000000003"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Drop(cfg.Servers[0].IncomingDir(), src); err != nil {
		t.Fatal(err)
	}
	c, err := daemon.Dial(home)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(context.Background())
		if err == nil && info.Servers["pg1"].Archived == 1 {
			if info.Version != "test" || info.PID != os.Getpid() || !info.Servers["pg1"].Watching {
				t.Errorf("/v1/info = %+v", info)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dropped segment was not archived: %+v, %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v after a stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
	if _, err := daemon.Dial(home); err == nil {
		t.Error("the local API still answers after the stop")
	}
}

func TestRepairIndex(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	cfg := loadConfig(t, home, "[pg1]\nconninfo = host=a", "[pg2]\nconninfo = host=b")
	store := storage.NewLocal(home)
	enc, _ := compress.EncodeAll(compress.Zstd, 0, segment(t, "000000010000000000000001"), nil)
	if _, err := store.Put(ctx, archive.WALKey("pg2", "000000010000000000000001", compress.Zstd), bytes.NewReader(enc)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(daemon.IndexDir(home), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(daemon.IndexDir(home), "MANIFEST"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	var moved string
	got := map[string]rebuild.Result{}
	idx, err := RepairIndex(ctx, home, cfg.Servers, store, quiet(), func(m string) { moved = m },
		func(s string, r rebuild.Result) { got[s] = r })
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if b, err := os.ReadFile(filepath.Join(moved, "MANIFEST")); err != nil || string(b) != "garbage" {
		t.Errorf("the damaged index was not moved aside to %q: %v", moved, err)
	}
	if len(got) != 2 || got["pg1"].WALFiles != 0 || got["pg2"].WALFiles != 1 {
		t.Errorf("results = %+v", got)
	}
}

func TestReceiverConfig(t *testing.T) {
	cfg := loadConfig(t, "/srv/wk", "[pg1]\nconninfo = host=a\nstreaming_conninfo = host=a user=rep\nslot_name = wk_pg1\ncreate_slot = auto\nstreaming_archiver = on")
	rc := ReceiverConfig(cfg.Servers[0], quiet())
	if rc.Server != "pg1" || rc.Conninfo != "host=a user=rep" || rc.SlotName != "wk_pg1" || !rc.CreateSlot ||
		rc.ApplicationName != "walkeeper" || rc.StreamingDir != "/srv/wk/pg1/streaming" || rc.IncomingDir != "/srv/wk/pg1/incoming" || rc.Log == nil {
		t.Errorf("ReceiverConfig = %+v", rc)
	}
	manual := loadConfig(t, "/srv/wk", "[pg1]\nconninfo = host=a")
	if ReceiverConfig(manual.Servers[0], quiet()).CreateSlot {
		t.Error("create_slot = manual (the default) creates the slot")
	}
}
