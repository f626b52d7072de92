package pgutil

import (
	"os"
	"testing"
)

func TestConnUser(t *testing.T) {
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		conninfo string
		want     string
	}{
		{"host=db1 user=app", "app"},
		{"postgres://rep@db1:5432/postgres", "rep"},
		{"host=db1 user=root", map[bool]string{true: "postgres", false: "root"}[root]},
		{"host=db1", "postgres"},               // no user named
		{"host=db1 port=notaport", "postgres"}, // unparsable
	} {
		if got := ConnUser(tc.conninfo); got != tc.want {
			t.Errorf("ConnUser(%q) = %q, want %q", tc.conninfo, got, tc.want)
		}
	}
}
