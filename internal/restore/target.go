package restore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// Target is a point-in-time recovery target as the DBA gives it on the command line.
// At most one of Time, XID, Name, LSN and Immediate is set; none means "replay to the
// end of the archive".
type Target struct {
	Time      time.Time    // recovery_target_time (zero: unset)
	XID       string       // recovery_target_xid, decimal
	Name      string       // recovery_target_name (a pg_create_restore_point label)
	LSN       segments.LSN // recovery_target_lsn
	HasLSN    bool
	Immediate bool // recovery_target = 'immediate': stop once consistent
	Exclusive bool // recovery_target_inclusive = off
	// Action is recovery_target_action: pause (default), promote or shutdown.
	Action string
	// TLI is --target-tli as given: "" (newest reachable), "current", "latest" or a
	// decimal timeline number.
	TLI string
}

// Target actions. Pause is the default, as in PostgreSQL: the DBA looks at the data
// before deciding to promote, and a wrong target can still be moved forward.
const (
	ActionPause    = "pause"
	ActionPromote  = "promote"
	ActionShutdown = "shutdown"
)

// TargetFlags is the raw text of the target flags, parsed by ParseTarget.
type TargetFlags struct {
	Time      string
	XID       string
	Name      string
	LSN       string
	Immediate bool
	Exclusive bool
	Action    string
	TLI       string
}

// UsageError is an error in what the user asked for (exit status 2), as opposed to a
// failure while doing it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// IsUsage reports whether err is (or wraps) a UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

func usage(format string, a ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, a...)}
}

// timeLayouts are the forms --target-time accepts: PostgreSQL's timestamptz output
// ("2026-11-24 15:04:05+00", fractions allowed) and RFC 3339. Each carries a zone: a
// time without one would be read in some server's TimeZone, which is how a restore
// lands an hour off.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999 Z07",
	"2006-01-02 15:04:05.999999999 Z07:00",
	"2006-01-02 15:04:05.999999999 Z0700",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999 MST",
}

// ParseTargetTime reads a --target-time value; it must name its zone (an offset, Z, or
// UTC/GMT).
func ParseTargetTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		t, err := time.Parse(l, s)
		if err != nil {
			continue
		}
		if l == timeLayouts[len(timeLayouts)-1] {
			// Go accepts any zone abbreviation and invents a zero offset for unknown
			// ones: only trust UTC and GMT.
			if z, _ := t.Zone(); z != "UTC" && z != "GMT" {
				continue
			}
		}
		return t, nil
	}
	for _, l := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02"} {
		if _, err := time.Parse(l, s); err == nil {
			return time.Time{}, usage("--target-time %q has no time zone: add one, e.g. \"%s+00\" or RFC 3339 \"%sZ\"", s, s, strings.Replace(s, " ", "T", 1))
		}
	}
	return time.Time{}, usage("--target-time %q: not a time; use \"2006-01-02 15:04:05+00\" or RFC 3339 (\"2006-01-02T15:04:05Z\")", s)
}

// ParseTarget checks the target flags on their own (syntax, one target at most,
// combinations PostgreSQL would ignore). Checks against a backup and the archive's
// timelines come later, in Plan, and also before anything is written.
func ParseTarget(f TargetFlags) (Target, error) {
	var t Target
	var kinds []string
	if f.Time != "" {
		tm, err := ParseTargetTime(f.Time)
		if err != nil {
			return t, err
		}
		t.Time = tm
		kinds = append(kinds, "--target-time")
	}
	if f.XID != "" {
		if _, err := strconv.ParseUint(f.XID, 10, 64); err != nil {
			return t, usage("--target-xid %q: not a transaction id (a decimal number such as 7391)", f.XID)
		}
		if n, _ := strconv.ParseUint(f.XID, 10, 64); n < 3 {
			return t, usage("--target-xid %q: transaction ids below 3 are never assigned", f.XID)
		}
		t.XID = f.XID
		kinds = append(kinds, "--target-xid")
	}
	if f.Name != "" {
		if len(f.Name) >= 64 {
			return t, usage("--target-name %q: longer than PostgreSQL's 63-byte restore point names", f.Name)
		}
		t.Name = f.Name
		kinds = append(kinds, "--target-name")
	}
	if f.LSN != "" {
		l, err := segments.ParseLSN(f.LSN)
		if err != nil {
			return t, usage("--target-lsn: %v", err)
		}
		t.LSN, t.HasLSN = l, true
		kinds = append(kinds, "--target-lsn")
	}
	if f.Immediate {
		t.Immediate = true
		kinds = append(kinds, "--target-immediate")
	}
	if len(kinds) > 1 {
		return t, usage("%s: give one recovery target at most", strings.Join(kinds, " and "))
	}
	if f.Exclusive {
		if t.Time.IsZero() && t.XID == "" && !t.HasLSN {
			return t, usage("--target-exclusive applies to --target-time, --target-xid or --target-lsn only")
		}
		t.Exclusive = true
	}
	switch f.Action {
	case "":
		if len(kinds) > 0 {
			t.Action = ActionPause
		}
	case ActionPause, ActionPromote, ActionShutdown:
		if len(kinds) == 0 {
			return t, usage("--target-action %s needs a recovery target (without one, recovery replays to the end of the archive and promotes)", f.Action)
		}
		t.Action = f.Action
	default:
		return t, usage("--target-action %q: want pause, promote or shutdown", f.Action)
	}
	switch f.TLI {
	case "", "current", "latest":
	default:
		n, err := strconv.ParseUint(f.TLI, 10, 32)
		if err != nil || n == 0 {
			return t, usage("--target-tli %q: want a timeline number, current or latest", f.TLI)
		}
	}
	t.TLI = f.TLI
	return t, nil
}

// IsSet reports whether a recovery target (not just a timeline) was given.
func (t Target) IsSet() bool {
	return !t.Time.IsZero() || t.XID != "" || t.Name != "" || t.HasLSN || t.Immediate
}

// String describes the target for messages.
func (t Target) String() string {
	incl := ""
	if t.Exclusive {
		incl = " (exclusive)"
	}
	switch {
	case !t.Time.IsZero():
		return "time " + pgTime(t.Time) + incl
	case t.XID != "":
		return "xid " + t.XID + incl
	case t.Name != "":
		return fmt.Sprintf("restore point %q", t.Name)
	case t.HasLSN:
		return "LSN " + t.LSN.String() + incl
	case t.Immediate:
		return "consistency (immediate)"
	}
	return "end of the archive"
}

// pgTime renders a time the way recovery_target_time reads it, in UTC with an explicit
// offset, so the server's TimeZone setting cannot shift it.
func pgTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999") + "+00"
}
