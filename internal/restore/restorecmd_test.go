package restore

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGetWALCommandShellTest runs the restore_command that --get-wal writes through
// /bin/sh, as PostgreSQL does (in the data directory, %f and %p substituted): a segment
// the prefetcher linked into pg_wal is answered "exit 1" by the shell alone, with the
// request recorded in .wanted; everything else reaches get-wal (here a stand-in that
// prints its arguments).
func TestGetWALCommandShellTest(t *testing.T) {
	data := t.TempDir()
	pgwal := filepath.Join(data, "pg_wal")
	spool := filepath.Join(pgwal, SpoolDirName)
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	stand := filepath.Join(data, "get wal")
	if err := os.WriteFile(stand, []byte("#!/bin/sh\necho get-wal \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const placedSeg, copySeg, spoolOnly, linkSeg = "000000010000000000000002", "000000010000000000000003", "000000010000000000000004", "000000010000000000000005"
	write(filepath.Join(spool, placedSeg), "seg2")
	if err := os.Link(filepath.Join(spool, placedSeg), filepath.Join(pgwal, placedSeg)); err != nil {
		t.Fatal(err)
	}
	// Same content, another inode: not the prefetcher's.
	write(filepath.Join(spool, copySeg), "seg3")
	write(filepath.Join(pgwal, copySeg), "seg3")
	write(filepath.Join(spool, spoolOnly), "seg4")
	// A symlink resolves to the spool's inode, but the prefetcher never makes one.
	write(filepath.Join(spool, linkSeg), "seg5")
	if err := os.Symlink(filepath.Join(spool, linkSeg), filepath.Join(pgwal, linkSeg)); err != nil {
		t.Fatal(err)
	}
	rc := GetWALCommand(stand, "/etc/wk.conf", "pg1", 8)
	run := func(f string) (string, int) {
		t.Helper()
		cmdline := strings.NewReplacer("%f", f, "%p", "pg_wal/RECOVERYXLOG").Replace(rc)
		c := exec.Command("/bin/sh", "-c", cmdline)
		c.Dir = data
		out, err := c.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := run(placedSeg)
	if code != 1 || out != "" {
		t.Errorf("placed segment: exit %d, output %q; want a silent exit 1", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(spool, wantedFile)); string(b) != placedSeg+"\n" {
		t.Errorf(".wanted = %q", b)
	}
	if name, n, _ := readWanted(spool); name != placedSeg || n != -1 {
		t.Errorf("readWanted = %s %d", name, n)
	}
	want := "get-wal --config /etc/wk.conf get-wal --prefetch 8 pg1 %s pg_wal/RECOVERYXLOG\n"
	for _, f := range []string{copySeg, spoolOnly, linkSeg, "00000002.history", "000000010000000000000009"} {
		out, code := run(f)
		if code != 0 || out != strings.Replace(want, "%s", f, 1) {
			t.Errorf("%s: exit %d, output %q; want get-wal to run", f, code, out)
		}
	}
	// Without prefetch there is no shell test.
	if rc0 := GetWALCommand(stand, "", "pg1", 0); strings.Contains(rc0, "[") {
		t.Errorf("restore_command without prefetch: %s", rc0)
	}
}
