package ingest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestCurrentReceiverState(t *testing.T) {
	dir := t.TempDir()
	if _, ok := CurrentReceiverState(nil, dir); ok {
		t.Error("a state for a server that never streamed")
	}
	typed := ReceiverState{Server: "pg1", Slot: "walkeeper", Timeline: 2, Connected: true}
	if got, ok := CurrentReceiverState(typed, dir); !ok || got.Slot != "walkeeper" || got.Timeline != 2 {
		t.Errorf("typed state: %+v, %v", got, ok)
	}
	// /v1/info decodes the daemon's state as a map.
	b, _ := json.Marshal(typed)
	var decoded any
	_ = json.Unmarshal(b, &decoded)
	if got, ok := CurrentReceiverState(decoded, dir); !ok || got.Server != "pg1" || got.Timeline != 2 || !got.Connected {
		t.Errorf("decoded state: %+v, %v", got, ok)
	}
	// No daemon: the state file, marked not running as no receiver holds the lock.
	st := typed
	st.Running = true
	b, _ = json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, ReceiverStateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, ok := CurrentReceiverState(nil, dir); !ok || got.Running || got.Connected || got.Slot != "walkeeper" {
		t.Errorf("state file: %+v, %v", got, ok)
	}
}
