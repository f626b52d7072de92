package remotewal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// The session protocol between get-wal's prefetcher on a restored host (Session) and
// send-wal on the backup host (Serve), over one ssh connection for the prefetcher's
// whole life: the per-segment cost is the transfer, not an ssh handshake. Requests are
// lines; the answers come in request order, so a client may send several requests
// before reading (pipelining hides the round trip):
//
//	segsize\n             -> ok <wal_segment_size>\n      | error <message>\n
//	get <walname>\n       -> ok <codec> <length>\n<bytes> | missing\n | error <message>\n
//
// The bytes are the archived object as stored (compressed): the link carries a fourth
// of a segment or less, and the restored host, which has the CPU to spare ahead of
// replay, decompresses.

// maxObject bounds an answer's length: an archived segment is at most the largest
// segment size (stored uncompressed); a client never allocates more on a peer's word.
const maxObject = segments.MaxSegSize + 1<<20

// Serve answers a session's requests from in with server's archive in store, until in
// ends. A request for a file the archive lacks is answered "missing"; a malformed one
// ends the session with an error.
func Serve(ctx context.Context, store storage.Store, server string, in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	bw := bufio.NewWriterSize(out, 1<<20)
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			return bw.Flush()
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("send-wal: read request: %w", err)
		}
		verb, arg, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		switch verb {
		case "segsize":
			id, err := archive.LoadIdentity(ctx, store, server)
			if err != nil || !segments.ValidSegSize(id.SegSize) {
				fmt.Fprintf(bw, "error %s: no WAL segment size known in the archive\n", server)
			} else {
				fmt.Fprintf(bw, "ok %d\n", id.SegSize)
			}
		case "get":
			if err := serveOne(ctx, store, server, arg, bw); err != nil {
				return err
			}
		default:
			return fmt.Errorf("send-wal: unknown request %q", verb)
		}
		// Flush when no further request is already waiting: answers to a pipelined
		// batch go out in large writes, the last one at once.
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("send-wal: write: %w", err)
			}
		}
	}
}

func serveOne(ctx context.Context, store storage.Store, server, name string, w io.Writer) error {
	if _, err := segments.Parse(name); err != nil {
		_, werr := fmt.Fprintf(w, "error %s\n", oneLine(err.Error()))
		return werr
	}
	key, codec, err := archive.Find(ctx, store, server, name)
	if errors.Is(err, storage.ErrNotFound) {
		_, werr := io.WriteString(w, "missing\n")
		return werr
	}
	var raw []byte
	if err == nil {
		raw, err = readObject(ctx, store, key)
	}
	if err != nil {
		_, werr := fmt.Fprintf(w, "error %s\n", oneLine(err.Error()))
		return werr
	}
	if _, err := fmt.Fprintf(w, "ok %s %d\n", codec, len(raw)); err != nil {
		return err
	}
	_, err = w.Write(raw)
	return err
}

func readObject(ctx context.Context, store storage.Store, key string) ([]byte, error) {
	r, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, maxObject))
}

// Session is a prefetcher's connection to send-wal on the backup host. Fetch may be
// called from several goroutines: requests are sent at once and answered in order.
type Session struct {
	remote Remote
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	r      *bufio.Reader
	stderr bytes.Buffer

	mu      sync.Mutex // orders a request's write with its place in waiting
	waiting chan pending
	readMu  sync.Mutex // one reader of the stream at a time
	failed  error
}

// pending is a request sent and not answered yet.
type pending struct {
	c    chan answer
	body bool // "ok" carries a codec, a length and the bytes (get), else a value (segsize)
}

type answer struct {
	codec string
	raw   []byte
	err   error
}

// Open starts send-wal for server on the backup host.
func (r Remote) Open(ctx context.Context, server string) (*Session, error) {
	s := &Session{remote: r, waiting: make(chan pending, 256)}
	s.cmd = r.command(ctx, "send-wal", server)
	s.cmd.Stderr = &s.stderr
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.r = bufioReader(out)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConnection, r, err)
	}
	return s, nil
}

