package repo

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/crypt"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// TestDirectoryRepository: a directory repository, encrypted with a key file: Open
// refuses it before Init (no silent new key), Init creates the key once, objects are
// sealed on disk and read back, and another key is refused by name.
func TestDirectoryRepository(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(t.TempDir(), "wk.key")
	if _, err := crypt.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	r := config.Repository{Kind: "dir", URL: dir, Path: dir, Encryption: "age", KeyFile: key}

	if _, err := Open(ctx, r); err == nil || !strings.Contains(err.Error(), "repository-init") {
		t.Fatalf("Open before Init: %v, want a pointer to repository-init", err)
	}
	if msg, err := Init(ctx, "pg1", r); err != nil || !strings.Contains(msg, "key was created") {
		t.Fatalf("Init: %q %v", msg, err)
	}
	if msg, err := Init(ctx, "pg1", r); err != nil || !strings.Contains(msg, "opens with the configured secret") {
		t.Fatalf("Init again: %q %v, want no change", msg, err)
	}
	s, err := Open(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "pg1/wals/0000000100000000/000000010000000000000001.zst", strings.NewReader("segment bytes")); err != nil {
		t.Fatal(err)
	}
	raw, err := storage.NewLocal(dir).Get(ctx, "pg1/wals/0000000100000000/000000010000000000000001.zst")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(raw)
	raw.Close()
	if strings.Contains(string(b), "segment bytes") {
		t.Error("the object is stored in clear")
	}
	rc, err := s.Get(ctx, "pg1/wals/0000000100000000/000000010000000000000001.zst")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(rc)
	rc.Close()
	if string(b) != "segment bytes" {
		t.Errorf("read back %q", b)
	}

	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := crypt.GenerateKeyFile(other); err != nil {
		t.Fatal(err)
	}
	r.KeyFile = other
	if _, err := Open(ctx, r); err == nil || !strings.Contains(err.Error(), "wrong key") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Open with another key: %v, want one line saying wrong key", err)
	}

	gone := config.Repository{Kind: "dir", URL: "/nonexistent/offsite", Path: "/nonexistent/offsite", Encryption: "none"}
	if _, err := Open(ctx, gone); err == nil || !strings.Contains(err.Error(), "/nonexistent/offsite: not a directory") {
		t.Errorf("missing directory: %v", err)
	}
	plain := config.Repository{Kind: "dir", URL: dir, Path: dir, Encryption: "none"}
	if s, err := Open(ctx, plain); err != nil || s == nil {
		t.Errorf("plain directory repository: %v", err)
	}
}

// TestInitCreatesKeyFile: a first init with a key file that does not exist makes it
// (mode 0600), and the repository opens with it.
func TestInitCreatesKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := filepath.Join(t.TempDir(), "new.key")
	r := config.Repository{Kind: "dir", URL: dir, Path: dir, Encryption: "age", KeyFile: key}
	msg, err := Init(ctx, "pg1", r)
	if err != nil || !strings.Contains(msg, "created the key file "+key) {
		t.Fatalf("Init: %q %v", msg, err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if _, err := Open(ctx, r); err != nil {
		t.Fatal(err)
	}
}
