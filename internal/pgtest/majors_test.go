package pgtest

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseVersionMajor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{in: "postgres (PostgreSQL) 13.23\n", want: 13},
		{in: "postgres (PostgreSQL) 18.4", want: 18},
		{in: "postgres (PostgreSQL) 17beta1", want: 17},
		{in: "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", want: 15},
		{in: "postgres", bad: true},
		{in: "postgres (PostgreSQL) devel", bad: true},
	} {
		got, err := parseVersionMajor(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("parseVersionMajor(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestMajorsEnv(t *testing.T) {
	t.Setenv("WALKEEPER_PG_MAJORS", "13, 14,18")
	if ms, err := Majors(); err != nil || len(ms) != 3 || ms[0] != 13 || ms[2] != 18 {
		t.Fatalf("Majors() = %v, %v", ms, err)
	}
	t.Setenv("WALKEEPER_PG_MAJORS", "12,15")
	if _, err := Majors(); err == nil || !strings.Contains(err.Error(), "13 to 18") {
		t.Fatalf("Majors() with 12: %v", err)
	}
}

// TestEachMajor starts a cluster of every major WALKEEPER_PG_MAJORS names (with that major's
// server binaries and PostgreSQL 15's psql) and checks what pgtest reads from it.
func TestEachMajor(t *testing.T) {
	ms, err := Majors()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Skip("WALKEEPER_PG_MAJORS is unset: no other PostgreSQL major to start (make test-all-pg sets it)")
	}
	for _, m := range ms {
		t.Run(strconv.Itoa(m), func(t *testing.T) {
			RequireMajor(t, m)
			c := New(t, "major", Options{Major: m})
			if c.Major != m {
				t.Fatalf("Cluster.Major = %d, want %d", c.Major, m)
			}
			if got := c.Psql(t, "SELECT current_setting('server_version_num')::int / 10000"); got != strconv.Itoa(m) {
				t.Fatalf("server major %s, want %d", got, m)
			}
			if got := c.Psql(t, "SELECT system_identifier FROM pg_control_system()"); got != strconv.FormatUint(c.SystemID, 10) {
				t.Fatalf("SystemID %d, server says %s", c.SystemID, got)
			}
			if got := c.Psql(t, "SHOW data_checksums"); got != "on" {
				t.Fatalf("data_checksums = %q", got)
			}
			// 18's initdb turns checksums on by default: NoChecksums must still mean off.
			if got := New(t, "nochecksums", Options{Major: m, NoChecksums: true}).Psql(t, "SHOW data_checksums"); got != "off" {
				t.Fatalf("NoChecksums: data_checksums = %q", got)
			}
			c.Stop(t, "fast")
			a := FromDataDir(t, "adopted", c.Dir)
			if a.BinDir != c.BinDir || a.Major != m {
				t.Fatalf("adopted with %s (major %d), want %s (%d)", a.BinDir, a.Major, c.BinDir, m)
			}
		})
	}
}
