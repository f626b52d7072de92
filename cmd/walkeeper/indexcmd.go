package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/rebuild"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// IndexCmd groups index maintenance.
type IndexCmd struct {
	Rebuild IndexRebuildCmd `cmd:"" help:"Rebuild a server's index records from the archive and backup.info files."`
}

// IndexRebuildCmd rebuilds the index of one server.
type IndexRebuildCmd struct {
	Server string `arg:"" help:"Server name."`
}

// Run implements the command. A damaged index (one that cannot be opened or read) is
// moved aside to index.broken-<timestamp> and every configured server rebuilt into a
// fresh one, since the index is shared by all of them (invariant 4: rebuild always
// works from the archive, never from the index it replaces).
func (c *IndexRebuildCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	ctx := context.Background()
	idx, err := a.Index()
	var res rebuild.Result
	if err == nil {
		var segSize uint64
		if segSize, err = archive.SegSize(ctx, store, srv.Name); err != nil {
			return err
		}
		res, err = rebuild.Server(ctx, idx, store, srv.Name, segSize, nil)
	}
	if errors.Is(err, index.ErrDamaged) && a.client == nil {
		return c.repair(ctx, a, store, srv.Name)
	}
	if err != nil {
		return err
	}
	if a.g.JSON {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.out, "%s: index rebuilt: %d WAL files, %d backups\n", srv.Name, res.WALFiles, res.Backups)
	for _, s := range res.Skipped {
		fmt.Fprintf(a.out, "  skipped %s\n", s)
	}
	return nil
}

// repair moves the damaged index aside and rebuilds every server into a new one.
func (c *IndexRebuildCmd) repair(ctx context.Context, a *App, store storage.Store, server string) error {
	if a.idx != nil {
		_ = a.idx.Close()
		a.idx = nil
	}
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	moved, err := index.MoveAside(daemon.IndexDir(cfg.Home))
	if err != nil {
		return err
	}
	notice := a.out
	if a.g.JSON {
		notice = os.Stderr
	}
	fmt.Fprintf(notice, "the index was damaged: moved it aside to %s; rebuilding every server from the archive\n", moved)
	idx, err := daemon.OpenLocalIndex(cfg.Home, a.log, 10*time.Second)
	if err != nil {
		return err
	}
	a.idx = idx
	out := map[string]rebuild.Result{}
	for _, s := range cfg.Servers {
		segSize, err := archive.SegSize(ctx, store, s.Name)
		if err != nil {
			return err
		}
		res, err := rebuild.Server(ctx, idx, store, s.Name, segSize, nil)
		if err != nil {
			return err
		}
		out[s.Name] = res
		if !a.g.JSON {
			fmt.Fprintf(a.out, "%s: index rebuilt: %d WAL files, %d backups\n", s.Name, res.WALFiles, res.Backups)
			for _, sk := range res.Skipped {
				fmt.Fprintf(a.out, "  skipped %s\n", sk)
			}
		}
	}
	if a.g.JSON {
		return a.printJSON(out[server])
	}
	return nil
}

func rebuildServer(ctx context.Context, idx index.Index, store storage.Store, server string, log *slog.Logger) error {
	segSize, err := archive.SegSize(ctx, store, server)
	if err != nil {
		return err
	}
	res, err := rebuild.Server(ctx, idx, store, server, segSize, nil)
	if err != nil {
		return err
	}
	if res.WALFiles > 0 || res.Backups > 0 {
		log.Info("index rebuilt", "server", server, "wal_files", res.WALFiles, "backups", res.Backups, "skipped", len(res.Skipped))
	}
	return nil
}
