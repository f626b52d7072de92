package rebuild

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// newArchive is an empty archive and index for server pg1 (the index closed at cleanup).
func newArchive(t *testing.T) (*storage.Local, *index.Badger) {
	t.Helper()
	store := storage.NewLocal(t.TempDir())
	idx, err := index.OpenBadger(filepath.Join(t.TempDir(), "idx"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idx.Close() })
	return store, idx
}

// putWAL archives each file of pg1 zstd-compressed, as ingest stores it.
func putWAL(t *testing.T, store storage.Store, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		enc, err := compress.EncodeAll(compress.Zstd, 0, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(context.Background(), archive.WALKey("pg1", name, compress.Zstd), bytes.NewReader(enc)); err != nil {
			t.Fatal(err)
		}
	}
}
