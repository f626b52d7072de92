package ingest

import (
	"fmt"
	"os"

	"github.com/walkeeper/walkeeper/internal/fsutil"
)

type spareFile struct {
	path string
	err  error
}

func zeroFile(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, uint64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("preallocate %s: %w", path, err)
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

// prepareSpare zero-fills the next segment's file in the background, so a segment
// switch does not stall synchronous commits for the time it takes to write 16 MiB.
func (r *Receiver) prepareSpare() {
	if r.spareInFlight {
		return
	}
	r.spareInFlight = true
	dir, size := r.cfg.StreamingDir, r.segSize
	go func() {
		p := fsutil.TempName(dir, "spare")
		err := zeroFile(p, size)
		r.spareDone <- spareFile{path: p, err: err}
	}()
}

func (r *Receiver) takeSpare() string {
	if !r.spareInFlight {
		return ""
	}
	select {
	case s := <-r.spareDone:
		r.spareInFlight = false
		if s.err != nil {
			r.log.Warn("preallocating the next segment", "err", s.err)
			return ""
		}
		if fi, err := os.Stat(s.path); err != nil || uint64(fi.Size()) != r.segSize {
			os.Remove(s.path)
			return ""
		}
		return s.path
	default:
		return ""
	}
}

func (r *Receiver) dropSpare() {
	if r.spareInFlight {
		s := <-r.spareDone
		r.spareInFlight = false
		os.Remove(s.path)
	}
}
