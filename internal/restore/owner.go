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

// LocalOwner is RestoreOwner for a placed restore: nil for a remote one, and an error
// when the owner could not run get-wal (restore_command runs as the data directory's
// owner, and get-wal reads the archive through incomingDir's parents).
func LocalOwner(p Placed, incomingDir string) (*Owner, error) {
	if p.Remote != nil {
		return nil, nil
	}
	o := RestoreOwner(p.Dest)
	if p.WAL == WALGet && p.WALSSH == nil { // through ssh, the archive is read as the ssh user
		if d, perm, ok := Reachable(incomingDir, o); !ok {
			return nil, usage("restore as root: the restored cluster's owner (uid %d) cannot reach %s (mode %v), so its restore_command (get-wal) could not read the archive: use --copy-wal, or run walkeeper as the owner of its home", o.UID, d, perm)
		}
	}
	return o, nil
}
