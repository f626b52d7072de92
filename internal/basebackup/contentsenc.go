package basebackup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/compress"
)

// compressContents is the stored form of a contents list: its JSON in up to one part per
// core, each encoded and compressed on its own core as an independent zstd frame
// (concatenated frames decode as one stream). It is the last work of a backup before
// backup.info says the data is stored, so nothing else runs meanwhile.
func compressContents(c contentsList) ([]byte, error) {
	n := 1
	if len(c.entries) >= 8192 {
		n = runtime.GOMAXPROCS(0)
	}
	outs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var part []byte
			if part, errs[i] = encodeContentsPart(c, i, n); errs[i] == nil {
				outs[i], errs[i] = compress.EncodeAll(compress.Zstd, 3, part, nil)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return bytes.Join(outs, nil), nil
}

// contentsList is a contentsFile whose entries are pointers: a backup holds them so, and
// a copy of tens of thousands of ~200-byte entries cost the tail of a backup ~15 ms.
// Its JSON is the very bytes json.Marshal writes of the contentsFile (the tests compare
// them), written without reflection: json.Marshal spent ~80 ms of that tail on them.
type contentsList struct {
	version  int
	backupID string
	entries  []*Entry // nil is written as null, as json.Marshal writes a nil slice
	objects  []StoredObject
}

// encodeContentsPart writes part i of n of c's JSON: the parts, concatenated, are the
// whole document. Entries are split evenly; the first part opens the document, the last
// closes it and holds the objects.
func encodeContentsPart(c contentsList, i, n int) ([]byte, error) {
	lo, hi := len(c.entries)*i/n, len(c.entries)*(i+1)/n
	b := make([]byte, 0, 64+(hi-lo)*200)
	if i == 0 {
		b = append(b, `{"version":`...)
		b = strconv.AppendInt(b, int64(c.version), 10)
		b = append(b, `,"backup_id":`...)
		b = appendString(b, c.backupID)
		b = append(b, `,"entries":`...)
		if c.entries == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
		}
	}
	for j := lo; j < hi; j++ {
		if j > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendEntry(b, c.entries[j]); !ok {
			// A time json.Marshal refuses (a year outside 0-9999): let it name the error.
			_, err := json.Marshal(c.entries[j])
			return nil, fmt.Errorf("entry %s: %w", c.entries[j].Path, err)
		}
	}
	if i < n-1 {
		return b, nil
	}
	if c.entries != nil {
		b = append(b, ']')
	}
	if len(c.objects) > 0 {
		b = append(b, `,"objects":[`...)
		for i, o := range c.objects {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"key":`...)
			b = appendString(b, o.Key)
			b = append(b, `,"size":`...)
			b = strconv.AppendInt(b, o.Size, 10)
			b = append(b, `,"xxh64":`...)
			b = appendString(b, o.XXH64)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendEntry writes one entry's fields in Entry's order, omitempty as tagged.
func appendEntry(b []byte, e *Entry) ([]byte, bool) {
	b = append(b, `{"tablespace":`...)
	b = strconv.AppendUint(b, uint64(e.Tablespace), 10)
	b = append(b, `,"path":`...)
	b = appendString(b, e.Path)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"mode":`...)
	b = strconv.AppendUint(b, uint64(e.Mode), 10)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, `,"mtime":`...)
	if y := e.ModTime.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, '"')
	b = e.ModTime.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if e.Link != "" {
		b = append(b, `,"link":`...)
		b = appendString(b, e.Link)
	}
	if e.Key != "" {
		b = append(b, `,"key":`...)
		b = appendString(b, e.Key)
	}
	if e.Codec != "" {
		b = append(b, `,"codec":`...)
		b = appendString(b, e.Codec)
	}
	if e.StoredSize != 0 {
		b = append(b, `,"stored_size":`...)
		b = strconv.AppendInt(b, e.StoredSize, 10)
	}
	if e.Bundle {
		b = append(b, `,"bundle":true`...)
	}
	if e.Offset != 0 {
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, e.Offset, 10)
	}
	if e.Solid {
		b = append(b, `,"solid":true`...)
	}
	if e.Sum != "" {
		b = append(b, `,"crc32c":`...)
		b = appendString(b, e.Sum)
	}
	return append(b, '}'), true
}

// appendString quotes s as json.Marshal does. Paths and keys are printable ASCII
// without quotes, backslashes or HTML's <>&: those are copied; any other string is
// left to encoding/json (its escapes, and its U+FFFD for invalid UTF-8).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
