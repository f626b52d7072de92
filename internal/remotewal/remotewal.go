// Package remotewal carries WAL between a PostgreSQL host and the backup host over ssh,
// with nothing but ssh and the walkeeper binary at both ends: archive-wal --ssh's push
// (put-wal on the backup host), get-wal --ssh's fetch (get-wal ... - there), and the
// prefetcher's one long session (send-wal there, Serve here) that streams archived
// segments still compressed.
package remotewal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/shellword"
)

// ErrConnection means ssh could not reach the backup host or lost the connection
// (ssh's exit status 255, or ssh killed): nothing is known about the remote side.
var ErrConnection = errors.New("ssh connection failed")

// ExitError is the backup host's walkeeper failing: its exit status and its one-line
// message (stderr).
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("the backup host's walkeeper exited with status %d", e.Code)
	}
	return e.Msg
}

// Remote is how this host reaches walkeeper on the backup host.
type Remote struct {
	// SSH is the ssh command's argv ("ssh", "-p", "2222", "walkeeper@backup").
	SSH []string
	// Command is the walkeeper invocation on the backup host, as its shell reads it
	// ("walkeeper", "/usr/local/bin/walkeeper --config /etc/walkeeper.conf").
	Command string
}

// DefaultCommand is Remote.Command when none is given: walkeeper on the ssh user's PATH
// with its default configuration.
const DefaultCommand = "walkeeper"

// New parses an --ssh value (split with sh's quoting rules) and a --remote-command
// value ("" is DefaultCommand).
func New(sshCmd, remoteCmd string) (Remote, error) {
	argv, err := shellword.Split(sshCmd)
	if err != nil {
		return Remote{}, fmt.Errorf("--ssh %q: %w", sshCmd, err)
	}
	if len(argv) == 0 {
		return Remote{}, fmt.Errorf("--ssh is empty")
	}
	if strings.TrimSpace(remoteCmd) == "" {
		remoteCmd = DefaultCommand
	}
	return Remote{SSH: argv, Command: remoteCmd}, nil
}

// NeedsSSH refuses a --remote-command without --ssh: it names the backup host's
// walkeeper, and without --ssh there is no backup host to run it on, so ignoring it
// would archive or fetch somewhere the DBA did not ask for.
func NeedsSSH(sshCmd, remoteCmd string) error {
	if remoteCmd != "" && sshCmd == "" {
		return fmt.Errorf("--remote-command %q needs --ssh (it names the walkeeper command on the backup host)", remoteCmd)
	}
	return nil
}

// command is the ssh process running walkeeper's args on the backup host. Each argument
// is quoted for the remote shell, which ssh hands the joined line to.
func (r Remote) command(ctx context.Context, args ...string) *exec.Cmd {
	line := r.Command
	for _, a := range args {
		line += " " + shellword.Quote(a)
	}
	argv := append(append([]string(nil), r.SSH[1:]...), line)
	return exec.CommandContext(ctx, r.SSH[0], argv...)
}

// String names the remote for messages: the ssh command line.
func (r Remote) String() string { return strings.Join(r.SSH, " ") }

// judge turns a finished ssh run into nil, ErrConnection (wrapped, with ssh's own
// message) or *ExitError (the remote walkeeper's status and message).
func (r Remote) judge(err error, stderr *bytes.Buffer) error {
	if err == nil {
		return nil
	}
	msg := oneLine(stderr.String())
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%w: %s: %v", ErrConnection, r, err)
	}
	if code := ee.ExitCode(); code >= 0 && code != 255 {
		return &ExitError{Code: code, Msg: msg}
	}
	if msg == "" {
		msg = ee.String()
	}
	return fmt.Errorf("%w: %s: %s", ErrConnection, r, msg)
}

// oneLine keeps a remote stderr to one line: the last non-empty one (walkeeper's own
// message, after any ssh warnings), without walkeeper's prefix.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return strings.TrimPrefix(l, "walkeeper: ")
		}
	}
	return ""
}

// Push sends the WAL file at path to the backup host's put-wal for server, with its
// size so that a body cut short is refused there. It returns once put-wal said the
// file is durable in incoming/. A lost connection is ErrConnection: PostgreSQL keeps
// the file and archives it again (put-wal takes the same content twice).
func (r Remote) Push(ctx context.Context, server, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("archive-wal %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("archive-wal %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("archive-wal %s: not a regular file", path)
	}
	name := fi.Name()
	cmd := r.command(ctx, "put-wal", "--size", fmt.Sprint(fi.Size()), server, name)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = f, &stderr
	if err := r.judge(cmd.Run(), &stderr); err != nil {
		return fmt.Errorf("archive-wal %s over ssh: %w", path, err)
	}
	return nil
}

// Fetch runs get-wal on the backup host for walName and writes what it prints to w.
// The caller keeps the bytes only when Fetch returns nil (get-wal exits 0 only once
// it has written the whole file). standby asks for no .partial (see get-wal --standby).
func (r Remote) Fetch(ctx context.Context, server, walName string, standby bool, w io.Writer) error {
	args := []string{"get-wal"}
	if standby {
		args = append(args, "--standby")
	}
	args = append(args, server, walName, "-")
	cmd := r.command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	return r.judge(cmd.Run(), &stderr)
}

// ErrNotArchived is FetchTo's error when the backup host's get-wal exits 1: the file
// is not archived there (or not served to this asker).
var ErrNotArchived = errors.New("not in the archive on the backup host")

// FetchAttempts is how often FetchTo tries when the connection fails, and fetchBackoff
// the pause before the second try (doubled after).
var (
	FetchAttempts = 3
	fetchBackoff  = time.Second
)

// FetchTo is Fetch into dest (%p): through a temporary name beside it, renamed only
// when get-wal on the backup host exited 0, so PostgreSQL never reads a partial file.
// A failed connection is tried again (FetchAttempts in all); its error wraps
// ErrConnection. Exit status 1 there is ErrNotArchived; another is *ExitError.
func (r Remote) FetchTo(ctx context.Context, server, walName string, standby bool, dest string) error {
	var err error
	wait := fetchBackoff
	for attempt := 1; ; attempt++ {
		err = r.fetchOnce(ctx, server, walName, standby, dest)
		if !errors.Is(err, ErrConnection) || attempt >= FetchAttempts || ctx.Err() != nil {
			break
		}
		time.Sleep(wait)
		wait *= 2
	}
	var ee *ExitError
	if errors.As(err, &ee) && ee.Code == 1 {
		return fmt.Errorf("%w (%s)", ErrNotArchived, ee.Msg)
	}
	return err
}

func (r Remote) fetchOnce(ctx context.Context, server, walName string, standby bool, dest string) error {
	tmp := fsutil.TempName(filepath.Dir(dest), filepath.Base(dest))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", dest, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = r.Fetch(ctx, server, walName, standby, bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// PushFile is Push for archive-wal --ssh's flags (New, then Push).
func PushFile(ctx context.Context, sshCmd, remoteCmd, server, path string) error {
	r, err := New(sshCmd, remoteCmd)
	if err != nil {
		return err
	}
	return r.Push(ctx, server, path)
}
