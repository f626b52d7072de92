package crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/shellword"
)

type unlockKind int

const (
	kindPassphrase unlockKind = iota + 1
	kindKeyFile
)

// maxSecret bounds a passphrase or key file read.
const maxSecret = 64 << 10

// Unlock is what opens a repository's key object: a passphrase (from a file or a
// command) or an age key file. It holds the secret: its String names only where the
// secret came from, never the secret.
type Unlock struct {
	kind   unlockKind
	source string // "encryption_passphrase_file /etc/...": for messages
	pass   string
	ids    []age.Identity
	rcpt   age.Recipient // key files: the recipient of the first identity
}

// String names the source of the secret, never the secret.
func (u Unlock) String() string { return u.source }

// GoString is String, for %#v.
func (u Unlock) GoString() string { return u.source }

// Passphrase makes an Unlock of a passphrase already in memory; source names where
// it came from in messages. A passphrase is used as given: callers strip the newline
// a file or command ends it with (PassphraseFile and PassphraseCommand do).
func Passphrase(pass, source string) (Unlock, error) {
	if pass == "" {
		return Unlock{}, fmt.Errorf("%s: the passphrase is empty", source)
	}
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		return Unlock{}, fmt.Errorf("%s: %w", source, err)
	}
	return Unlock{kind: kindPassphrase, source: source, pass: pass, ids: []age.Identity{id}}, nil
}

// PassphraseFile reads a passphrase from path (config key encryption_passphrase_file):
// the whole file, without its trailing newline. The file must not be readable by
// group or others.
func PassphraseFile(path string) (Unlock, error) {
	src := "encryption_passphrase_file " + path
	data, err := readSecretFile(path, src)
	if err != nil {
		return Unlock{}, err
	}
	return Passphrase(trimNewline(string(data)), src)
}

// PassphraseCommand runs command (config key encryption_passphrase_command; split
// like a shell does, no shell runs it: write `sh -c '...'` for one) with no input and
// takes its standard output, without the trailing newline, as the passphrase. A
// command that fails, prints nothing or runs past timeout is an error naming the
// program (never its arguments, which could hold a secret) and the last line of its
// standard error.
func PassphraseCommand(ctx context.Context, command string, timeout time.Duration) (Unlock, error) {
	argv, err := shellword.Split(command)
	if err != nil || len(argv) == 0 {
		return Unlock{}, fmt.Errorf("encryption_passphrase_command: not a command line: %v", orEmpty(err))
	}
	src := fmt.Sprintf("encryption_passphrase_command (%s)", filepath.Base(argv[0]))
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb limitedBuffer
	out.max, errb.max = maxSecret, 4096
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return Unlock{}, fmt.Errorf("%s: did not finish: %v", src, ctx.Err())
	}
	if err != nil {
		return Unlock{}, fmt.Errorf("%s: %v%s", src, err, lastLine(errb.String()))
	}
	if out.over {
		return Unlock{}, fmt.Errorf("%s: printed more than %d bytes: not a passphrase", src, maxSecret)
	}
	pass := trimNewline(out.String())
	if pass == "" {
		return Unlock{}, fmt.Errorf("%s: printed no passphrase", src)
	}
	return Passphrase(pass, src)
}

