package config

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

const exampleConf = `; walkeeper example
[walkeeper]
home = /srv/walkeeper
log_level = debug
compression = gzip
compression_level = 6
bandwidth_limit = 10MB
retention_policy = RECOVERY WINDOW OF 30 DAYS
minimum_redundancy = 1
backup_method = postgres

[pg1]
description = "Main database"
conninfo = host=pg1 user=walkeeper dbname=postgres password='s3cr et'
streaming_archiver = on
create_slot = auto
compression = zstd
compression_level = 19
last_backup_maximum_age = 2 DAYS
retention_interval = 90m

[pg-standby]
conninfo = postgres://walkeeper:pw@pg2:5432/postgres?sslmode=require
primary_conninfo = host=pg1 user=walkeeper dbname=postgres
active = no
archiver = false
slot_name = standby_slot
bandwidth_limit = 1MiB
retention_policy = REDUNDANCY 3
wal_retention_policy = MAIN
min_free_disk = 5GB
backup_wait_timeout = 1 HOURS
failed_backup_grace = 3 DAYS
parallel_jobs = 2
`

func TestParseExample(t *testing.T) {
	c, err := Parse([]byte(exampleConf), "/etc/walkeeper.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.File != "/etc/walkeeper.conf" || c.Home != "/srv/walkeeper" || c.LogLevel != "debug" {
		t.Fatalf("globals: %+v", c)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "backup_method") {
		t.Fatalf("warnings: %q", c.Warnings)
	}
	if got := strings.Join(c.ServerNames(), ","); got != "pg1,pg-standby" {
		t.Fatalf("order: %s", got)
	}
	p1, err := c.Server("pg1")
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("Description", p1.Description, "Main database")
	check("Conninfo", p1.Conninfo, "host=pg1 user=walkeeper dbname=postgres password='s3cr et'")
	check("StreamingConninfo", p1.StreamingConninfo, p1.Conninfo)
	check("StreamingArchiver", p1.StreamingArchiver, true)
	check("CreateSlot", p1.CreateSlot, "auto")
	check("SlotName", p1.SlotName, "walkeeper_pg1")
	check("Compression", p1.Compression, "zstd")
	check("CompressionLevel", p1.CompressionLevel, 19)
	check("BandwidthLimit", p1.BandwidthLimit, int64(10_000_000)) // inherited
	check("RetentionPolicy", p1.RetentionPolicy, "RECOVERY WINDOW OF 30 DAYS")
	check("MinimumRedundancy", p1.MinimumRedundancy, 1)
	check("LastBackupMaximumAge", p1.LastBackupMaximumAge, 48*time.Hour)
	check("RetentionInterval", p1.RetentionInterval, 90*time.Minute)
	check("Active", p1.Active, true)
	check("Archiver", p1.Archiver, true)
	check("Dir", p1.Dir(), "/srv/walkeeper/pg1")
	check("IncomingDir", p1.IncomingDir(), "/srv/walkeeper/pg1/incoming")
	check("ErrorsDir", p1.ErrorsDir(), "/srv/walkeeper/pg1/errors")
	check("StreamingDir", p1.StreamingDir(), "/srv/walkeeper/pg1/streaming")
	check("Settings[compression]", p1.Settings["compression"], "zstd")
	check("Settings[bandwidth_limit]", p1.Settings["bandwidth_limit"], "10MB")
	check("Settings[description]", p1.Settings["description"], "Main database")

	p2, _ := c.Server("pg-standby")
	check("SlotName", p2.SlotName, "standby_slot")
	check("Active", p2.Active, false)
	check("Archiver", p2.Archiver, false)
	check("Compression", p2.Compression, "gzip") // inherited
	check("CompressionLevel", p2.CompressionLevel, 6)
	check("BandwidthLimit", p2.BandwidthLimit, int64(1<<20))
	check("RetentionPolicy", p2.RetentionPolicy, "REDUNDANCY 3")
	check("WALRetentionPolicy", p2.WALRetentionPolicy, "main")
	check("MinFreeDisk", p2.MinFreeDisk, int64(5_000_000_000))
	check("BackupWaitTimeout", p2.BackupWaitTimeout, time.Hour)
	check("FailedBackupGrace", p2.FailedBackupGrace, 72*time.Hour)
	check("ParallelJobs", p2.ParallelJobs, 2)
	check("PrimaryConninfo", p2.PrimaryConninfo, "host=pg1 user=walkeeper dbname=postgres")
	check("StreamingConninfo", p2.StreamingConninfo, p2.Conninfo)

	if _, err := c.Server("nope"); err == nil || err.Error() != `unknown server "nope" (configured: pg1, pg-standby)` {
		t.Fatalf("Server(nope): %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte("[db]\nconninfo = host=x\n"), "w.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.Home != DefaultHome || c.LogLevel != "info" || len(c.Warnings) != 0 {
		t.Fatalf("globals: %+v", c)
	}
	s := c.Servers[0]
	want := Server{
		Name: "db", Home: DefaultHome, Active: true, Conninfo: "host=x", StreamingConninfo: "host=x",
		SlotName: "walkeeper_db", CreateSlot: "manual", ApplicationName: "walkeeper", Archiver: true,
		Compression: "zstd", BackupCompression: "zstd", BackupCompressionLevel: 3,
		ParallelJobs: runtime.NumCPU(), WALRetentionPolicy: "main", RetentionInterval: time.Hour,
		BackupWaitTimeout: 10 * time.Minute, FailedBackupGrace: 7 * 24 * time.Hour, MinFreeDisk: 1_000_000_000,
		Repository: Repository{Encryption: "none", BackupLocalCopy: true},
	}
	got := *s
	got.Settings = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if len(s.Settings) != 1 || s.Settings["conninfo"] != "host=x" {
		t.Fatalf("settings: %v", s.Settings)
	}
}

func TestInheritanceOverride(t *testing.T) {
	conf := `[walkeeper]
active = off
streaming_archiver = yes
backup_compression = none
backup_compression_level = 0
slot_name = shared
[a]
conninfo = host=a
[b]
conninfo = host=b
active = 1
backup_compression = gzip
backup_compression_level = 9
`
	c, err := Parse([]byte(conf), "w.conf")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Servers[0], c.Servers[1]
	if a.Active || !b.Active || !a.StreamingArchiver || !b.StreamingArchiver {
		t.Fatalf("bools: a=%+v b=%+v", a, b)
	}
	if a.BackupCompression != "none" || b.BackupCompression != "gzip" || b.BackupCompressionLevel != 9 {
		t.Fatalf("compression: a=%+v b=%+v", a, b)
	}
	// A global slot_name would make servers share one slot: never inherited.
	if a.SlotName != "walkeeper_a" || b.SlotName != "walkeeper_b" {
		t.Fatalf("slots: %s %s", a.SlotName, b.SlotName)
	}
	if b.Settings["active"] != "1" || a.Settings["active"] != "off" {
		t.Fatalf("settings: %v %v", a.Settings, b.Settings)
	}
}

func TestQuotingAndCase(t *testing.T) {
	conf := "[walkeeper]\nHOME = \"/x/y/\"\n[s_1]\nConnInfo = 'host=h password=\"p w\"'\ncompression = 'GZIP'\ndescription = a ; b # not a comment\n"
	c, err := Parse([]byte(conf), "w.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Servers[0]
	if c.Home != "/x/y" || s.Conninfo != `host=h password="p w"` || s.Compression != "gzip" {
		t.Fatalf("got home=%q conninfo=%q compression=%q", c.Home, s.Conninfo, s.Compression)
	}
	// Like Barman (Python configparser), ; and # start a comment only at the
	// start of a line, so passwords may contain them.
	if s.Description != "a ; b # not a comment" {
		t.Fatalf("description %q", s.Description)
	}
	if s.Settings["conninfo"] == "" {
		t.Fatalf("settings keys not lower-cased: %v", s.Settings)
	}
}

func TestSlotNameFromDashedServer(t *testing.T) {
	c, err := Parse([]byte("[pg-main]\nconninfo=host=x\n"), "w.conf")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Servers[0].SlotName; got != "walkeeper_pg_main" {
		t.Fatalf("slot %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	const ok = "conninfo = host=x\n"
	tests := []struct {
		name string
		conf string
		want []string // every substring must appear
	}{
		{"bad compression", "[pg1]\n" + ok + "compression = lz9\n",
			[]string{`w.conf: [pg1] compression = "lz9": must be one of zstd, gzip, none`}},
		{"unknown server option", "[pg1]\n" + ok + "compresion = zstd\n",
			[]string{"w.conf", "[pg1]", `unknown option "compresion"`, "allowed:", "compression,"}},
		{"unknown global option", "[walkeeper]\nhomee = /x\n[pg1]\n" + ok,
			[]string{"w.conf", "[walkeeper]", `"homee"`, "home,", "log_level"}},
		{"duplicate section", "[pg1]\n" + ok + "[pg2]\n" + ok + "[pg1]\ndescription = x\n",
			[]string{"w.conf", "[pg1]", "more than once"}},
		{"duplicate key", "[pg1]\n" + ok + "compression = gzip\ncompression = zstd\n",
			[]string{"w.conf", "[pg1]", "compression", "more than once"}},
		{"duplicate key same value", "[pg1]\n" + ok + ok,
			[]string{"w.conf", "[pg1]", "conninfo", "more than once"}},
		{"missing conninfo", "[pg1]\ndescription = x\n",
			[]string{"w.conf", "[pg1]", "conninfo", "required"}},
		{"empty conninfo", "[pg1]\nconninfo = \"\"\n",
			[]string{"w.conf", "[pg1]", "conninfo", "empty"}},
		{"relative home", "[walkeeper]\nhome = var/lib\n[pg1]\n" + ok,
			[]string{"w.conf", "[walkeeper]", `home = "var/lib"`, "absolute"}},
		{"bad log level", "[walkeeper]\nlog_level = loud\n",
			[]string{"w.conf", "[walkeeper]", `log_level = "loud"`, "debug, info, warn, error"}},
		{"home in server", "[pg1]\n" + ok + "home = /x\n",
			[]string{"w.conf", "[pg1]", "home", "only allowed in [walkeeper]"}},
		{"bad section name", "[PG1]\n" + ok,
			[]string{"w.conf", "[PG1]", "a-z, 0-9"}},
		{"bad section chars", "[pg.1]\n" + ok,
			[]string{"w.conf", "[pg.1]", "a-z, 0-9"}},
		{"reserved section name", "[index]\n" + ok,
			[]string{"w.conf", "[index]", "reserved", "<home>/index"}},
		{"option outside section", "conninfo = x\n[pg1]\n" + ok,
			[]string{"w.conf", "conninfo", "outside any section"}},
		{"bad bool", "[pg1]\n" + ok + "active = maybe\n",
			[]string{"w.conf", "[pg1]", `active = "maybe"`, "on, off, true, false, yes, no, 1, 0"}},
		{"bad gzip level", "[pg1]\n" + ok + "compression = gzip\ncompression_level = 12\n",
			[]string{"w.conf", "[pg1]", `compression_level = "12"`, "1-9"}},
		{"bad zstd level", "[pg1]\n" + ok + "backup_compression_level = 23\n",
			[]string{"w.conf", "[pg1]", `backup_compression_level = "23"`, "0 to 22"}},
		{"level with none", "[pg1]\n" + ok + "backup_compression = none\nbackup_compression_level = 3\n",
			[]string{"w.conf", "[pg1]", `backup_compression_level = "3"`, "none"}},
		{"bad bandwidth", "[pg1]\n" + ok + "bandwidth_limit = 10 parsecs\n",
			[]string{"w.conf", "[pg1]", `bandwidth_limit = "10 parsecs"`, "unknown unit"}},
		{"negative bandwidth", "[pg1]\n" + ok + "bandwidth_limit = -5\n",
			[]string{"w.conf", "[pg1]", "bandwidth_limit", "size"}},
		{"bandwidth overflow", "[pg1]\n" + ok + "bandwidth_limit = 99999999999TB\n",
			[]string{"w.conf", "[pg1]", "bandwidth_limit", "out of range"}},
		{"bad retention", "[pg1]\n" + ok + "retention_policy = KEEP 3\n",
			[]string{"w.conf", "[pg1]", `retention_policy = "KEEP 3"`, "REDUNDANCY"}},
		{"bad wal retention", "[pg1]\n" + ok + "wal_retention_policy = REDUNDANCY 2\n",
			[]string{"w.conf", "[pg1]", "wal_retention_policy", "main"}},
		{"bad global default", "[walkeeper]\ncompression = lz4\n[pg1]\n" + ok,
			[]string{`w.conf: [walkeeper] compression = "lz4": must be one of zstd, gzip, none`}},
		{"bad duration", "[pg1]\n" + ok + "retention_interval = soon\n",
			[]string{"w.conf", "[pg1]", `retention_interval = "soon"`, "duration"}},
		{"zero interval", "[pg1]\n" + ok + "retention_interval = 0\n",
			[]string{"w.conf", "[pg1]", "retention_interval", "greater than zero"}},
		{"negative duration", "[pg1]\n" + ok + "backup_wait_timeout = -1m\n",
			[]string{"w.conf", "[pg1]", "backup_wait_timeout", "negative"}},
		{"bad slot", "[pg1]\n" + ok + "slot_name = Bad-Slot\n",
			[]string{"w.conf", "[pg1]", `slot_name = "Bad-Slot"`, "slot name"}},
		{"bad create_slot", "[pg1]\n" + ok + "create_slot = always\n",
			[]string{"w.conf", "[pg1]", "create_slot", "auto, manual"}},
		{"bad parallel", "[pg1]\n" + ok + "parallel_jobs = 0\n",
			[]string{"w.conf", "[pg1]", "parallel_jobs", "1 to"}},
		{"bad minimum_redundancy", "[pg1]\n" + ok + "minimum_redundancy = -1\n",
			[]string{"w.conf", "[pg1]", "minimum_redundancy"}},
		{"syntax", "[pg1\n" + ok, []string{"w.conf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.conf), "/etc/w.conf")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestErrorsNeverShowPasswordOfOtherOptions(t *testing.T) {
	// A bad option next to a conninfo must not echo the conninfo.
	_, err := Parse([]byte("[pg1]\nconninfo = password=topsecret\ncompression = bad\n"), "w.conf")
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("err = %v", err)
	}
}

func TestSyntaxErrorRedacted(t *testing.T) {
	_, err := Parse([]byte("[pg1]\nconninfo host=x password=topsecret\n"), "w.conf")
	if err == nil || strings.Contains(err.Error(), "topsecret") || !strings.Contains(err.Error(), "w.conf") {
		t.Fatalf("err = %v", err)
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"90m", 90 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"1 HOURS", time.Hour, false},
		{"1 hour", time.Hour, false},
		{"2 DAYS", 48 * time.Hour, false},
		{"2 WEEKS", 14 * 24 * time.Hour, false},
		{"3 MONTHS", 90 * 24 * time.Hour, false},
		{"30 SECONDS", 30 * time.Second, false},
		{"5 MINUTES", 5 * time.Minute, false},
		{"5d", 5 * 24 * time.Hour, false},
		{"0", 0, false},
		{"", 0, true},
		{"DAYS", 0, true},
		{"1 FORTNIGHT", 0, true},
		{"99999999999999 WEEKS", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"0", 0, false},
		{"1048576", 1 << 20, false},
		{"500kB", 500_000, false},
		{"500 KB", 500_000, false},
		{"10MB", 10_000_000, false},
		{"10M", 10_000_000, false},
		{"1GB", 1_000_000_000, false},
		{"1GiB", 1 << 30, false},
		{"2 MiB", 2 << 20, false},
		{"1TB", 1_000_000_000_000, false},
		{"1.5GB", 0, true},
		{"GB", 0, true},
		{"10 XB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "walkeeper.conf")
	if err := os.WriteFile(p, []byte(exampleConf), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != p || len(c.Servers) != 2 {
		t.Fatalf("%+v", c)
	}
	if _, err := Load(filepath.Join(dir, "missing.conf")); err == nil {
		t.Fatal("missing file: no error")
	}
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("[pg1]\nconninfo=x\ncompression=lz9\n"), 0o600)
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+`: [pg1] compression = "lz9"`) {
		t.Fatalf("err = %v", err)
	}
	// A home that is a file is this file's bad value, named with its option.
	fileHome := filepath.Join(dir, "notadir")
	os.WriteFile(fileHome, nil, 0o600)
	hf := filepath.Join(dir, "hf.conf")
	os.WriteFile(hf, []byte("[walkeeper]\nhome = "+fileHome+"\n[pg1]\nconninfo=x\n"), 0o600)
	if _, err := Load(hf); err == nil || err.Error() != hf+`: [walkeeper] home = "`+fileHome+`": exists and is not a directory` {
		t.Fatalf("home is a file: err = %v", err)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	system := filepath.Join(dir, "etc-walkeeper.conf")
	explicit := filepath.Join(dir, "explicit.conf")
	env := filepath.Join(dir, "env.conf")
	user := filepath.Join(home, UserConfigName)
	for _, p := range []string{explicit, env} {
		os.WriteFile(p, []byte("[walkeeper]\n"), 0o600)
	}
	t.Setenv("HOME", home)
	t.Setenv(EnvConfig, "")

	// Nothing anywhere: the error lists every place looked at.
	_, err := find("", system)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"--config", EnvConfig, user, system} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}

	// System file.
	os.WriteFile(system, []byte("[walkeeper]\n"), 0o600)
	if got, err := find("", system); err != nil || got != system {
		t.Fatalf("system: %q %v", got, err)
	}
	// ~/.walkeeper.conf beats the system file.
	os.WriteFile(user, []byte("[walkeeper]\n"), 0o600)
	if got, err := find("", system); err != nil || got != user {
		t.Fatalf("user: %q %v", got, err)
	}
	// $WALKEEPER_CONFIG beats ~/.
	t.Setenv(EnvConfig, env)
	if got, err := find("", system); err != nil || got != env {
		t.Fatalf("env: %q %v", got, err)
	}
	// --config beats everything.
	if got, err := Find(explicit); err != nil || got != explicit {
		t.Fatalf("explicit: %q %v", got, err)
	}
	// A named file that is missing is an error, not a fall-through.
	if _, err := Find(filepath.Join(dir, "nope.conf")); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("missing explicit: %v", err)
	}
	t.Setenv(EnvConfig, filepath.Join(dir, "nope.conf"))
	if _, err := find("", system); err == nil || !strings.Contains(err.Error(), EnvConfig) {
		t.Fatalf("missing env: %v", err)
	}
}

func TestRedactConninfo(t *testing.T) {
	tests := []struct{ in, want string }{
		{"host=a password=x user=u", "host=a password=******** user=u"},
		{"host=a password='a b' user=u", "host=a password=******** user=u"},
		{`host=a password='it\'s me' user=u`, "host=a password=******** user=u"},
		{"host=a password = 'a b'", "host=a password = ********"},
		{"host=a PASSWORD=x", "host=a PASSWORD=********"},
		{"password=x", "password=********"},
		{"password=", "password=********"},
		{"host=a user=u dbname=d sslmode=require", "host=a user=u dbname=d sslmode=require"},
		{"postgres://user:pass@host:5432/db", "postgres://user:********@host:5432/db"},
		{"postgresql://user:p%40ss@host/db?sslmode=require", "postgresql://user:********@host/db?sslmode=require"},
		{"postgres://user@host/db", "postgres://user@host/db"},
		{"postgres://host/db", "postgres://host/db"},
		{"postgres://user@host/db?password=x&sslmode=require", "postgres://user@host/db?password=********&sslmode=require"},
		{"postgres://u:p@h/db?password=x", "postgres://u:********@h/db?password=********"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := RedactConninfo(tt.in); got != tt.want {
			t.Errorf("RedactConninfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(exampleConf))
	f.Add([]byte("[pg1]\nconninfo=x\n"))
	f.Add([]byte("[walkeeper]\nhome=/x\n[a]\nconninfo='a\nbandwidth_limit=1GiB\n"))
	f.Add([]byte("[a]\n[a]\n"))
	f.Add([]byte("x=\"\"\"\nmulti\n\"\"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.conf")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.conf") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		for _, s := range c.Servers {
			if s.Conninfo == "" || s.Dir() == "" {
				t.Fatalf("server without conninfo: %+v", s)
			}
			_ = RedactConninfo(s.Conninfo)
		}
	})
}

func FuzzRedactConninfo(f *testing.F) {
	f.Add("host=a password='a b' user=u")
	f.Add("postgres://u:p@h/db?password=x")
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactConninfo(s)
		if strings.Contains(s, "password=secretXYZ ") && strings.Contains(out, "secretXYZ") {
			t.Fatalf("password leaked: %q -> %q", s, out)
		}
	})
}

func TestCompressionNoneWithDefaultLevel(t *testing.T) {
	cfg, err := Parse([]byte("[walkeeper]\nhome = /h\n[pg1]\nconninfo = host=x\nbackup_compression = none\ncompression = none\n"), "f.conf")
	if err != nil {
		t.Fatalf("none without a level: %v", err)
	}
	if s := cfg.Servers[0]; s.BackupCompressionLevel != 0 || s.CompressionLevel != 0 {
		t.Fatalf("levels %d %d", s.BackupCompressionLevel, s.CompressionLevel)
	}
	if _, err := Parse([]byte("[walkeeper]\nhome = /h\n[pg1]\nconninfo = host=x\nbackup_compression = none\nbackup_compression_level = 5\n"), "f.conf"); err == nil {
		t.Fatal("an explicit level with none accepted")
	}
}

// TestPasswordFileModeWarning: a config file holding a password warns (one line) when
// group or others may read it, and not when it is 0600 or holds no password.
func TestPasswordFileModeWarning(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		conf string
		mode os.FileMode
		warn bool
	}{
		{"[pg1]\nconninfo = host=x password=secret\n", 0o644, true},
		{"[pg1]\nconninfo = host=x\nstreaming_conninfo = postgres://u:secret@x/db\n", 0o640, true},
		{"[walkeeper]\nconninfo = host=x password=secret\n[pg1]\n", 0o604, true},
		{"[pg1]\nconninfo = host=x password=secret\n", 0o600, false},
		{"[pg1]\nconninfo = host=x\n", 0o644, false},
	} {
		p := filepath.Join(dir, "w.conf")
		if err := os.WriteFile(p, []byte(c.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, c.mode); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range cfg.Warnings {
			if strings.Contains(w, "chmod 600") {
				got = append(got, w)
			}
		}
		if (len(got) == 1) != c.warn || len(got) > 1 {
			t.Errorf("%q mode %o: warnings %q, want a warning %v", c.conf, c.mode, cfg.Warnings, c.warn)
		}
		for _, w := range got {
			if strings.Contains(w, "secret") || strings.Contains(w, "\n") {
				t.Errorf("warning shows the password or spans lines: %q", w)
			}
		}
	}
}
