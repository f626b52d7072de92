package index

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// WAL records are stored in a compact binary form (about 60 bytes instead of ~370 of
// JSON): badger keeps values inside its memory-mapped tables, so the record size sets
// both the resident memory and the CPU of scanning an archive of a million segments
// (retention, status). The name is the key's suffix and the storage key is derived
// from it (archive.WALKey) when it has the archive's usual form, so neither is stored
// twice. Values
// written as JSON by earlier versions (first byte '{') are still read.

// walCodecV1 marks the compact form. Kind, compression and source are one byte when
// they hold one of the usual values (enumerated below, append-only), else a string.
const walCodecV1 = 0x01

var (
	kindEnum   = []string{"segment", "history", "backup", "partial"}
	codecEnum  = []string{compress.Zstd, compress.Gzip, compress.None, ""}
	sourceEnum = []string{record.SourceArchive, record.SourceStream, record.SourceRebuild}
)

// appendEnum writes s as its 1-based position in table, or 0 and the string.
func appendEnum(b []byte, s string, table []string) []byte {
	for i, v := range table {
		if v == s {
			return append(b, byte(i+1))
		}
	}
	return appendString(append(b, 0), s)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeWAL renders f (stored under server/f.Name) in the compact form.
func encodeWAL(server string, f record.WALFile) []byte {
	b := make([]byte, 0, 96)
	b = append(b, walCodecV1)
	b = appendEnum(b, f.Kind, kindEnum)
	b = binary.AppendUvarint(b, uint64(f.Timeline))
	b = binary.AppendUvarint(b, f.SegNo)
	b = binary.AppendUvarint(b, uint64(f.StartLSN))
	b = binary.AppendVarint(b, f.RawSize)
	b = binary.AppendVarint(b, f.StoredSize)
	b = appendEnum(b, f.Compression, codecEnum)
	if raw, err := hex.DecodeString(f.SHA256); err == nil && len(raw) == 32 && hex.EncodeToString(raw) == f.SHA256 {
		b = append(b, 1)
		b = append(b, raw...)
	} else {
		b = append(b, 0)
		b = appendString(b, f.SHA256)
	}
	_, off := f.ArrivedAt.Zone()
	b = binary.AppendVarint(b, f.ArrivedAt.Unix())
	b = binary.AppendUvarint(b, uint64(f.ArrivedAt.Nanosecond()))
	b = binary.AppendVarint(b, int64(off))
	b = appendEnum(b, f.Source, sourceEnum)
	if f.Key == archive.WALKey(server, f.Name, f.Compression) {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendString(b, f.Key)
	}
	return b
}

var errBadRecord = errors.New("malformed WAL record")

type walReader struct {
	b   []byte
	err error
}

func (r *walReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadRecord
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *walReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadRecord
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *walReader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.err = errBadRecord
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *walReader) byte1() byte {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *walReader) string() string { return string(r.bytes(r.uvarint())) }

func (r *walReader) enum(table []string) string {
	i := int(r.byte1())
	switch {
	case r.err != nil:
		return ""
	case i == 0:
		return r.string()
	case i <= len(table):
		return table[i-1]
	}
	r.err = errBadRecord
	return ""
}

// decodeWAL reads a record stored under server/name, in either form.
func decodeWAL(server, name string, v []byte) (record.WALFile, error) {
	var f record.WALFile
	if len(v) > 0 && v[0] == '{' {
		err := json.Unmarshal(v, &f)
		return f, err
	}
	if len(v) == 0 || v[0] != walCodecV1 {
		return f, errBadRecord
	}
	r := &walReader{b: v[1:]}
	f.Name = name
	f.Kind = r.enum(kindEnum)
	f.Timeline = uint32(r.uvarint())
	f.SegNo = r.uvarint()
	f.StartLSN = segments.LSN(r.uvarint())
	f.RawSize = r.varint()
	f.StoredSize = r.varint()
	f.Compression = r.enum(codecEnum)
	if r.byte1() == 1 {
		f.SHA256 = hex.EncodeToString(r.bytes(32))
	} else {
		f.SHA256 = r.string()
	}
	sec, nsec, off := r.varint(), r.uvarint(), r.varint()
	if off == 0 {
		f.ArrivedAt = time.Unix(sec, int64(nsec)).UTC()
	} else {
		f.ArrivedAt = time.Unix(sec, int64(nsec)).In(time.FixedZone("", int(off)))
	}
	f.Source = r.enum(sourceEnum)
	if r.byte1() == 0 {
		f.Key = archive.WALKey(server, name, f.Compression)
	} else {
		f.Key = r.string()
	}
	if r.err != nil || len(r.b) != 0 {
		return record.WALFile{}, errBadRecord
	}
	return f, nil
}
