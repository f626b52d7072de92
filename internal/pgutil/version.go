package pgutil

import (
	"fmt"
	"strconv"
	"strings"
)

// MinMajor and MaxMajor bound the PostgreSQL majors walkeeper supports: every code path
// that depends on the server's version (BASE_BACKUP's syntax and stream, slot queries,
// recovery functions) knows these, and a server outside them is refused up front.
const (
	MinMajor = 13
	MaxMajor = 18
)

// CheckMajor refuses a major outside MinMajor..MaxMajor, naming the range.
func CheckMajor(major int) error {
	if major < MinMajor || major > MaxMajor {
		return fmt.Errorf("PostgreSQL %d is not supported: walkeeper supports PostgreSQL %d to %d", major, MinMajor, MaxMajor)
	}
	return nil
}

// ParameterStatuser is what a connection needs for ServerMajor: *pgconn.PgConn has it.
type ParameterStatuser interface {
	ParameterStatus(key string) string
}

// ServerMajor is the major of the server a connection talks to, from the server_version
// it reported at startup ("13.23", "15.18 (Debian 15.18-1)", "18beta1"): every server
// reports server_version, also on a replication connection, where no SQL can be run.
// server_version_num is used when reported (not every major reports it).
func ServerMajor(c ParameterStatuser) (int, error) {
	if v := c.ParameterStatus("server_version_num"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("server_version_num %q: not a number", v)
		}
		return n / 10000, nil
	}
	return ParseMajor(c.ParameterStatus("server_version"))
}

// ParseMajor reads the major from a server_version string: its leading number ("13.23",
// "16beta1", "15.18 (Debian ...)"; 9.6 and older give 9, outside the range anyway).
func ParseMajor(v string) (int, error) {
	s := strings.TrimSpace(v)
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	m, err := strconv.Atoi(s[:end])
	if err != nil {
		return 0, fmt.Errorf("server_version %q: no major version in it", v)
	}
	return m, nil
}
