package crypt

// The envelope's sizes (see the package documentation). Every object the Store writes
// has exactly one X25519 recipient stanza, so its header has a fixed length and the
// plaintext size follows from the stored size alone: Stat and List report it without
// reading the object (no request per object on an object store).
const (
	// HeaderSize is the length of an object's age header plus its 16-byte stream
	// nonce: "age-encryption.org/v1\n" (22), "-> X25519 <43>\n" (54), the wrapped
	// file key "<43>\n" (44), "--- <43>\n" (48), nonce (16).
	HeaderSize = 22 + 54 + 44 + 48 + 16
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize = 64 << 10
	// TagSize is the Poly1305 tag after each chunk.
	TagSize = 16
)

// PlainSize returns the plaintext size of an object the Store wrote, from its stored
// size, and false for a stored size no such object can have (too short for the
// header and one tag, or a last chunk that is empty when it is not the only one). It
// mirrors age's own rule (internal/stream.EncryptedChunkCount).
func PlainSize(stored int64) (int64, bool) {
	payload := stored - HeaderSize
	if payload < TagSize {
		return 0, false
	}
	const enc = ChunkSize + TagSize
	chunks := (payload + enc - 1) / enc
	plain := payload - chunks*TagSize
	want := (plain + ChunkSize - 1) / ChunkSize
	if plain == 0 {
		want = 1
	}
	if want != chunks {
		return 0, false
	}
	return plain, true
}

// StoredSize is the inverse of PlainSize: the stored size of an object of plain bytes.
func StoredSize(plain int64) int64 {
	chunks := (plain + ChunkSize - 1) / ChunkSize
	if chunks == 0 {
		chunks = 1
	}
	return HeaderSize + plain + chunks*TagSize
}
