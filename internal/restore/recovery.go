package restore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/shellword"
)

// WAL delivery modes of a restore.
const (
	// WALGet writes a restore_command that calls this walkeeper binary (get-wal with
	// prefetch): the archive stays the single source and the restore writes no WAL.
	WALGet = "get-wal"
	// WALCopy copies exactly the WAL needed into DEST/pg_wal/walkeeper_wal/ and writes
	// restore_command = 'cp pg_wal/walkeeper_wal/%f %p': the restored cluster needs
	// nothing from the backup host (remote restores).
	WALCopy = "copy-wal"
)

// CopyWALDir is where --copy-wal puts the WAL, relative to the data directory. It is
// inside pg_wal because pg_verifybackup skips pg_wal (a directory beside the cluster
// files would make it report extra files), PostgreSQL ignores subdirectories there,
// files fetched through restore_command are marked .done and never re-archived (WAL
// dropped into pg_wal itself would be archived again after promotion, and a .partial
// under a segment name would clash with the real segment), and relative paths in
// restore_command keep working if the data directory moves. recovery_end_command
// removes it once recovery has ended.
const CopyWALDir = "pg_wal/walkeeper_wal"

// SpoolDirName is get-wal's prefetch spool, created beside the %p path PostgreSQL
// hands over (so in pg_wal/, for the same reasons as CopyWALDir).
const SpoolDirName = "walkeeper_spool"

// Setting is one postgresql.conf line.
type Setting struct {
	Name, Value string
}

// RecoverySettings are the settings a restore appends to postgresql.auto.conf; tli is
// recovery_target_timeline's value (Choice.TimelineSetting: "latest", "current" or a
// number; "" writes none).
func RecoverySettings(restoreCommand, endCommand string, t Target, tli string) []Setting {
	s := []Setting{{"restore_command", restoreCommand}}
	if endCommand != "" {
		s = append(s, Setting{"recovery_end_command", endCommand})
	}
	switch {
	case !t.Time.IsZero():
		s = append(s, Setting{"recovery_target_time", pgTime(t.Time)})
	case t.XID != "":
		s = append(s, Setting{"recovery_target_xid", t.XID})
	case t.Name != "":
		s = append(s, Setting{"recovery_target_name", t.Name})
	case t.HasLSN:
		s = append(s, Setting{"recovery_target_lsn", t.LSN.String()})
	case t.Immediate:
		s = append(s, Setting{"recovery_target", "immediate"})
	}
	if t.IsSet() && !t.Immediate && t.Name == "" {
		s = append(s, Setting{"recovery_target_inclusive", strconv.FormatBool(!t.Exclusive)})
	}
	if tli != "" {
		s = append(s, Setting{"recovery_target_timeline", tli})
	}
	if t.IsSet() {
		a := t.Action
		if a == "" {
			a = ActionPause
		}
		s = append(s, Setting{"recovery_target_action", a})
	}
	return s
}

// RenderSettings renders settings as postgresql.conf lines under a comment header
// (each of its lines a comment).
func RenderSettings(header string, settings []Setting) string {
	var b strings.Builder
	b.WriteString("\n# " + strings.ReplaceAll(header, "\n", "\n# ") + "\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "%s = %s\n", s.Name, QuoteConf(s.Value))
	}
	return b.String()
}

