// Package storage is the one door to archived data (wals/ and base/): durable put, get,
// list by prefix and delete by key. Nothing outside it assumes archived data lives on a
// local disk, so an object store can take the local filesystem's place later.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// ErrNotFound is returned by Get, Stat and Delete for a key that does not exist.
var ErrNotFound = errors.New("not found")

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store is the storage interface. Keys are slash-separated relative paths such as
// "pg1/wals/0000000100000000/000000010000000000000001.zst".
type Store interface {
	// Put stores r under key and returns only once the object is durable.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens key for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes key.
	Stat(ctx context.Context, key string) (Info, error)
	// List calls fn for every key starting with prefix, in lexical order.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Delete removes key durably.
	Delete(ctx context.Context, key string) error
}

// Local is a Store on a local directory tree; objects are files of mode 0600 in
// directories of mode 0700.
type Local struct {
	root string
}

// NewLocal returns a Store rooted at root.
func NewLocal(root string) *Local { return &Local{root: filepath.Clean(root)} }

// Root is the directory the store writes under.
func (l *Local) Root() string { return l.root }

// Path maps a key to its file; it exists for callers that must hand a path to another
// program (restore extracting in place) and is only valid for Local.
func (l *Local) Path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(key)), nil
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || path.Clean(key) != key || strings.HasPrefix(key, "../") || key == ".." {
		return fmt.Errorf("storage key %q: not a clean relative path", key)
	}
	return nil
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := l.Path(key)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return fsutil.WriteAtomic(p, r, 0o600)
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := l.Path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return f, err
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, key string) (Info, error) {
	p, err := l.Path(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Info{}, err
	}
	if fi.IsDir() {
		return Info{}, fmt.Errorf("stat %s: is a directory: %w", key, ErrNotFound)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements Store. Temporary files of unfinished puts are never listed.
func (l *Local) List(ctx context.Context, prefix string, fn func(Info) error) error {
	dirKey := prefix
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dirKey = prefix[:i]
	} else {
		dirKey = ""
	}
	start := l.root
	if dirKey != "" {
		start = filepath.Join(l.root, filepath.FromSlash(dirKey))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, rerr := filepath.Rel(l.root, p)
		if rerr != nil {
			return rerr
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Prune directories that cannot contain a match.
			if p != start && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) || fsutil.IsTemp(d.Name()) {
			return nil
		}
		fi, ierr := d.Info()
		if ierr != nil {
			if errors.Is(ierr, fs.ErrNotExist) {
				return nil
			}
			return ierr
		}
		return fn(Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// Delete implements Store.
func (l *Local) Delete(ctx context.Context, key string) error {
	p, err := l.Path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return fsutil.SyncDir(filepath.Dir(p))
}

// RemoveStaleTemps removes the temporary files of interrupted Puts under prefix that
// are older than minAge (see fsutil.RemoveStaleTemps) and returns their keys. Only the
// local store has them: an object store's upload is never visible until complete.
func (l *Local) RemoveStaleTemps(prefix string, minAge time.Duration) ([]string, error) {
	p, err := l.Path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	removed, err := fsutil.RemoveStaleTemps(p, minAge)
	keys := make([]string, 0, len(removed))
	for _, r := range removed {
		if rel, rerr := filepath.Rel(l.root, r); rerr == nil {
			keys = append(keys, filepath.ToSlash(rel))
		}
	}
	return keys, err
}
