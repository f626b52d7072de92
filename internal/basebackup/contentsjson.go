package basebackup

import (
	"bytes"
	"time"

	"github.com/walkeeper/walkeeper/internal/flatjson"
)

// decodeContents decodes a stored contents list. A backup of a schema of tens of
// thousands of relations lists as many entries, and verify cannot read a byte before
// they are decoded: the fast path (flatjson, ~3x encoding/json/v2 in a fresh process, on what
// encoding/json writes) runs first, and anything it does not handle is decoded by
// encoding/json/v2, which names the error if there is one. FuzzDecodeContents proves
// both give the same entries.
func decodeContents(data []byte) (contentsFile, error) {
	return flatjson.Decode(data, scanContents)
}

// scanContents is decodeContents' fast path.
func scanContents(s *flatjson.Scanner) (c contentsFile) {
	in := interner{strs: map[string]string{}}
	var seen uint64
	s.Open('{')
	for first := true; s.Next(first, '}'); first = false {
		switch string(s.Name()) {
		case "version":
			s.Once(&seen, 0)
			c.Version = int(s.Int())
		case "backup_id":
			s.Once(&seen, 1)
			c.BackupID = s.String()
		case "entries":
			s.Once(&seen, 2)
			// Sized from the document (an entry is written in about 200 bytes).
			c.Entries = make([]Entry, 0, s.Len()/160)
			s.Open('[')
			for first := true; s.Next(first, ']'); first = false {
				c.Entries = append(c.Entries, Entry{})
				scanEntry(s, &c.Entries[len(c.Entries)-1], &in)
			}
		case "objects":
			s.Once(&seen, 3)
			s.Open('[')
			for first := true; s.Next(first, ']'); first = false {
				c.Objects = append(c.Objects, scanObject(s, &in))
			}
		default:
			s.Fail()
		}
	}
	return c
}

func scanEntry(s *flatjson.Scanner, e *Entry, in *interner) {
	var seen uint64
	s.Open('{')
	for first := true; s.Next(first, '}'); first = false {
		switch string(s.Name()) {
		case "tablespace":
			s.Once(&seen, 0)
			e.Tablespace = uint32(s.Uint(32))
		case "path":
			s.Once(&seen, 1)
			e.Path = s.String()
		case "type":
			s.Once(&seen, 2)
			e.Type = in.str(s.Bytes())
		case "mode":
			s.Once(&seen, 3)
			e.Mode = uint32(s.Uint(32))
		case "size":
			s.Once(&seen, 4)
			e.Size = s.Int()
		case "mtime":
			s.Once(&seen, 5)
			e.ModTime = in.time(s, s.Bytes())
		case "link":
			s.Once(&seen, 6)
			e.Link = s.String()
		case "key":
			s.Once(&seen, 7)
			e.Key = in.str(s.Bytes())
		case "codec":
			s.Once(&seen, 8)
			e.Codec = in.str(s.Bytes())
		case "stored_size":
			s.Once(&seen, 9)
			e.StoredSize = s.Int()
		case "bundle":
			s.Once(&seen, 10)
			e.Bundle = s.Bool()
		case "offset":
			s.Once(&seen, 11)
			e.Offset = s.Int()
		case "solid":
			s.Once(&seen, 12)
			e.Solid = s.Bool()
		case "crc32c":
			s.Once(&seen, 13)
			e.Sum = s.String()
		default:
			s.Fail()
		}
	}
}

func scanObject(s *flatjson.Scanner, in *interner) (o StoredObject) {
	var seen uint64
	s.Open('{')
	for first := true; s.Next(first, '}'); first = false {
		switch string(s.Name()) {
		case "key":
			s.Once(&seen, 0)
			o.Key = in.str(s.Bytes())
		case "size":
			s.Once(&seen, 1)
			o.Size = s.Int()
		case "xxh64":
			s.Once(&seen, 2)
			o.XXH64 = s.String()
		default:
			s.Fail()
		}
	}
	return o
}

// interner shares the strings that repeat across entries (a bundle's key, the codec,
// the type) and the parse of repeated modification times.
type interner struct {
	strs     map[string]string
	lastTime []byte
	last     time.Time
}

func (in *interner) str(b []byte) string {
	if v, ok := in.strs[string(b)]; ok {
		return v
	}
	v := string(b)
	in.strs[v] = v
	return v
}

// time parses a modification time as encoding/json writes it (RFC 3339 with
// nanoseconds, trailing zeros dropped); any other spelling is left to the full
// decoder, whose rules for time differ in corners.
func (in *interner) time(s *flatjson.Scanner, b []byte) time.Time {
	if s.Err() != nil {
		return time.Time{}
	}
	if in.lastTime != nil && bytes.Equal(b, in.lastTime) {
		return in.last
	}
	str := string(b)
	t, err := time.Parse(time.RFC3339Nano, str)
	if err != nil || t.Format(time.RFC3339Nano) != str {
		s.Fail()
		return time.Time{}
	}
	in.lastTime, in.last = append(in.lastTime[:0], b...), t
	return t
}
