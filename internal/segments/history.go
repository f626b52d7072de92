package segments

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// HistoryEntry is one line of a timeline history file: the ancestor Timeline was left
// at SwitchLSN (the first LSN that belongs to the next timeline on the path).
type HistoryEntry struct {
	Timeline  uint32
	SwitchLSN LSN
	Reason    string
}

// ParseHistory reads the history file of timeline tli as PostgreSQL's
// readTimeLineHistory does (blank lines and '#' comments skipped; fields separated by
// a tab, though any whitespace is accepted; the reason may be missing), and as strict
// as it: timelines must increase and stay below tli. Switch points may go backwards:
// a PITR that stops on an ancestor timeline before the later timeline's switch point
// and then promotes writes such a history (PostgreSQL's recovery test 028), and
// PostgreSQL accepts it; TimelineAt resolves positions on such a path as it does.
// Errors name the line.
func ParseHistory(tli uint32, data []byte) ([]HistoryEntry, error) {
	var out []HistoryEntry
	lines := bytes.Split(data, []byte("\n"))
	for i, raw := range lines {
		lineNo := i + 1
		line := strings.TrimRight(string(raw), "\r")
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("history file of timeline %d, line %d %q: %s", tli, lineNo, line, fmt.Sprintf(format, args...))
		}
		tliField, rest := cutSpace(trimmed)
		lsnField, reason := cutSpace(rest)
		if lsnField == "" {
			return nil, bad("want \"<timeline>\\t<switch LSN>\\t<reason>\"")
		}
		t, err := strconv.ParseUint(tliField, 10, 32)
		if err != nil || tliField[0] == '+' {
			return nil, bad("timeline %q is not a decimal number", tliField)
		}
		if t == 0 {
			return nil, bad("timeline 0 does not exist")
		}
		lsn, err := ParseLSN(lsnField)
		if err != nil {
			return nil, bad("%v", err)
		}
		e := HistoryEntry{Timeline: uint32(t), SwitchLSN: lsn, Reason: strings.TrimSpace(reason)}
		if e.Timeline >= tli {
			return nil, bad("timeline %d is not an ancestor of timeline %d", e.Timeline, tli)
		}
		if len(out) > 0 {
			prev := out[len(out)-1]
			if e.Timeline <= prev.Timeline {
				return nil, bad("timeline %d does not follow timeline %d", e.Timeline, prev.Timeline)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// cutSpace splits off the first whitespace-delimited field.
func cutSpace(s string) (field, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// TimelineAt answers which timeline lsn belongs to on the path that leads to target,
// as PostgreSQL's tliOfPointInHistory does: history is target's parsed history file;
// each timeline spans [previous switch point, its own switch point), the target from the
// last switch point on, and the newest timeline whose span holds lsn wins. A switch
// point belongs to the newer timeline. When switch points go backwards (a PITR that
// stopped on an ancestor before a later timeline's switch), the timeline in between
// owns no position and the ancestor continues straight into the next one.
func TimelineAt(history []HistoryEntry, target uint32, lsn LSN) uint32 {
	if len(history) == 0 || lsn >= history[len(history)-1].SwitchLSN {
		return target
	}
	for i := len(history) - 1; i >= 0; i-- {
		var begin LSN
		if i > 0 {
			begin = history[i-1].SwitchLSN
		}
		if begin <= lsn && lsn < history[i].SwitchLSN {
			return history[i].Timeline
		}
	}
	// Not reached for a position below the last switch point: the first timeline
	// begins at 0. Kept for a history whose spans leave a gap.
	return history[0].Timeline
}

// CanReach decides whether a backup on timeline fromTLI can be recovered to timeline
// target: true when fromTLI is target, or fromTLI is on target's path and fromLSN lies
// before the point where that path left fromTLI. fromLSN is a record start (e.g. the
// backup's checkpoint); for an end position such as a backup's stop LSN or
// minRecoveryPoint, pass it minus one, as PostgreSQL does, because WAL ending exactly
// at the switch point is still on the old timeline.
func CanReach(history []HistoryEntry, target uint32, fromTLI uint32, fromLSN LSN) bool {
	if fromTLI == target {
		return true
	}
	for _, e := range history {
		if e.Timeline == fromTLI {
			return fromLSN < e.SwitchLSN
		}
	}
	return false
}

// ValidateHistory checks an archived .history file before it is stored: a timeline
// history exists only for timelines above 1, must parse, and must name at least one
// ancestor. Failures are *ValidationError so they can be filed under errors/.
func ValidateHistory(name Name, data []byte) error {
	if name.Kind != KindHistory {
		return &ValidationError{Name: name.Raw, Reason: fmt.Sprintf("is a %s file, not a timeline history file", name.Kind)}
	}
	if name.Timeline <= 1 {
		return &ValidationError{Name: name.Raw, Reason: fmt.Sprintf("timeline %d has no history file", name.Timeline)}
	}
	h, err := ParseHistory(name.Timeline, data)
	if err != nil {
		return &ValidationError{Name: name.Raw, Reason: err.Error()}
	}
	if len(h) == 0 {
		return &ValidationError{Name: name.Raw, Reason: "history file lists no parent timeline"}
	}
	return nil
}

// BackupLabel is what walkeeper reads from a .backup file (a backup history file).
type BackupLabel struct {
	StartLSN     LSN
	StartSegment string
	StopLSN      LSN // zero when the file has no STOP WAL LOCATION line
	Label        string
}

// ParseBackupLabel reads the lines of a .backup file that tie it to the WAL stream, so
// the index can link a backup to its first segment without trusting the file name only.
func ParseBackupLabel(data []byte) (BackupLabel, error) {
	var b BackupLabel
	var haveStart bool
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimRight(raw, "\r")
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch key {
		case "START WAL LOCATION", "STOP WAL LOCATION":
			lsnStr, file, _ := strings.Cut(val, " ")
			lsn, err := ParseLSN(lsnStr)
			if err != nil {
				return BackupLabel{}, fmt.Errorf("backup label line %d: %w", i+1, err)
			}
			if key == "STOP WAL LOCATION" {
				b.StopLSN = lsn
				continue
			}
			if !strings.HasPrefix(file, "(file ") || !strings.HasSuffix(file, ")") {
				return BackupLabel{}, fmt.Errorf("backup label line %d %q: want \"(file <segment>)\" after the LSN", i+1, line)
			}
			seg := strings.TrimSuffix(strings.TrimPrefix(file, "(file "), ")")
			if n, err := Parse(seg); err != nil || n.Kind != KindSegment {
				return BackupLabel{}, fmt.Errorf("backup label line %d: %q is not a segment name", i+1, seg)
			}
			b.StartLSN, b.StartSegment, haveStart = lsn, seg, true
		case "LABEL":
			b.Label = val
		}
	}
	if !haveStart {
		return BackupLabel{}, fmt.Errorf("backup label has no \"START WAL LOCATION: \" line")
	}
	return b, nil
}

// ValidateBackupLabel checks a .backup file is the text PostgreSQL writes (a
// START WAL LOCATION line naming a segment) before it is archived.
func ValidateBackupLabel(data []byte) error {
	if !bytes.HasPrefix(data, []byte("START WAL LOCATION: ")) {
		return &ValidationError{Reason: "not a backup history file: does not start with \"START WAL LOCATION: \""}
	}
	if _, err := ParseBackupLabel(data); err != nil {
		return &ValidationError{Reason: err.Error()}
	}
	return nil
}
