// Package tier joins the local archive and a server's repository into one
// storage.Store: writes go to the local tier (ingest's latency is the local disk's; the
// uploader copies them on), reads try the local tier first and fall back to the
// repository, so get-wal, restore, verify and index rebuild work unchanged whether an
// object is still local, only in the repository, or both — also on a new backup host
// whose local home is empty.
package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// Store is the two tiers. Remote may be nil (no repository): Store is then Local.
type Store struct {
	Local  storage.Store
	Remote storage.Store
	// Degraded, when set, lets List go on with the local tier alone when the
	// repository cannot be listed, after telling it the cause (a restore from the
	// local archive must not depend on the repository being up). Unset, that is an
	// error. Reads of one object and deletes never degrade: an object that is not
	// local, or a delete that did not reach the repository, is an error.
	Degraded func(error)
}

// New returns the tiered store, or local itself when there is no repository.
func New(local, remote storage.Store) storage.Store {
	if remote == nil {
		return local
	}
	return &Store{Local: local, Remote: remote}
}

// LocalTier implements storage.Tiered.
func (s *Store) LocalTier() storage.Store { return s.Local }

// Put implements storage.Store: the local tier only.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	return s.Local.Put(ctx, key, r)
}

// Get implements storage.Store.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Local.Get(ctx, key)
	if !errors.Is(err, storage.ErrNotFound) {
		return rc, err
	}
	return s.Remote.Get(ctx, key)
}

// Stat implements storage.Store.
func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	i, err := s.Local.Stat(ctx, key)
	if !errors.Is(err, storage.ErrNotFound) {
		return i, err
	}
	return s.Remote.Stat(ctx, key)
}

// List implements storage.Store: the keys of both tiers, each once (the local
// object's Info where both hold it), in lexical order.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	byKey := map[string]storage.Info{}
	collect := func(st storage.Store, keep bool) error {
		return st.List(ctx, prefix, func(i storage.Info) error {
			if _, ok := byKey[i.Key]; !ok || keep {
				byKey[i.Key] = i
			}
			return nil
		})
	}
	if err := collect(s.Remote, false); err != nil {
		if s.Degraded == nil || ctx.Err() != nil {
			return fmt.Errorf("repository: %w", err)
		}
		s.Degraded(err)
		clear(byKey)
	}
	if err := collect(s.Local, true); err != nil {
		return err
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(byKey[k]); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Store: from both tiers; ErrNotFound only when neither
// held key.
func (s *Store) Delete(ctx context.Context, key string) error {
	lerr := s.Local.Delete(ctx, key)
	if lerr != nil && !errors.Is(lerr, storage.ErrNotFound) {
		return lerr
	}
	rerr := s.Remote.Delete(ctx, key)
	if rerr != nil && !errors.Is(rerr, storage.ErrNotFound) {
		return fmt.Errorf("repository: %w", rerr)
	}
	if lerr != nil && rerr != nil {
		return lerr
	}
	return nil
}
