package shellword

import (
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"ssh walkeeper@backup", []string{"ssh", "walkeeper@backup"}},
		{"  ssh  -p 2222\twalkeeper@backup ", []string{"ssh", "-p", "2222", "walkeeper@backup"}},
		{`ssh -o 'ControlPath=/tmp/a b' x`, []string{"ssh", "-o", "ControlPath=/tmp/a b", "x"}},
		{`ssh -i "/k/my key" x`, []string{"ssh", "-i", "/k/my key", "x"}},
		{`a\ b "c\"d" 'e\f'`, []string{"a b", `c"d`, `e\f`}},
		{`''`, []string{""}},
		{"", nil},
	}
	for _, c := range cases {
		got, err := Split(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`ssh 'x`, `ssh "x`, `ssh x\`} {
		if _, err := Split(bad); !errors.Is(err, ErrUnterminated) {
			t.Errorf("Split(%q): %v, want ErrUnterminated", bad, err)
		}
	}
}

// TestQuoteThroughSh: sh reads every quoted word back as itself (the oracle is sh).
func TestQuoteThroughSh(t *testing.T) {
	words := []string{"pg1", "000000010000000000000001", "", "a b", "it's", `"$HOME"`, "`id`", "x;rm -rf /", "*", "--config=/etc/w k.conf", "\\", "ü"}
	var line []string
	for _, w := range words {
		line = append(line, Quote(w))
	}
	out, err := exec.Command("sh", "-c", `for a in "$@"; do printf '%s\n' "$a"; done`, "sh", "sentinel").Output()
	if err != nil || string(out) != "sentinel\n" {
		t.Fatalf("sh: %v %q", err, out)
	}
	out, err = exec.Command("sh", "-c", `for a in `+strings.Join(line, " ")+`; do printf '%s|' "$a"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(words, "|") + "|"; string(out) != want {
		t.Fatalf("sh read back %q, want %q", out, want)
	}
	if Quote("pg1") != "pg1" || Quote("a b") != "'a b'" {
		t.Errorf("Quote leaves plain words alone and quotes the rest: %s %s", Quote("pg1"), Quote("a b"))
	}
}
