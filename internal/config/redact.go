package config

import (
	"strings"
)

// Redacted replaces a password in printed conninfo strings.
const Redacted = "********"

var (
	// key/value form: password = 'quoted \' value' | bare-value
	kvPasswordRE = lazyRE(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s]*)`)
	// URL form: scheme://user:password@host
	urlPasswordRE = lazyRE(`(?i)(postgres(?:ql)?://[^:/@?#\s]*:)([^@\s]*)(@)`)
	// URL query form: ?password=... or &password=...
	urlQueryPasswordRE = lazyRE(`(?i)([?&]password=)([^&\s]*)`)
)

// RedactConninfo returns s with every password replaced by "********": the
// libpq key/value form (password=x, password = 'a b', escaped quotes), the
// URL userinfo form (postgres://user:pass@host) and a URL query parameter
// (?password=x). Strings without a password come back unchanged.
func RedactConninfo(s string) string {
	if strings.Contains(s, "://") {
		s = urlPasswordRE().ReplaceAllString(s, "${1}"+Redacted+"${3}")
		s = urlQueryPasswordRE().ReplaceAllString(s, "${1}"+Redacted)
		// A URL may still carry key=value parts after a space; fall through.
	}
	return kvPasswordRE().ReplaceAllStringFunc(s, func(m string) string {
		sub := kvPasswordRE().FindStringSubmatch(m)
		if strings.HasSuffix(sub[1], "=") && strings.HasPrefix(sub[2], Redacted) {
			return m
		}
		// Preceded by ?/& means the URL query form, already handled.
		return sub[1] + Redacted
	})
}
