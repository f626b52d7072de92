package restore

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// RestoreOwner is who a local restore run as root makes the restored files belong to:
// PostgreSQL refuses to run as root and cannot start a data directory it does not own,
// so a root-owned restore is never what the DBA wants. The owner of an existing DEST
// (the DBA prepared it) wins; else the postgres OS user, the owner PostgreSQL's own
// base backups name in their tar headers (pgBackRest restores as root to the owner
// its manifest records the same way). nil when not root, or when neither exists.
func RestoreOwner(dest string) *Owner {
	if os.Geteuid() != 0 {
		return nil
	}
	if fi, err := os.Stat(dest); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			return &Owner{UID: int(st.Uid), GID: int(st.Gid)}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	o, _, err := PostgresOwner()
	if err != nil {
		return nil
	}
	return o
}
