package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

// RescanInterval is how often incoming/ is listed even without events: a safety net for
// events lost in ways fsnotify cannot report.
var RescanInterval = 30 * time.Second

// retryDelay is how long a file waits after an operational error (disk full, index
// unavailable) before it is tried again; it stays in incoming/ meanwhile.
var retryDelay = 5 * time.Second

// Run watches incoming/ until ctx ends, feeding every file to Process on the server's
// workers. Files in flight when ctx ends are finished before Run returns. onResult, if
// not nil, is called for every processed file (from worker goroutines).
func (p *Pipeline) Run(ctx context.Context, onResult func(Result)) error {
	if err := fsutil.MkdirAll(p.srv.IncomingDir, 0o700); err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", p.srv.IncomingDir, err)
	}
	defer w.Close()
	if err := w.Add(p.srv.IncomingDir); err != nil {
		return fmt.Errorf("watch %s: %w", p.srv.IncomingDir, err)
	}

	q := newQueue()
	work := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range p.srv.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				base, ok := q.pop()
				if !ok {
					return
				}
				res, err := p.Process(work, base)
				q.done(base)
				switch {
				case err != nil:
					p.log.Error("ingest failed; the file stays in incoming/ and will be retried", "file", base, "err", err)
					q.later(base, retryDelay)
				case res.Outcome == Pending:
					d := max(res.Requeue, 50*time.Millisecond)
					q.later(base, d)
				case res.Outcome == Busy:
					q.later(base, 100*time.Millisecond)
				default:
					if onResult != nil && res.Outcome != Gone {
						onResult(res)
					}
				}
			}
		}()
	}

	scan := func() {
		entries, err := os.ReadDir(p.srv.IncomingDir)
		if err != nil {
			p.log.Error("scan incoming", "dir", p.srv.IncomingDir, "err", err)
			return
		}
		for _, e := range entries {
			if !fsutil.IsTemp(e.Name()) && !e.IsDir() {
				q.push(e.Name())
			}
		}
	}
	scan()
	tick := time.NewTicker(RescanInterval)
	defer tick.Stop()
	defer func() {
		q.close()
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			base := ev.Name[len(p.srv.IncomingDir)+1:]
			if fsutil.IsTemp(base) {
				// A temporary name renamed away: its writer published the finished file.
				if ev.Op&fsnotify.Rename != 0 {
					if target := fsutil.TempTarget(base); target != "" {
						p.notePublished(target)
					}
				}
				continue
			}
			if ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Chmod) == 0 {
				continue
			}
			q.push(base)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watcher closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				p.log.Warn("event overflow; rescanning incoming", "dir", p.srv.IncomingDir)
				scan()
				continue
			}
			p.log.Error("watch", "dir", p.srv.IncomingDir, "err", err)
		case <-tick.C:
			scan()
			p.sweepTemps()
		}
	}
}

// queue is a FIFO of names in which a name waits at most once, with delayed re-pushes.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	items   []string
	queued  map[string]bool
	running map[string]bool
	dirty   map[string]bool // pushed while running: run again after
	closed  bool
	timers  map[string]*time.Timer
}

func newQueue() *queue {
	q := &queue{queued: map[string]bool{}, running: map[string]bool{}, dirty: map[string]bool{}, timers: map[string]*time.Timer{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if q.running[name] {
		q.dirty[name] = true
		return
	}
	if q.queued[name] {
		return
	}
	if t, ok := q.timers[name]; ok {
		t.Stop()
		delete(q.timers, name)
	}
	q.queued[name] = true
	q.items = append(q.items, name)
	q.cond.Signal()
}

func (q *queue) later(name string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.queued[name] {
		return
	}
	if _, ok := q.timers[name]; ok {
		return
	}
	q.timers[name] = time.AfterFunc(d, func() {
		q.mu.Lock()
		delete(q.timers, name)
		q.mu.Unlock()
		q.push(name)
	})
}

func (q *queue) pop() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	name := q.items[0]
	q.items = q.items[1:]
	delete(q.queued, name)
	q.running[name] = true
	return name, true
}

func (q *queue) done(name string) {
	q.mu.Lock()
	delete(q.running, name)
	again := q.dirty[name]
	delete(q.dirty, name)
	q.mu.Unlock()
	if again {
		q.push(name)
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	for _, t := range q.timers {
		t.Stop()
	}
	q.cond.Broadcast()
	q.mu.Unlock()
}

// failpoint kills the process at a named point of the pipeline when
// WALKEEPER_FAILPOINT names it: the crash tests of invariant 1 use it to stop the daemon
// exactly between two durable steps, as a power cut would. The points of a new file,
// each a distinct crash state: after-compress (nothing stored), after-write (archived,
// not indexed), after-index (indexed, still in incoming/), after-unlink (gone from
// incoming/, result not yet reported); duplicate-before-unlink for a file already
// archived.
func failpoint(name string) {
	if fp := failpointName; fp != "" && fp == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

var failpointName = os.Getenv("WALKEEPER_FAILPOINT")

// sweepTemps removes temporary files in incoming/ that no writer touched for
// StaleTempAge while the daemon runs: an archive-wal killed mid-copy leaves one (as
// large as what it copied) that nobody renames, and a daemon that runs for months must
// not keep it until its next start. A live writer keeps its file's mtime fresh, and
// one that lost its file fails at the rename, so PostgreSQL archives the file again.
func (p *Pipeline) sweepTemps() {
	removed, err := fsutil.RemoveStaleTemps(p.srv.IncomingDir, StaleTempAge)
	if err != nil {
		p.log.Warn("stale temporary files", "dir", p.srv.IncomingDir, "err", err)
	}
	if len(removed) > 0 {
		p.log.Info("removed temporary files of interrupted writes", "count", len(removed), "files", removed)
	}
}
