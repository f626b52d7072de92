package archive

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// The names of the layout, in one place (doc.go describes each). Changing one orphans
// every existing archive: they are part of the on-disk format.
const (
	walsDir       = "wals"
	historyDir    = "history"
	backupsDir    = "base"
	identityName  = "identity.json"
	backupInfo    = "backup.info"
	backupMan     = "backup_manifest"
	contentsName  = "contents.json.zst"
	contentsV1    = "contents.json"
	backupDataDir = "data"

	incomingDir  = "incoming"
	errorsDir    = "errors"
	streamingDir = "streaming"
)

// WALPrefix is the storage prefix of every archived WAL file of server:
// "<server>/wals/".
func WALPrefix(server string) string { return server + "/" + walsDir + "/" }

// HistoryPrefix is the storage prefix of server's archived timeline history files:
// "<server>/wals/history/".
func HistoryPrefix(server string) string { return WALPrefix(server) + historyDir + "/" }

// Dir is the wals/ subdirectory a file is archived in, keeping directories to at most
// one log's worth of segments (Barman's layout). Segments, .partial and .backup files
// go to their first 16 characters (timeline + log), so a .backup sits beside the
// segment it points into; .history files go to "history". A name segments.Parse
// rejects returns "", so a caller cannot build a key from an unvalidated name by
// accident.
func Dir(name string) string {
	n, err := segments.Parse(name)
	if err != nil {
		return ""
	}
	if n.Kind == segments.KindHistory {
		return historyDir
	}
	return name[:16]
}

// WALKey is the storage key of WAL file name archived with codec:
// "<server>/wals/<Dir(name)>/<name><codec suffix>".
func WALKey(server, name, codec string) string {
	return WALPrefix(server) + Dir(name) + "/" + name + compress.Suffix(codec)
}

// IdentityKey is the storage key of a server's identity (record.Identity as JSON):
// "<server>/identity.json".
func IdentityKey(server string) string { return server + "/" + identityName }

// BackupsPrefix is the storage prefix of all of server's base backups: "<server>/base/".
func BackupsPrefix(server string) string { return server + "/" + backupsDir + "/" }

// BackupPrefix is the storage prefix of everything one backup stores:
// "<server>/base/<id>/".
func BackupPrefix(server, id string) string { return BackupsPrefix(server) + id + "/" }

// BackupInfoKey is the key of a backup's backup.info (record.Backup as JSON).
func BackupInfoKey(server, id string) string { return BackupPrefix(server, id) + backupInfo }

// BackupManifestKey is the key of the server's backup_manifest, stored as sent.
func BackupManifestKey(server, id string) string { return BackupPrefix(server, id) + backupMan }

// BackupContentsKey is the key of a backup's entry list (contents.json, zstd).
func BackupContentsKey(server, id string) string {
	return BackupPrefix(server, id) + contentsName
}

// BackupContentsV1Key is where format version 1 stored the entry list, uncompressed.
func BackupContentsV1Key(server, id string) string {
	return BackupPrefix(server, id) + contentsV1
}

// BackupDataPrefix is the prefix under which a backup's file contents are stored. The
// object keys below it are basebackup's own (it records each one in the contents
// list, so no reader builds them): "<server>/base/<id>/data/".
func BackupDataPrefix(server, id string) string {
	return BackupPrefix(server, id) + backupDataDir + "/"
}

// Server directories: the parts of <home>/<server>/ that live outside storage, on the
// backup host's own disk (serverDir is <home>/<server>).

// IncomingDir is where archive-wal, put-wal and the receiver make WAL files durable
// for the daemon to archive.
func IncomingDir(serverDir string) string { return filepath.Join(serverDir, incomingDir) }

// ErrorsDir is the quarantine: files ingest refused, each with its reason beside it.
func ErrorsDir(serverDir string) string { return filepath.Join(serverDir, errorsDir) }

// StreamingDir holds the streaming receiver's open .partial segment and its state.
func StreamingDir(serverDir string) string { return filepath.Join(serverDir, streamingDir) }

// KeyKind says what a storage key of the archive holds.
type KeyKind int

