// Package bbtest stores synthetic base backups in basebackup's on-disk format (solid
// bundles, per-file objects, contents.json.zst, a backup_manifest with SHA-256
// checksums), for tests of the readers (restore, verify) that need many bundles or
// crafted entries without a PostgreSQL.
package bbtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// File is one entry of a synthetic backup.
type File struct {
	Tablespace uint32
	Path       string
	Type       string // basebackup.TypeFile (default), TypeDir or TypeSymlink
	Data       []byte
	Link       string
}

// Backup is what Write stored.
type Backup struct {
	Info    record.Backup
	Bundles int // solid bundle objects
}

// Write stores files as backup id of server: files up to small bytes go into solid
// bundles of about bundle raw bytes each (in the order given), larger ones into
// objects of their own. The backup_manifest lists every file (tablespace files under
// pg_tblspc/<oid>/).
func Write(t testing.TB, store storage.Store, server, id string, files []File, small, bundle int, tablespaces []record.Tablespace) Backup {
	t.Helper()
	return write(t, store, server, id, files, small, bundle, tablespaces, false)
}

// WriteRecorded is Write as walkeeper's backups are now stored: a CRC-32C manifest, and
// each file's sum and each stored object's size and digest recorded in contents.json.
func WriteRecorded(t testing.TB, store storage.Store, server, id string, files []File, small, bundle int) Backup {
	t.Helper()
	return write(t, store, server, id, files, small, bundle, nil, true)
}

func write(t testing.TB, store storage.Store, server, id string, files []File, small, bundle int, tablespaces []record.Tablespace, recorded bool) Backup {
	t.Helper()
	ctx := context.Background()
	mtime := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var entries []basebackup.Entry
	var raw []byte
	var members []int
	var objects []basebackup.StoredObject
	put := func(key string, packed []byte) {
		if _, err := store.Put(ctx, key, bytes.NewReader(packed)); err != nil {
			t.Fatal(err)
		}
		d := xxhash.New()
		d.Write(packed)
		objects = append(objects, basebackup.StoredObject{Key: key, Size: int64(len(packed)), XXH64: basebackup.XXH64(d)})
	}
	out := Backup{}
	flush := func() {
		if len(members) == 0 {
			return
		}
		out.Bundles++
		key := archive.BackupDataPrefix(server, id) + fmt.Sprintf("bundles/%06d.zst", out.Bundles)
		packed, err := compress.EncodeSolid(compress.Zstd, 1, raw)
		if err != nil {
			t.Fatal(err)
		}
		put(key, packed)
		for _, i := range members {
			entries[i].Key = key
		}
		raw, members = raw[:0], nil
	}
	var manifest []string
	for _, f := range files {
		typ := f.Type
		if typ == "" {
			typ = basebackup.TypeFile
		}
		e := basebackup.Entry{Tablespace: f.Tablespace, Path: f.Path, Type: typ, Mode: 0o600, ModTime: mtime, Link: f.Link}
		if typ == basebackup.TypeDir {
			e.Mode = 0o700
		}
		if typ == basebackup.TypeFile {
			e.Size = int64(len(f.Data))
			alg, sum := "SHA256", sha256.Sum256(f.Data)
			hexSum := hex.EncodeToString(sum[:])
			if recorded {
				alg, hexSum = "CRC32C", basebackup.ManifestCRC32C(crc32.Checksum(f.Data, crc32.MakeTable(crc32.Castagnoli)))
				e.Sum = hexSum
			}
			name := f.Path
			if f.Tablespace != 0 {
				name = fmt.Sprintf("pg_tblspc/%d/%s", f.Tablespace, f.Path)
			}
			manifest = append(manifest, fmt.Sprintf(`{ "Path": %q, "Size": %d, "Last-Modified": "2026-11-24 10:00:00 GMT", "Checksum-Algorithm": "%s", "Checksum": "%s" }`,
				name, len(f.Data), alg, hexSum))
		}
		switch {
		case typ != basebackup.TypeFile || len(f.Data) == 0:
		case len(f.Data) <= small:
			e.Codec, e.Solid, e.Offset = compress.Zstd, true, int64(len(raw))
			raw = append(raw, f.Data...)
			members = append(members, len(entries))
		default:
			e.Codec = compress.Zstd
			e.Key = archive.BackupDataPrefix(server, id) + fmt.Sprintf("files/%d/%s.zst", f.Tablespace, f.Path)
			packed, err := compress.EncodeAll(compress.Zstd, 1, f.Data, nil)
			if err != nil {
				t.Fatal(err)
			}
			put(e.Key, packed)
			e.StoredSize = int64(len(packed))
		}
		entries = append(entries, e)
		if len(raw) >= bundle {
			flush()
		}
	}
	flush()
	doc := map[string]any{"version": 2, "backup_id": id, "entries": entries}
	if recorded {
		doc["objects"] = objects
	}
	cjson, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cdata, err := compress.EncodeAll(compress.Zstd, 1, cjson, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, archive.BackupContentsKey(server, id), bytes.NewReader(cdata)); err != nil {
		t.Fatal(err)
	}
	body := "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n" + strings.Join(manifest, ",\n") +
		" ],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n"
	sum := sha256.Sum256([]byte(body))
	body += "\"Manifest-Checksum\": \"" + hex.EncodeToString(sum[:]) + "\"}\n"
	if _, err := store.Put(ctx, archive.BackupManifestKey(server, id), strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	out.Info = record.Backup{ID: id, Server: server, Status: record.StatusDone, Timeline: 1, Tablespaces: tablespaces,
		BeginLSN: 0x2000028, EndLSN: 0x2000100, EndTime: mtime}
	if err := basebackup.SaveInfo(ctx, store, out.Info); err != nil {
		t.Fatal(err)
	}
	return out
}