// KeyFile reads an age identity file (config key encryption_key_file): lines
// "AGE-SECRET-KEY-1..." (X25519, as age-keygen or GenerateKeyFile write) or
// "AGE-SECRET-KEY-PQ-1..." (post-quantum hybrid), empty lines and # comments. The
// first identity is the one Init and ChangeKey seal the key object to; all are tried
// to open it. The file must not be readable by group or others. Errors never quote
// the file's lines.
func KeyFile(path string) (Unlock, error) {
	src := "encryption_key_file " + path
	data, err := readSecretFile(path, src)
	if err != nil {
		return Unlock{}, err
	}
	u := Unlock{kind: kindKeyFile, source: src}
	n := 0
	for l := range strings.Lines(string(data)) {
		n++
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		var id age.Identity
		var rcpt age.Recipient
		if strings.HasPrefix(l, "AGE-SECRET-KEY-PQ-1") {
			if h, err := age.ParseHybridIdentity(l); err == nil {
				id, rcpt = h, h.Recipient()
			}
		} else if x, err := age.ParseX25519Identity(l); err == nil {
			id, rcpt = x, x.Recipient()
		}
		if id == nil {
			return Unlock{}, fmt.Errorf("%s: line %d is not an age secret key (AGE-SECRET-KEY-1...)", src, n)
		}
		u.ids = append(u.ids, id)
		if u.rcpt == nil {
			u.rcpt = rcpt
		}
	}
	if len(u.ids) == 0 {
		return Unlock{}, fmt.Errorf("%s: holds no age secret key (AGE-SECRET-KEY-1...)", src)
	}
	return u, nil
}

// GenerateKeyFile writes a new age X25519 identity to path, in age-keygen's format,
// mode 0600, durably (file and directory fsynced), and never over an existing file.
// It returns the public key (age1...).
func GenerateKeyFile(path string) (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	body := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, _, err := fsutil.WriteTemp(dir, base, strings.NewReader(body), 0o600)
	if err != nil {
		return "", fmt.Errorf("key file %s: %w", path, err)
	}
	if err := fsutil.PublishNoReplace(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("key file %s: %w", path, err)
	}
	return id.Recipient().String(), nil
}

func (u Unlock) recipient(o InitOptions) (age.Recipient, error) {
	switch u.kind {
	case kindPassphrase:
		r, err := age.NewScryptRecipient(u.pass)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u.source, err)
		}
		wf := o.WorkFactor
		if wf == 0 {
			wf = DefaultWorkFactor
		}
		r.SetWorkFactor(wf)
		return r, nil
	case kindKeyFile:
		return u.rcpt, nil
	}
	return nil, errors.New("repository key: no passphrase or key file given")
}

// readSecretFile reads a passphrase or key file, refusing one that group or others
// can read (the secret would not be one).
func readSecretFile(path, src string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, errors.Unwrap(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", src)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets other users read it (chmod 600 it)", src, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if len(data) > maxSecret {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a passphrase or key file", src, maxSecret)
	}
	return data, nil
}

func trimNewline(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return ""
	}
	return ": " + s
}

func orEmpty(err error) string {
	if err == nil {
		return "empty"
	}
	return err.Error()
}

// limitedBuffer keeps at most max bytes and notes that more came.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.max - b.Len(); n > room {
		b.over = true
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	return n, nil
}

// PassphraseCommandTimeout bounds a passphrase command run by Sources.Unlock: a
// command waiting for a vault forever must not hang the daemon's start.
const PassphraseCommandTimeout = time.Minute

// Sources are the configuration's ways to unlock a repository; exactly one is set.
type Sources struct {
	KeyFile           string // encryption_key_file
	PassphraseFile    string // encryption_passphrase_file
	PassphraseCommand string // encryption_passphrase_command
}

// Unlock loads the one configured secret.
func (s Sources) Unlock(ctx context.Context) (Unlock, error) {
	var set []string
	for name, v := range map[string]string{"encryption_key_file": s.KeyFile, "encryption_passphrase_file": s.PassphraseFile,
		"encryption_passphrase_command": s.PassphraseCommand} {
		if v != "" {
			set = append(set, name)
		}
	}
	switch {
	case len(set) == 0:
		return Unlock{}, errors.New("encryption is on: set one of encryption_key_file, encryption_passphrase_file, encryption_passphrase_command")
	case len(set) > 1:
		slices.Sort(set)
		return Unlock{}, fmt.Errorf("encryption: %s are set together; set only one", strings.Join(set, " and "))
	case s.KeyFile != "":
		return KeyFile(s.KeyFile)
	case s.PassphraseFile != "":
		return PassphraseFile(s.PassphraseFile)
	}
	return PassphraseCommand(ctx, s.PassphraseCommand, PassphraseCommandTimeout)
}
