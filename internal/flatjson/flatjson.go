// Package flatjson reads JSON documents of a shape the caller knows (objects whose
// members are strings, integers, booleans and arrays of such objects) several times
// faster than a reflection-based decoder. A backup of tens of thousands of relations
// lists each relation file in two such documents, PostgreSQL's backup_manifest and
// walkeeper's contents list, and decoding them with encoding/json/v2 was a third of
// verify's CPU.
//
// It is a fast path only. A Scanner stops at the first thing it does not handle: an
// unknown member (the caller's choice), a null, a number with a fraction or an
// exponent, a string that is not valid UTF-8, a member given twice. The caller then
// decodes the same document with the full decoder, which accepts it or names the
// error. So the fast path never accepts what the full decoder rejects, and callers
// prove by fuzzing that both give the same result where both accept.
package flatjson

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// ErrUnhandled is the error of a Scanner that met something it does not handle.
var ErrUnhandled = errors.New("not handled by the fast JSON path")

// Scanner reads one JSON document from a byte slice. The first failure sticks: every
// later call returns a zero value, and Err reports it.
type Scanner struct {
	b   []byte
	i   int
	err error
	buf []byte // unescaped string scratch
}

// New returns a Scanner of b.
func New(b []byte) *Scanner { return &Scanner{b: b} }

// Len is the length of the document (for sizing what the caller decodes into).
func (s *Scanner) Len() int { return len(s.b) }

// Err is the first failure, wrapping ErrUnhandled, or nil.
func (s *Scanner) Err() error { return s.err }

// Fail stops the scanner (a caller's check failed, e.g. an unknown member).
func (s *Scanner) Fail() {
	if s.err == nil {
		s.err = fmt.Errorf("%w (at byte %d)", ErrUnhandled, s.i)
	}
}

func (s *Scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end or after a failure).
func (s *Scanner) peek() byte {
	if s.err != nil {
		return 0
	}
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return s.b[s.i]
	}
	s.space()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *Scanner) expect(c byte) bool {
	if s.peek() == c && s.err == nil {
		s.i++
		return true
	}
	s.Fail()
	return false
}

// Open reads the opening bracket of an object ('{') or an array ('[').
func (s *Scanner) Open(bracket byte) { s.expect(bracket) }

// Next reports whether the object or array opened with Open has another member or
// element, reading the comma before it (first: none) or the closing bracket close
// after the last. The caller then reads the member (Name, then its value) or element:
//
//	s.Open('{')
//	for first := true; s.Next(first, '}'); first = false {
//		switch string(s.Name()) { ... }
//	}
func (s *Scanner) Next(first bool, close byte) bool {
	c := s.peek()
	switch {
	case s.err != nil:
		return false
	case c == close:
		s.i++
		return false
	case first:
		return true
	case c == ',':
		s.i++
		return true
	}
	s.Fail()
	return false
}

// Remaining is what is left of the document to read, for a caller that splits a long
// array to read its parts on several cores; valid as long as the document is.
func (s *Scanner) Remaining() []byte {
	if s.err != nil {
		return nil
	}
	return s.b[s.i:]
}

// Advance skips n bytes of Remaining, read by the caller.
func (s *Scanner) Advance(n int) {
	if s.err == nil {
		s.i += n
	}
}

// More reads the comma between two elements of a run of array elements split off a
// document (Remaining): true after a comma, false at the end of the run.
func (s *Scanner) More() bool {
	c := s.peek()
	switch {
	case s.err != nil:
		return false
	case s.i >= len(s.b):
		return false
	case c == ',':
		s.i++
		return true
	}
	s.Fail()
	return false
}

// Name reads a member's name and the colon after it; the bytes are valid until the
// next call.
func (s *Scanner) Name() []byte {
	name := s.Bytes()
	s.expect(':')
	return name
}

