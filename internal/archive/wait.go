package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// ErrWaitTimeout is WaitArchived's error when the file did not arrive in time.
var ErrWaitTimeout = errors.New("not archived in time")

// WaitArchived polls the archive every poll until WAL file name of server is archived
// (Find) and returns nil then; after timeout it returns an error wrapping
// ErrWaitTimeout (switch-wal --wait). Any other error of the archive ends the wait at
// once, as does ctx.
func WaitArchived(ctx context.Context, store storage.Store, server, name string, timeout, poll time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, _, err := Find(ctx, store, server, name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s %w after %s", server, name, ErrWaitTimeout, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
