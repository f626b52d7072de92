package pgutil

import (
	"strings"
	"testing"
)

type params map[string]string

func (p params) ParameterStatus(k string) string { return p[k] }

func TestServerMajor(t *testing.T) {
	for _, tc := range []struct {
		p    params
		want int
		bad  bool
	}{
		{p: params{"server_version": "13.23"}, want: 13},
		{p: params{"server_version": "15.18 (Debian 15.18-0+deb12u1)"}, want: 15},
		{p: params{"server_version": "18beta1"}, want: 18},
		{p: params{"server_version": "9.6.24"}, want: 9},
		{p: params{"server_version_num": "170010", "server_version": "junk"}, want: 17},
		{p: params{"server_version_num": "x"}, bad: true},
		{p: params{}, bad: true},
		{p: params{"server_version": "devel"}, bad: true},
	} {
		got, err := ServerMajor(tc.p)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("ServerMajor(%v) = %d, %v", tc.p, got, err)
		}
	}
}

func TestCheckMajor(t *testing.T) {
	for m := MinMajor; m <= MaxMajor; m++ {
		if err := CheckMajor(m); err != nil {
			t.Errorf("CheckMajor(%d): %v", m, err)
		}
	}
	for _, m := range []int{9, 12, 19} {
		err := CheckMajor(m)
		if err == nil || !strings.Contains(err.Error(), "PostgreSQL 13 to 18") {
			t.Errorf("CheckMajor(%d) = %v, want the range named", m, err)
		}
	}
}
