package basebackup

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// feedTar parses data as tablespace ts's archive, step bytes per Write (0: random
// steps), as the stream loop does.
func feedTar(p *pipeline, data []byte, ts uint32, step int) error {
	t := newTarStream(p, ts)
	rng := rand.New(rand.NewPCG(1, uint64(len(data))))
	for len(data) > 0 {
		n := step
		if n == 0 {
			n = 1 + rng.IntN(70000)
		}
		n = min(n, len(data))
		if err := t.Write(data[:n]); err != nil {
			t.abort()
			return err
		}
		data = data[n:]
	}
	if err := t.Close(); err != nil {
		t.abort()
		return err
	}
	return nil
}

type tarFile struct {
	name, link string
	typ        byte
	data       []byte
}

func makeTar(t testing.TB, files []tarFile, format tar.Format, trailer bool) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: f.typ, Linkname: f.link, Mode: 0o600, Size: int64(len(f.data)),
			ModTime: time.Unix(1764600000, 0), Format: format}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if trailer {
		tw.Close()
	} else {
		tw.Flush()
	}
	return buf.Bytes()
}

func testPipeline(t testing.TB) (*pipeline, storage.Store) {
	store := storage.NewLocal(t.TempDir())
	return newPipeline(context.Background(), streamOptions{store: store, server: "pg1", id: "x", codec: compress.Zstd, level: 1, jobs: 2, writers: 2}), store
}

// TestTarStreamStoresWhatArchiveTarWrote: whatever the pieces the archive arrives in,
// every entry is recorded and every file stored with its bytes, small ones in a bundle,
// large ones in chunks; with or without the end-of-archive blocks.
func TestTarStreamStoresWhatArchiveTarWrote(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(4)) // compressible, not constant
		}
		return b
	}
	small := []tarFile{
		{name: "base", typ: tar.TypeDir},
		{name: "base/1/", typ: tar.TypeDir},
		{name: "PG_VERSION", typ: tar.TypeReg, data: []byte("15\n")},
		{name: "empty", typ: tar.TypeReg},
		{name: "base/1/1247", typ: tar.TypeReg, data: blob(8192)},
		{name: "pg_tblspc/16400", typ: tar.TypeSymlink, link: "/srv/ts"},
		{name: strings.Repeat("d", 120) + "/with-a-prefix", typ: tar.TypeReg, data: blob(513)},
		{name: "base/1/edge", typ: tar.TypeReg, data: blob(smallFile)},
	}
	large := append(small[:len(small):len(small)],
		tarFile{name: "base/1/big", typ: tar.TypeReg, data: blob(smallFile + 1)},
		tarFile{name: "base/1/huge", typ: tar.TypeReg, data: blob(2*chunkSize + 12345)},
		tarFile{name: "base/1/after", typ: tar.TypeReg, data: blob(100)})
	for _, c := range []struct {
		files   []tarFile
		step    int
		trailer bool
	}{
		{small, 1, true}, {small, 7, false}, {small, 512, true},
		{large, 0, true}, {large, 0, false}, {large, 1 << 20, true},
	} {
		t.Run(fmt.Sprintf("%d files, step %d, trailer %v", len(c.files), c.step, c.trailer), func(t *testing.T) {
			p, store := testPipeline(t)
			err := feedTar(p, makeTar(t, c.files, tar.FormatUSTAR, c.trailer), 0, c.step)
			if err == nil {
				err = p.flushBundle()
			}
			if ferr := p.finish(); err == nil {
				err = ferr
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.entries) != len(c.files) {
				t.Fatalf("%d entries for %d files", len(p.entries), len(c.files))
			}
			for i, f := range c.files {
				e := p.entries[i]
				if want := strings.TrimSuffix(f.name, "/"); e.Path != want || e.ModTime.Unix() != 1764600000 || e.Mode != 0o600 {
					t.Fatalf("entry %d: %+v, want %s", i, e, want)
				}
				switch f.typ {
				case tar.TypeDir:
					if e.Type != TypeDir {
						t.Fatalf("%s: type %s", f.name, e.Type)
					}
				case tar.TypeSymlink:
					if e.Type != TypeSymlink || e.Link != f.link {
						t.Fatalf("%s: %+v", f.name, e)
					}
				default:
					r, err := OpenEntry(context.Background(), store, *e)
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(r)
					r.Close()
					if err != nil || !bytes.Equal(got, f.data) {
						t.Fatalf("%s: %d bytes back (%v), want %d", f.name, len(got), err, len(f.data))
					}
					if bundled := e.Solid; len(f.data) > 0 && bundled != (len(f.data) <= smallFile) {
						t.Fatalf("%s (%d bytes): solid %v", f.name, len(f.data), bundled)
					}
				}
			}
		})
	}
}

