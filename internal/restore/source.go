package restore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// archiveSource reads backups with basebackup's reader, straight from storage (no
// index: a restore must work while the index is being rebuilt or is lost).
type archiveSource struct {
	store  storage.Store
	server string
}

// NewSource is the Source of a server's backups in the archive.
func NewSource(store storage.Store, server string) Source {
	return &archiveSource{store: store, server: server}
}

func (s *archiveSource) Backups(ctx context.Context) ([]record.Backup, error) {
	ids, err := archive.ListBackupIDs(ctx, s.store, s.server)
	if err != nil {
		return nil, fmt.Errorf("backups of %s: %w", s.server, err)
	}
	out := make([]record.Backup, 0, len(ids))
	for _, id := range ids {
		b, err := basebackup.LoadInfo(ctx, s.store, s.server, id)
		if err != nil {
			return nil, fmt.Errorf("backup %s: %w", id, err)
		}
		out = append(out, b)
	}
	return out, nil // List is in lexical order: ids are timestamps, so oldest first
}

func (s *archiveSource) Resolve(backups []record.Backup, ref string) (record.Backup, error) {
	return basebackup.Resolve(backups, ref)
}

func (s *archiveSource) Contents(ctx context.Context, id string) ([]Entry, error) {
	es, err := basebackup.Contents(ctx, s.store, s.server, id)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = Entry{Tablespace: e.Tablespace, Path: e.Path, Type: e.Type, Mode: e.Mode, Size: e.Size, ModTime: e.ModTime, Link: e.Link, Ref: e}
	}
	return out, nil
}

func (s *archiveSource) Open(ctx context.Context, e Entry) (io.ReadCloser, error) {
	be, ok := e.Ref.(basebackup.Entry)
	if !ok {
		return nil, fmt.Errorf("restore: entry %s is not from this archive", e.Path)
	}
	return basebackup.OpenEntry(ctx, s.store, be)
}

// Units groups the file entries by the object that stores them (basebackup.PlanReads),
// so each solid bundle is read and decoded once for all its files.
func (s *archiveSource) Units(entries []Entry) []Unit {
	var bes []basebackup.Entry
	byRef := map[string]Entry{}
	for _, e := range entries {
		if be, ok := e.Ref.(basebackup.Entry); ok && e.Type == "file" {
			bes = append(bes, be)
			byRef[entryKey(e.Tablespace, e.Path)] = e
		}
	}
	plan := basebackup.PlanReads(bes)
	out := make([]Unit, len(plan))
	for i, u := range plan {
		es := make([]Entry, len(u.Entries))
		for j, be := range u.Entries {
			es[j] = byRef[entryKey(be.Tablespace, be.Path)]
		}
		out[i] = Unit{Entries: es, Size: u.Size, Read: func(ctx context.Context, fn func(e Entry, r io.Reader) error) error {
			return u.Read(ctx, s.store, func(be basebackup.Entry, r io.Reader) error {
				return fn(byRef[entryKey(be.Tablespace, be.Path)], r)
			})
		}}
	}
	return out
}

func (s *archiveSource) Manifest(ctx context.Context, id string) ([]byte, error) {
	r, err := s.store.Get(ctx, archive.BackupManifestKey(s.server, id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
