package crypt

import (
	"context"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// ErrCorrupt marks an object that is not a whole, untampered object of this
// repository: damaged, truncated, extended, not encrypted, or sealed to another key.
var ErrCorrupt = errors.New("damaged encrypted object")

// Store is a storage.Store that encrypts every object on Put and decrypts it on Get,
// over any inner Store. Keys pass through unchanged; sizes reported by Stat and List
// are plaintext sizes (PlainSize). The repository key object (KeyObject) is not an
// object of the Store: List skips it, and Get, Put and Delete refuse its key, so
// nothing that goes through the Store (retention, rebuild) can read, replace or
// delete it.
type Store struct {
	inner storage.Store
	id    *age.X25519Identity
	rcpt  *age.X25519Recipient
}

var _ storage.Store = (*Store)(nil)

// newStore wraps inner with the repository's data identity.
func newStore(inner storage.Store, id *age.X25519Identity) *Store {
	return &Store{inner: inner, id: id, rcpt: id.Recipient()}
}

// Inner is the store the encrypted objects are kept in.
func (s *Store) Inner() storage.Store { return s.inner }

// Recipient is the repository's public key (age1...): what `age -r` would encrypt to.
// It is not secret.
func (s *Store) Recipient() string { return s.rcpt.String() }

// String describes the store without its key, so that logging a Store by accident
// never prints key material.
func (s *Store) String() string { return fmt.Sprintf("encrypted store (%s)", s.rcpt) }

// GoString is String, for %#v.
func (s *Store) GoString() string { return s.String() }

func checkNotKeyObject(op, key string) error {
	if key == KeyObject {
		return fmt.Errorf("%s %s: the repository key is not an object of the encrypted store", op, key)
	}
	return nil
}

// Put implements storage.Store: it encrypts r as it streams to the inner store (no
// copy of the object in memory) and returns the plaintext bytes read. A failure to
// read r fails the inner Put, so no object is left under key.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := checkNotKeyObject("put", key); err != nil {
		return 0, err
	}
	cr := &countReader{r: r}
	er, err := age.EncryptReader(cr, s.rcpt)
	if err != nil {
		return 0, fmt.Errorf("put %s: encrypt: %w", key, err)
	}
	if _, err := s.inner.Put(ctx, key, er); err != nil {
		return 0, err
	}
	return cr.n, nil
}

// Get implements storage.Store. The header is checked before Get returns (an object
// sealed to another key, or not encrypted, fails here); the body is authenticated
// chunk by chunk as it is read, so a reader gets no byte of a chunk that fails its
// tag, and an object cut short, extended, or with chunks moved fails at the read
// that reaches the damage. Errors name the key and wrap ErrCorrupt; errors of the
// inner store's reader pass through as they are, wrapped with the key.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkNotKeyObject("get", key); err != nil {
		return nil, err
	}
	raw, err := s.inner.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	src := &errReader{r: raw}
	dr, err := age.Decrypt(src, s.id)
	if err != nil {
		raw.Close()
		return nil, s.openError(key, src, err)
	}
	return &objReader{key: key, r: dr, src: src, c: raw}, nil
}

func (s *Store) openError(key string, src *errReader, err error) error {
	if src.err != nil && !errors.Is(src.err, io.EOF) && errors.Is(err, src.err) {
		return fmt.Errorf("get %s: %w", key, src.err)
	}
	var nomatch *age.NoIdentityMatchError
	if errors.As(err, &nomatch) {
		return fmt.Errorf("%s: %w: not sealed to this repository's key", key, ErrCorrupt)
	}
	return fmt.Errorf("%s: %w: not an encrypted object of this repository, or its header is damaged (%v)", key, ErrCorrupt, err)
}

// Stat implements storage.Store; Size is the plaintext size (see List).
func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := checkNotKeyObject("stat", key); err != nil {
		return storage.Info{}, err
	}
	i, err := s.inner.Stat(ctx, key)
	if err != nil {
		return i, err
	}
	return plainInfo(i), nil
}

// List implements storage.Store. Sizes are plaintext sizes, computed from the stored
// sizes (PlainSize), so what Put returned is what List and Stat report; an object
// whose stored size no object of the Store can have is listed with its stored size,
// and Get reports it damaged.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	return s.inner.List(ctx, prefix, func(i storage.Info) error {
		if i.Key == KeyObject {
			return nil
		}
		return fn(plainInfo(i))
	})
}

// Delete implements storage.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkNotKeyObject("delete", key); err != nil {
		return err
	}
	return s.inner.Delete(ctx, key)
}

func plainInfo(i storage.Info) storage.Info {
	if n, ok := PlainSize(i.Size); ok {
		i.Size = n
	}
	return i
}

// countReader counts the plaintext bytes Put reads.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errReader remembers the inner reader's last error, so that a failure of the inner
// store (a network error) is told apart from damage age found in what it read.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// objReader is a decrypting reader that names its key in its errors.
type objReader struct {
	key string
	r   io.Reader
	src *errReader
	c   io.Closer
	err error
}

func (o *objReader) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		if se := o.src.err; se != nil && !errors.Is(se, io.EOF) && !errors.Is(se, io.ErrUnexpectedEOF) && errors.Is(err, se) {
			o.err = fmt.Errorf("read %s: %w", o.key, se)
		} else if errors.Is(err, io.ErrUnexpectedEOF) {
			o.err = fmt.Errorf("%s: %w: truncated (it ends before its last chunk)", o.key, ErrCorrupt)
		} else {
			o.err = fmt.Errorf("%s: %w: %v", o.key, ErrCorrupt, err)
		}
		return n, o.err
	}
	return n, err
}

func (o *objReader) Close() error { return o.c.Close() }