// TestTarStreamRefuses: what PostgreSQL never sends fails the archive with a reason,
// and no byte is skipped unread.
func TestTarStreamRefuses(t *testing.T) {
	good := makeTar(t, []tarFile{{name: "a", typ: tar.TypeReg, data: []byte("hello")}}, tar.FormatUSTAR, true)
	damaged := bytes.Clone(good)
	damaged[10] ^= 1
	for _, c := range []struct {
		what string
		data []byte
		want string
	}{
		{"truncated content", good[:512+3], "ended 2 bytes before the end of the file"},
		{"truncated header", good[:100], "ended inside a header"},
		{"damaged header", damaged, "header checksum mismatch"},
		{"data after the end", append(bytes.Clone(good), 'x'), "data after the end of the archive"},
		{"a PAX record", makeTar(t, []tarFile{{name: strings.Repeat("n", 150), typ: tar.TypeReg}}, tar.FormatPAX, true), "unexpected entry type 'x'"},
		{"a GNU long name", makeTar(t, []tarFile{{name: strings.Repeat("n", 150), typ: tar.TypeReg}}, tar.FormatGNU, true), "unexpected entry type 'L'"},
		{"a hard link", makeTar(t, []tarFile{{name: "h", link: "a", typ: tar.TypeLink}}, tar.FormatUSTAR, true), "unexpected entry type '1'"},
		{"an unsafe path", makeTar(t, []tarFile{{name: "../x", typ: tar.TypeReg}}, tar.FormatUSTAR, true), `unsafe path "../x"`},
	} {
		p, _ := testPipeline(t)
		err := feedTar(p, c.data, 3, 0)
		p.finish()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tar stream of tablespace 3: ") {
			t.Errorf("%s: %v, want %q", c.what, err, c.want)
		}
	}
}

// FuzzTarStream: any bytes are parsed or refused, never a panic or a hang, and an
// accepted file entry has a size that was fully received.
func FuzzTarStream(f *testing.F) {
	f.Add(makeTar(f, []tarFile{{name: "a", typ: tar.TypeReg, data: []byte("hello")}, {name: "d", typ: tar.TypeDir}}, tar.FormatUSTAR, true))
	f.Add(makeTar(f, []tarFile{{name: "pg_tblspc/1", typ: tar.TypeSymlink, link: "/x"}}, tar.FormatGNU, false))
	store := storage.NewLocal(f.TempDir())
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newPipeline(context.Background(), streamOptions{store: store, server: "pg1", id: "x", codec: compress.None, jobs: 1, writers: 1})
		err := feedTar(p, data, 0, 0)
		if err == nil {
			err = p.flushBundle()
		}
		p.finish()
		if err != nil {
			return
		}
		var sum int64
		for _, e := range p.entries {
			if e.Size < 0 {
				t.Fatalf("negative size: %+v", e)
			}
			sum += (e.Size + 511) / 512 * 512
		}
		if sum+int64(len(p.entries))*512 > int64(len(data)) {
			t.Fatalf("entries hold more than %d bytes of archive", len(data))
		}
	})
}
