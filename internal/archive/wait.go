package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// ErrWaitTimeout is WaitArchived's error when the file did not arrive in time.
var ErrWaitTimeout = errors.New("not archived in time")

// Place is where a WAL file that is archived (invariant 9) was found.
type Place int

const (
	// InArchive is wals/: compressed, fsynced and indexed by the daemon.
	InArchive Place = iota + 1
	// InIncoming is a valid copy waiting in incoming/ that no daemon has moved yet:
	// archived for PostgreSQL all the same (get-wal and restore read it there).
	InIncoming
)

// WaitOptions says how WaitDurable waits.
type WaitOptions struct {
	Timeout, Poll time.Duration
	// IncomingDir, when set, is the server's incoming/.
	IncomingDir string
	// AcceptWaiting is asked, when a copy of the file waits in IncomingDir and the
	// archive does not hold it yet, whether a valid waiting copy ends the wait: true
	// when no daemon runs that would move it (the file is archived in invariant 9's
	// sense and waiting longer proves nothing), false when the caller wants to see the
	// daemon archive it. nil means false.
	AcceptWaiting func() bool
	// Identity, when its SystemID is set, validates a waiting copy while the server
	// has no stored identity yet (FindPendingAs).
	Identity record.Identity
}

// WaitArchived polls the archive every poll until WAL file name of server is archived
// (Find) and returns nil then; after timeout it returns an error wrapping
// ErrWaitTimeout. Any other error of the archive ends the wait at once, as does ctx.
func WaitArchived(ctx context.Context, store storage.Store, server, name string, timeout, poll time.Duration) error {
	_, err := WaitDurable(ctx, store, server, name, WaitOptions{Timeout: timeout, Poll: poll})
	return err
}

// WaitDurable is WaitArchived that also ends the wait on a valid copy waiting in
// o.IncomingDir when o.AcceptWaiting says so (switch-wal --wait, a backup's WAL wait
// with the daemon down), and says where the file was found.
func WaitDurable(ctx context.Context, store storage.Store, server, name string, o WaitOptions) (Place, error) {
	deadline := time.Now().Add(o.Timeout)
	for {
		p, err := Locate(ctx, store, server, name, o)
		if err != nil || p != 0 {
			return p, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: %s %w after %s", server, name, ErrWaitTimeout, o.Timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// Locate says where WAL file name of server is archived: InArchive, InIncoming (only
// when o.AcceptWaiting, asked only when a copy waits in o.IncomingDir, returns true,
// and a valid copy waits: FindPendingAs), or 0 when neither. Reading a waiting copy
// costs a file's read, so the cheap checks come first. o's Timeout and Poll are unused.
func Locate(ctx context.Context, store storage.Store, server, name string, o WaitOptions) (Place, error) {
	_, _, err := Find(ctx, store, server, name)
	if err == nil {
		return InArchive, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return 0, err
	}
	if o.IncomingDir == "" || o.AcceptWaiting == nil || len(Copies(o.IncomingDir, name)) == 0 || !o.AcceptWaiting() {
		return 0, nil
	}
	_, err = FindPendingAs(ctx, store, server, o.IncomingDir, name, o.Identity)
	switch {
	case err == nil:
		return InIncoming, nil
	case errors.Is(err, storage.ErrNotFound):
		// Archived and removed from incoming/ meanwhile, or not valid: look again.
		if _, _, err := Find(ctx, store, server, name); err == nil {
			return InArchive, nil
		}
		return 0, nil
	}
	return 0, err
}
