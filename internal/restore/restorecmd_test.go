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
	write(filepath.Join(spool, bootFile), bootID()+"\n")
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
	// A spool of another boot (its files may have lost their content in a crash), or
	// one with no boot recorded, is not trusted: get-wal runs, and the shell says nothing.
	for _, boot := range []string{"another-boot\n", ""} {
		os.Remove(filepath.Join(spool, bootFile))
		if boot != "" {
			write(filepath.Join(spool, bootFile), boot)
		}
		if out, code := run(placedSeg); code != 0 || out != strings.Replace(want, "%s", placedSeg, 1) {
			t.Errorf("placed segment, spool boot %q: exit %d, output %q; want get-wal to run", boot, code, out)
		}
	}
	// Without prefetch there is no shell test.
	if rc0 := GetWALCommand(stand, "", "pg1", 0); strings.Contains(rc0, "[") {
		t.Errorf("restore_command without prefetch: %s", rc0)
	}
}

// TestSSHGetWALCommand runs the restore_command of a restore fetching WAL through
// --wal-ssh-command through /bin/sh, with a stand-in for ssh that does what ssh does
// with its words (joins them with spaces and hands them to the remote user's shell),
// and a stand-in get-wal (a path with a space and a quote) that records its argv and
// writes a body or exits as told: every word arrives whole, the body lands in %p, a
// missing file's exit 1 comes through, and ssh's 255 becomes 1 for a standby only.
func TestSSHGetWALCommand(t *testing.T) {
	dir := t.TempDir()
	ssh := filepath.Join(dir, "fake-ssh")
	// $1 is the host; the rest is the remote command line, run by a shell.
	if err := os.WriteFile(ssh, []byte("#!/bin/sh\n[ -n \"$SSH_DOWN\" ] && exit 255\nshift\nexec /bin/sh -c \"$*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "wal keeper's")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$ARGV_OUT\"\nfor a; do f=$last; last=$a; done\n[ \"$f\" = 000000010000000000000009 ] && exit 1\necho body-of-\"$f\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	argvOut := filepath.Join(dir, "argv")
	run := func(rc, f string, env ...string) (int, string) {
		t.Helper()
		c := exec.Command("/bin/sh", "-c", strings.NewReplacer("%f", f, "%p", "pg_wal/RECOVERYXLOG").Replace(rc))
		c.Dir = data
		c.Env = append(os.Environ(), append(env, "ARGV_OUT="+argvOut)...)
		out, err := c.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	for _, standby := range []bool{false, true} {
		rc := SSHGetWALCommand([]string{ssh, "wk@backup"}, bin, "/etc/wk conf", "pg1", standby)
		const seg = "000000010000000000000003"
		if code, out := run(rc, seg); code != 0 {
			t.Fatalf("standby=%v: %s: exit %d %s", standby, rc, code, out)
		}
		got, _ := os.ReadFile(filepath.Join(data, "pg_wal", "RECOVERYXLOG"))
		if string(got) != "body-of-"+seg+"\n" {
			t.Errorf("standby=%v: %%p holds %q", standby, got)
		}
		argv, _ := os.ReadFile(argvOut)
		wantArgv := "--config\n/etc/wk conf\nget-wal\npg1\n" + seg + "\n-\n"
		if standby {
			wantArgv = "--config\n/etc/wk conf\nget-wal\n--standby\npg1\n" + seg + "\n-\n"
		}
		if string(argv) != wantArgv {
			t.Errorf("standby=%v: get-wal's argv %q, want %q", standby, argv, wantArgv)
		}
		if code, _ := run(rc, "000000010000000000000009"); code != 1 {
			t.Errorf("standby=%v: a file not archived: exit %d, want 1", standby, code)
		}
		want := 255 // a recovery that ends stops rather than end early
		if standby {
			want = 1 // a standby retries
		}
		if code, _ := run(rc, seg, "SSH_DOWN=1"); code != want {
			t.Errorf("standby=%v: ssh down: exit %d, want %d", standby, code, want)
		}
	}
}

// TestPlacedRestoreCommand: the restore_command each WAL source writes.
func TestPlacedRestoreCommand(t *testing.T) {
	local := Placed{WAL: WALGet}
	if got := local.RestoreCommand("/opt/wk/walkeeper", "/etc/wk.conf", "pg1", 0); got != "/opt/wk/walkeeper --config /etc/wk.conf get-wal pg1 %f %p" {
		t.Errorf("local: %q", got)
	}
	noBin := Placed{WAL: WALGet, WALSSH: []string{"ssh", "wk@backup"}, WALSSHCommand: "ssh wk@backup", Standby: true}
	if got, want := noBin.RestoreCommand("/opt/wk/walkeeper", "/etc/wk.conf", "pg1", 8), "ssh wk@backup /opt/wk/walkeeper --config /etc/wk.conf get-wal --standby pg1 %f - > %p || exit 1"; got != want {
		t.Errorf("no walkeeper on the restored host: %q, want %q", got, want)
	}
	bin := Placed{WAL: WALGet, WALSSH: []string{"ssh", "-i", "/k", "wk@backup"}, WALSSHCommand: "ssh -i /k wk@backup", RemoteBinary: "/usr/bin/walkeeper"}
	want := "/usr/bin/walkeeper get-wal --ssh 'ssh -i /k wk@backup' --remote-command '/opt/wk/walkeeper --config /etc/wk.conf' pg1 %f %p"
	if got := bin.RestoreCommand("/opt/wk/walkeeper", "/etc/wk.conf", "pg1", 0); got != want {
		t.Errorf("walkeeper on the restored host: %q, want %q", got, want)
	}
	got := bin.RestoreCommand("/opt/wk/walkeeper", "/etc/wk.conf", "pg1", 8)
	if !strings.HasPrefix(got, "read -r b </proc/sys/kernel/random/boot_id && read -r s 2>/dev/null <pg_wal/"+SpoolDirName+"/.boot && ") || !strings.HasSuffix(got, " --prefetch 8 pg1 %f %p") {
		t.Errorf("with prefetch: %q", got)
	}
}
