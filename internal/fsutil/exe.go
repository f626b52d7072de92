package fsutil

import (
	"os"
	"path/filepath"
)

// Executable is the running program's absolute path with symlinks resolved, for the
// commands PostgreSQL or a detached process run (restore_command, prefetch-wal).
func Executable() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return filepath.Abs(p)
}