// Kinds of keys.
const (
	KeyWAL            KeyKind = iota + 1 // an archived WAL file (segment, .partial, .backup, .history)
	KeyIdentity                          // the server's identity.json
	KeyBackupInfo                        // a backup's backup.info
	KeyBackupManifest                    // a backup's backup_manifest
	KeyBackupContents                    // a backup's contents list (either version)
	KeyBackupData                        // an object under a backup's data/
)

func (k KeyKind) String() string {
	switch k {
	case KeyWAL:
		return "wal"
	case KeyIdentity:
		return "identity"
	case KeyBackupInfo:
		return "backup-info"
	case KeyBackupManifest:
		return "backup-manifest"
	case KeyBackupContents:
		return "backup-contents"
	case KeyBackupData:
		return "backup-data"
	}
	return fmt.Sprintf("KeyKind(%d)", int(k))
}

// Key is a storage key of the archive read back.
type Key struct {
	Kind   KeyKind
	Server string
	// WAL files: the file name without the codec's suffix, the codec, the parsed name,
	// and whether the key is the one WALKey gives (the file sits in its own
	// directory). A WAL file found elsewhere under wals/ (moved there by hand) is
	// still a WAL file, but Find never looks for it there.
	Name      string
	Codec     string
	WAL       segments.Name
	Canonical bool
	// Backup keys: the backup's id and, for data objects, the path below data/.
	BackupID string
	Path     string
}

// ParseKey reads a storage key of the archive back into what it holds. A key that is
// not one of the layout's (a stray file, a WAL name segments.Parse rejects) is an
// error naming the key and the reason.
func ParseKey(key string) (Key, error) {
	bad := func(why string) (Key, error) { return Key{}, fmt.Errorf("%s: %s", key, why) }
	server, rest, ok := strings.Cut(key, "/")
	if !ok || server == "" {
		return bad("not under a server")
	}
	k := Key{Server: server}
	if rest == identityName {
		k.Kind = KeyIdentity
		return k, nil
	}
	top, rest, _ := strings.Cut(rest, "/")
	switch top {
	case walsDir:
		i := strings.LastIndexByte(rest, '/')
		file := rest[i+1:]
		codec, base := compress.FromName(file)
		n, err := segments.Parse(base)
		if err != nil {
			return bad(fmt.Sprintf("not an archived WAL file: %v", err))
		}
		k.Kind, k.Name, k.Codec, k.WAL = KeyWAL, base, codec, n
		k.Canonical = key == WALKey(server, base, codec)
		return k, nil
	case backupsDir:
		id, file, ok := strings.Cut(rest, "/")
		if !ok || id == "" || file == "" {
			return bad("not a file of a backup")
		}
		k.BackupID = id
		switch {
		case file == backupInfo:
			k.Kind = KeyBackupInfo
		case file == backupMan:
			k.Kind = KeyBackupManifest
		case file == contentsName || file == contentsV1:
			k.Kind = KeyBackupContents
		case strings.HasPrefix(file, backupDataDir+"/") && len(file) > len(backupDataDir)+1:
			k.Kind, k.Path = KeyBackupData, file[len(backupDataDir)+1:]
		default:
			return bad("not a file of the backup format")
		}
		return k, nil
	}
	return bad("not in the archive's layout")
}

// ParseWALKey is ParseKey for a key listed under WALPrefix(server): the archived file
// it holds, or an error naming the key and the reason.
func ParseWALKey(server, key string) (Key, error) {
	k, err := ParseKey(key)
	if err != nil {
		return k, err
	}
	if k.Kind != KeyWAL || k.Server != server {
		return Key{}, fmt.Errorf("%s: not an archived WAL file of %s", key, server)
	}
	return k, nil
}

// IsWALKeyOf reports whether key is the canonical key of WAL file name in server's
// archive, in any codec: the only keys retention may delete for that name.
func IsWALKeyOf(server, name, key string) bool {
	k, err := ParseWALKey(server, key)
	return err == nil && k.Canonical && k.Name == name
}

// CodecOf is the codec an archived WAL object's key names by its suffix.
func CodecOf(key string) string {
	codec, _ := compress.FromName(key[strings.LastIndexByte(key, '/')+1:])
	return codec
}
