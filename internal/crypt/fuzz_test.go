package crypt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// memStore holds one object in memory, so that the fuzzer's inputs reach the
// decoder without a file per input.
type memStore struct {
	storage.Store // nil: only Get is called
	data          []byte
}

func (m memStore) Get(context.Context, string) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m.data)), nil
}

// FuzzOpen feeds the decoder arbitrary objects, seeded with valid ones of several
// sizes (all sealed prefixes of one plaintext). It must never panic, every byte it
// hands a reader must be the plaintext's beginning, and an object it decrypts without
// error must be one of the valid ones byte for byte: a tampered object never yields
// plaintext as if it were whole.
func FuzzOpen(f *testing.F) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	s := newStore(nil, id)
	plain := plaintext(2*ChunkSize + 10)
	var valid [][]byte
	for _, n := range []int{0, 1, 100, ChunkSize, ChunkSize + 10, 2*ChunkSize + 10} {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, s.rcpt)
		if err != nil {
			f.Fatal(err)
		}
		w.Write(plain[:n])
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		valid = append(valid, buf.Bytes())
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newStore(memStore{data: data}, id)
		got, err := readAll(d, "k")
		if !bytes.HasPrefix(plain, got) {
			t.Fatalf("the decoder handed out %d bytes that are not the plaintext", len(got))
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		for _, v := range valid {
			if bytes.Equal(v, data) {
				return
			}
		}
		t.Fatalf("a tampered object of %d bytes decrypted to %d bytes without error", len(data), len(got))
	})
}
