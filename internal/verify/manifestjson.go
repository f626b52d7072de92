package verify

import (
	"github.com/walkeeper/walkeeper/internal/flatjson"
)

// decodeManifest decodes backup_manifest's JSON: the fast path first (flatjson, as
// PostgreSQL writes it: one file per line, one record per relation file), then
// encoding/json/v2 for anything it does not handle, which names the error if there is
// one. FuzzDecodeManifest proves both give the same result.
func decodeManifest(data []byte) (Manifest, error) {
	return flatjson.Decode(data, scanManifest)
}

// scanManifest is decodeManifest's fast path.
func scanManifest(s *flatjson.Scanner) (m Manifest) {
	var seen uint64
	s.Open('{')
	for first := true; s.Next(first, '}'); first = false {
		switch string(s.Name()) {
		case "PostgreSQL-Backup-Manifest-Version":
			s.Once(&seen, 0)
			m.Version = int(s.Int())
		case "System-Identifier":
			s.Once(&seen, 1)
			m.SystemIdentifier = s.Uint(64)
		case "Files":
			s.Once(&seen, 2)
			// Sized from the document (a file is written in about 140 bytes).
			m.Files = make([]ManifestFile, 0, s.Len()/120)
			s.Open('[')
			for first := true; s.Next(first, ']'); first = false {
				m.Files = append(m.Files, ManifestFile{})
				scanManifestFile(s, &m.Files[len(m.Files)-1])
			}
		case "WAL-Ranges":
			s.Once(&seen, 3)
			m.WALRanges = []ManifestWAL{}
			s.Open('[')
			for first := true; s.Next(first, ']'); first = false {
				var w ManifestWAL
				var seen uint64
				s.Open('{')
				for first := true; s.Next(first, '}'); first = false {
					switch string(s.Name()) {
					case "Timeline":
						s.Once(&seen, 0)
						w.Timeline = uint32(s.Uint(32))
					case "Start-LSN":
						s.Once(&seen, 1)
						w.StartLSN = s.String()
					case "End-LSN":
						s.Once(&seen, 2)
						w.EndLSN = s.String()
					default:
						s.Fail()
					}
				}
				m.WALRanges = append(m.WALRanges, w)
			}
		case "Manifest-Checksum":
			s.Once(&seen, 4)
			m.Checksum = s.String()
		default:
			s.Fail()
		}
	}
	return m
}

func scanManifestFile(s *flatjson.Scanner, f *ManifestFile) {
	var seen uint64
	s.Open('{')
	for first := true; s.Next(first, '}'); first = false {
		switch string(s.Name()) {
		case "Path":
			s.Once(&seen, 0)
			f.Path = s.String()
		case "Encoded-Path":
			s.Once(&seen, 1)
			f.EncodedPath = s.String()
		case "Size":
			s.Once(&seen, 2)
			f.Size = s.Int()
		case "Last-Modified":
			s.Once(&seen, 3)
			f.LastModified = s.String()
		case "Checksum-Algorithm":
			s.Once(&seen, 4)
			f.ChecksumAlgorithm = algName(s.Bytes())
		case "Checksum":
			s.Once(&seen, 5)
			f.Checksum = s.String()
		default:
			s.Fail()
		}
	}
}

// algName shares the string of the usual algorithm names (every file of a backup
// names the same one).
func algName(b []byte) string {
	for _, a := range [...]string{"CRC32C", "SHA224", "SHA256", "SHA384", "SHA512", "NONE"} {
		if string(b) == a {
			return a
		}
	}
	return string(b)
}
