package textout

import (
	"bytes"
	"testing"
)

func TestBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1536, "1.5 KiB"}, {16 << 20, "16 MiB"}, {-2048, "-2.0 KiB"},
	} {
		if got := Bytes(c.n); got != c.want {
			t.Errorf("Bytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestOrDash(t *testing.T) {
	if OrDash("") != "-" || OrDash("0/3000028") != "0/3000028" {
		t.Errorf("OrDash: %q %q", OrDash(""), OrDash("0/3000028"))
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	Table(&b, []string{"SERVER", "ACTIVE"}, [][]string{{"pg1", "true"}, {"longname", "false"}})
	want := "SERVER    ACTIVE\npg1       true\nlongname  false\n"
	if b.String() != want {
		t.Errorf("Table:\n%q\nwant\n%q", b.String(), want)
	}
}
