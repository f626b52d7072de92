package restore

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

func TestRestoreOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		if o := RestoreOwner(t.TempDir()); o != nil {
			t.Fatalf("not root: owner %+v, want nil (files belong to the caller)", o)
		}
		t.Skip("the rest needs root")
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres OS user")
	}
	pgUID, _ := strconv.Atoi(pg.Uid)
	dir := t.TempDir()
	if o := RestoreOwner(filepath.Join(dir, "new")); o == nil || o.UID != pgUID {
		t.Errorf("a DEST to create: owner %+v, want the postgres user (%d)", o, pgUID)
	}
	if o := RestoreOwner(dir); o == nil || o.UID != pgUID {
		t.Errorf("a root-owned DEST: owner %+v, want the postgres user (%d)", o, pgUID)
	}
	prepared := filepath.Join(dir, "prepared")
	if err := os.Mkdir(prepared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(prepared, 4242, 4243); err != nil {
		t.Fatal(err)
	}
	if o := RestoreOwner(prepared); o == nil || o.UID != 4242 || o.GID != 4243 {
		t.Errorf("a DEST the DBA prepared for uid 4242: owner %+v", o)
	}
}
