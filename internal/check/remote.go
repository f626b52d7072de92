package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/restore"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// commandWords splits a shell command line into words the way the shell would (an
// unbalanced quote falls back to splitting on blanks), cutting words at the operators
// glued to them ("%p;", "%p||exit"). A word that holds blanks is a command line of its
// own to the callers: the remote command of `ssh host 'walkeeper put-wal pg1 %f'`, or
// the value of --ssh.
func commandWords(command string) []string {
	words, err := restore.SplitCommand(command)
	if err != nil {
		words = strings.Fields(command)
	}
	var out []string
	for _, w := range words {
		if strings.ContainsAny(w, " \t") {
			out = append(out, w)
			continue
		}
		for _, part := range shellOperator.Split(w, -1) {
			if part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

var shellOperator = regexp.MustCompile(`\|\||&&|[;|<>]`)

// archiveFlagsWithValue are archive-wal's and put-wal's flags that take the next word.
var archiveFlagsWithValue = map[string]bool{"--ssh": true, "--remote-command": true, "--config": true}

// archivesToUs reports whether archive_command hands the WAL to walkeeper for server:
// `archive-wal SERVER %p` (also with --ssh to another host), or the backup host's
// `put-wal SERVER %f` behind ssh.
func archivesToUs(command, server string) bool {
	words := commandWords(command)
	for i, w := range words {
		if strings.ContainsAny(w, " \t") && archivesToUs(w, server) {
			return true
		}
		if w != "archive-wal" && w != "put-wal" {
			continue
		}
		for j := i + 1; j < len(words); j++ {
			g := words[j]
			if strings.HasPrefix(g, "-") {
				if archiveFlagsWithValue[g] {
					j++
				}
				continue
			}
			if g == server {
				return true
			}
			break
		}
	}
	return false
}

// viaSSH reports whether archive_command sends the WAL to another host: put-wal
// behind ssh, or archive-wal --ssh.
func viaSSH(command string) bool {
	for _, w := range commandWords(command) {
		if strings.ContainsAny(w, " \t") && viaSSH(w) {
			return true
		}
		if w == "put-wal" || w == "--ssh" || strings.HasPrefix(w, "--ssh=") || path.Base(w) == "ssh" {
			return true
		}
	}
	return false
}

// remoteServer reports whether the conninfo reaches PostgreSQL on another host: not a
// unix socket, localhost or a loopback address.
func remoteServer(conninfo string) (host string, remote bool) {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return "", false
	}
	host = cfg.Host
	if host == "" || strings.HasPrefix(host, "/") || host == "localhost" {
		return host, false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return host, false
	}
	return host, true
}

// wantArchiveCommand is the archive_command to paste: archive-wal on this host, or,
// for a server on another host, ssh to this host running put-wal, with ssh's exit
// status 255 (connection lost) turned into 1 so that PostgreSQL's archiver retries
// instead of dying (an exit status above 125 is fatal to it).
func (r *runner) wantArchiveCommand() string {
	bin := r.d.Binary
	if bin == "" {
		bin = "walkeeper"
	}
	if _, remote := remoteServer(r.srv.Conninfo); !remote && !viaSSH(r.pg.archiveCommand) {
		return fmt.Sprintf("archive_command = '%s --config %s archive-wal %s %%p'", bin, r.configFile(), r.srv.Name)
	}
	who := "walkeeper"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "THIS-HOST"
	}
	return fmt.Sprintf("archive_command = 'ssh %s@%s %s --config %s put-wal %s %%f < %%p || exit 1'", who, host, bin, r.configFile(), r.srv.Name)
}

// arrived reports whether WAL file name reached this host: archived, waiting in
// incoming/, or refused into errors/.
func (r *runner) arrived(ctx context.Context, name string) (bool, error) {
	if _, _, err := archive.Find(ctx, r.d.Store, r.srv.Name, name); err == nil {
		return true, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	if len(archive.Copies(r.srv.IncomingDir(), name)) > 0 {
		return true, nil
	}
	qs, err := archive.Quarantined(r.srv.ErrorsDir())
	if err != nil {
		return false, err
	}
	for _, q := range qs {
		if strings.HasPrefix(q.File, name) {
			return true, nil
		}
	}
	return false, nil
}

// logFailureLines picks, from the tail of a PostgreSQL server log, what the archive
// command printed before PostgreSQL's last "archive command failed" line (ssh's or
// put-wal's one-line error): the lines just above it that are not PostgreSQL's own.
func logFailureLines(log string) []string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	last := -1
	for i, l := range lines {
		if strings.Contains(l, "archive command failed with exit code") || strings.Contains(l, "archive command was terminated by") {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	var out []string
	for i := last - 1; i >= 0 && len(out) < 3; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		if pgLogLine.MatchString(l) {
			break
		}
		out = append([]string{l}, out...)
	}
	return out
}

// pgLogLine is a line PostgreSQL itself wrote (its severity tag), not a child's output.
var pgLogLine = regexp.MustCompile(`\b(LOG|DETAIL|HINT|WARNING|ERROR|FATAL|PANIC|STATEMENT|CONTEXT|DEBUG[1-5]?|INFO|NOTICE):  `)

// logTail is how much of the server log is read for the archive command's error.
const logTail = 64 << 10

// archiveFailureFromLog reads the tail of the server's current log file and returns what
// the archive command printed before it last failed. Reading it needs the
// logging_collector (else pg_current_logfile() is NULL) and a role allowed to read
// server files (superuser or pg_read_server_files); note says which is missing.
func archiveFailureFromLog(ctx context.Context, c *pgx.Conn) (lines []string, note string) {
	var file *string
	if err := c.QueryRow(ctx, `SELECT pg_current_logfile()`).Scan(&file); err != nil {
		return nil, "cannot ask for the server log: " + err.Error()
	}
	if file == nil {
		return nil, "the server writes no log file of its own (logging_collector = off)"
	}
	var tail string
	err := c.QueryRow(ctx, `SELECT pg_read_file($1, greatest((pg_stat_file($1)).size - $2, 0), $2)`, *file, int64(logTail)).Scan(&tail)
	if err != nil {
		return nil, fmt.Sprintf("cannot read the server log %s: %v", *file, err)
	}
	return logFailureLines(tail), ""
}

// archiverStats is the pg_stat_archiver check, which says which side to look at when
// WAL does not arrive: the database host's, when archive_command fails there (its
// error is in that server's log, quoted when walkeeper may read it), or when it
// succeeds without the file reaching this host; this host's, when it arrived.
func (r *runner) archiverStats(ctx context.Context) {
	if r.pg.err != nil || (r.pg.archiveMode != "on" && r.pg.archiveMode != "always") {
		return
	}
	if r.pg.archiverErr != nil {
		r.add(CheckArchiver, false, fmt.Sprintf("cannot read pg_stat_archiver: %v", r.pg.archiverErr), "")
		return
	}
	s := r.pg.archiver
	host, remote := remoteServer(r.srv.Conninfo)
	where := "the database host"
	if remote {
		where = "the database host " + host
	}
	if cause := s.Cause(); cause != "" {
		detail := cause
		if len(r.pg.archiveErrLines) > 0 {
			detail += "; its last output there: " + strings.Join(r.pg.archiveErrLines, " / ")
		}
		hint := fmt.Sprintf("the archive command fails on %s (PostgreSQL's side): its error is in that server's log, above 'archive command failed'", where)
		if r.pg.logNote != "" && len(r.pg.archiveErrLines) == 0 {
			hint += " (" + r.pg.logNote + ")"
		}
		if viaSSH(r.pg.archiveCommand) {
			hint += "; run it by hand there as the postgres user: ssh's key, known_hosts entry (BatchMode) and the path of walkeeper on this host are the usual causes"
		} else {
			hint += fmt.Sprintf("; run archive_command by hand as the postgres user on %s", s.LastFailedWAL)
		}
		r.add(CheckArchiver, false, detail, hint)
		return
	}
	detail := fmt.Sprintf("%d archived, %d failed", s.ArchivedCount, s.FailedCount)
	if s.LastArchivedWAL != "" && s.LastArchivedTime != nil {
		detail += fmt.Sprintf("; last %s %s ago", s.LastArchivedWAL, r.since(*s.LastArchivedTime))
		ok, err := r.arrived(ctx, s.LastArchivedWAL)
		if err != nil {
			r.add(CheckArchiver, false, detail+fmt.Sprintf("; cannot look for it here: %v", err), "")
			return
		}
		if !ok {
			r.add(CheckArchiver, false, detail+fmt.Sprintf(", but %s never reached this host (not archived, not in %s, not refused)", s.LastArchivedWAL, r.srv.IncomingDir()),
				fmt.Sprintf("archive_command succeeds on %s without delivering here (does it write to that host's own disk? `walkeeper archive-wal` drops into the incoming/ of the host it runs on): set %s and reload PostgreSQL", where, r.wantArchiveCommand()))
			return
		}
	}
	r.add(CheckArchiver, true, detail, "")
}
