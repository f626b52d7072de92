package crypt

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// bech32Data decodes the data part of a bech32 string (age's key encoding) without
// checking its checksum: enough for a test that reads keys this package wrote.
func bech32Data(t *testing.T, s string) []byte {
	t.Helper()
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	s = strings.ToLower(s)
	data := s[strings.LastIndexByte(s, '1')+1 : len(s)-6]
	var out []byte
	acc, bits := 0, 0
	for _, c := range data {
		v := strings.IndexRune(charset, c)
		if v < 0 {
			t.Fatalf("not bech32: %q", c)
		}
		acc, bits = acc<<5|v, bits+5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	return out
}

// TestEnvelopeAsDocumented decrypts an object with nothing but the package
// documentation's description of the format and the primitives it names (X25519,
// HKDF-SHA-256, HMAC-SHA-256, ChaCha20-Poly1305), not with age: the documented
// procedure is exact, so the archive stays readable without walkeeper or age.
func TestEnvelopeAsDocumented(t *testing.T) {
	ctx := context.Background()
	s, inner := newRepo(t)
	want := plaintext(2*ChunkSize + 1234)
	const key = "pg1/wals/0000000100000000/000000010000000000000007.zst"
	if _, err := s.Put(ctx, key, bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	obj := rawObject(t, inner, key)
	secret := bech32Data(t, s.id.String())
	pub := bech32Data(t, s.Recipient())
	b64 := base64.RawStdEncoding

	lines := strings.SplitAfterN(string(obj[:HeaderSize-16]), "\n", 5)
	if len(lines) != 5 || lines[4] != "" || lines[0] != "age-encryption.org/v1\n" ||
		len(lines[0]) != 22 || len(lines[1]) != 54 || len(lines[2]) != 44 || len(lines[3]) != 48 {
		t.Fatalf("header lines %q", lines)
	}
	stanza, ok := strings.CutPrefix(strings.TrimSuffix(lines[1], "\n"), "-> X25519 ")
	if !ok {
		t.Fatalf("stanza %q", lines[1])
	}
	eph, err1 := b64.DecodeString(stanza)
	wrapped, err2 := b64.DecodeString(strings.TrimSuffix(lines[2], "\n"))
	mac, err3 := b64.DecodeString(strings.TrimPrefix(strings.TrimSuffix(lines[3], "\n"), "--- "))
	if err1 != nil || err2 != nil || err3 != nil || len(eph) != 32 || len(wrapped) != 32 || len(mac) != 32 {
		t.Fatalf("header fields: %v %v %v", err1, err2, err3)
	}
	shared, err := curve25519.X25519(secret, eph)
	if err != nil {
		t.Fatal(err)
	}
	wrapKey, err := hkdf.Key(sha256.New, shared, append(append([]byte(nil), eph...), pub...), "age-encryption.org/v1/X25519", 32)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := chacha20poly1305.New(wrapKey)
	fileKey, err := aead.Open(nil, make([]byte, 12), wrapped, nil)
	if err != nil || len(fileKey) != 16 {
		t.Fatalf("unwrap the file key: %v", err)
	}
	macKey, _ := hkdf.Key(sha256.New, fileKey, nil, "header", 32)
	h := hmac.New(sha256.New, macKey)
	h.Write([]byte(lines[0] + lines[1] + lines[2] + "---"))
	if !hmac.Equal(h.Sum(nil), mac) {
		t.Fatal("header MAC does not match the documented computation")
	}
	nonce := obj[HeaderSize-16 : HeaderSize]
	payloadKey, _ := hkdf.Key(sha256.New, fileKey, nonce, "payload", 32)
	aead, _ = chacha20poly1305.New(payloadKey)
	var got []byte
	rest := obj[HeaderSize:]
	for i := uint64(0); len(rest) > 0; i++ {
		n := min(len(rest), ChunkSize+TagSize)
		var cn [12]byte
		binary.BigEndian.PutUint64(cn[3:11], i)
		if n == len(rest) {
			cn[11] = 1
		}
		pt, err := aead.Open(nil, cn[:], rest[:n], nil)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		got, rest = append(got, pt...), rest[n:]
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("decrypted %d bytes, not the %d stored", len(got), len(want))
	}
}
