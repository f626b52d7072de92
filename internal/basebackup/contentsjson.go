package basebackup

import (
	"bytes"
	"runtime"
	"sync"
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
			c.Entries = scanEntries(s, &in)
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

// splitEntriesAt is the size of an entries array read in two parts (tests lower it).
var splitEntriesAt = 1 << 20

// entrySep lies between two entries and nowhere else: inside a string a quote is
// escaped, and no other array of the document has objects with a tablespace.
var entrySep = []byte(`},{"tablespace":`)

// scanEntries reads the entries array. A long one is cut at an entry boundary near its
// middle and its first part read on another core: verify cannot read a byte before the
// list is decoded, and on 37,000 entries reading it was half of verify's time. Reading
// the parts apart gives what one reading would: the first part must end exactly at its
// last entry, and the rest is read on from the entry after it.
func scanEntries(s *flatjson.Scanner, in *interner) []Entry {
	s.Open('[')
	rest := s.Remaining()
	var head []Entry
	headOK := true
	var wg sync.WaitGroup
	if len(rest) >= splitEntriesAt && runtime.GOMAXPROCS(0) > 1 {
		if k := bytes.Index(rest[len(rest)/2:], entrySep); k >= 0 {
			cut := len(rest)/2 + k + 1 // just past the '}' of the first part's last entry
			wg.Add(1)
			go func() {
				defer wg.Done()
				head, headOK = scanEntryRun(rest[:cut])
			}()
			s.Advance(cut + 1) // and the comma
			tail := make([]Entry, 0, (len(rest)-cut)/160)
			for first := true; first || s.Next(false, ']'); first = false {
				tail = append(tail, Entry{})
				scanEntry(s, &tail[len(tail)-1], in)
			}
			wg.Wait()
			if !headOK {
				s.Fail()
			}
			return append(head, tail...)
		}
	}
	// Sized from the document (an entry is written in about 200 bytes).
	es := make([]Entry, 0, len(rest)/160)
	for first := true; s.Next(first, ']'); first = false {
		es = append(es, Entry{})
		scanEntry(s, &es[len(es)-1], in)
	}
	return es
}

// scanEntryRun reads entries separated by commas that fill run.
func scanEntryRun(run []byte) ([]Entry, bool) {
	s := flatjson.New(run)
	in := interner{strs: map[string]string{}}
	es := make([]Entry, 0, len(run)/160+1)
	for first := true; first || s.More(); first = false {
		es = append(es, Entry{})
		scanEntry(s, &es[len(es)-1], &in)
	}
	return es, s.Err() == nil
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
