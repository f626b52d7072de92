package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/rebuild"
	"github.com/walkeeper/walkeeper/internal/repo"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/supervisor"
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
// moved aside and every configured server rebuilt into a fresh one (see
// supervisor.RepairIndex).
func (c *IndexRebuildCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	a.noReconcile = true // it rebuilds the server itself, from both tiers whole
	store := a.Store()
	ctx := context.Background()
	idx, err := a.Index()
	var res rebuild.Result
	if err == nil {
		res, err = supervisor.RebuildServer(ctx, idx, store, srv.Name)
	}
	if errors.Is(err, index.ErrDamaged) && a.client == nil {
		return c.repair(ctx, a, store, srv.Name)
	}
	if err != nil {
		return err
	}
	return a.output(res, func(w io.Writer) { res.WriteText(w, srv.Name) })
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
	out := map[string]rebuild.Result{}
	idx, err := supervisor.RepairIndex(ctx, cfg.Home, cfg.Servers, store, a.log, func(moved string) {
		notice := a.out
		if a.g.JSON {
			notice = os.Stderr
		}
		fmt.Fprintf(notice, "the index was damaged: moved it aside to %s; rebuilding every server from the archive\n", moved)
	}, func(name string, res rebuild.Result) {
		out[name] = res
		if !a.g.JSON {
			res.WriteText(a.out, name)
		}
	})
	if idx != nil {
		a.idx = idx
	}
	if err != nil || !a.g.JSON {
		return err
	}
	return a.printJSON(out[server])
}

// RepositoryInitCmd prepares a server's repository.
type RepositoryInitCmd struct {
	Server string `arg:"" help:"Server name."`
}

// Run implements the command.
func (c *RepositoryInitCmd) Run(a *App) error {
	srv, err := a.Server(c.Server)
	if err != nil {
		return err
	}
	msg, err := repo.Init(context.Background(), srv.Name, srv.Repository)
	if err == nil {
		fmt.Println(msg)
	}
	return err
}
