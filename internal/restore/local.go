package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/progress"
)

// localSink writes items on this host with a pool of workers and no per-file fsync:
// one syncfs per filesystem at the end, then an fsync of every directory created,
// which makes the whole tree durable at a fraction of the cost of fsyncing each file.
type localSink struct {
	owner *Owner
	dirs  []string
}

// checkTarget describes why dir cannot be restored into, or returns nil. A running
// postmaster is refused even with --force.
func checkTarget(dir string, force bool) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return usage("%s exists and is not a directory", dir)
	}
	if pid := postmasterPID(filepath.Join(dir, "postmaster.pid")); pid > 0 {
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			return usage("%s holds a running PostgreSQL (postmaster.pid: pid %d): stop it first", dir, pid)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 && force {
		return clearable(dir)
	}
	if len(ents) > 0 && !force {
		names := make([]string, 0, 3)
		for i := 0; i < len(ents) && i < 3; i++ {
			names = append(names, ents[i].Name())
		}
		return usage("%s is not empty (%d entries: %s...): restore never overwrites without --force", dir, len(ents), strings.Join(names, ", "))
	}
	return nil
}

// clearable walks what --force would remove, before anything is removed: a directory
// that cannot be read (another user's cluster, invisible in /proc to a non-root caller)
// or a postmaster.pid of a live process anywhere below would otherwise be found only
// halfway through the removal, after the entries before it were gone.
func clearable(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return usage("--force: %s cannot be removed (%v): nothing was removed", p, err)
		}
		if d.Name() == "postmaster.pid" && d.Type().IsRegular() {
			if pid := postmasterPID(p); pid > 0 {
				if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
					return usage("--force: %s holds a running PostgreSQL (postmaster.pid: pid %d): stop it first; nothing was removed", filepath.Dir(p), pid)
				}
			}
		}
		return nil
	})
}

func postmasterPID(p string) int {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

func (s *localSink) prepare(ctx context.Context, roots []string, force bool) error {
	for _, r := range roots {
		if err := checkTarget(r, force); err != nil {
			return err
		}
	}
	for _, r := range roots {
		ents, err := os.ReadDir(r)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(r, e.Name())); err != nil {
				return fmt.Errorf("--force: clearing %s: %w", r, err)
			}
		}
		// Directories MkdirAll creates above the root belong to the owner too, or
		// PostgreSQL could not reach a tablespace placed under a new path.
		var created []string
		for d := r; ; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
				break
			}
			created = append(created, d)
		}
		if err := fsutil.MkdirAll(r, 0o700); err != nil {
			return err
		}
		for _, d := range created {
			if err := s.chown(d); err != nil {
				return err
			}
		}
		if err := os.Chmod(r, 0o700); err != nil {
			return err
		}
		if err := s.chown(r); err != nil {
			return err
		}
		s.dirs = append(s.dirs, r, filepath.Dir(r))
	}
	return nil
}

func (s *localSink) chown(p string) error {
	if s.owner == nil {
		return nil
	}
	if err := os.Lchown(p, s.owner.UID, s.owner.GID); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return nil
}

// write creates the directories and links, then runs the jobs on workers goroutines,
// biggest first: each job reads its stored object once (a bundle is decoded once for
// all its files) and writes its files. Everything is created relative to an open root
// without following links (beneath.go).
func (s *localSink) write(ctx context.Context, items []item, jobs []job, workers int, progress func(int64)) error {
	roots := map[string]int{}
	defer func() {
		for _, fd := range roots {
			unix.Close(fd)
		}
	}()
	rootFD := func(root string) (int, error) {
		if fd, ok := roots[root]; ok {
			return fd, nil
		}
		fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("restore: open %s: %w", root, err)
		}
		roots[root] = fd
		return fd, nil
	}
	for _, j := range jobs {
		for _, it := range j.files {
			if _, err := rootFD(it.root); err != nil {
				return err
			}
		}
	}
	for _, it := range items {
		fd, err := rootFD(it.root)
		if err != nil {
			return err
		}
		switch it.kind {
		case 'd':
			d, err := mkdirBeneath(fd, it.root, it.rel, uint32(it.mode))
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			err = d.Chmod(it.mode)
			if err == nil && s.owner != nil {
				err = d.Chown(s.owner.UID, s.owner.GID)
			}
			d.Close()
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			s.dirs = append(s.dirs, it.path())
		case 'l':
			if err := symlinkBeneath(fd, it.root, it.rel, it.link, s.owner); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
		}
	}
	return runJobs(ctx, jobs, workers, func() func(item, io.Reader) error {
		buf := make([]byte, 1<<20)
		return func(it item, r io.Reader) error { return s.writeFile(it, roots[it.root], r, buf, progress) }
	})
}

// writeFile writes one file from r under the root open as rootfd.
func (s *localSink) writeFile(it item, rootfd int, r io.Reader, buf []byte, progressFn func(int64)) error {
	if it.transform != nil {
		orig, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("restore %s: %w", it.rel, err)
		}
		data, err := it.transform(orig)
		if err != nil {
			return fmt.Errorf("restore %s: %w", it.rel, err)
		}
		r = bytes.NewReader(data)
	}
	f, err := createBeneath(rootfd, it.root, it.rel, uint32(it.mode))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	n, err := io.CopyBuffer(progress.Writer{W: f, Fn: progressFn}, r, buf)
	if err == nil && it.size >= 0 && n != it.size {
		err = fmt.Errorf("got %d bytes, backup says %d", n, it.size)
	}
	if err == nil {
		err = f.Chmod(it.mode)
	}
	if err == nil && !it.mtime.IsZero() {
		tv := unix.NsecToTimeval(it.mtime.UnixNano())
		_ = unix.Futimes(int(f.Fd()), []unix.Timeval{tv, tv})
	}
	if err == nil && s.owner != nil {
		err = f.Chown(s.owner.UID, s.owner.GID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", it.rel, err)
	}
	return nil
}

// finish makes the restored tree durable: syncfs on each filesystem holding a root,
// then every directory created (entries), deepest first.
func (s *localSink) finish(ctx context.Context, roots []string) error {
	for _, r := range roots {
		f, err := os.Open(r)
		if err != nil {
			return err
		}
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", r, err)
		}
	}
	dirs := append([]string(nil), s.dirs...)
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}