// Close ends the session and waits for ssh.
func (s *Session) Close() error {
	s.stdin.Close()
	err := s.cmd.Wait()
	if err != nil && s.failed == nil {
		return s.remote.judge(err, &s.stderr)
	}
	return nil
}

// request sends one request line and returns the channel its answer comes on.
func (s *Session) request(line string, body bool) (chan answer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return nil, s.failed
	}
	c := make(chan answer, 1)
	if _, err := io.WriteString(s.stdin, line); err != nil {
		s.failed = s.broken(err)
		return nil, s.failed
	}
	s.waiting <- pending{c: c, body: body}
	return c, nil
}

// broken is the session's error once the stream failed.
func (s *Session) broken(err error) error {
	if msg := oneLine(s.stderr.String()); msg != "" {
		return fmt.Errorf("%w: %s: %s", ErrConnection, s.remote, msg)
	}
	return fmt.Errorf("%w: %s: %v", ErrConnection, s.remote, err)
}

// await reads answers in order, handing each to its request, until c's has come.
func (s *Session) await(c chan answer) answer {
	for {
		select {
		case a := <-c:
			return a
		default:
		}
		s.readMu.Lock()
		select {
		case a := <-c:
			s.readMu.Unlock()
			return a
		default:
		}
		next := <-s.waiting
		next.c <- s.readAnswer(next.body)
		s.readMu.Unlock()
	}
}

func (s *Session) readAnswer(withBody bool) answer {
	line, err := s.r.ReadString('\n')
	if err != nil {
		return answer{err: s.broken(err)}
	}
	verb, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	switch verb {
	case "missing":
		return answer{err: storage.ErrNotFound}
	case "error":
		return answer{err: fmt.Errorf("backup host: %s", rest)}
	case "ok":
		if !withBody {
			return answer{codec: rest}
		}
		codec, length, _ := strings.Cut(rest, " ")
		n, err := strconv.ParseInt(length, 10, 64)
		if err != nil || n < 0 || n > maxObject {
			return answer{err: fmt.Errorf("%w: %s: bad answer %q", ErrConnection, s.remote, line)}
		}
		raw := make([]byte, n)
		if _, err := io.ReadFull(s.r, raw); err != nil {
			return answer{err: s.broken(err)}
		}
		return answer{codec: codec, raw: raw}
	}
	return answer{err: fmt.Errorf("%w: %s: bad answer %q", ErrConnection, s.remote, line)}
}

// SegSize asks the archive's wal_segment_size.
func (s *Session) SegSize(ctx context.Context) (uint64, error) {
	c, err := s.request("segsize\n", false)
	if err != nil {
		return 0, err
	}
	a := s.await(c)
	if a.err != nil {
		return 0, a.err
	}
	n, err := strconv.ParseUint(a.codec, 10, 64)
	if err != nil || !segments.ValidSegSize(n) {
		return 0, fmt.Errorf("%w: %s: bad segment size %q", ErrConnection, s.remote, a.codec)
	}
	return n, nil
}

// Fetch returns archived WAL file name decompressed into buf's memory (buf[:0]), or
// an error wrapping storage.ErrNotFound when the archive lacks it.
func (s *Session) Fetch(ctx context.Context, name string, buf []byte) ([]byte, error) {
	c, err := s.request("get "+name+"\n", true)
	if err != nil {
		return nil, err
	}
	a := s.await(c)
	if a.err != nil {
		return nil, fmt.Errorf("%s: %w", name, a.err)
	}
	out, err := compress.DecodeAll(a.codec, a.raw, buf[:0])
	if err != nil {
		return nil, fmt.Errorf("decompress %s from %s: %w", name, s.remote, err)
	}
	return out, nil
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 1<<20) }
