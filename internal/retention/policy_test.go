package retention

import (
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	cases := []struct {
		in   string
		kind Kind
		n    int
		win  time.Duration
		text string
		err  bool
	}{
		{"", None, 0, 0, "", false},
		{"   ", None, 0, 0, "", false},
		{"REDUNDANCY 2", Redundancy, 2, 0, "REDUNDANCY 2", false},
		{"redundancy  3", Redundancy, 3, 0, "REDUNDANCY 3", false},
		{"RECOVERY WINDOW OF 30 DAYS", Window, 0, 30 * Day, "RECOVERY WINDOW OF 30 DAYS", false},
		{"recovery window of 1 day", Window, 0, Day, "RECOVERY WINDOW OF 1 DAYS", false},
		{"Recovery Window Of 2 WEEKS", Window, 0, 14 * Day, "RECOVERY WINDOW OF 2 WEEKS", false},
		{"RECOVERY WINDOW OF 1 WEEK", Window, 0, 7 * Day, "RECOVERY WINDOW OF 1 WEEKS", false},
		{"RECOVERY WINDOW OF 1 MONTH", Window, 0, 31 * Day, "RECOVERY WINDOW OF 1 MONTHS", false},
		{"RECOVERY WINDOW OF 12 MONTHS", Window, 0, 12 * 31 * Day, "RECOVERY WINDOW OF 12 MONTHS", false},
		{"REDUNDANCY 0", 0, 0, 0, "", true},
		{"REDUNDANCY -1", 0, 0, 0, "", true},
		{"REDUNDANCY", 0, 0, 0, "", true},
		{"REDUNDANCY two", 0, 0, 0, "", true},
		{"REDUNDANCY 2 3", 0, 0, 0, "", true},
		{"RECOVERY WINDOW OF 0 DAYS", 0, 0, 0, "", true},
		{"RECOVERY WINDOW OF 3 YEARS", 0, 0, 0, "", true},
		{"RECOVERY WINDOW 3 DAYS", 0, 0, 0, "", true},
		{"RECOVERY WINDOW OF 99999999999 DAYS", 0, 0, 0, "", true},
		{"main", 0, 0, 0, "", true},
		{"KEEP ALL", 0, 0, 0, "", true},
	}
	for _, c := range cases {
		p, err := ParsePolicy(c.in)
		if c.err {
			if err == nil {
				t.Errorf("ParsePolicy(%q) = %+v, want error", c.in, p)
			} else if !strings.Contains(err.Error(), c.in) || !strings.Contains(err.Error(), "allowed") {
				t.Errorf("ParsePolicy(%q) error %q should name the value and what is allowed", c.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePolicy(%q): %v", c.in, err)
			continue
		}
		if p.Kind != c.kind || p.Redundancy != c.n || p.Window != c.win || p.Text != c.text {
			t.Errorf("ParsePolicy(%q) = %+v, want kind %v n %d window %v text %q", c.in, p, c.kind, c.n, c.win, c.text)
		}
	}
}

func TestParseWALPolicy(t *testing.T) {
	for _, s := range []string{"", "main", "MAIN", " Main "} {
		p, err := ParseWALPolicy(s)
		if err != nil || p.Kind != Main {
			t.Errorf("ParseWALPolicy(%q) = %+v, %v; want Main", s, p, err)
		}
	}
	p, err := ParseWALPolicy("recovery window of 4 weeks")
	if err != nil || p.Kind != Window || p.Window != 28*Day {
		t.Errorf("got %+v, %v", p, err)
	}
	for _, s := range []string{"REDUNDANCY 2", "mains", "RECOVERY WINDOW OF 0 DAYS", "RECOVERY WINDOW OF 1 YEAR"} {
		if _, err := ParseWALPolicy(s); err == nil || !strings.Contains(err.Error(), "wal_retention_policy") {
			t.Errorf("ParseWALPolicy(%q): want wal_retention_policy error, got %v", s, err)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"", "REDUNDANCY 2", "RECOVERY WINDOW OF 30 DAYS", "main", "recovery window of 1 month"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParsePolicy(s); err == nil && p.Kind != None {
			q, err := ParsePolicy(p.Text)
			if err != nil || q != p {
				t.Fatalf("round trip %q -> %+v -> %+v, %v", s, p, q, err)
			}
			if p.Kind == Window && p.Window <= 0 || p.Kind == Redundancy && p.Redundancy < 1 {
				t.Fatalf("bad policy %+v", p)
			}
		}
		if p, err := ParseWALPolicy(s); err == nil && p.Kind != Main && p.Kind != Window {
			t.Fatalf("WAL policy kind %v", p.Kind)
		}
	})
}
