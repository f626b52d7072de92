package ingest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/segments"
)

// write puts WAL at its place in the segment files, completing segments as they fill.
func (r *Receiver) write(start segments.LSN, data []byte) error {
	if start != r.writePos {
		return fmt.Errorf("received WAL at %s, expected %s", start, r.writePos)
	}
	for len(data) > 0 {
		segNo := segments.SegNoOf(r.writePos, r.segSize)
		off := uint64(r.writePos) % r.segSize
		if r.segFile == nil || r.segFileNo != segNo || r.segFileTLI != r.timeline {
			if err := r.openSegment(r.timeline, segNo); err != nil {
				return err
			}
		}
		n := min(uint64(len(data)), r.segSize-off)
		if _, err := r.segFile.WriteAt(data[:n], int64(off)); err != nil {
			return fmt.Errorf("write %s: %w", r.segFile.Name(), err)
		}
		r.writePos += segments.LSN(n)
		data = data[n:]
		if off+n == r.segSize {
			if err := r.completeSegment(""); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush fsyncs what was written (fdatasync: the file is preallocated, so its size never
// changes and only the data needs to reach the disk).
func (r *Receiver) flush() error {
	if r.segFile != nil && r.writePos > r.flushPos {
		if err := unix.Fdatasync(int(r.segFile.Fd())); err != nil {
			return fmt.Errorf("fsync %s: %w", r.segFile.Name(), err)
		}
	}
	r.flushPos = r.writePos
	return nil
}

func (r *Receiver) partialPath(tli uint32, segNo uint64) string {
	return filepath.Join(r.cfg.StreamingDir, segments.SegmentFileName(tli, segNo, r.segSize)+".partial")
}

// openSegment opens (or creates, zero-filled to the segment size like pg_receivewal)
// the .partial of a segment. A new file appears under its name only once its zeros are
// on disk, so a .partial in streaming/ is always full-size.
func (r *Receiver) openSegment(tli uint32, segNo uint64) error {
	r.closeFile()
	path := r.partialPath(tli, segNo)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		tmp := r.takeSpare()
		if tmp == "" {
			tmp = fsutil.TempName(r.cfg.StreamingDir, filepath.Base(path))
			if err := zeroFile(tmp, r.segSize); err != nil {
				return err
			}
		}
		if err := fsutil.RenameDurable(tmp, path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("create %s: %w", path, err)
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if uint64(fi.Size()) < r.segSize {
		if err := f.Truncate(int64(r.segSize)); err != nil {
			f.Close()
			return fmt.Errorf("extend %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("fsync %s: %w", path, err)
		}
	}
	r.segFile, r.segFileNo, r.segFileTLI = f, segNo, tli
	r.prepareSpare()
	r.update(func(s *ReceiverState) { s.Segment = segments.SegmentFileName(tli, segNo, r.segSize) }, false)
	return nil
}

func (r *Receiver) closeFile() {
	if r.segFile != nil {
		_ = r.flush()
		r.segFile.Close()
		r.segFile = nil
	}
}

// completeSegment fsyncs the open file and renames it durably into incoming/ as the
// segment's name plus suffix ("" for a full segment, ".partial" for the last piece of a
// timeline), where the pipeline archives it.
func (r *Receiver) completeSegment(suffix string) error {
	if r.segFile == nil {
		return nil
	}
	f := r.segFile
	r.segFile = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	f.Close()
	name := segments.SegmentFileName(r.segFileTLI, r.segFileNo, r.segSize) + suffix
	// archive_command may have delivered the same bytes first (left alone then);
	// other bytes never replace a waiting file (invariant 2).
	if err := HandOver(r.cfg.IncomingDir, name, f.Name()); err != nil {
		return fmt.Errorf("hand %s to incoming: %w", name, err)
	}
	if suffix == "" {
		r.flushPos = r.writePos
	}
	r.log.Debug("segment streamed", "file", name)
	return nil
}

// partials lists the .partial files in streaming/, oldest position first.
func (r *Receiver) partials() ([]segments.Name, error) {
	ents, err := os.ReadDir(r.cfg.StreamingDir)
	if err != nil {
		return nil, err
	}
	var out []segments.Name
	for _, e := range ents {
		n, err := segments.Parse(e.Name())
		if err != nil || n.Kind != segments.KindPartial || n.ValidFor(r.segSize) != nil {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].StartLSN(r.segSize), out[j].StartLSN(r.segSize)
		if a != b {
			return a < b
		}
		return out[i].Timeline < out[j].Timeline
	})
	return out, nil
}

func (r *Receiver) discardPartials() error {
	ps, err := r.partials()
	if err != nil {
		return err
	}
	for _, n := range ps {
		r.log.Warn("--reset: discarding streamed partial segment", "file", n.Raw)
		if err := fsutil.RemoveDurable(filepath.Join(r.cfg.StreamingDir, n.Raw)); err != nil {
			return err
		}
	}
	r.positionKnown = false
	return nil
}

// cleanTemps removes temporary files a killed receiver left (a half-zeroed spare).
func (r *Receiver) cleanTemps() {
	ents, err := os.ReadDir(r.cfg.StreamingDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if fsutil.IsTemp(e.Name()) {
			os.Remove(filepath.Join(r.cfg.StreamingDir, e.Name()))
		}
	}
}
