package daemon

import (
	"context"
	"testing"

	"github.com/walkeeper/walkeeper/internal/record"
)

// ShortIndex holds the index only for the length of a call: a daemon could open it
// between two calls.
func TestShortIndex(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	si := ShortIndex{Home: home}
	if err := si.PutBackup(ctx, "pg1", record.Backup{ID: "B1", Status: record.StatusDone}); err != nil {
		t.Fatal(err)
	}
	idx, err := OpenLocalIndex(home, nil, 0) // not locked: the call closed it
	if err != nil {
		t.Fatalf("the index is still held after PutBackup: %v", err)
	}
	idx.Close()
	bs, err := si.ListBackups(ctx, "pg1")
	if err != nil || len(bs) != 1 || bs[0].ID != "B1" {
		t.Errorf("ListBackups = %+v, %v", bs, err)
	}
}
