package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/s3test"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

type uploadStatus struct {
	Repository *struct {
		Upload *struct {
			Pending      int    `json:"pending"`
			Uploaded     int64  `json:"uploaded"`
			LocalRemoved int64  `json:"local_removed"`
			Scanned      bool   `json:"scanned"`
			LastError    string `json:"last_error"`
		} `json:"upload"`
	} `json:"repository"`
}

func uploadState(env *wktest.Env) (uploadStatus, bool) {
	var st uploadStatus
	r := env.Run("--json", "status", "pg1")
	ok := r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &st) == nil && st.Repository != nil && st.Repository.Upload != nil
	return st, ok
}

// bucketWAL lists the WAL segment names in the bucket.
func bucketWAL(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && len(filepath.Base(p)) >= 24 {
			out[filepath.Base(p)[:24]] = true
		}
		return nil
	})
	return out
}

// TestRepositoryFaults (issue 15): a third of the requests to the S3 server answered 503
// SlowDown, and the server killed while WAL is archived: archiving never waits on it,
// nothing local is removed before the repository confirmed it, the uploads resume when
// it is back, and backup, retention and a restore all complete through the faults.
// Retention deletes exactly what the policy says, in batches.
func TestRepositoryFaults(t *testing.T) {
	pgtest.SkipShort(t)
	s3 := s3test.Start(t)
	proxy := s3test.NewProxy(t, s3.Endpoint)
	var deletes atomic.Int64 // DeleteObjects requests
	proxy.SetFaults(s3test.Faults{Rate: 0.3, Status: 503, Match: func(r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Query().Has("delete") {
			deletes.Add(1)
		}
		return true
	}})
	env := newEnv(t)
	s3Repository(t, env, &s3test.Server{Endpoint: proxy.Endpoint, Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey})
	env.Servers[0].Settings["local_wal_retention"] = "1s"
	env.Servers[0].Settings["retention_policy"] = "REDUNDANCY 1"
	pg := pgtest.New(t, "primary", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1")})
	env.Servers[0].Settings["conninfo"] = pg.ConnString("")
	env.WriteConfig(t)
	env.MustRun(t, "repository-init", "pg1")
	env.StartDaemon(t)
	pg.Psql(t, "CREATE TABLE rows (id int PRIMARY KEY)")
	backup := func() string {
		var b struct {
			ID string `json:"id"`
		}
		env.JSON(t, &b, "backup", "pg1")
		return b.ID
	}
	batch := func(i int) string {
		pg.Psql(t, fmt.Sprintf("INSERT INTO rows SELECT generate_series(%d, %d)", i*1000, i*1000+999))
		name := switchWAL(t, pg)
		waitArchived(t, pg, name)
		return name
	}
	uploaded := func(what string) {
		wktest.Eventually(t, 120*time.Second, what, func() bool {
			st, ok := uploadState(env)
			return ok && st.Repository.Upload.Scanned && st.Repository.Upload.Pending == 0 && len(listDir(t, filepath.Join(env.Home, "pg1", "incoming"))) == 0
		})
	}
	first := backup()
	var early []string
	for i := 1; i <= 2; i++ {
		early = append(early, batch(i))
	}
	uploaded("the first backup's WAL uploaded through the faults")

	s3.Kill()
	var during []string
	for i := 3; i <= 5; i++ {
		during = append(during, batch(i)) // archive_command never waits on the repository
	}
	wktest.Eventually(t, 60*time.Second, "the failure in status", func() bool {
		st, ok := uploadState(env)
		return ok && st.Repository.Upload.LastError != "" && st.Repository.Upload.Pending >= len(during)
	})
	time.Sleep(2 * time.Second) // past local_wal_retention
	for _, n := range during {
		if got, ok := servedByGetWAL(env, n); !ok || len(got) == 0 {
			t.Fatalf("%s, archived while the repository was down, is not served locally", n)
		}
		objs, _ := filepath.Glob(filepath.Join(env.Home, "pg1", "wals", "*", n+"*"))
		if len(objs) != 1 {
			t.Fatalf("the local copy of %s went before the repository had it: %v", n, objs)
		}
	}
	s3.Restart()
	second := backup()
	uploaded("every file uploaded once the repository is back")
	var checks []struct {
		Check  string `json:"check"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	}
	r := env.Run("--json", "check", "pg1")
	if err := json.Unmarshal([]byte(r.Stdout), &checks); err != nil {
		t.Fatalf("check --json: %v: %s", err, r.Stdout)
	}
	found := false
	for _, c := range checks {
		if c.Check == "repository upload" {
			found = true
			if !c.OK || !strings.Contains(c.Detail, "0 files waiting") || !strings.Contains(c.Detail, "last error") {
				t.Errorf("check's repository upload after the outage: %+v, want ok with nothing waiting and the last error named", c)
			}
		}
	}
	if !found {
		t.Errorf("check has no repository upload result: %s", r.Stdout)
	}
	inBucket := bucketWAL(t, filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1", "wals"))
	for _, n := range append(early, during...) {
		if !inBucket[n] {
			t.Errorf("%s is not in the repository", n)
		}
	}
	wktest.Eventually(t, 60*time.Second, "old local WAL copies removed once uploaded", func() bool {
		st, ok := uploadState(env)
		return ok && st.Repository.Upload.LocalRemoved > 0
	})
	for _, n := range early {
		if _, ok := servedByGetWAL(env, n); !ok {
			t.Errorf("%s, only in the repository now, is not served by get-wal", n)
		}
	}
	wktest.Eventually(t, 90*time.Second, "the second backup in the repository", func() bool {
		_, err := os.Stat(filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1", "base", second, "backup.info"))
		return err == nil
	})

	before := deletes.Load()
	out := env.MustRun(t, "retention", "pg1")
	if !strings.Contains(out, first) {
		t.Errorf("retention did not name the obsolete backup %s: %s", first, out)
	}
	if _, err := os.Stat(filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1", "base", first)); !os.IsNotExist(err) {
		t.Errorf("backup %s is still in the repository: %v", first, err)
	}
	if _, err := os.Stat(filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1", "base", second, "backup.info")); err != nil {
		t.Errorf("the kept backup %s: %v", second, err)
	}
	after := bucketWAL(t, filepath.Join(s3.Dir, s3.Bucket, "offsite", "pg1", "wals"))
	for _, n := range early {
		if after[n] {
			t.Errorf("%s, needed by no kept backup, is still in the repository", n)
		}
	}
	for n := range after {
		if n < during[len(during)-1] {
			t.Errorf("%s (older than the kept backup) is still in the repository", n)
		}
	}
	if len(after) == 0 {
		t.Fatal("retention emptied the repository's WAL")
	}
	if d := deletes.Load() - before; d == 0 || d > 6 {
		t.Errorf("retention sent %d DeleteObjects requests (with retries) for %d WAL files and a backup, want a few batches", d, len(early)+len(during))
	}

	dest, _ := restoreTo(t, env, "latest")
	c := pgtest.FromDataDir(t, "restored", dest)
	c.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got, want := c.Psql(t, "SELECT count(*) FROM rows"), "5000"; got != want {
		t.Fatalf("restored through the faults: %s rows, want %s", got, want)
	}
	if e, _, _ := proxy.Injected(); e == 0 {
		t.Error("the proxy injected no fault")
	}
}
