package crypt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// KeyObject is the key, in the inner store, of the repository key object: the data
// identity every object is sealed to, itself encrypted (an age file) to the user's
// passphrase or key file. It sits at the root of the store, beside the servers'
// directories, and is never encrypted with the data identity.
const KeyObject = "walkeeper.key"

// ErrNoKey is wrapped by Open's error when the store has no repository key object.
var ErrNoKey = errors.New("the repository has no key object")

// DefaultWorkFactor is the scrypt work factor (log2 N) of a passphrase-protected key
// object: age's own default, about one second of one core, paid once per process
// that opens the repository, never per object.
const DefaultWorkFactor = 18

// maxKeyObject bounds what Open reads: a key object is a few hundred bytes.
const maxKeyObject = 64 << 10

// keyObjectHeader starts the plaintext of every key object.
const keyObjectHeader = "# walkeeper repository key: the age identity every object of this repository is encrypted to\n"

// InitOptions tune Init and ChangeKey.
type InitOptions struct {
	// WorkFactor is the scrypt work factor (log2 N) for a passphrase; 0 means
	// DefaultWorkFactor. Tests lower it; a repository keeps what it was written with.
	WorkFactor int
}

// Init creates a repository key in inner: a new random data identity, sealed to u,
// stored as KeyObject, and returns the Store over it. It refuses a store that has a
// key object already (use Open) so that a second Init never orphans the objects
// sealed to the first key. The check and the write are not one atomic step: two
// processes initialising the same empty store at once can both succeed, and the
// objects of the one whose key object was replaced cannot be decrypted; Init must run
// once, from one process (an explicit command, or under the daemon's lock).
func Init(ctx context.Context, inner storage.Store, u Unlock, o InitOptions) (*Store, error) {
	if _, err := inner.Stat(ctx, KeyObject); err == nil {
		return nil, fmt.Errorf("repository key %s exists already: open the repository instead of creating a new key", KeyObject)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("repository key %s: %w", KeyObject, err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("repository key: generate: %w", err)
	}
	if err := writeKeyObject(ctx, inner, id, u, o); err != nil {
		return nil, err
	}
	// Read it back through the same path Open takes: what was written must unlock.
	return Open(ctx, inner, u)
}

// Open reads the repository key object of inner, unlocks it with u and returns the
// Store. A wrong passphrase or key file is a one-line error ("repository key: wrong
// passphrase"), before anything is read or restored; a missing key object wraps
// ErrNoKey.
func Open(ctx context.Context, inner storage.Store, u Unlock) (*Store, error) {
	id, err := readKeyObject(ctx, inner, u)
	if err != nil {
		return nil, err
	}
	return newStore(inner, id), nil
}

// ChangeKey seals the repository's data identity to next instead of cur (a new
// passphrase, or a key file instead of a passphrase, or the other way round). Objects
// are not touched: they stay sealed to the data identity, which does not change. The
// key object is replaced with one Put, so a crash leaves either the old or the new
// one whole; the new one is read back with next before ChangeKey returns.
func ChangeKey(ctx context.Context, inner storage.Store, cur, next Unlock, o InitOptions) error {
	id, err := readKeyObject(ctx, inner, cur)
	if err != nil {
		return err
	}
	if err := writeKeyObject(ctx, inner, id, next, o); err != nil {
		return err
	}
	got, err := readKeyObject(ctx, inner, next)
	if err != nil {
		return fmt.Errorf("repository key: the new key object does not unlock: %w", err)
	}
	if got.String() != id.String() {
		return errors.New("repository key: the new key object holds another identity (replaced concurrently?)")
	}
	return nil
}

func writeKeyObject(ctx context.Context, inner storage.Store, id *age.X25519Identity, u Unlock, o InitOptions) error {
	rcpt, err := u.recipient(o)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt)
	if err != nil {
		return fmt.Errorf("repository key: seal: %w", err)
	}
	fmt.Fprintf(w, "%s# public key: %s\n%s\n", keyObjectHeader, id.Recipient(), id)
	if err := w.Close(); err != nil {
		return fmt.Errorf("repository key: seal: %w", err)
	}
	if _, err := inner.Put(ctx, KeyObject, &buf); err != nil {
		return fmt.Errorf("repository key %s: %w", KeyObject, err)
	}
	return nil
}

func readKeyObject(ctx context.Context, inner storage.Store, u Unlock) (*age.X25519Identity, error) {
	r, err := inner.Get(ctx, KeyObject)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("repository key %s: %w", KeyObject, ErrNoKey)
	}
	if err != nil {
		return nil, fmt.Errorf("repository key %s: %w", KeyObject, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxKeyObject+1))
	if err != nil {
		return nil, fmt.Errorf("repository key %s: %w", KeyObject, err)
	}
	if len(data) > maxKeyObject {
		return nil, fmt.Errorf("repository key %s: larger than %d bytes: not a key object", KeyObject, maxKeyObject)
	}
	kind := stanzaKind(data)
	switch {
	case kind == "":
		return nil, fmt.Errorf("repository key %s: damaged: not an age file", KeyObject)
	case kind == "scrypt" && u.kind != kindPassphrase:
		return nil, fmt.Errorf("repository key: the repository is unlocked by a passphrase, and %s was given", u.source)
	case kind != "scrypt" && u.kind == kindPassphrase:
		return nil, fmt.Errorf("repository key: the repository is unlocked by a key file, and %s was given", u.source)
	}
	pr, err := age.Decrypt(bytes.NewReader(data), u.ids...)
	var nomatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nomatch) && u.kind == kindPassphrase:
		return nil, errors.New("repository key: wrong passphrase")
	case errors.As(err, &nomatch):
		return nil, fmt.Errorf("repository key: wrong key: %s is not this repository's key", u.source)
	case err != nil:
		return nil, fmt.Errorf("repository key %s: damaged: %v", KeyObject, err)
	}
	plain, err := io.ReadAll(pr)
	if err != nil {
		return nil, fmt.Errorf("repository key %s: damaged: %v", KeyObject, err)
	}
	id, err := parseDataIdentity(plain)
	if err != nil {
		return nil, fmt.Errorf("repository key %s: %v", KeyObject, err)
	}
	return id, nil
}

// stanzaKind is the type of the first recipient stanza of an age file ("scrypt",
// "X25519", ...), or "" when data does not start like one.
func stanzaKind(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != "age-encryption.org/v1" || !sc.Scan() {
		return ""
	}
	rest, ok := strings.CutPrefix(sc.Text(), "-> ")
	if !ok {
		return ""
	}
	kind, _, _ := strings.Cut(rest, " ")
	return kind
}

// parseDataIdentity reads the one identity of a key object's plaintext. Its errors
// never quote the plaintext.
func parseDataIdentity(plain []byte) (*age.X25519Identity, error) {
	if !bytes.HasPrefix(plain, []byte(keyObjectHeader)) {
		return nil, errors.New("not a walkeeper repository key")
	}
	var found *age.X25519Identity
	for l := range strings.Lines(string(plain)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		id, err := age.ParseX25519Identity(l)
		if err != nil || found != nil {
			return nil, errors.New("the key object does not hold exactly one age X25519 identity")
		}
		found = id
	}
	if found == nil {
		return nil, errors.New("the key object holds no identity")
	}
	return found, nil
}
