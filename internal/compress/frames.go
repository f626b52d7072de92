package compress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// maxParallelFrame bounds the content of one frame that NewFramesReader decodes whole:
// walkeeper's large files are frames of 4 MiB (basebackup's chunks); an object whose
// first frame is larger, or of unknown size, is decoded as a stream instead.
const maxParallelFrame = 64 << 20

// NewFramesReader decompresses an object made of independent zstd frames written back to
// back (a large file of a base backup: one frame per chunk) with up to n frames decoding
// at once, each whole (DecodeAll) on its own goroutine, and yields them in order. A
// stream decoder runs sequence execution on one goroutine whatever its concurrency, which
// made the largest relation file the critical path of restore and verify on every core
// count. An object not made so (other codecs, one big frame) is decoded as a stream on
// up to n goroutines (NewReaderN). The reader implements io.WriterTo, so io.Copy hands
// each decoded frame on without copying it.
func NewFramesReader(codec string, r io.Reader, n int) (io.ReadCloser, error) {
	if codec != Zstd || n < 2 {
		return NewReaderN(codec, r, n)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(zstd.HeaderMaxSize)
	var h zstd.Header
	if err := h.Decode(head); err != nil || h.Skippable || !h.HasFCS || h.FrameContentSize > maxParallelFrame {
		return NewReaderN(codec, br, n)
	}
	f := &framesReader{src: br, out: make(chan chan frameResult, n), done: make(chan struct{})}
	f.slots = make(chan struct{}, n)
	f.splitting.Add(1)
	go func() {
		defer f.splitting.Done()
		f.split()
	}()
	return f, nil
}

// frameResult is one decoded frame, or why it could not be.
type frameResult struct {
	data []byte
	err  error
}

type framesReader struct {
	src   *bufio.Reader
	out   chan chan frameResult // in frame order; each delivers one result
	slots chan struct{}         // frames being decoded or waiting to be read
	done  chan struct{}         // closed by Close: the splitter stops
	once  sync.Once
	// splitting is the splitter, the only reader of src: Close waits for it, so the
	// caller may close what src reads from as soon as Close returns.
	splitting sync.WaitGroup

	cur  []byte // the rest of the frame being read
	held []byte // cur's whole buffer, returned to the pool when read
	err  error  // sticky: the first failure, or io.EOF
}

// split reads the frames one by one and starts a decode for each; results are queued in
// order. It ends at the end of the object, on a failure (queued as the last result) or
// when the reader is closed.
func (f *framesReader) split() {
	defer close(f.out)
	for {
		select {
		case f.slots <- struct{}{}:
		case <-f.done:
			return
		}
		raw, err := readFrame(f.src)
		if err == io.EOF {
			<-f.slots
			return
		}
		res := make(chan frameResult, 1)
		select {
		case f.out <- res:
		case <-f.done:
			return
		}
		if err != nil {
			res <- frameResult{err: err}
			return
		}
		if raw == nil { // a skippable frame: nothing to decode
			res <- frameResult{}
			continue
		}
		go func() {
			var h zstd.Header
			size := 0
			if h.Decode(raw) == nil && h.HasFCS && h.FrameContentSize <= maxParallelFrame {
				size = int(h.FrameContentSize)
			}
			data, err := zstdDecoder().DecodeAll(raw, scratch.Get(size))
			res <- frameResult{data: data, err: err}
		}()
	}
}

// readFrame returns the next frame's bytes (nil for a skippable frame, which it skips),
// io.EOF at the end of the object. A frame is found by walking its block headers, as the
// format defines them (RFC 8878, 3.1.1).
func readFrame(br *bufio.Reader) ([]byte, error) {
	head, err := br.Peek(zstd.HeaderMaxSize)
	if len(head) == 0 && errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	var h zstd.Header
	if err := h.Decode(head); err != nil {
		return nil, fmt.Errorf("zstd frame header: %w", err)
	}
	if h.Skippable {
		if _, err := br.Discard(h.HeaderSize + int(h.SkippableSize)); err != nil {
			return nil, fmt.Errorf("skippable zstd frame: %w", unexpected(err))
		}
		return nil, nil
	}
	var buf bytes.Buffer
	if h.HasFCS {
		buf.Grow(int(min(h.FrameContentSize, maxParallelFrame)) / 4)
	}
	if _, err := io.CopyN(&buf, br, int64(h.HeaderSize)); err != nil {
		return nil, fmt.Errorf("zstd frame header: %w", unexpected(err))
	}
	for {
		var bh [3]byte
		if _, err := io.ReadFull(br, bh[:]); err != nil {
			return nil, fmt.Errorf("zstd block header: %w", unexpected(err))
		}
		buf.Write(bh[:])
		v := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
		size := int64(v >> 3)
		switch (v >> 1) & 3 {
		case 1: // RLE: one byte, repeated size times
			size = 1
		case 3:
			return nil, errors.New("zstd block of the reserved type")
		}
		if _, err := io.CopyN(&buf, br, size); err != nil {
			return nil, fmt.Errorf("zstd block: %w", unexpected(err))
		}
		if v&1 != 0 { // the last block
			break
		}
	}
	if h.HasCheckSum {
		if _, err := io.CopyN(&buf, br, 4); err != nil {
			return nil, fmt.Errorf("zstd frame checksum: %w", unexpected(err))
		}
	}
	return buf.Bytes(), nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// next makes the next decoded frame current; false at the end or on failure (f.err).
func (f *framesReader) next() bool {
	if f.held != nil {
		scratch.Put(f.held)
		f.held, f.cur = nil, nil
	}
	if f.err != nil {
		return false
	}
	res, ok := <-f.out
	if !ok {
		f.err = io.EOF
		return false
	}
	r := <-res
	<-f.slots
	if r.err != nil {
		f.err = r.err
		return false
	}
	f.held, f.cur = r.data, r.data
	return true
}

func (f *framesReader) Read(p []byte) (int, error) {
	for len(f.cur) == 0 {
		if !f.next() {
			return 0, f.err
		}
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	return n, nil
}

// WriteTo implements io.WriterTo: each decoded frame goes to w as it is.
func (f *framesReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(f.cur) > 0 {
			n, err := w.Write(f.cur)
			total += int64(n)
			f.cur = f.cur[n:]
			if err != nil {
				return total, err
			}
		}
		if !f.next() {
			if f.err == io.EOF {
				return total, nil
			}
			return total, f.err
		}
	}
}

// Close stops the splitter and waits until it no longer reads src (it finishes the
// frame it is reading); decodes under way finish into buffered channels and are
// collected by the garbage collector.
func (f *framesReader) Close() error {
	f.once.Do(func() { close(f.done) })
	f.splitting.Wait()
	if f.held != nil {
		scratch.Put(f.held)
		f.held, f.cur = nil, nil
	}
	return nil
}
