package basebackup

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

const tarBlock = 512

// tarStream parses one tar archive (one tablespace) as the server's CopyData messages
// arrive and copies each file's bytes once, from the message straight into the place
// that stores them: a small file's place in the open bundle, or a large file's chunk.
// Before, archive/tar read the archive through a pipe from the goroutine receiving the
// messages: two copies of every byte and a handoff between goroutines for each header,
// file and padding, on a schema of 37,000 files a fifth of the backup's client CPU.
//
// It reads what PostgreSQL writes (src/port/tar.c: ustar headers, names of up to 99
// bytes in the name field, sizes in octal or base-256) and the prefix field of POSIX
// ustar; PAX and GNU long-name records, which PostgreSQL never sends (it refuses a name
// too long for ustar), fail the backup with their type. The end-of-archive blocks are
// optional (PostgreSQL 15 and later leave them out) and anything after them must be zero
// padding: no byte of the stream is skipped unread.
type tarStream struct {
	p  *pipeline
	ts uint32

	hdr [tarBlock]byte
	hn  int // bytes of hdr received

	e      *Entry // the file whose content is arriving, nil between files
	dst    []byte // where its next bytes go (a bundle member's place, or a chunk)
	filled int    // bytes of dst received
	left   int64  // content bytes not yet received, dst included
	job    *fileJob
	pad    int // padding bytes after the content still to come

	ended bool // the end-of-archive block was seen
}

func newTarStream(p *pipeline, tablespace uint32) *tarStream {
	return &tarStream{p: p, ts: tablespace}
}

