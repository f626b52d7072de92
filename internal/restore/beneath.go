package restore

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Restore creates everything relative to an open root directory and never follows a
// symbolic link on the way (invariant 8): a link planted in the target, or one a
// crafted backup tried to make, cannot carry a write outside DEST or the tablespace
// targets. Linux 5.6+ resolves the whole path in the kernel (openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS); older kernels walk it one component at a time
// with O_NOFOLLOW.

// noOpenat2 forces the component walk (set when the kernel lacks openat2, and by tests).
var noOpenat2 atomic.Bool

// linkRefused is the one-line error for a path that would go through a link.
func linkRefused(root, rel string, err error) error {
	return fmt.Errorf("restore: %s: refused, a component of the path is a symbolic link or leaves %s (restore never follows links): %w", path.Join(root, rel), root, err)
}

// openBeneath opens rel (slash-separated, clean, relative) under the directory dirfd
// without following any link, the last component included.
func openBeneath(dirfd int, root, rel string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC
	if !noOpenat2.Load() {
		// RESOLVE_NO_SYMLINKS covers the last component too (ELOOP).
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
			// No openat2 (before 5.6, or a seccomp filter that does not know it): the
			// walk below answers, with the real error if there is one.
			noOpenat2.Store(true)
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV):
			return -1, linkRefused(root, rel, err)
		default:
			return -1, &os.PathError{Op: "open", Path: path.Join(root, rel), Err: err}
		}
	}
	parts := strings.Split(rel, "/")
	cur := dirfd
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	for i, p := range parts {
		if p == ".." || p == "" || p == "." {
			return -1, linkRefused(root, rel, unix.EXDEV)
		}
		last := i == len(parts)-1
		fl, m := unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(0)
		if last {
			fl, m = flags|unix.O_NOFOLLOW, mode
		}
		fd, err := unix.Openat(cur, p, fl, m)
		if err != nil {
			var st unix.Stat_t
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) &&
				unix.Fstatat(cur, p, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return -1, linkRefused(root, rel, err)
			}
			return -1, &os.PathError{Op: "open", Path: path.Join(root, rel), Err: err}
		}
		if last {
			return fd, nil
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = fd
	}
	return -1, linkRefused(root, rel, unix.EINVAL)
}

// parentBeneath opens the directory holding rel (O_PATH) and returns it with rel's last
// component; the caller closes the fd unless it is dirfd.
func parentBeneath(dirfd int, root, rel string) (int, string, error) {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return dirfd, base, nil
	}
	fd, err := openBeneath(dirfd, root, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	return fd, base, err
}

// mkdirBeneath creates directory rel under dirfd (an existing directory is reused, a
// link in its place refused) and returns it open for fchmod/fchown.
func mkdirBeneath(dirfd int, root, rel string, mode uint32) (*os.File, error) {
	pfd, base, err := parentBeneath(dirfd, root, rel)
	if err != nil {
		return nil, err
	}
	if pfd != dirfd {
		defer unix.Close(pfd)
	}
	if err := unix.Mkdirat(pfd, base, mode); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &os.PathError{Op: "mkdir", Path: path.Join(root, rel), Err: err}
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, linkRefused(root, rel, err)
		}
		return nil, &os.PathError{Op: "open", Path: path.Join(root, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), path.Join(root, rel)), nil
}

// symlinkBeneath creates the link rel -> target under dirfd, owned by owner if set.
func symlinkBeneath(dirfd int, root, rel, target string, owner *Owner) error {
	pfd, base, err := parentBeneath(dirfd, root, rel)
	if err != nil {
		return err
	}
	if pfd != dirfd {
		defer unix.Close(pfd)
	}
	if err := unix.Symlinkat(target, pfd, base); err != nil {
		return &os.LinkError{Op: "symlink", Old: target, New: path.Join(root, rel), Err: err}
	}
	if owner != nil {
		if err := unix.Fchownat(pfd, base, owner.UID, owner.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", path.Join(root, rel), err)
		}
	}
	return nil
}

// createBeneath creates (or truncates) the regular file rel under dirfd for writing.
func createBeneath(dirfd int, root, rel string, mode uint32) (*os.File, error) {
	fd, err := openBeneath(dirfd, root, rel, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, mode)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path.Join(root, rel)), nil
}
