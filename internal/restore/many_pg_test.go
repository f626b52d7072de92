package restore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/pgtest"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/verify"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

// TestManySmallRelations: a cluster of 3,000 tables with a primary key each (~7,000
// small files in several solid bundles) backs up, restores and starts, and the
// restored cluster holds every table and row. verify proves the real backup by the
// sums it recorded without a decode, and with --deep decodes each bundle once.
func TestManySmallRelations(t *testing.T) {
	const tables, rows = 3000, 5
	env := wktest.New(t, wktest.ServerSection{Name: "pg1", Settings: map[string]string{}})
	primary := pgtest.New(t, "many", pgtest.Options{ArchiveCommand: env.ArchiveCommand("pg1"),
		// The census below reads every table in one statement; the restored cluster
		// inherits the setting with postgresql.conf.
		Conf: map[string]string{"max_locks_per_transaction": "1024"}})
	env.Servers[0].Settings["conninfo"] = primary.ConnString("")
	env.WriteConfig(t)
	env.StartDaemon(t)
	var sql strings.Builder
	for from := 1; from <= tables; from += 500 {
		fmt.Fprintf(&sql, `DO $$ BEGIN FOR i IN %d..%d LOOP
  EXECUTE format('CREATE TABLE t%%s (id int PRIMARY KEY, v int)', i);
  EXECUTE format('INSERT INTO t%%s SELECT g, g * %%s FROM generate_series(1, %d) g', i, i);
END LOOP; END $$;
`, from, from+499, rows)
	}
	start := time.Now()
	primary.Psql(t, sql.String())
	t.Logf("%d tables created in %s", tables, time.Since(start).Round(time.Millisecond))
	const census = `SELECT count(*) || ' ' || sum((xpath('/row/s/text()', query_to_xml(format('SELECT sum(v) AS s FROM %I', relname), false, true, '')))[1]::text::bigint)
FROM pg_class WHERE relname ~ '^t[0-9]+$' AND relkind = 'r'`
	want := primary.Psql(t, census)
	wantSum := int64(0)
	for i := int64(1); i <= tables; i++ {
		wantSum += i * rows * (rows + 1) / 2
	}
	if want != fmt.Sprintf("%d %d", tables, wantSum) {
		t.Fatalf("primary census %q", want)
	}

	var b struct {
		ID    string `json:"id"`
		Files int    `json:"files"`
	}
	start = time.Now()
	env.JSON(t, &b, "backup", "pg1")
	t.Logf("backup of %d files in %s", b.Files, time.Since(start).Round(time.Millisecond))
	if b.Files < 2*tables {
		t.Fatalf("backup of %d files, want at least %d", b.Files, 2*tables)
	}
	store := storage.NewLocal(env.Home)
	entries, err := basebackup.Contents(context.Background(), store, "pg1", b.ID)
	if err != nil {
		t.Fatal(err)
	}
	bundles := map[string]bool{}
	for _, e := range entries {
		if e.Solid {
			bundles[e.Key] = true
		}
	}
	if len(bundles) < 2 {
		t.Fatalf("%d bundles: the test needs several", len(bundles))
	}
	info, err := basebackup.LoadInfo(context.Background(), store, "pg1", b.ID)
	if err != nil {
		t.Fatal(err)
	}
	// verify by the sums the backup recorded (each checked against PostgreSQL's
	// manifest) decodes nothing; --deep decodes each bundle once.
	for _, deep := range []bool{false, true} {
		before := basebackup.SolidDecodes()
		rep, err := verify.VerifyBackup(context.Background(), store, info, verify.FileOptions{Workers: 2, Deep: deep})
		if err != nil || !rep.OK() {
			t.Fatalf("verify (deep %v): %v %+v", deep, err, rep)
		}
		want, decoded := int64(0), 0
		if deep {
			want, decoded = int64(len(bundles)), rep.Files
		}
		if got := basebackup.SolidDecodes() - before; got != want || rep.Decoded != decoded {
			t.Fatalf("verify (deep %v) decoded %d bundles (%d files), want %d of %d", deep, got, rep.Decoded, want, len(bundles))
		}
		if !deep && rep.Objects < len(bundles) {
			t.Fatalf("verify read %d stored objects, %d bundles", rep.Objects, len(bundles))
		}
	}

	dest := filepath.Join(pgtest.TempDir(t), "data")
	start = time.Now()
	env.MustRun(t, "restore", "pg1", b.ID, dest)
	t.Logf("restore in %s", time.Since(start).Round(time.Millisecond))
	restored := pgtest.FromDataDir(t, "many-restored", dest)
	restored.WaitFor(t, "SELECT pg_is_in_recovery()", "f", 120*time.Second)
	t.Logf("restored cluster up in %s", time.Since(start).Round(time.Millisecond))
	if got := restored.Psql(t, census); got != want {
		t.Fatalf("restored census %q, primary %q", got, want)
	}
}
