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
)

// SplitCommand splits a --remote-ssh-command value ("ssh -p 2222 postgres@db2") into
// argv with the shell's quoting rules for single and double quotes and backslashes.
func SplitCommand(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, quote := false, rune(0)
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			if r == '"' {
				quote = 0
			} else if r == '\\' {
				esc = true
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			esc, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || esc {
		return nil, usage("--remote-ssh-command %q: unterminated quote", s)
	}
	if inWord {
		out = append(out, cur.String())
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
	for i, r := range roots {
		label := s.labels[r]
		if label == "" {
			label = "target"
		}
		if err := checkLive(target{label: "remote " + label, path: r, resolved: real[i]}, live); err != nil {
			return err
		}
	}
	for _, line := range strings.Split(out, "\n") {
		kind, dir, _ := strings.Cut(line, " ")
		switch kind {
		case "NOTDIR":
			return usage("remote %s exists and is not a directory", dir)
		case "RUNNING":
			return fmt.Errorf("remote %s holds a running PostgreSQL: stop it first", dir)
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

// write streams one tar per root. Files are read (decompressed) by jobs goroutines
// ahead of the single tar writer, in order, so ssh is never idle waiting on zstd.
func (s *sshSink) write(ctx context.Context, items []item, jobs int, progress func(int64)) error {
	byRoot := map[string][]item{}
	var order []string
	for _, it := range items {
		if _, ok := byRoot[it.root]; !ok {
			order = append(order, it.root)
		}
		byRoot[it.root] = append(byRoot[it.root], it)
	}
	for _, root := range order {
		if err := s.writeRoot(ctx, root, byRoot[root], jobs, progress); err != nil {
			return err
		}
	}
	return nil
}

type loaded struct {
	data   []byte
	err    error
	stream bool // too big to hold: the writer streams it
}

// streamAbove is the size from which a file is streamed by the tar writer itself
// instead of being decompressed ahead in memory.
const streamAbove = 32 << 20

func (s *sshSink) writeRoot(ctx context.Context, root string, items []item, jobs int, progress func(int64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	script := "tar -x -p --no-same-owner -f - -C " + ShellQuote(root)
	done := make(chan error, 1)
	go func() {
		_, err := s.run(ctx, script, pr)
		pr.CloseWithError(err)
		done <- err
	}()
	// Readers: a bounded window of files loaded ahead, consumed in order.
	slots := make([]chan loaded, len(items))
	for i := range slots {
		slots[i] = make(chan loaded, 1)
	}
	sem := make(chan struct{}, max(1, jobs))
	var wg sync.WaitGroup
	go func() {
		for i, it := range items {
			if it.kind != 'f' {
				slots[i] <- loaded{}
				continue
			}
			if it.size > streamAbove {
				slots[i] <- loaded{stream: true}
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func(i int, it item) {
				defer wg.Done()
				r, err := it.open(ctx)
				var data []byte
				if err == nil {
					data, err = io.ReadAll(r)
					r.Close()
				}
				if err == nil && it.size >= 0 && int64(len(data)) != it.size {
					err = fmt.Errorf("got %d bytes, backup says %d", len(data), it.size)
				}
				if err != nil {
					err = fmt.Errorf("restore %s: %w", it.rel, err)
				}
				slots[i] <- loaded{data: data, err: err}
			}(i, it)
		}
	}()
	tw := tar.NewWriter(pw)
	werr := func() error {
		for i, it := range items {
			var l loaded
			select {
			case l = <-slots[i]:
			case <-ctx.Done():
				return ctx.Err()
			}
			hdr := &tar.Header{Name: it.rel, Mode: int64(it.mode), ModTime: it.mtime, Format: tar.FormatPAX}
			switch it.kind {
			case 'd':
				hdr.Typeflag, hdr.Name = tar.TypeDir, it.rel+"/"
			case 'l':
				hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, it.link, 0o777
			case 'f':
				if l.stream {
					hdr.Typeflag, hdr.Size = tar.TypeReg, it.size
					if err := tw.WriteHeader(hdr); err != nil {
						return err
					}
					r, err := it.open(ctx)
					if err != nil {
						return fmt.Errorf("restore %s: %w", it.rel, err)
					}
					n, err := io.Copy(progressWriter{tw, progress}, r)
					r.Close()
					if err == nil && n != it.size {
						err = fmt.Errorf("got %d bytes, backup says %d", n, it.size)
					}
					if err != nil {
						return fmt.Errorf("restore %s: %w", it.rel, err)
					}
					continue
				}
				<-sem
				if l.err != nil {
					return l.err
				}
				hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(l.data))
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if it.kind == 'f' {
				if _, err := tw.Write(l.data); err != nil {
					return err
				}
				progress(int64(len(l.data)))
			}
		}
		return tw.Close()
	}()
	pw.CloseWithError(werr)
	rerr := <-done
	cancel()
	wg.Wait()
	if werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
		if rerr != nil {
			return fmt.Errorf("remote restore into %s: %w (remote: %v)", root, werr, rerr)
		}
		return fmt.Errorf("remote restore into %s: %w", root, werr)
	}
	if rerr != nil {
		return fmt.Errorf("remote restore into %s: %w", root, rerr)
	}
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
