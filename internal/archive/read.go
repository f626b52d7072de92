package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Find locates an archived WAL file in storage without the index (get-wal relies on
// this): it probes the key of each codec in compress.Codecs order, and returns
// storage.ErrNotFound (wrapped, naming the file) when none exists.
func Find(ctx context.Context, store storage.Store, server, name string) (key, codec string, err error) {
	if t, ok := store.(storage.Tiered); ok {
		key, codec, err = find(ctx, t.LocalTier(), server, name)
		if !errors.Is(err, storage.ErrNotFound) {
			return key, codec, err
		}
	}
	return find(ctx, store, server, name)
}

func find(ctx context.Context, store storage.Store, server, name string) (key, codec string, err error) {
	for _, c := range compress.Codecs {
		k := WALKey(server, name, c)
		if _, err := store.Stat(ctx, k); err == nil {
			return k, c, nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return "", "", err
		}
	}
	return "", "", fmt.Errorf("%s: %w", name, storage.ErrNotFound)
}

// Read returns the uncompressed content of an archived object.
func Read(ctx context.Context, store storage.Store, key, codec string) ([]byte, error) {
	return ReadInto(ctx, store, key, codec, nil)
}

// ReadInto is Read decoding into dst's memory (dst[:0]), which should have room for
// the whole result: a decoder without room grows its buffer once per zstd frame.
func ReadInto(ctx context.Context, store storage.Store, key, codec string, dst []byte) ([]byte, error) {
	r, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	out, err := compress.DecodeAll(codec, raw, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", key, err)
	}
	return out, nil
}

// ReadWAL finds and reads archived WAL file name (Find, then Read).
func ReadWAL(ctx context.Context, store storage.Store, server, name string) ([]byte, error) {
	key, codec, err := Find(ctx, store, server, name)
	if err != nil {
		return nil, err
	}
	return Read(ctx, store, key, codec)
}

// ListWAL calls fn for every object under server's wals/, in lexical key order, with
// the object and its key read back (err from ParseWALKey for an object that is not an
// archived WAL file: callers decide whether to skip or report it).
func ListWAL(ctx context.Context, store storage.Store, server string, fn func(i storage.Info, k Key, err error) error) error {
	prefix := WALPrefix(server)
	return store.List(ctx, prefix, func(i storage.Info) error {
		k, err := ParseWALKey(server, i.Key)
		return fn(i, k, err)
	})
}

// ListHistory calls fn for every archived timeline history file of server (the
// history/ directory), in lexical order.
func ListHistory(ctx context.Context, store storage.Store, server string, fn func(i storage.Info, k Key) error) error {
	return store.List(ctx, HistoryPrefix(server), func(i storage.Info) error {
		k, err := ParseWALKey(server, i.Key)
		if err != nil || k.WAL.Kind != segments.KindHistory {
			return nil // not a history file: nothing else is written there
		}
		return fn(i, k)
	})
}

// errStop ends a listing early.
var errStop = errors.New("stop")

// HasWAL reports whether server's wals/ holds any object at all.
func HasWAL(ctx context.Context, store storage.Store, server string) (bool, error) {
	err := store.List(ctx, WALPrefix(server), func(storage.Info) error { return errStop })
	if errors.Is(err, errStop) {
		return true, nil
	}
	return false, err
}

// NewestSegment names the newest complete segment archived for server (by name:
// timeline, then position), or "" when there is none; .partial, .backup and .history
// files do not count. It lists the whole archive: for a receiver that must not open
// the index.
func NewestSegment(ctx context.Context, store storage.Store, server string) (string, error) {
	last := ""
	err := ListWAL(ctx, store, server, func(_ storage.Info, k Key, err error) error {
		if err == nil && k.WAL.Kind == segments.KindSegment && k.Name > last {
			last = k.Name
		}
		return nil
	})
	return last, err
}

// SegSize is server's WAL segment size from its stored identity, or from the header of
// the first archived segment when the identity file is gone; 0 when the archive holds
// no readable segment.
func SegSize(ctx context.Context, store storage.Store, server string) (uint64, error) {
	if id, err := LoadIdentity(ctx, store, server); err == nil {
		return id.SegSize, nil
	}
	var found uint64
	err := ListWAL(ctx, store, server, func(i storage.Info, k Key, err error) error {
		if found != 0 || err != nil || k.WAL.Kind != segments.KindSegment {
			return nil
		}
		data, err := Read(ctx, store, i.Key, k.Codec)
		if err != nil {
			return nil
		}
		if h, err := segments.ParseLongHeader(data); err == nil {
			found = uint64(h.SegSize)
		}
		return nil
	})
	return found, err
}

// LoadIdentity reads a server's stored identity; storage.ErrNotFound (wrapped) when
// none was learned yet.
func LoadIdentity(ctx context.Context, store storage.Store, server string) (record.Identity, error) {
	var id record.Identity
	r, err := store.Get(ctx, IdentityKey(server))
	if err != nil {
		return id, err
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(&id); err != nil {
		return id, fmt.Errorf("%s: %w", IdentityKey(server), err)
	}
	return id, nil
}

// SaveIdentity stores a server's identity durably (ingest, once, when it learns it).
func SaveIdentity(ctx context.Context, store storage.Store, server string, id record.Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	_, err = store.Put(ctx, IdentityKey(server), bytes.NewReader(b))
	return err
}

// ListBackupIDs returns the ids of server's backups that have a backup.info, in
// lexical order (ids are UTC start times, so oldest first).
func ListBackupIDs(ctx context.Context, store storage.Store, server string) ([]string, error) {
	var ids []string
	prefix := BackupsPrefix(server)
	err := store.List(ctx, prefix, func(i storage.Info) error {
		// Cheap test first: a backup holds thousands of data objects.
		if !strings.HasSuffix(i.Key, "/"+backupInfo) {
			return nil
		}
		if k, err := ParseKey(i.Key); err == nil && k.Kind == KeyBackupInfo && k.Server == server && BackupInfoKey(server, k.BackupID) == i.Key {
			ids = append(ids, k.BackupID)
		}
		return nil
	})
	return ids, err
}
