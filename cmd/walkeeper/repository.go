package main

import (
	"context"
	"fmt"

	"github.com/walkeeper/walkeeper/internal/repo"
)

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
	if srv.Repository.Kind == "" {
		return usageErr("%s: no repository is configured (repository = s3://BUCKET/PREFIX or a directory)", srv.Name)
	}
	created, err := repo.Init(context.Background(), srv.Repository)
	if err != nil {
		return err
	}
	what := "reachable"
	switch {
	case created:
		what = "ready: its encryption key was created (keep a copy of the key file or the passphrase elsewhere)"
	case srv.Repository.Encryption == "age":
		what = "ready: its encryption key opens with the configured secret"
	}
	fmt.Printf("%s: repository %s %s\n", srv.Name, srv.Repository.URL, what)
	return nil
}
