package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
)

// Manifest is PostgreSQL's backup_manifest (format version 1 of PG 13-16, 2 of PG 17).
type Manifest struct {
	Version          int            `json:"PostgreSQL-Backup-Manifest-Version"`
	SystemIdentifier uint64         `json:"System-Identifier,omitempty"`
	Files            []ManifestFile `json:"Files"`
	WALRanges        []ManifestWAL  `json:"WAL-Ranges"`
	Checksum         string         `json:"Manifest-Checksum"`
}

// ManifestFile is one entry of the manifest's "Files" array.
type ManifestFile struct {
	Path              string `json:"Path,omitempty"`
	EncodedPath       string `json:"Encoded-Path,omitempty"`
	Size              int64  `json:"Size"`
	LastModified      string `json:"Last-Modified"`
	ChecksumAlgorithm string `json:"Checksum-Algorithm,omitempty"`
	Checksum          string `json:"Checksum,omitempty"`
}

// ManifestWAL is one entry of "WAL-Ranges": the WAL the backup needs on a timeline.
type ManifestWAL struct {
	Timeline uint32 `json:"Timeline"`
	StartLSN string `json:"Start-LSN"`
	EndLSN   string `json:"End-LSN"`
}

// ParseManifest reads a backup_manifest and checks its own SHA-256 checksum (over every
// byte up to the line that holds it, as pg_verifybackup does), so a damaged manifest is
// never taken as the truth about the files. Hex-encoded paths are decoded into Path.
func ParseManifest(data []byte) (*Manifest, error) {
	m, err := decodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("backup_manifest: %w", err)
	}
	if m.Version != 1 && m.Version != 2 {
		return nil, fmt.Errorf("backup_manifest: unknown PostgreSQL-Backup-Manifest-Version %d", m.Version)
	}
	if m.Checksum == "" {
		return nil, errors.New("backup_manifest: no Manifest-Checksum")
	}
	// The checksum covers everything up to and including the newline that ends the
	// line before the last one (the checksum line itself).
	trimmed := bytes.TrimRight(data, "\n")
	last := bytes.LastIndexByte(trimmed, '\n')
	if last < 0 {
		return nil, errors.New("backup_manifest: no line break before Manifest-Checksum")
	}
	if !bytes.Contains(trimmed[last:], []byte(`"Manifest-Checksum"`)) {
		return nil, errors.New("backup_manifest: the last line is not the Manifest-Checksum")
	}
	sum := sha256.Sum256(data[:last+1])
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, m.Checksum) {
		return nil, fmt.Errorf("backup_manifest: manifest checksum mismatch: manifest says %s, content hashes to %s", m.Checksum, got)
	}
	seen := make(map[string]bool, len(m.Files))
	for i := range m.Files {
		f := &m.Files[i]
		if f.Path == "" {
			if f.EncodedPath == "" {
				return nil, fmt.Errorf("backup_manifest: file entry %d has neither Path nor Encoded-Path", i+1)
			}
			p, err := hex.DecodeString(f.EncodedPath)
			if err != nil {
				return nil, fmt.Errorf("backup_manifest: file entry %d: Encoded-Path: %w", i+1, err)
			}
			f.Path = string(p)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("backup_manifest: %s listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 {
			return nil, fmt.Errorf("backup_manifest: %s: negative size %d", f.Path, f.Size)
		}
		if _, err := newChecksum(f.ChecksumAlgorithm); err != nil {
			return nil, fmt.Errorf("backup_manifest: %s: %w", f.Path, err)
		}
	}
	return &m, nil
}

// newChecksum returns the hash PostgreSQL uses for a Checksum-Algorithm; nil for NONE.
func newChecksum(alg string) (hash.Hash, error) {
	switch strings.ToUpper(alg) {
	case "", "NONE":
		return nil, nil
	case "CRC32C":
		return &crc32cLE{h: crc32.New(crc32.MakeTable(crc32.Castagnoli))}, nil
	case "SHA224":
		return sha256.New224(), nil
	case "SHA256":
		return sha256.New(), nil
	case "SHA384":
		return sha512.New384(), nil
	case "SHA512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unknown Checksum-Algorithm %q", alg)
}

// crc32cLE renders CRC-32C the way PostgreSQL writes it into a manifest: the bytes of
// the uint32 in little-endian memory order (pg_checksum_final memcpy's the value on the
// little-endian machines PostgreSQL builds for), not the big-endian hash.Hash32 order.
type crc32cLE struct{ h hash.Hash32 }

func (c *crc32cLE) Write(p []byte) (int, error) { return c.h.Write(p) }
func (c *crc32cLE) Sum(b []byte) []byte         { return binary.LittleEndian.AppendUint32(b, c.h.Sum32()) }
func (c *crc32cLE) Reset()                      { c.h.Reset() }
func (c *crc32cLE) Size() int                   { return 4 }
func (c *crc32cLE) BlockSize() int              { return c.h.BlockSize() }

// File is one regular file of a stored backup, named as the manifest names it
// (tablespace files under pg_tblspc/<oid>/).
type File struct {
	Path string
	Size int64
	// Ref is the source's handle for Open.
	Ref any
}

// Source is a stored backup as verification reads it.
type Source interface {
	// Files lists the backup's regular files.
	Files(ctx context.Context) ([]File, error)
	// Open returns a file's (decompressed) content.
	Open(ctx context.Context, f File) (io.ReadCloser, error)
}

// FileUnit is files stored in one object, read together (a solid bundle's members).
type FileUnit struct {
	Files []int // indexes into the files given to Units
	Size  int64
	// Read calls fn for each of Files with its content, in order; r is valid only
	// during the call, and a content that cannot be read comes as a failing reader.
	Read func(ctx context.Context, fn func(i int, r io.Reader) error) error
}

// UnitSource is a Source that knows how its files are stored: verification then reads
// unit by unit (each bundle decoded once) instead of file by file.
type UnitSource interface {
	Units(files []File) []FileUnit
}

// FilesReport is the outcome of VerifyFiles.
type FilesReport struct {
	Files    int       `json:"files"`
	Bytes    int64     `json:"bytes"`
	Problems []Problem `json:"problems,omitempty"`
}

// Files that are in a backup but not in its manifest by design.
var notInManifest = map[string]bool{"backup_manifest": true}
