package crypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// The benchmarks measure a 16 MiB WAL segment through the Store against the same
// bytes through plain io.Copy, in one run (compare the MB/s columns):
//
//	go test -run '^$' -bench . -benchtime 20x ./internal/crypt/
//
// BenchmarkAESGCMChunks is the alternative the package documentation weighs (the
// standard library's AES-256-GCM over the same 64 KiB chunks), and BenchmarkZstd what
// ingest already pays per segment, for scale.

const benchSize = 16 << 20

// discardStore is an inner store whose Put reads the object and keeps nothing.
type discardStore struct{ storage.Store }

func (discardStore) Put(_ context.Context, _ string, r io.Reader) (int64, error) {
	return io.Copy(io.Discard, r)
}

func benchData() []byte { return plaintext(benchSize) }

// BenchmarkCopy is the baseline: io.Copy of the segment into memory, through
// io.Copy's buffer (one read and one write of every byte, no encryption).
func BenchmarkCopy(b *testing.B) {
	data := benchData()
	dst := bytes.NewBuffer(make([]byte, 0, benchSize))
	b.SetBytes(benchSize)
	for b.Loop() {
		dst.Reset()
		if _, err := io.Copy(struct{ io.Writer }{dst}, struct{ io.Reader }{bytes.NewReader(data)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	data := benchData()
	id, _ := age.GenerateX25519Identity()
	s := newStore(discardStore{}, id)
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := s.Put(context.Background(), "k", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	data := benchData()
	id, _ := age.GenerateX25519Identity()
	s := newStore(nil, id)
	var sealed bytes.Buffer
	w, _ := age.Encrypt(&sealed, s.rcpt)
	w.Write(data)
	w.Close()
	d := newStore(memStore{data: sealed.Bytes()}, id)
	b.SetBytes(benchSize)
	for b.Loop() {
		r, err := d.Get(context.Background(), "k")
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != benchSize {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkAESGCMChunks seals the same bytes in 64 KiB chunks with AES-256-GCM and a
// counter nonce: the envelope the package did not choose.
func BenchmarkAESGCMChunks(b *testing.B) {
	data := benchData()
	blk, _ := aes.NewCipher(make([]byte, 32))
	gcm, _ := cipher.NewGCM(blk)
	out := make([]byte, 0, ChunkSize+gcm.Overhead())
	nonce := make([]byte, gcm.NonceSize())
	b.SetBytes(benchSize)
	for b.Loop() {
		for i := 0; i < len(data); i += ChunkSize {
			binary.BigEndian.PutUint64(nonce[4:], uint64(i))
			out = gcm.Seal(out[:0], nonce, data[i:min(i+ChunkSize, len(data))], nil)
		}
	}
}

// BenchmarkZstd compresses the segment as ingest does (level 0: the codec's default);
// the data is random, so this is zstd's speed on incompressible input.
func BenchmarkZstd(b *testing.B) {
	data := benchData()
	var out []byte
	b.SetBytes(benchSize)
	for b.Loop() {
		var err error
		if out, err = compress.EncodeAll(compress.Zstd, 0, data, out[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenRepository is what a process pays once to open a passphrase-protected
// repository (scrypt at DefaultWorkFactor), against a key-file-protected one.
func BenchmarkOpenRepository(b *testing.B) {
	ctx := context.Background()
	inner := storage.NewLocal(b.TempDir())
	pass, err := Passphrase("bench passphrase", "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Init(ctx, inner, pass, InitOptions{}); err != nil {
		b.Fatal(err)
	}
	kinner := storage.NewLocal(b.TempDir())
	kf := b.TempDir() + "/k"
	if _, err := GenerateKeyFile(kf); err != nil {
		b.Fatal(err)
	}
	ku, err := KeyFile(kf)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Init(ctx, kinner, ku, InitOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Run("passphrase", func(b *testing.B) {
		for b.Loop() {
			if _, err := Open(ctx, inner, pass); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keyfile", func(b *testing.B) {
		for b.Loop() {
			if _, err := Open(ctx, kinner, ku); err != nil {
				b.Fatal(err)
			}
		}
	})
}
