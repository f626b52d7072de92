package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"

	"github.com/walkeeper/walkeeper/internal/progress"
	"github.com/walkeeper/walkeeper/internal/shellword"
)

// SplitCommand splits a --remote-ssh-command value ("ssh -p 2222 postgres@db2") into
// argv with the shell's quoting rules (shellword.Split), refusing an empty one.
func SplitCommand(s string) ([]string, error) {
	out, err := shellword.Split(s)
	if err != nil {
		return nil, usage("--remote-ssh-command %q: %v", s, err)
	}
	if len(out) == 0 {
		return nil, usage("--remote-ssh-command is empty")
	}
	return out, nil
}

// sshSink writes the restore on another host: one `tar -x` per root reading a tar
// stream over ssh (GNU tar on the remote side, nothing of walkeeper's), files owned by
// the ssh user — connect as the user that will run PostgreSQL there, as with Barman.
// The files are decompressed here and sent uncompressed; add -C to the ssh command to
// compress on slow links.
type sshSink struct {
	argv   []string
	log    *slog.Logger
	labels map[string]string // root -> how errors name it
	home   string            // walkeeper's home on this host (resolved), refused if the remote host is this one
}

// run runs a shell script on the remote host and returns its output.
func (s *sshSink) run(ctx context.Context, script string, stdin io.Reader) (string, error) {
	cmd := exec.CommandContext(ctx, s.argv[0], append(append([]string(nil), s.argv[1:]...), script)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %v: %s", strings.Join(s.argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (s *sshSink) prepare(ctx context.Context, roots []string, force bool) error {
	var b strings.Builder
	b.WriteString("for d in")
	for _, r := range roots {
		b.WriteString(" " + ShellQuote(r))
	}
	b.WriteString(`; do
  if [ -e "$d" ] && [ ! -d "$d" ]; then echo "NOTDIR $d"; continue; fi
  if [ -f "$d/postmaster.pid" ] && kill -0 "$(head -n 1 "$d/postmaster.pid")" 2>/dev/null; then echo "RUNNING $d"; continue; fi
  if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then echo "NONEMPTY $d"; fi
done
`)
	b.WriteString(remoteProbeScript(roots))
	b.WriteString("echo WALKEEPER-OK\n")
	out, err := s.run(ctx, b.String(), nil)
	if err != nil {
		return fmt.Errorf("remote check: %w", err)
	}
	if !strings.Contains(out, "WALKEEPER-OK") {
		return fmt.Errorf("remote check: unexpected answer %q", strings.TrimSpace(out))
	}
	// A running cluster's data directory or tablespace, or a directory above or
	// inside one, is refused before anything is removed (invariant 8).
	real, live := parseRemoteProbe(out, roots)
	ri := parseRemoteIdentity(out)
	for i, r := range roots {
		label := s.labels[r]
		if label == "" {
			label = "target"
		}
		t := target{label: "remote " + label, path: r, resolved: real[i]}
		// The remote host may be this host (ssh to localhost): its home is refused
		// there as here (invariant 8).
		if err := homeRefusal(t, homeOnRemote(ri, i, s.home), s.home, nil); err != nil {
			return err
		}
		if err := checkLive(t, live); err != nil {
			return err
		}
	}
	for _, line := range strings.Split(out, "\n") {
		kind, dir, _ := strings.Cut(line, " ")
		switch kind {
		case "NOTDIR":
			return usage("remote %s exists and is not a directory", dir)
		case "RUNNING":
			return usage("remote %s holds a running PostgreSQL: stop it first", dir)
		case "NONEMPTY":
			if !force {
				return usage("remote %s is not empty: restore never overwrites without --force", dir)
			}
		}
	}
	var mk strings.Builder
	mk.WriteString("set -e")
	for _, r := range roots {
		q := ShellQuote(r)
		if force {
			mk.WriteString("\nif [ -d " + q + " ]; then find " + q + " -mindepth 1 -delete; fi")
		}
		mk.WriteString("\nmkdir -p " + q + "\nchmod 700 " + q)
	}
	if _, err := s.run(ctx, mk.String(), nil); err != nil {
		return fmt.Errorf("remote mkdir: %w", err)
	}
	return nil
}

// write streams one tar per root, all at once (one ssh session each). The directories
// and links go first; then jobs run on workers goroutines as on a local restore, each
// reading its stored object once, and every file goes whole into its root's tar (a
// file too big to hold is streamed under the tar's lock). The only links written are
// the pg_tblspc/<oid> ones buildItems planned, so the remote tar follows none.
func (s *sshSink) write(ctx context.Context, items []item, jobs []job, workers int, progress func(int64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tars := map[string]*remoteTar{}
	var order []string
	tarOf := func(root string) *remoteTar {
		if t, ok := tars[root]; ok {
			return t
		}
		t := s.startTar(ctx, root)
		tars[root] = t
		order = append(order, root)
		return t
	}
	for _, it := range items {
		tarOf(it.root)
	}
	for _, j := range jobs {
		for _, it := range j.files {
			tarOf(it.root)
		}
	}
	werr := func() error {
		for _, it := range items {
			hdr := &tar.Header{Name: it.rel, Mode: int64(it.mode), ModTime: it.mtime, Format: tar.FormatPAX}
			switch it.kind {
			case 'd':
				hdr.Typeflag, hdr.Name = tar.TypeDir, it.rel+"/"
			case 'l':
				hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, it.link, 0o777
			default:
				continue
			}
			if err := tars[it.root].tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
		err := runJobs(ctx, jobs, workers, func() func(item, io.Reader) error {
			return func(it item, r io.Reader) error { return tars[it.root].file(it, r, progress) }
		})
		if err != nil {
			return err
		}
		for _, root := range order {
			if err := tars[root].tw.Close(); err != nil {
				return err
			}
		}
		return nil
	}()
	var firstErr error
	for _, root := range order {
		t := tars[root]
		t.pw.CloseWithError(werr)
		rerr := <-t.done
		var err error
		switch {
		case werr != nil && !errors.Is(werr, io.ErrClosedPipe) && rerr != nil:
			err = fmt.Errorf("remote restore into %s: %w (remote: %v)", root, werr, rerr)
		case werr != nil && !errors.Is(werr, io.ErrClosedPipe):
			err = fmt.Errorf("remote restore into %s: %w", root, werr)
		case rerr != nil:
			err = fmt.Errorf("remote restore into %s: %w", root, rerr)
		}
		if err != nil {
			cancel() // the other roots' tar stop too
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// remoteTar is one root's `tar -x` on the remote host and the tar stream feeding it.
type remoteTar struct {
	mu   sync.Mutex
	tw   *tar.Writer
	pw   *io.PipeWriter
	done chan error
}

func (s *sshSink) startTar(ctx context.Context, root string) *remoteTar {
	pr, pw := io.Pipe()
	t := &remoteTar{tw: tar.NewWriter(pw), pw: pw, done: make(chan error, 1)}
	script := "tar -x -p --no-same-owner -f - -C " + ShellQuote(root)
	go func() {
		_, err := s.run(ctx, script, pr)
		pr.CloseWithError(err)
		t.done <- err
	}()
	return t
}

// streamAbove is the size from which a file is streamed into its tar under the lock
// instead of being read whole into memory first.
const streamAbove = 32 << 20

// file adds one file read from r.
func (t *remoteTar) file(it item, r io.Reader, progressFn func(int64)) error {
	hdr := &tar.Header{Name: it.rel, Mode: int64(it.mode), ModTime: it.mtime, Format: tar.FormatPAX, Typeflag: tar.TypeReg}
	if it.transform == nil && it.size > streamAbove {
		hdr.Size = it.size
		t.mu.Lock()
		defer t.mu.Unlock()
		if err := t.tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.Copy(progress.Writer{W: t.tw, Fn: progressFn}, r)
		if err == nil && n != it.size {
			err = fmt.Errorf("got %d bytes, backup says %d", n, it.size)
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", it.rel, err)
		}
		return nil
	}
	data, err := io.ReadAll(r)
	if err == nil && it.transform != nil {
		data, err = it.transform(data)
	} else if err == nil && it.size >= 0 && int64(len(data)) != it.size {
		err = fmt.Errorf("got %d bytes, backup says %d", len(data), it.size)
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", it.rel, err)
	}
	hdr.Size = int64(len(data))
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := t.tw.Write(data); err != nil {
		return err
	}
	progressFn(int64(len(data)))
	return nil
}

func (s *sshSink) finish(ctx context.Context, roots []string) error {
	var b strings.Builder
	for _, r := range roots {
		b.WriteString("sync -f " + ShellQuote(r) + " 2>/dev/null || sync\n")
	}
	if _, err := s.run(ctx, b.String(), nil); err != nil {
		return fmt.Errorf("remote sync: %w", err)
	}
	return nil
}
