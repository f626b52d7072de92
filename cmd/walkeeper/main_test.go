package main

import (
	"bytes"
	"testing"

	"github.com/alecthomas/kong"
)

func TestCommandWord(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get-wal", "pg1", "a", "b"}, "get-wal"},
		{[]string{"--config", "/etc/wk.conf", "get-wal", "pg1"}, "get-wal"},
		{[]string{"--config=/etc/wk.conf", "-v", "get-wal"}, "get-wal"},
		{[]string{"--config", "get-wal", "status", "pg1"}, "status"},
		{[]string{"--json", "list-servers"}, "list-servers"},
		{[]string{"--version"}, ""},
		{nil, ""},
	} {
		if got := commandWord(tc.args); got != tc.want {
			t.Errorf("commandWord(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// The lean tree that get-wal is parsed with must accept and describe get-wal exactly as
// the full tree does.
func TestGetWALLeanTreeMatchesFullTree(t *testing.T) {
	help := func(root any) string {
		var buf bytes.Buffer
		p, err := kong.New(root, kong.Name("walkeeper"), kong.Writers(&buf, &buf),
			kong.Vars{"version": "test"}, kong.Exit(func(int) {}),
			kong.ConfigureHelp(kong.HelpOptions{Compact: true}))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = p.Parse([]string{"get-wal", "--help"})
		return buf.String()
	}
	full, lean := help(&CLI{}), help(&getWALCLI{})
	if full != lean || full == "" {
		t.Errorf("get-wal help differs between the full and the lean tree:\n--- full\n%s\n--- lean\n%s", full, lean)
	}
	var c getWALCLI
	p, err := kong.New(&c, kong.Vars{"version": "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse([]string{"--config", "/x.conf", "get-wal", "--prefetch", "8", "pg1", "000000010000000000000003", "pg_wal/RECOVERYXLOG"}); err != nil {
		t.Fatal(err)
	}
	if c.Config != "/x.conf" || c.GetWAL.Prefetch != 8 || c.GetWAL.Server != "pg1" || c.GetWAL.Dest != "pg_wal/RECOVERYXLOG" {
		t.Errorf("parsed %+v", c)
	}
}

// --remote-command names the backup host's walkeeper: without --ssh it is bad usage
// (exit 2), never silently ignored.
func TestRemoteCommandNeedsSSH(t *testing.T) {
	for _, args := range [][]string{
		{"get-wal", "--remote-command", "/opt/wk", "pg1", "000000010000000000000003", "x"},
		{"archive-wal", "--remote-command", "/opt/wk", "pg1", "x"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
