package crypt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPassphraseCommand: the command's output without its newline is the passphrase;
// a command that fails, prints nothing, hangs or does not exist is a one-line error
// naming the program and never its arguments.
func TestPassphraseCommand(t *testing.T) {
	ctx := context.Background()
	u, err := PassphraseCommand(ctx, `printf 'pass word\n'`, 10*time.Second)
	if err != nil || u.pass != "pass word" || u.String() != "encryption_passphrase_command (printf)" {
		t.Fatalf("printf: %v, %v", u, err)
	}
	cases := []struct{ cmd, want string }{
		{`sh -c 'echo first >&2; echo "vault sealed" >&2; exit 3'`, "encryption_passphrase_command (sh): exit status 3: vault sealed"},
		{`sh -c 'exit 0'`, "encryption_passphrase_command (sh): printed no passphrase"},
		{`printf '\n'`, "encryption_passphrase_command (printf): printed no passphrase"},
		{`sleep 30`, "encryption_passphrase_command (sleep): did not finish: context deadline exceeded"},
		{`/nonexistent/getpass hunter2`, "encryption_passphrase_command (getpass): fork/exec /nonexistent/getpass: no such file or directory"},
		{`'unterminated`, "encryption_passphrase_command: not a command line: unterminated quote"},
		{``, "encryption_passphrase_command: not a command line: empty"},
	}
	for _, c := range cases {
		start := time.Now()
		timeout := 30 * time.Second // generous: only sleep is meant to run out
		if strings.HasPrefix(c.cmd, "sleep") {
			timeout = 300 * time.Millisecond
		}
		_, err := PassphraseCommand(ctx, c.cmd, timeout)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %q", c.cmd, err, c.want)
		}
		if strings.HasPrefix(c.cmd, "sleep") && time.Since(start) > 10*time.Second {
			t.Errorf("%s: took %v", c.cmd, time.Since(start))
		}
	}
}

// TestPassphraseFile: the file's content without its newline; a file others can
// read, an empty one and a missing one are one-line errors naming the file.
func TestPassphraseFile(t *testing.T) {
	p := writeFile(t, "pass", "line one\r\n", 0o600)
	u, err := PassphraseFile(p)
	if err != nil || u.pass != "line one" {
		t.Fatalf("%v, %v", u, err)
	}
	cases := []struct{ path, want string }{
		{writeFile(t, "open", "x\n", 0o644), "mode 0644 lets other users read it (chmod 600 it)"},
		{writeFile(t, "empty", "\n", 0o600), "the passphrase is empty"},
		{filepath.Join(t.TempDir(), "missing"), "no such file or directory"},
		{t.TempDir(), "not a regular file"},
	}
	for _, c := range cases {
		_, err := PassphraseFile(c.path)
		if err == nil || err.Error() != "encryption_passphrase_file "+c.path+": "+c.want {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
	}
}

// TestKeyFile: age-keygen's format is read (comments, blank lines); a line that is
// not an age secret key is an error by line number that never quotes it;
// GenerateKeyFile never writes over a file.
func TestKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	pub, err := GenerateKeyFile(p)
	if err != nil || !strings.HasPrefix(pub, "age1") {
		t.Fatalf("generate: %q, %v", pub, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v", fi.Mode(), err)
	}
	if _, err := GenerateKeyFile(p); err == nil {
		t.Fatal("GenerateKeyFile wrote over an existing file")
	}
	data, _ := os.ReadFile(p)
	if _, err := KeyFile(writeFile(t, "k2", "\n# a comment\n\n"+string(data), 0o600)); err != nil {
		t.Fatalf("key file with comments: %v", err)
	}
	const raw = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	bad := writeFile(t, "bad", "# comment\n"+raw+"\n", 0o600)
	if _, err := KeyFile(bad); err == nil || strings.Contains(err.Error(), raw[:8]) ||
		err.Error() != "encryption_key_file "+bad+": line 2 is not an age secret key (AGE-SECRET-KEY-1...)" {
		t.Fatalf("bad key file: %v", err)
	}
	empty := writeFile(t, "empty", "# nothing\n", 0o600)
	if _, err := KeyFile(empty); err == nil || !strings.Contains(err.Error(), "holds no age secret key") {
		t.Fatalf("empty key file: %v", err)
	}
	open := writeFile(t, "open", string(data), 0o640)
	if _, err := KeyFile(open); err == nil || !strings.Contains(err.Error(), "mode 0640") {
		t.Fatalf("group-readable key file: %v", err)
	}
}

// TestSources: exactly one configured secret is loaded; none or two is an error
// naming the settings.
func TestSources(t *testing.T) {
	ctx := context.Background()
	pf := writeFile(t, "pass", "pw\n", 0o600)
	kpath := filepath.Join(t.TempDir(), "key")
	if _, err := GenerateKeyFile(kpath); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    Sources
		want string
	}{
		{Sources{KeyFile: kpath}, "encryption_key_file " + kpath},
		{Sources{PassphraseFile: pf}, "encryption_passphrase_file " + pf},
		{Sources{PassphraseCommand: "echo pw"}, "encryption_passphrase_command (echo)"},
	} {
		u, err := c.s.Unlock(ctx)
		if err != nil || u.String() != c.want {
			t.Errorf("%+v: %v, %v", c.s, u, err)
		}
	}
	if _, err := (Sources{}).Unlock(ctx); err == nil || !strings.Contains(err.Error(), "set one of") {
		t.Errorf("no source: %v", err)
	}
	_, err := Sources{KeyFile: kpath, PassphraseCommand: "echo pw"}.Unlock(ctx)
	if err == nil || err.Error() != "encryption: encryption_key_file and encryption_passphrase_command are set together; set only one" {
		t.Errorf("two sources: %v", err)
	}
}
