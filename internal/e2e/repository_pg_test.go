package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/crypt"
	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/s3test"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// s3Repository configures pg1 of env with an age-encrypted repository on s3, its
// credentials and key in files of the postgres user (who runs walkeeper here).
func s3Repository(t *testing.T, env *wktest.Env, s3 *s3test.Server) {
	t.Helper()
	dir := pgtest.TempDir(t)
	key := filepath.Join(dir, "walkeeper.agekey")
	if _, err := crypt.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	creds := writeFile(t, filepath.Join(dir, "credentials"),
		[]byte(fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s3.AccessKey, s3.SecretKey)))
	for _, f := range []string{key, creds} {
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := pgtest.Chown(f); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{
		"repository": "s3://" + s3.Bucket + "/offsite", "repository_endpoint": s3.Endpoint, "repository_region": "us-east-1",
		"repository_path_style": "on", "repository_credentials_file": creds, "encryption": "age", "encryption_key_file": key,
	} {
		env.Servers[0].Settings[k] = v
	}
	env.WriteConfig(t)
}

type repoStatus struct {
	Repository *struct {
		Upload *struct {
			Pending  int   `json:"pending"`
			Uploaded int64 `json:"uploaded"`
			Scanned  bool  `json:"scanned"`
		} `json:"upload"`
	} `json:"repository"`
}

// TestRepositoryAlone (issue 15): a server archived and backed up with an encrypted S3
// repository, the backup streamed there with no local copy (backup_local_copy = off). The backup host burns down: its home is deleted. A new home with the
// same configuration gets its catalog back from the repository (`index rebuild`: the
// same `list-backups --json`) and restores to a target time from the repository
// alone, exactly.
func TestRepositoryAlone(t *testing.T) {
	pgtest.SkipShort(t)
	s3 := s3test.Start(t)
	env := newEnv(t)
	s3Repository(t, env, s3)
	env.Servers[0].Settings["backup_local_copy"] = "off"
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	env.MustRun(t, "repository-init", "pg1")
	d := env.StartDaemon(t)
	pg.Psql(t, "CREATE TABLE rows (id int PRIMARY KEY, note text)")
	var b struct {
		ID string `json:"id"`
	}
	env.JSON(t, &b, "backup", "pg1")
	// backup_local_copy = off: streamed to the repository, no copy on the local disk.
	if _, err := os.Stat(filepath.Join(env.Home, "pg1", "base", b.ID)); !os.IsNotExist(err) {
		t.Errorf("backup_local_copy = off left a local copy of %s: %v", b.ID, err)
	}
	if _, err := os.Stat(filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1", "base", b.ID, "backup.info")); err != nil {
		t.Errorf("backup %s is not in the repository when backup returns: %v", b.ID, err)
	}
	pg.Psql(t, "INSERT INTO rows SELECT g, 'before the target' FROM generate_series(1, 1000) g")
	target := pg.Psql(t, "SELECT clock_timestamp()")
	time.Sleep(50 * time.Millisecond)
	pg.Psql(t, "INSERT INTO rows SELECT g, 'after the target' FROM generate_series(1001, 2000) g")
	waitArchived(t, pg, switchWAL(t, pg))
	want := "1000"

	wktest.Eventually(t, 90*time.Second, "every archived file and the backup in the repository", func() bool {
		var st repoStatus
		r := env.Run("--json", "status", "pg1")
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &st) != nil || st.Repository == nil || st.Repository.Upload == nil {
			return false
		}
		u := st.Repository.Upload
		return u.Scanned && u.Pending == 0 && u.Uploaded > 0 && len(listDir(t, filepath.Join(env.Home, "pg1", "incoming"))) == 0
	})
	// The daemon's rescan finds the finished backup; wait for its backup.info.
	wktest.Eventually(t, 90*time.Second, "the backup's backup.info in the bucket", func() bool {
		_, err := os.Stat(filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1", "base", b.ID, "backup.info"))
		return err == nil
	})
	if n := sealedObjects(t, filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1")); n < 6 {
		t.Fatalf("%d objects in the bucket", n)
	}
	// Object names reveal nothing of the data directory: large files go by number.
	data, _ := os.ReadDir(filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1", "base", b.ID, "data"))
	var names []string
	for _, e := range data {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "bundles objects" {
		t.Errorf("the backup's data objects are under %v, want only bundles/ and objects/", names)
	}
	before := env.MustRun(t, "--json", "list-backups", "pg1")
	d.Stop(t)
	pg.Stop(t, "immediate")

	if err := os.RemoveAll(env.Home); err != nil { // the backup host is gone
		t.Fatal(err)
	}
	env.MustRun(t, "index", "rebuild", "pg1")
	if after := env.MustRun(t, "--json", "list-backups", "pg1"); after != before {
		t.Fatalf("list-backups after index rebuild from the repository:\n%s\nwant\n%s", after, before)
	}
	if r := env.Run("verify", "pg1", b.ID); r.Code != 0 {
		t.Fatalf("verify from the repository alone: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	dest, _ := restoreTo(t, env, b.ID, "--target-time", target, "--target-action", "promote")
	c := pgtest.FromDataDir(t, "restored", dest)
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := c.Psql(t, "SELECT count(*) FROM rows"); got != want {
		t.Fatalf("restored from the repository alone to %s: %s rows, want %s", target, got, want)
	}
}

// sealedObjects counts the objects under dir and fails on one that is not age-sealed.
func sealedObjects(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(b), "age-encryption.org/v1\n") {
			t.Errorf("%s is not sealed with age: %q...", p, b[:min(len(b), 24)])
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
