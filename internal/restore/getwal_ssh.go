package restore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/remotewal"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// GetWALSSHCommand is the restore_command of a cluster restored on a host that has the
// walkeeper binary (bin) but not the archive: get-wal fetches over sshCmd from
// remoteCmd (the backup host's walkeeper invocation, "" for walkeeper on its PATH).
// With prefetch, the same shell fast path as GetWALCommand answers segments the
// prefetcher already placed in pg_wal without starting anything.
func GetWALSSHCommand(bin, sshCmd, remoteCmd, server string, prefetch int) string {
	cmd := ShellQuote(bin) + " get-wal --ssh " + ShellQuote(sshCmd)
	if remoteCmd != "" {
		cmd += " --remote-command " + ShellQuote(remoteCmd)
	}
	if prefetch <= 0 {
		return cmd + " " + ShellQuote(server) + " %f %p"
	}
	return prefetchFastPath() + cmd + " --prefetch " + strconv.Itoa(prefetch) + " " + ShellQuote(server) + " %f %p"
}

// SSHGet is get-wal --ssh on a host without the archive: the file comes from the
// backup host's get-wal, and the prefetcher (with Prefetch) keeps one ssh session to
// its send-wal.
type SSHGet struct {
	SSH, RemoteCommand, Server string
	Prefetch                   int
	Spool                      string
	Standby                    bool // the asker says it gets no .partial (else judged from dest)
}

// GetSSH fetches walName into dest (or StdoutDest). An error that is not "no such
// file" (the backup host's exit 1) but a connection that failed every attempt, or the
// backup host's walkeeper failing otherwise, is marked fatal for ExitStatus:
// PostgreSQL must not take it for the end of the archive (it would end recovery short
// of the WAL). A standby is never fatal: it retries.
func GetSSH(ctx context.Context, g SSHGet, walName, dest string) (from string, err error) {
	r, err := remotewal.New(g.SSH, g.RemoteCommand)
	if err != nil {
		return "", usage("%v", err)
	}
	standby := g.Standby || dest != StdoutDest && RefusesPartial(dest)
	o := GetOptions{Prefetch: g.Prefetch, SpoolDir: g.Spool, NoPartial: standby,
		Remote: func(ctx context.Context, walName, dest string) error {
			if dest == StdoutDest {
				return r.Fetch(ctx, g.Server, walName, standby, stdout)
			}
			err := r.FetchTo(ctx, g.Server, walName, standby, dest)
			if errors.Is(err, remotewal.ErrNotArchived) {
				return fmt.Errorf("%w: %w", ErrNotArchived, err)
			}
			return err
		}}
	if g.Prefetch > 0 {
		o.StartPrefetcher = func(spool string) error {
			bin, err := fsutil.Executable()
			if err != nil {
				return err
			}
			return StartDetached(bin, "prefetch-wal", "--ssh", g.SSH, "--remote-command", r.Command, "--jobs", "2", g.Server, spool)
		}
	}
	from, err = Get(ctx, nil, g.Server, walName, dest, o)
	var ee *remotewal.ExitError
	if !standby && (errors.Is(err, remotewal.ErrConnection) || errors.As(err, &ee) && ee.Code != 1) {
		err = fatalError{err}
	}
	return from, err
}

// fatalError marks an error that must stop recovery (ExitFatal) whatever Fatal says.
type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// SSHSource opens a prefetcher's session to the backup host's send-wal (prefetch-wal
// --ssh).
func SSHSource(sshCmd, remoteCmd, server string) (func(context.Context) (WALSource, func(), error), error) {
	r, err := remotewal.New(sshCmd, remoteCmd)
	if err != nil {
		return nil, usage("%v", err)
	}
	return func(ctx context.Context) (WALSource, func(), error) {
		s, err := r.Open(ctx, server)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { _ = s.Close() }, nil
	}, nil
}

// ExitFatal is get-wal's exit status when it cannot say whether a file is archived
// (a damaged archived copy, a read or write error, a backup host that cannot be
// reached): PostgreSQL takes a restore_command status above 125 as fatal and stops
// recovery, where a plain failure would read as the end of the archive and end
// recovery (and promote) short of WAL that is archived. Started again once the cause
// is mended, the cluster goes on from its last restartpoint and loses nothing.
const ExitFatal = 255

// fatal reports whether get-wal's outcome err for dest must stop recovery (ExitFatal):
// any error but a file that is not archived (or not served to this asker) and bad
// usage, unless the asker is a standby (standby, or standby.signal in dest's data
// directory), which retries a plain failure after wal_retrieve_retry_interval and
// never ends recovery by itself.
func fatal(err error, dest string, standby bool) bool {
	if errors.As(err, new(fatalError)) {
		return true
	}
	if err == nil || IsUsage(err) || errors.Is(err, ErrNotArchived) {
		return false
	}
	return !standby && !inStandbyMode(dest)
}

// ExitStatus is get-wal's exit status for PostgreSQL and its message, for a file asked
// at dest by a standby or not: 1 for a file not archived (or not served to this
// asker), 1 and no message for a segment the prefetcher placed in pg_wal (PostgreSQL
// reads it there), 0 when from is a source, 2 for a usage error, ExitFatal for an
// error that must stop recovery (see fatal), else 1 with err.
func ExitStatus(server, walName, dest, from string, standby bool, err error) (int, error) {
	if fatal(err, dest, standby) {
		return ExitFatal, err
	}
	for _, e := range []error{ErrOnlyPartial, ErrPartialNotFinal} {
		if errors.Is(err, e) {
			return 1, fmt.Errorf("%s: %s is %w", server, walName, e)
		}
	}
	switch {
	case IsUsage(err):
		return 2, err
	case errors.Is(err, ErrNotArchived):
		return 1, fmt.Errorf("%s: %s is not in the archive", server, walName)
	case err != nil:
		return 1, err
	case from == FromPGWAL:
		return 1, nil
	}
	return 0, nil
}

// StoreOpener is PrefetchFrom's opener for server's archive in store.
func StoreOpener(store storage.Store, server string) func(context.Context) (WALSource, func(), error) {
	return func(context.Context) (WALSource, func(), error) {
		return StoreSource{Store: store, Server: server}, func() {}, nil
	}
}
