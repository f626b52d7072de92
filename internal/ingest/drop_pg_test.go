package ingest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/archive"
)

// TestDropNeverReplaces: a second file of the same name and other content dropped
// before the first is ingested waits beside it; ingest judges both in arrival order
// (the first archived, the second quarantined with the reason), and the same content
// again is a silent success (invariant 2).
func TestDropNeverReplaces(t *testing.T) {
	seg := realSegment(t)
	f := newFixture(t, "zstd")
	name := "000000010000000000000001"
	other := bytes.Clone(seg)
	other[len(other)-1] ^= 1
	f.drop(t, name, seg)
	f.drop(t, name, other)
	f.drop(t, name, seg)   // same as the first: nothing new
	f.drop(t, name, other) // same as the second: nothing new
	copies := archive.Copies(f.srv.IncomingDir, name)
	if len(copies) != 2 || copies[0] != name || !strings.HasPrefix(copies[1], name+".wk-dup-") {
		t.Fatalf("incoming copies %v, want the name and one later copy", copies)
	}
	if got, _ := os.ReadFile(filepath.Join(f.srv.IncomingDir, name)); !bytes.Equal(got, seg) {
		t.Fatal("the first file was replaced")
	}
	// The later copy waits while the earlier one is there.
	if r := f.process(t, copies[1]); r.Outcome != Pending {
		t.Fatalf("later copy judged before the earlier one: %+v", r)
	}
	if r := f.process(t, name); r.Outcome != Archived {
		t.Fatalf("first copy: %+v", r)
	}
	r := f.process(t, copies[1])
	if r.Outcome != Quarantined || r.Name != name || !strings.Contains(r.Reason, "already archived with different content") {
		t.Fatalf("second copy: %+v", r)
	}
	reasons, _ := filepath.Glob(filepath.Join(f.srv.ErrorsDir, name+".*.reason"))
	if len(reasons) != 1 {
		t.Fatalf("errors/ holds %v, want one reason for %s", reasons, name)
	}
	kept, _ := os.ReadFile(strings.TrimSuffix(reasons[0], ".reason"))
	if !bytes.Equal(kept, other) {
		t.Fatal("errors/ does not hold the second file's bytes")
	}
	if left := archive.Copies(f.srv.IncomingDir, name); len(left) != 0 {
		t.Fatalf("incoming still holds %v", left)
	}
}

// TestDropFirstInvalid: when the first copy is invalid it is quarantined, and the
// later valid copy is archived (first valid arrival wins).
func TestDropFirstInvalid(t *testing.T) {
	seg := realSegment(t)
	f := newFixture(t, "zstd")
	name := "000000010000000000000001"
	bad := bytes.Clone(seg)
	copy(bad[:8], []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.drop(t, name, bad)
	f.drop(t, name, seg)
	copies := archive.Copies(f.srv.IncomingDir, name)
	if r := f.process(t, copies[0]); r.Outcome != Quarantined {
		t.Fatalf("invalid first copy: %+v", r)
	}
	if r := f.process(t, copies[1]); r.Outcome != Archived {
		t.Fatalf("valid later copy: %+v", r)
	}
}
