package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/remotewal"
	"github.com/walkeeper/walkeeper/internal/switchwal"
)

// ArchiveWALCmd is archive_command's helper.
type ArchiveWALCmd struct {
	Server        string `arg:"" help:"Server name."`
	Path          string `arg:"" help:"The WAL file PostgreSQL hands over (%p)."`
	SSH           string `name:"ssh" placeholder:"CMD" help:"Send the file to the backup host's put-wal through this ssh command (\"ssh walkeeper@backup\") instead of a local incoming/; no configuration file is read here. A lost connection is a plain failure (exit 1) that PostgreSQL retries."`
	RemoteCommand string `placeholder:"CMD" help:"With --ssh: the walkeeper command on the backup host (default: walkeeper)."`
}

// Validate refuses --remote-command without --ssh (kong: a usage error, exit 2).
func (c *ArchiveWALCmd) Validate() error { return remotewal.NeedsSSH(c.SSH, c.RemoteCommand) }

// Run implements the command.
func (c *ArchiveWALCmd) Run(a *App) error {
	if c.SSH != "" { // every failure exit 1, never ssh's 255 (fatal to PostgreSQL's archiver)
		return remotewal.PushFile(context.Background(), c.SSH, c.RemoteCommand, c.Server, c.Path)
	}
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	if _, err := ingest.Drop(srv.IncomingDir(), c.Path); err != nil {
		return err
	}
	return nil
}

// PutWALCmd is the backup host's end of an archive_command over ssh.
type PutWALCmd struct {
	Server string `arg:"" help:"Server name."`
	Name   string `arg:"" help:"The WAL file's name (%f); its content comes on standard input."`
	Size   int64  `default:"-1" help:"The file's size on the sender: a body of another length is refused (archive-wal --ssh sends it)."`
}

// Run implements the command.
func (c *PutWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	_, err = ingest.Put(context.Background(), a.Store(), srv.Name, srv.IncomingDir(), c.Name, os.Stdin, ingest.PutOptions{Size: c.Size})
	return err
}

// SendWALCmd serves get-wal --ssh's prefetcher on the backup host.
type SendWALCmd struct {
	Server string `arg:"" help:"Server name."`
}

// Run implements the command.
func (c *SendWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	return remotewal.Serve(context.Background(), a.Store(), srv.Name, os.Stdin, os.Stdout)
}

// SwitchWALCmd forces a WAL switch.
type SwitchWALCmd struct {
	Server  string        `arg:"" help:"Server name."`
	Wait    bool          `help:"Wait until the closed segment is archived."`
	Timeout time.Duration `default:"60s" help:"How long --wait waits."`
}

// Run implements the command.
func (c *SwitchWALCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	res, err := switchwal.Run(context.Background(), switchwal.Options{Server: srv.Name, Conninfo: srv.Conninfo, PrimaryConninfo: srv.PrimaryConninfo,
		IncomingDir: srv.IncomingDir(), Store: a.Store(), Wait: c.Wait, Timeout: c.Timeout,
		DaemonRunning: func() bool { return a.Daemon() != nil }})
	if err != nil {
		return err
	}
	if w := res.Warning(); w != "" {
		fmt.Fprintln(os.Stderr, w)
	}
	return a.output(res, func(w io.Writer) { fmt.Fprintln(w, res.Text()) })
}