// QuoteConf quotes a postgresql.conf string value: single quotes doubled, backslashes
// escaped (the configuration parser reads backslash escapes inside quotes).
func QuoteConf(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// ShellQuote quotes one word for /bin/sh (restore_command runs through the shell).
func ShellQuote(s string) string { return shellword.Quote(s) }

// GetWALCommand is the restore_command of --get-wal: this binary, its configuration,
// get-wal with prefetch.
//
// With prefetch, a shell test comes first: PostgreSQL runs restore_command for every
// segment, also for one the prefetcher has already linked into pg_wal, where the answer
// is a plain "exit 1" (PostgreSQL then reads pg_wal/%f). Starting the Go binary just to
// say that cost ~7 ms of CPU per segment and, on a busy host, tens of milliseconds of
// replay time; the shell's builtins answer in well under one. The test is get-wal's own
// (spoolValid, then placed): the spool was filled under this boot (its .boot file
// holds the kernel's boot id: spooled files are not fsynced, and one an OS crash
// emptied must not be read), and spool/%f and pg_wal/%f are one inode (not a symlink),
// which only the prefetcher makes. The shell also records the request in .wanted (a
// builtin write), which moves the prefetcher's window. Anything else (a history file,
// a segment not placed, a spool of another boot, a failed test) runs get-wal itself.
func GetWALCommand(bin, configFile, server string, prefetch int) string {
	cmd := ShellQuote(bin)
	if configFile != "" {
		cmd += " --config " + ShellQuote(configFile)
	}
	if prefetch <= 0 {
		return cmd + " get-wal " + ShellQuote(server) + " %f %p"
	}
	return prefetchFastPath() + cmd + " get-wal --prefetch " + strconv.Itoa(prefetch) + " " + ShellQuote(server) + " %f %p"
}

// prefetchFastPath is the shell test in front of a prefetching restore_command: a
// segment the prefetcher linked into pg_wal is answered "not in the archive" (PostgreSQL
// then reads it there) by the shell alone, after telling the prefetcher where replay is.
func prefetchFastPath() string {
	spool := "pg_wal/" + SpoolDirName
	return "read -r b </proc/sys/kernel/random/boot_id && read -r s 2>/dev/null <" + spool + "/" + bootFile + ` && [ "$b" = "$s" ] && ` +
		"[ " + spool + "/%f -ef pg_wal/%f ] && [ ! -h pg_wal/%f ] && echo %f >" + spool + "/" + wantedFile + " && exit 1; exec "
}

// SSHGetWALCommand is the restore_command of a cluster that fetches its WAL from this
// backup host through ssh (--wal-ssh-command) and has no walkeeper of its own: ssh runs
// this host's get-wal (bin and its configuration file, absolute paths here) writing to
// standard output, and the shell writes that to %p. get-wal's exit 1 for a file that
// is not archived comes back through ssh as it is.
//
// ssh exits 255 when it cannot connect or loses the connection, and PostgreSQL treats a
// restore_command exit status above 125 as fatal: the startup process stops and the
// cluster with it. A standby turns that into a plain failure (|| exit 1) and retries
// after wal_retrieve_retry_interval, as it does for a file not archived yet. A recovery
// that ends keeps the 255 on purpose: a plain failure would read as the end of the
// archive and end recovery early, before WAL that is archived (a cluster that stops
// with the ssh error in its log loses nothing: started again, it goes on).
//
// Each word is quoted twice: once for the shell PostgreSQL starts, once for the shell
// ssh starts on this host from the words it joins with spaces.
func SSHGetWALCommand(ssh []string, bin, configFile, server string, standby bool) string {
	words := make([]string, 0, len(ssh)+6)
	for _, w := range ssh {
		words = append(words, ShellQuote(w))
	}
	remote := []string{bin}
	if configFile != "" {
		remote = append(remote, "--config", configFile)
	}
	remote = append(remote, "get-wal")
	if standby {
		remote = append(remote, "--standby")
	}
	remote = append(remote, server)
	for _, w := range remote {
		words = append(words, ShellQuote(ShellQuote(w)))
	}
	cmd := strings.Join(words, " ") + " %f - > %p"
	if standby {
		cmd += " || exit 1"
	}
	return cmd
}

// CopyWALCommand is the restore_command of --copy-wal (relative to the data directory,
// where PostgreSQL runs it).
func CopyWALCommand() string { return "cp " + CopyWALDir + "/%f %p" }

// CopyWALEndCommand removes the copied WAL once recovery has ended.
func CopyWALEndCommand() string { return "rm -rf " + CopyWALDir }

// SpoolEndCommand removes get-wal's spool once recovery has ended.
func SpoolEndCommand() string { return "rm -rf pg_wal/" + SpoolDirName }

func header(server, id string, t Target, now time.Time) string {
	return fmt.Sprintf("walkeeper restore of %s backup %s to %s, %s", server, id, t, now.UTC().Format(time.RFC3339))
}