// Bytes reads a string and returns its unescaped bytes, valid until the next call.
func (s *Scanner) Bytes() []byte {
	if !s.expect('"') {
		return nil
	}
	start := s.i
	end := bytes.IndexByte(s.b[start:], '"')
	if end < 0 {
		s.Fail()
		return nil
	}
	v := s.b[start : start+end]
	for k, c := range v {
		if c >= 0x20 && c < 0x80 && c != '\\' {
			continue
		}
		// The rest holds an escape, a control character or UTF-8.
		rest := v[k:]
		if bytes.IndexByte(rest, '\\') >= 0 {
			return s.unescape(start - 1)
		}
		if !utf8.Valid(rest) || bytes.ContainsFunc(rest, func(r rune) bool { return r < 0x20 }) {
			s.Fail()
			return nil
		}
		break
	}
	s.i = start + end + 1
	return v
}

// unescape reads the string that opens at b[open] and holds an escape.
func (s *Scanner) unescape(open int) []byte {
	j := open + 1
	for ; j < len(s.b) && s.b[j] != '"'; j++ {
		if s.b[j] == '\\' {
			j++
		}
	}
	if j >= len(s.b) {
		s.Fail()
		return nil
	}
	v, err := jsontext.AppendUnquote(s.buf[:0], s.b[open:j+1])
	if err != nil {
		s.Fail()
		return nil
	}
	s.buf = v
	s.i = j + 1
	return v
}

// String reads a string.
func (s *Scanner) String() string { return string(s.Bytes()) }

// digits reads an unsigned JSON integer: no leading zero, no fraction, no exponent.
func (s *Scanner) digits() (uint64, bool) {
	start := s.i
	var n uint64
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
		s.i++
	}
	switch {
	case s.i == start, s.b[start] == '0' && s.i-start > 1:
		return 0, false
	case s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E'):
		return 0, false
	}
	return n, true
}

// Uint reads a non-negative integer of at most bits bits.
func (s *Scanner) Uint(bits int) uint64 {
	if s.peek() == 0 {
		s.Fail()
		return 0
	}
	n, ok := s.digits()
	if !ok || bits < 64 && n >= 1<<bits {
		s.Fail()
		return 0
	}
	return n
}

// Int reads an integer that fits an int64.
func (s *Scanner) Int() int64 {
	neg := s.peek() == '-'
	if neg {
		s.i++
	}
	if s.err != nil {
		return 0
	}
	n, ok := s.digits()
	switch {
	case !ok, !neg && n > math.MaxInt64, neg && n > 1<<63:
		s.Fail()
		return 0
	case neg && n > 0:
		return -int64(n-1) - 1
	}
	return int64(n)
}

// Bool reads true or false.
func (s *Scanner) Bool() bool {
	for _, lit := range [...]string{"true", "false"} {
		if s.peek() == lit[0] && len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return lit == "true"
		}
	}
	s.Fail()
	return false
}

// Once marks member bit of an object as read, failing when it was read before (the
// full decoder rejects a duplicate member name).
func (s *Scanner) Once(seen *uint64, bit uint) {
	if *seen&(1<<bit) != 0 {
		s.Fail()
	}
	*seen |= 1 << bit
}

// End checks that only white space follows the document.
func (s *Scanner) End() {
	if s.peek() != 0 || s.i != len(s.b) {
		s.Fail()
	}
}

// Scan reads the whole of data with scan, a caller's fast path for one document shape;
// ok is false when scan did not handle it.
func Scan[T any](data []byte, scan func(*Scanner) T) (v T, ok bool) {
	s := New(data)
	v = scan(s)
	s.End()
	return v, s.Err() == nil
}

// Decode decodes data with scan and, when scan does not handle it, with
// encoding/json/v2, which names the error if there is one.
func Decode[T any](data []byte, scan func(*Scanner) T) (T, error) {
	if v, ok := Scan(data, scan); ok {
		return v, nil
	}
	var v T
	err := jsonv2.Unmarshal(data, &v)
	return v, err
}
