package verify

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// dirSource reads a plain-format backup directory (pg_basebackup -Fp), following the
// pg_tblspc links as the manifest does.
type dirSource struct{ root string }

func (d dirSource) Files(ctx context.Context) ([]File, error) {
	var out []File
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		es, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range es {
			p, r := filepath.Join(dir, e.Name()), filepath.ToSlash(filepath.Join(rel, e.Name()))
			fi, err := os.Stat(p) // follows tablespace links
			if err != nil {
				return err
			}
			if fi.IsDir() {
				if err := walk(p, r); err != nil {
					return err
				}
			} else if fi.Mode().IsRegular() {
				out = append(out, File{Path: r, Size: fi.Size(), Ref: p})
			}
		}
		return nil
	}
	return out, walk(d.root, "")
}

func (d dirSource) Open(ctx context.Context, f File) (io.ReadCloser, error) {
	return os.Open(f.Ref.(string))
}

func loadManifest(t *testing.T, dir string) *Manifest {
	data, err := os.ReadFile(filepath.Join(dir, "backup_manifest"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzParseManifest: arbitrary bytes never panic the parser, and whatever it accepts has
// paths and known algorithms.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "PG_VERSION", "Size": 3, "Last-Modified": "2026-11-24 15:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
"Manifest-Checksum": "0000000000000000000000000000000000000000000000000000000000000000"}
`))
	f.Add([]byte(`{"PostgreSQL-Backup-Manifest-Version": 2, "Files": [{"Encoded-Path": "6869", "Size": 1}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		for _, fl := range m.Files {
			if fl.Path == "" || fl.Size < 0 {
				t.Fatalf("accepted %+v", fl)
			}
			if _, err := newChecksum(fl.ChecksumAlgorithm); err != nil {
				t.Fatal(err)
			}
		}
	})
}