// Write takes the next bytes of the archive; b is not kept.
func (t *tarStream) Write(b []byte) error {
	for len(b) > 0 {
		switch {
		case t.ended:
			if !allZero(b) {
				return t.errorf("data after the end of the archive")
			}
			return nil
		case t.pad > 0:
			n := min(t.pad, len(b))
			t.pad -= n
			b = b[n:]
		case t.e != nil:
			n := copy(t.dst[t.filled:], b)
			t.filled += n
			b = b[n:]
			if t.filled == len(t.dst) {
				if err := t.filledDst(); err != nil {
					return err
				}
			}
		default:
			n := copy(t.hdr[t.hn:], b)
			t.hn += n
			b = b[n:]
			if t.hn == tarBlock {
				t.hn = 0
				if err := t.header(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Close checks that the archive ended on a file boundary.
func (t *tarStream) Close() error {
	switch {
	case t.e != nil:
		return t.errorf("%s: the stream ended %d bytes before the end of the file", t.e.Path, t.left-int64(t.filled))
	case t.hn != 0:
		return t.errorf("the stream ended inside a header")
	}
	return nil
}

func (t *tarStream) errorf(format string, args ...any) error {
	return fmt.Errorf("tar stream of tablespace %d: "+format, append([]any{t.ts}, args...)...)
}

// header parses the block in t.hdr and starts its entry.
func (t *tarStream) header() error {
	h := t.hdr[:]
	if allZero(h) {
		t.ended = true
		return nil
	}
	if err := checkTarSum(h); err != nil {
		return t.errorf("%w", err)
	}
	name := tarString(h[0:100])
	if string(h[257:263]) == "ustar\x00" {
		if prefix := tarString(h[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
	}
	var num [3]int64 // mode, size, mtime
	for i, f := range [][]byte{h[100:108], h[124:136], h[136:148]} {
		v, err := tarNumber(f)
		if err != nil {
			return t.errorf("%s: header: %v", name, err)
		}
		num[i] = v
	}
	mode, size, mtime := num[0], num[1], num[2]
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if clean == "." || strings.HasPrefix(clean, "../") || strings.HasPrefix(clean, "/") {
		return t.errorf("unsafe path %q", name)
	}
	e := &Entry{Tablespace: t.ts, Path: clean, Mode: uint32(mode) & 0o7777, ModTime: time.Unix(mtime, 0).UTC()}
	typ := h[156]
	if typ == 0 && strings.HasSuffix(name, "/") {
		typ = '5' // pre-POSIX tar marks a directory by its name, as archive/tar reads it
	}
	switch typ {
	case '5':
		e.Type = TypeDir
	case '2':
		// PostgreSQL sends links only for tablespaces (pg_tblspc/<oid>; other links in
		// a data directory it skips, pg_wal it sends as a directory): anything else
		// is not a stream from a server, and restore would refuse it anyway.
		link := tarString(h[157:257])
		if _, err := strconv.ParseUint(path.Base(clean), 10, 32); t.ts != 0 || path.Dir(clean) != "pg_tblspc" || err != nil {
			return t.errorf("%s: symbolic link to %q outside pg_tblspc/<oid>: refused", name, link)
		}
		e.Type, e.Link = TypeSymlink, link
	case '0', 0:
		e.Type, e.Size = TypeFile, size
	default:
		return t.errorf("%s: unexpected entry type %q (PostgreSQL sends files, directories and tablespace links in ustar)", name, typ)
	}
	p := t.p
	p.mu.Lock()
	p.entries = append(p.entries, e)
	p.mu.Unlock()
	if e.Type != TypeFile || e.Size == 0 {
		return nil
	}
	e.Codec = p.o.codec
	t.e, t.left, t.filled = e, e.Size, 0
	if e.Size <= smallFile {
		t.dst = p.bundleMember(e)
		return nil
	}
	if p.o.opaqueNames {
		p.objects++
		e.Key = opaqueDataKey(p.o.server, p.o.id, p.objects, p.o.codec)
	} else {
		e.Key = dataKey(p.o.server, p.o.id, t.ts, clean, p.o.codec)
	}
	job, err := p.startFile(e)
	if err != nil {
		return err
	}
	t.job = job
	t.dst = chunkBufs.Get(chunkSize)[:min(t.left, chunkSize)]
	return nil
}

// filledDst hands on what t.dst holds, complete.
func (t *tarStream) filledDst() error {
	t.left -= int64(len(t.dst))
	if t.job == nil {
		// A bundle member: whole.
		t.dst = nil
		if err := t.p.memberAdded(); err != nil {
			return err
		}
	} else {
		raw := t.dst
		t.dst = nil // queueChunk owns it now
		if err := t.p.queueChunk(t.job, raw); err != nil {
			return err
		}
		if t.left > 0 {
			// A full-size buffer for a file's last chunk too: it goes back to the pool.
			t.dst, t.filled = chunkBufs.Get(chunkSize)[:min(t.left, chunkSize)], 0
			return nil
		}
		close(t.job.chunks)
		t.job = nil
	}
	t.pad = int(-t.e.Size & (tarBlock - 1))
	t.e, t.filled = nil, 0
	return nil
}

// abort releases what a failed archive holds: the open file's job, whose writer
// stops with the pipeline.
func (t *tarStream) abort() {
	if t.job != nil {
		close(t.job.chunks)
		t.job = nil
		if t.dst != nil {
			chunkBufs.Put(t.dst) // a chunk not yet queued (a bundle member's dst is the bundle's)
		}
	}
	t.dst, t.e = nil, nil
}

// checkTarSum checks a header's checksum: the sum of its bytes with the checksum field
// taken as spaces, unsigned as POSIX says or signed as some old tars wrote it.
func checkTarSum(h []byte) error {
	want, err := tarNumber(h[148:156])
	if err != nil {
		return fmt.Errorf("header checksum field %q: %v", h[148:156], err)
	}
	var u, s int64
	for _, c := range h {
		u += int64(c)
		s += int64(int8(c))
	}
	for _, c := range h[148:156] { // the checksum field counts as spaces
		u += ' ' - int64(c)
		s += ' ' - int64(int8(c))
	}
	if want != u && want != s {
		return fmt.Errorf("header checksum mismatch (recorded %d, computed %d): the stream is not a tar archive or is damaged", want, u)
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// tarString is a NUL-terminated header field.
func tarString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// tarNumber parses a numeric header field: octal digits between optional spaces and
// NULs, or base-256 (the high bit of the first byte set) for values octal cannot hold.
func tarNumber(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if b[0] == 0xff {
			return 0, fmt.Errorf("negative base-256 number")
		}
		var v int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if v > (1<<63-1)>>8 {
				return 0, fmt.Errorf("base-256 number out of range")
			}
			v = v<<8 | int64(c)
		}
		return v, nil
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 8, 64)
	if err != nil || s[0] < '0' || s[0] > '7' {
		return 0, fmt.Errorf("%q is not an octal number", s)
	}
	return v, nil
}
