// Package retention evaluates backup and WAL retention policies as a pure
// function of a snapshot of the index (backups, WAL ranges) and a clock; it does no I/O.
//
// Applying a Plan (deleting backups and WAL through the index and storage)
// is done elsewhere.
//
// Choices, where Barman or the issue left room:
//   - A MONTH is 31 days and a WEEK 7 days, as in Barman.
//   - Recovery window boundary: a backup whose EndTime equals Now-Window to
//     the nanosecond is inside the window; one a nanosecond earlier is the
//     base for the window start. The same holds for the WAL window.
//   - A failed backup (any status other than DONE, STARTED, WAITING_WAL) is
//     obsolete once Now - EndTime (BeginTime if no end) >= FailedGrace.
//   - History files are never deleted: they are tiny, and PostgreSQL's
//     recovery_target_timeline=latest probes N+1.history, N+2.history, ...
//     and stops at the first missing one, so deleting one would hide every
//     newer timeline.
//   - Timelines: WAL is kept from one PITR cutoff LSN onward on every
//     timeline (LSNs grow across timelines, so this covers the switch points
//     any kept backup can reach); below it only the begin..end segments of
//     kept backups on their own timeline stay. Branches that a backup cannot
//     reach are not pruned above the cutoff (safe, simple).
package retention

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a retention policy.
type Kind int

const (
	// None means no policy: every backup is kept.
	None Kind = iota
	// Redundancy keeps the newest N DONE backups.
	Redundancy
	// Window keeps what is needed to recover to any point in the last Window.
	Window
	// Main is only valid as a WAL policy: WAL follows the backup policy
	// (point-in-time recovery from every backup the backup policy keeps).
	Main
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Redundancy:
		return "redundancy"
	case Window:
		return "window"
	case Main:
		return "main"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Day is the length of a day in a recovery window. A WEEK is 7 days and a
// MONTH is 31 days, exactly as Barman computes them
// (barman.retention_policies: timedelta(days=31*value)).
const Day = 24 * time.Hour

// Policy is a parsed retention policy.
type Policy struct {
	Kind       Kind
	Redundancy int           // for Redundancy: number of DONE backups (>= 1)
	Window     time.Duration // for Window: length of the recovery window (> 0)
	Text       string        // canonical text, e.g. "RECOVERY WINDOW OF 30 DAYS"
}

// String returns the policy's canonical text ("" for None).
func (p Policy) String() string { return p.Text }

const policySyntax = `allowed: "REDUNDANCY n" (n >= 1) or "RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS" (n >= 1)`

// ParsePolicy parses a backup retention_policy as Barman writes it:
// "REDUNDANCY n" (n >= 1) or "RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS"
// (case-insensitive, singular DAY/WEEK/MONTH accepted, any whitespace).
// An empty string means no policy (Kind None: keep every backup).
func ParsePolicy(s string) (Policy, error) {
	f := strings.Fields(strings.ToUpper(s))
	if len(f) == 0 {
		return Policy{Kind: None}, nil
	}
	if p, ok, err := parseCommon(f, s); ok {
		return p, err
	}
	return Policy{}, fmt.Errorf("retention_policy %q: %s", s, policySyntax)
}

// ParseWALPolicy parses a wal_retention_policy: "main" or "" (WAL follows
// the backup policy: Kind Main) or "RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS"
// (keep WAL for point-in-time recovery only inside that window; older kept
// backups keep only the WAL from their begin to their end).
func ParseWALPolicy(s string) (Policy, error) {
	f := strings.Fields(strings.ToUpper(s))
	if len(f) == 0 || (len(f) == 1 && f[0] == "MAIN") {
		return Policy{Kind: Main, Text: "MAIN"}, nil
	}
	if len(f) > 0 && f[0] == "RECOVERY" {
		if p, ok, err := parseCommon(f, s); ok {
			if err != nil {
				return Policy{}, fmt.Errorf("wal_retention_policy %q: allowed: \"main\" or \"RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS\" (n >= 1)", s)
			}
			return p, nil
		}
	}
	return Policy{}, fmt.Errorf("wal_retention_policy %q: allowed: \"main\" or \"RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS\" (n >= 1)", s)
}

// parseCommon parses upper-cased fields; ok reports whether the leading
// keyword was recognised.
func parseCommon(f []string, orig string) (Policy, bool, error) {
	bad := fmt.Errorf("retention_policy %q: %s", orig, policySyntax)
	switch f[0] {
	case "REDUNDANCY":
		if len(f) != 2 {
			return Policy{}, true, bad
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 1 || n > 1_000_000 {
			return Policy{}, true, bad
		}
		return Policy{Kind: Redundancy, Redundancy: n, Text: "REDUNDANCY " + strconv.Itoa(n)}, true, nil
	case "RECOVERY":
		if len(f) != 5 || f[1] != "WINDOW" || f[2] != "OF" {
			return Policy{}, true, bad
		}
		n, err := strconv.Atoi(f[3])
		if err != nil || n < 1 || n > 100_000 { // 100000 days ~ 273 years, no overflow
			return Policy{}, true, bad
		}
		var unit time.Duration
		var name string
		switch f[4] {
		case "DAY", "DAYS":
			unit, name = Day, "DAYS"
		case "WEEK", "WEEKS":
			unit, name = 7*Day, "WEEKS"
		case "MONTH", "MONTHS":
			unit, name = 31*Day, "MONTHS"
		default:
			return Policy{}, true, bad
		}
		return Policy{Kind: Window, Window: time.Duration(n) * unit,
			Text: fmt.Sprintf("RECOVERY WINDOW OF %d %s", n, name)}, true, nil
	}
	return Policy{}, false, nil
}

// describe returns the short human form used in reasons, e.g. "30 days".
func (p Policy) describe() string {
	switch p.Kind {
	case Redundancy:
		return strconv.Itoa(p.Redundancy)
	case Window:
		d := p.Window
		if d%Day == 0 {
			return fmt.Sprintf("%d days", d/Day)
		}
		return d.String()
	}
	return p.Text
}
