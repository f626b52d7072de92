package ingest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/storage"
)

var (
	realOnce sync.Once
	realSeg  []byte
	realErr  string
)

type fixture struct {
	p     *Pipeline
	idx   *index.Badger
	store *storage.Local
	srv   PipelineConfig
}

func newFixture(t *testing.T, codec string) *fixture {
	home := t.TempDir()
	idx, err := index.OpenBadger(filepath.Join(home, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	srv := PipelineConfig{Name: "pg1", IncomingDir: filepath.Join(home, "pg1", "incoming"), ErrorsDir: filepath.Join(home, "pg1", "errors"),
		Compression: codec, Workers: 2}
	store := storage.NewLocal(home)
	p, err := NewPipeline(srv, store, idx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(srv.IncomingDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &fixture{p: p, idx: idx, store: store, srv: srv}
}

func (f *fixture) drop(t *testing.T, name string, data []byte) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Drop(f.srv.IncomingDir, src); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) process(t *testing.T, name string) Result {
	t.Helper()
	r, err := f.p.Process(context.Background(), name)
	if err != nil {
		t.Fatalf("process %s: %v", name, err)
	}
	return r
}
