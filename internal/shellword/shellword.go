// Package shellword splits a command line the way sh does for quotes and backslashes
// (no expansions), and quotes words for a remote shell: the ssh commands DBAs give
// walkeeper ("ssh -p 2222 walkeeper@backup") and the commands sent through them.
package shellword

import (
	"errors"
	"strings"
)

// ErrUnterminated is Split's error for a command line that ends inside a quote or
// after a lone backslash.
var ErrUnterminated = errors.New("unterminated quote")

// Split splits s into words with the shell's rules for single quotes, double quotes
// (where a backslash escapes the next character) and backslashes; it expands nothing.
func Split(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, quote, esc := false, rune(0), false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			if r == '"' {
				quote = 0
			} else if r == '\\' {
				esc = true
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			esc, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || esc {
		return nil, ErrUnterminated
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// Quote makes s one word for sh: unchanged when it holds only characters sh never
// interprets, else in single quotes (a single quote inside becomes '\”).
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
