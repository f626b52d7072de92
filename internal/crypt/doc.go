// Package crypt encrypts a repository at rest: Store is a storage.Store that seals
// every object on Put and opens it on Get, over any inner Store (the local archive, an
// object store). Keys pass through unchanged, so an object's name tells no more than
// it does unencrypted: server names, WAL file names, backup ids, and below a backup's
// data/ prefix the keys basebackup gives its objects.
//
// # Choice: age, not a home-made AES-GCM envelope
//
// Every object is an age file (filippo.io/age, the age-encryption.org/v1 format,
// https://age-encryption.org/v1), sealed to the repository's one X25519 data identity.
// age is a reviewed, specified, widely packaged format with a command-line tool in
// every distribution, so a DBA can decrypt any object with `age -d` if walkeeper is
// gone (procedure below), where a custom AES-256-GCM envelope would need a program of
// its own. It already has what a streaming envelope must: a random file key per
// object, a header MAC, 64 KiB chunks authenticated one by one with a counter nonce
// and a last-chunk flag, so truncation, extension, reordering, and chunks or headers
// moved between objects are all detected (TestTamper shows each).
//
// The price is speed: age's ChaCha20-Poly1305 runs at about half the speed of the
// standard library's AES-256-GCM on a CPU with AES instructions. Measured in one run
// on the development machine (AMD EPYC, 2 cores shared with other builds; go test
// -bench . -benchtime 20x -count 3, 16 MiB): io.Copy into memory 2.9-3.2 GB/s (the
// baseline), Seal (Put) 1.2-1.4 GB/s (0.44x of io.Copy), Open (Get) 0.93-1.06 GB/s
// (0.33x), AES-256-GCM over the same chunks 2.4-3.2 GB/s, zstd compression of the
// segment as ingest does it 1.0-1.3 GB/s (on incompressible data, zstd's fastest
// case). So a 16 MiB segment costs 12-14 ms of one core to seal and 16-18 ms to open:
// one core seals 80 segments a second, far above any server's WAL rate, and an object
// store's bandwidth (a 1 Gbit/s link is 125 MB/s), not the cipher, bounds uploads and
// restores. Ingest seals what it compressed, so the bytes sealed are the compressed
// ones. age's passphrase recipient (scrypt, about a second per object) is never used
// per object: only the repository key object is passphrase-sealed, and it is opened
// once per process.
//
// # Object format, byte for byte
//
// An object of P plaintext bytes is HeaderSize (184) + P + 16 * max(1, ceil(P/65536))
// bytes (StoredSize):
//
//	"age-encryption.org/v1\n"                                   22 bytes
//	"-> X25519 " base64(E) "\n"                                   54 bytes
//	base64(W) "\n"                                                44 bytes
//	"--- " base64(M) "\n"                                         48 bytes
//	N                                                             16 bytes
//	chunk 0 ... chunk k-1: ChaCha20-Poly1305 ciphertext + 16-byte tag each
//
// base64 is standard base64 without padding (43 characters for 32 bytes). The file key
// K is 16 random bytes per object. E is a fresh ephemeral X25519 public key; the
// shared secret S = X25519(e, R) with the repository's public key R; the wrap key is
// HKDF-SHA-256(ikm S, salt E||R, info "age-encryption.org/v1/X25519"), and W is K
// sealed with ChaCha20-Poly1305 under it with an all-zero nonce (16 + 16 bytes). M is
// HMAC-SHA-256 under HKDF-SHA-256(ikm K, salt empty, info "header") of the header
// from its first byte up to and including "---". N is a random 16-byte nonce; the
// payload key is HKDF-SHA-256(ikm K, salt N, info "payload"). The plaintext is cut
// into chunks of 65536 bytes, the last one 1..65536 bytes (an empty plaintext is one
// empty chunk); chunk i is sealed with ChaCha20-Poly1305 under the payload key with
// the 12-byte nonce = i as an 11-byte big-endian counter || 0x01 for the last chunk,
// 0x00 otherwise, no associated data.
//
// The header's length is fixed (one X25519 stanza), so the plaintext size follows
// from the stored size (PlainSize): Stat and List report plaintext sizes without
// reading objects, and what Put returns (the plaintext bytes) is what Stat and List
// report later, which index rebuild and reconcile compare. The stored size is the
// plaintext size plus 184 bytes and 0.024%.
//
// # The repository key object
//
// The data identity lives in the inner store at KeyObject ("walkeeper.key", at the
// store's root, beside the servers' directories): an age file whose plaintext is an
// age identity file,
//
//	# walkeeper repository key: the age identity every object of this repository is encrypted to
//	# public key: age1...
//	AGE-SECRET-KEY-1...
//
// sealed either to a passphrase (age's scrypt recipient: salt and work factor, log2 N
// = 18 by default, are in its stanza "-> scrypt <salt> <log2 N>") or to the user's age
// key file (an X25519 or post-quantum hybrid identity, as age-keygen writes). Open
// reads it once per process; the passphrase is stretched once, and that is not cheap:
// BenchmarkOpenRepository measures 1.3 s and 256 MiB for a passphrase (scrypt, N =
// 2^18, r = 8) against 0.55 ms for a key file. A command that runs once per WAL file
// (get-wal as restore_command) should use a key file. Changing the passphrase
// or moving between a passphrase and a key file (ChangeKey) rewrites only this
// object, with one atomic Put; the objects stay sealed to the same data identity. The
// Store never lists, reads, writes or deletes this key, so nothing that goes through
// it (retention, rebuild) can touch it. Losing it, or the passphrase or key file that
// opens it, loses the repository: keep a copy of the key file (or the passphrase)
// and of walkeeper.key away from the repository.
//
// # Decrypting without walkeeper
//
// With the age tool (any version since 1.0: `apt install age`, or `go install
// filippo.io/age/cmd/...@latest`), checked with age v1.3.2 on objects this package
// wrote:
//
//	# a passphrase-protected repository (age prompts for the passphrase;
//	# age-plugin-batchpass with AGE_PASSPHRASE=... age -d -j batchpass does it unattended):
//	age -d -o data.key <repository>/walkeeper.key
//	# a key-file-protected repository:
//	age -d -i my-walkeeper.key -o data.key <repository>/walkeeper.key
//	# then any object, e.g. a WAL segment, and its compression:
//	age -d -i data.key <repository>/pg1/wals/0000000100000000/000000010000000000000001.zst | zstd -d > 000000010000000000000001
//
// data.key is the repository's secret: keep it as you keep the key file.
//
// # Secrets
//
// A passphrase comes from a file (PassphraseFile) or from a command's standard output
// (PassphraseCommand, run without a shell, so it never sees one on a command line),
// never from the command line or the environment; a key file or passphrase file that
// group or others can read is refused. Unlock and Store print as their source and
// public key only; no error quotes a passphrase, a key, a key file's line, or a
// passphrase command's arguments. The package logs nothing.
//
// # Errors
//
// A wrong passphrase or key file fails Open with one line ("repository key: wrong
// passphrase"), before any object is read. An object that is damaged, cut short,
// extended, not encrypted, or sealed to another key fails with ErrCorrupt and its key;
// a reader gets no byte of a chunk before that chunk's tag is checked, so what it
// reads before the error is the object's true beginning, never garbage.
//
// # Capabilities
//
// GetRange reads only the chunks of a plaintext range (plus the header and the last
// chunk, which vouches for the size), with the inner store's GetRange when it has one:
// one Stat and at most three ranged reads. DeleteMany passes a batch to the inner
// store's DeleteMany. Local.Path is deliberately not offered: a path would hand an
// encrypted file to a program that expects the plaintext.
package crypt
