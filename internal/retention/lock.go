package retention

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// Lock is a held per-server retention lock.
type Lock struct{ l *fsutil.Lock }

// LockName is the retention lock file in <home>/<server>/.
const LockName = "retention.lock"

// LockServer takes the server's retention lock, waiting up to ctx's deadline:
// retention runs (CLI and daemon), `keep` and `delete` are serialised, so a backup
// pinned while a plan is applied cannot be deleted by that plan, and a deletion by
// hand never runs between a plan's minimum_redundancy count and its deletions.
func LockServer(ctx context.Context, serverDir string) (*Lock, error) {
	if err := fsutil.MkdirAll(serverDir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(serverDir, LockName)
	l, err := fsutil.WaitLock(ctx, p)
	var held *fsutil.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("retention lock %s: another retention run, keep or delete holds it (%s): %w", p, held.Holder, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("retention lock %s: %w", p, err)
	}
	return &Lock{l: l}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l != nil {
		l.l.Unlock()
	}
}
