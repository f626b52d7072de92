package restore

import (
	"os"
	"path/filepath"
	"testing"
)

func TestArchiveMode(t *testing.T) {
	write := func(dir, name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unset", map[string]string{"postgresql.conf": "#archive_mode = always\n"}, "off"},
		{"conf", map[string]string{"postgresql.conf": "archive_mode = always # standby archives\n"}, "always"},
		{"auto wins", map[string]string{"postgresql.conf": "archive_mode = always\n", "postgresql.auto.conf": "archive_mode = 'on'\n"}, "on"},
		{"last wins, no =", map[string]string{"postgresql.conf": "archive_mode on\nARCHIVE_MODE='always'\n"}, "always"},
		{"include", map[string]string{"postgresql.conf": "include 'extra.conf'\n", "extra.conf": "archive_mode=always\n"}, "always"},
		{"include_dir", map[string]string{"postgresql.conf": "archive_mode = on\ninclude_dir 'conf.d'\n", "conf.d/01.conf": "archive_mode = always\n"}, "always"},
		{"command line", map[string]string{"postgresql.conf": "archive_mode = on\n", "postmaster.opts": `/usr/lib/postgresql/15/bin/postgres "-D" "/x" "-c" "archive_mode=always"` + "\n"}, "always"},
	} {
		dir := t.TempDir()
		for n, text := range c.files {
			write(dir, n, text)
		}
		if got := ArchiveMode(dir); got != c.want {
			t.Errorf("%s: ArchiveMode = %q, want %q", c.name, got, c.want)
		}
	}
}
