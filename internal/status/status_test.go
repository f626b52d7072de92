package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

func TestGather(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	cfg, err := config.Parse([]byte("[walkeeper]\nhome = "+home+"\n\n[pg1]\nconninfo = host=a\ndescription = main db\n"), filepath.Join(home, "wk.conf"))
	if err != nil {
		t.Fatal(err)
	}
	srv := cfg.Servers[0]
	store := storage.NewLocal(home)
	idx, err := index.OpenBadger(filepath.Join(home, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, b := range []record.Backup{
		{ID: "B1", Status: record.StatusDone, EndTime: now.Add(-2 * time.Hour)},
		{ID: "B2", Status: record.StatusDone, EndTime: now.Add(-time.Hour)},
		{ID: "B3", Status: "FAILED"},
	} {
		if err := idx.PutBackup(ctx, "pg1", b); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := json.Marshal(record.Identity{SystemID: 7300000000000000001, SegSize: 16 << 20})
	if _, err := store.Put(ctx, archive.IdentityKey("pg1"), bytes.NewReader(id)); err != nil {
		t.Fatal(err)
	}
	for dir, files := range map[string][]string{srv.IncomingDir(): {"000000010000000000000009"}, srv.ErrorsDir(): {"junk", "junk.reason"}} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("not a WAL file: bad magic 0x0000\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	src := Sources{Daemon: func(context.Context) (daemon.Info, bool) { return daemon.Info{PID: 4242}, true }, Store: store,
		Index: func() (index.Index, error) { return idx, nil },
		Receiver: func(string) (record.ReceiverState, bool) {
			return record.ReceiverState{Server: "pg1", Slot: "wk", Timeline: 1, Connected: true, ReceivedLSN: "0/9000000"}, true
		}}
	st, err := Gather(ctx, srv, src)
	if err != nil {
		t.Fatal(err)
	}
	if !st.DaemonRunning || st.DaemonPID != 4242 || st.Identity == nil || st.Identity.SegSize != 16<<20 || st.IncomingBacklog != 1 ||
		st.ErrorFiles != 1 || st.Errors[0].Reason != "not a WAL file: bad magic 0x0000" || st.Backups != 2 || st.LastBackup.ID != "B2" || st.Receiver == nil {
		t.Errorf("Gather = %+v", st)
	}
	var w bytes.Buffer
	st.WriteText(&w, now)
	for _, want := range []string{
		"Server pg1:\n  Description:        main db\n  Active:             true\n  Daemon:             running (pid 4242)\n",
		"  System identifier:  7300000000000000001\n  WAL segment size:   16 MiB\n",
		"  Backups:            2, last B2 ended " + now.Add(-time.Hour).Local().Format(time.RFC3339) + " (1h0m0s ago)\n",
		"  Streaming receiver: connected, slot wk, timeline 1\n    received 0/9000000, flushed -, lag 0 B (0.0s)\n",
		"  Incoming backlog:   1 files (33 B)\n  Files in errors/:   1\n    not a WAL file: bad magic 0x0000\n",
	} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, w.String())
		}
	}
	// No daemon, no identity, no receiver.
	src.Daemon = func(context.Context) (daemon.Info, bool) { return daemon.Info{}, false }
	src.Receiver = func(string) (record.ReceiverState, bool) { return record.ReceiverState{}, false }
	if err := store.Delete(ctx, archive.IdentityKey("pg1")); err != nil {
		t.Fatal(err)
	}
	st, err = Gather(ctx, srv, src)
	if err != nil || st.DaemonRunning || st.Identity != nil || st.Receiver != nil {
		t.Errorf("Gather without daemon = %+v, %v", st, err)
	}
	w.Reset()
	st.WriteText(&w, now)
	if !strings.Contains(w.String(), "NOT running (start `walkeeper watch`)") || !strings.Contains(w.String(), "unknown (no WAL archived yet)") ||
		!strings.Contains(w.String(), "  Incoming backlog:   1 files (33 B; restore reads them there, the daemon archives them once started)\n") {
		t.Errorf("status without daemon:\n%s", w.String())
	}
	src.Index = func() (index.Index, error) { return nil, errors.New("index locked") }
	if _, err := Gather(ctx, srv, src); err == nil || err.Error() != "index locked" {
		t.Errorf("Gather with no index = %v", err)
	}

	rows, err := Summaries(ctx, cfg.Servers, idx, now)
	if err != nil || len(rows) != 1 || rows[0].Backups != 2 || rows[0].LastBackup != "B2" || rows[0].LastBackupAge != "1h0m0s" ||
		rows[0].IncomingBacklog != 1 || rows[0].ErrorFiles != 1 {
		t.Fatalf("Summaries = %+v, %v", rows, err)
	}
	w.Reset()
	WriteSummaries(&w, rows, now)
	if lines := strings.Split(strings.TrimSpace(w.String()), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "SERVER  ACTIVE  SEGMENTS") ||
		!strings.Contains(lines[1], "pg1     true    0         0 B     -              2        B2 (1h0m0s ago)  1        1       main db") {
		t.Errorf("list-servers:\n%s", w.String())
	}
	if rows, err := Summaries(ctx, nil, idx, now); err != nil || rows == nil || len(rows) != 0 {
		t.Errorf("no servers: %#v, %v; want an empty list (JSON [])", rows, err)
	}
}
