package crypt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// testWorkFactor keeps scrypt cheap in tests (the default costs about a second).
const testWorkFactor = 10

func passphrase(t *testing.T, p string) Unlock {
	t.Helper()
	u, err := Passphrase(p, "test passphrase")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func keyFile(t *testing.T) (Unlock, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k")
	if _, err := GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	u, err := KeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return u, p
}

// TestWrongKey: a wrong passphrase, a wrong key file, or a passphrase for a repository
// a key file unlocks (and the other way round) is a one-line error from Open, before
// any object is read; the right one opens and reads.
func TestWrongKey(t *testing.T) {
	ctx := context.Background()
	const secret = "correct horse battery staple"
	passInner := storage.NewLocal(t.TempDir())
	s, err := Init(ctx, passInner, passphrase(t, secret), InitOptions{WorkFactor: testWorkFactor})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "pg1/identity.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	keyInner := storage.NewLocal(t.TempDir())
	right, _ := keyFile(t)
	if _, err := Init(ctx, keyInner, right, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	wrongKey, wrongPath := keyFile(t)
	cases := []struct {
		inner *storage.Local
		u     Unlock
		want  string
	}{
		{passInner, passphrase(t, "Correct horse battery staple"), "repository key: wrong passphrase"},
		{passInner, passphrase(t, secret+"\n"), "repository key: wrong passphrase"},
		{keyInner, wrongKey, "repository key: wrong key: encryption_key_file " + wrongPath + " is not this repository's key"},
		{passInner, right, "repository key: the repository is unlocked by a passphrase, and encryption_key_file"},
		{keyInner, passphrase(t, secret), "repository key: the repository is unlocked by a key file, and test passphrase was given"},
	}
	for _, c := range cases {
		_, err := Open(ctx, c.inner, c.u)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "orse") {
			t.Errorf("open with %s: %v, want %q", c.u, err, c.want)
		}
	}
	s2, err := Open(ctx, passInner, passphrase(t, secret))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(s2, "pg1/identity.json"); err != nil || string(got) != "{}" {
		t.Fatalf("read with the right passphrase: %q, %v", got, err)
	}
}

// TestInitAndOpen: Open of a store with no key object wraps ErrNoKey; Init refuses
// a store that has one; a damaged key object is an error naming it.
func TestInitAndOpen(t *testing.T) {
	ctx := context.Background()
	inner := storage.NewLocal(t.TempDir())
	u, _ := keyFile(t)
	if _, err := Open(ctx, inner, u); !errors.Is(err, ErrNoKey) {
		t.Fatalf("open of a store without a key: %v", err)
	}
	s, err := Init(ctx, inner, u, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, inner, u, InitOptions{}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("second init: %v", err)
	}
	s2, err := Open(ctx, inner, u)
	if err != nil || s2.Recipient() != s.Recipient() {
		t.Fatalf("reopen: %v (recipient %s, was %s)", err, s2.Recipient(), s.Recipient())
	}
	raw, err := readAll(inner, KeyObject)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-5] ^= 0x01 // a changed byte whatever it was (setting it to 'x' missed one run in 256)
	for name, data := range map[string]string{
		"not age":   "hello",
		"truncated": string(raw[:len(raw)-3]),
		"flipped":   string(flipped),
	} {
		writeRaw(t, inner, KeyObject, []byte(data))
		if _, err := Open(ctx, inner, u); err == nil || !strings.Contains(err.Error(), "repository key "+KeyObject+": damaged") {
			t.Errorf("%s key object: %v", name, err)
		}
	}
}

// TestChangeKey: changing the passphrase, then moving to a key file, keeps every
// object readable (the data identity stays); the old secret no longer opens.
func TestChangeKey(t *testing.T) {
	ctx := context.Background()
	inner := storage.NewLocal(t.TempDir())
	old := passphrase(t, "old one")
	s, err := Init(ctx, inner, old, InitOptions{WorkFactor: testWorkFactor})
	if err != nil {
		t.Fatal(err)
	}
	want := plaintext(ChunkSize + 5)
	const key = "pg1/wals/0000000100000000/000000010000000000000001.zst"
	if _, err := s.Put(ctx, key, strings.NewReader(string(want))); err != nil {
		t.Fatal(err)
	}
	next := passphrase(t, "new one")
	if err := ChangeKey(ctx, inner, passphrase(t, "not it"), next, InitOptions{WorkFactor: testWorkFactor}); err == nil || err.Error() != "repository key: wrong passphrase" {
		t.Fatalf("change with a wrong passphrase: %v", err)
	}
	if err := ChangeKey(ctx, inner, old, next, InitOptions{WorkFactor: testWorkFactor}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, inner, old); err == nil || err.Error() != "repository key: wrong passphrase" {
		t.Fatalf("the old passphrase after the change: %v", err)
	}
	kf, _ := keyFile(t)
	if err := ChangeKey(ctx, inner, next, kf, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []Unlock{kf} {
		s2, err := Open(ctx, inner, u)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(s2, key); err != nil || string(got) != string(want) {
			t.Fatalf("an old object after the key changed: %v", err)
		}
	}
	if _, err := Open(ctx, inner, next); err == nil || !strings.Contains(err.Error(), "unlocked by a key file") {
		t.Fatalf("the passphrase after moving to a key file: %v", err)
	}
}

// TestSecretsNeverPrinted: formatting a Store or an Unlock in any verb, and the
// errors of a wrong passphrase, never show the passphrase or a secret key.
func TestSecretsNeverPrinted(t *testing.T) {
	ctx := context.Background()
	const secret = "s3cr3t-passphrase"
	inner := storage.NewLocal(t.TempDir())
	u := passphrase(t, secret)
	s, err := Init(ctx, inner, u, InitOptions{WorkFactor: testWorkFactor})
	if err != nil {
		t.Fatal(err)
	}
	kf, kpath := keyFile(t)
	kdata, err := os.ReadFile(kpath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, inner, passphrase(t, secret+"x"))
	out := fmt.Sprintf("%v %+v %#v %s %v %+v %#v %v %+v %#v %v", s, s, s, s, u, u, u, kf, kf, kf, err)
	for _, bad := range []string{secret, "AGE-SECRET-KEY", strings.ToUpper(s.id.String()[:20])} {
		if strings.Contains(out, bad) {
			t.Fatalf("%q printed in %q", bad, out)
		}
	}
	if !strings.Contains(string(kdata), "AGE-SECRET-KEY-1") {
		t.Fatal("the key file holds no age secret key")
	}
}

// TestHybridKeyFile: a post-quantum hybrid age key (AGE-SECRET-KEY-PQ-1...) seals and
// opens the key object as an X25519 one does.
func TestHybridKeyFile(t *testing.T) {
	ctx := context.Background()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	u, err := KeyFile(writeFile(t, "pq.key", "# public key: "+id.Recipient().String()+"\n"+id.String()+"\n", 0o600))
	if err != nil {
		t.Fatal(err)
	}
	inner := storage.NewLocal(t.TempDir())
	s, err := Init(ctx, inner, u, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "pg1/identity.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, inner, u)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(s2, "pg1/identity.json"); err != nil || string(got) != "{}" {
		t.Fatalf("%q, %v", got, err)
	}
	other, _ := keyFile(t)
	if _, err := Open(ctx, inner, other); err == nil || !strings.Contains(err.Error(), "wrong key") {
		t.Fatalf("an X25519 key on a hybrid-sealed repository: %v", err)
	}
}
