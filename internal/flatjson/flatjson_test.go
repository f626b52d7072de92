package flatjson

import (
	"math"
	"testing"
)

// TestScalars: what the fast path takes and what it leaves to the full decoder.
func TestScalars(t *testing.T) {
	ints := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {" 42", 42, true}, {"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775807", math.MaxInt64, true}, {"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false}, {"01", 0, false}, {"1.0", 0, false}, {"1e3", 0, false},
		{"-", 0, false}, {"", 0, false}, {"null", 0, false}, {`"1"`, 0, false},
	}
	for _, c := range ints {
		s := New([]byte(c.in))
		got := s.Int()
		s.End()
		if ok := s.Err() == nil; ok != c.ok || ok && got != c.want {
			t.Errorf("Int(%q) = %d, ok %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	strs := []struct {
		in, want string
		ok       bool
	}{
		{`"abc"`, "abc", true}, {`"a\"b\\c\n"`, "a\"b\\c\n", true}, {`"é\u00e9"`, "éé", true},
		{`"tab	in"`, "", false}, {"\"\xff\"", "", false}, {`"unterminated`, "", false},
		{`"bad \x"`, "", false}, {`"\ud800"`, "", false},
	}
	for _, c := range strs {
		s := New([]byte(c.in))
		got := s.String()
		s.End()
		if ok := s.Err() == nil; ok != c.ok || ok && got != c.want {
			t.Errorf("String(%q) = %q, ok %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if s := New([]byte("4294967296")); s.Uint(32) != 0 || s.Err() == nil {
		t.Error("Uint(32) took 2^32")
	}
}

// TestStructure: members and elements with their commas, and the malformed shapes.
func TestStructure(t *testing.T) {
	for in, ok := range map[string]bool{
		`{"a":[1,2],"b":true}`: true, ` { "a" : [ ] , "b" : false } `: true, `{}`: true,
		`{"a":[1,2,],"b":true}`: false, `{"a":[1 2],"b":true}`: false, `{,"a":[]}`: false,
		`{"a":[],}`: false, `{"a":[]} x`: false, `{"a":[]`: false, `{"a" [1]}`: false,
		`{"a":[],"a":[]}`: false,
	} {
		s := New([]byte(in))
		var seen uint64
		s.Open('{')
		for first := true; s.Next(first, '}'); first = false {
			switch string(s.Name()) {
			case "a":
				s.Once(&seen, 0)
				s.Open('[')
				for first := true; s.Next(first, ']'); first = false {
					s.Int()
				}
			case "b":
				s.Once(&seen, 1)
				s.Bool()
			default:
				s.Fail()
			}
		}
		s.End()
		if got := s.Err() == nil; got != ok {
			t.Errorf("%s: ok %v, want %v (%v)", in, got, ok, s.Err())
		}
	}
}
