// Package repo opens a server's repository, the archive's second tier, from its
// configuration: a directory on another file system or an S3-compatible bucket,
// sealed with age when encryption is on. The repository holds the local archive's keys
// unchanged ("<server>/wals/...", "<server>/base/..."), so everything that reads the
// archive reads it there too.
package repo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/crypt"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/storage/s3store"
	"github.com/walkeeper/walkeeper/internal/tier"
)

// Open opens the repository r describes (r.Kind must not be ""). An encrypted
// repository must have been initialized (Init): a missing key object is an error, never
// a silent new key, so a typo in the URL cannot start a second, unrelated repository.
func Open(ctx context.Context, r config.Repository) (storage.Store, error) {
	inner, err := openInner(ctx, r)
	if err != nil {
		return nil, err
	}
	if r.Encryption != "age" {
		return inner, nil
	}
	u, err := sources(r).Unlock(ctx)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r.URL, err)
	}
	s, err := crypt.Open(ctx, inner, u)
	if errors.Is(err, crypt.ErrNoKey) {
		return nil, fmt.Errorf("repository %s has no encryption key yet: run `walkeeper repository-init SERVER` once", r.URL)
	}
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r.URL, err)
	}
	return s, nil
}

// Init prepares server's repository r and says what it found: for encryption, its
// key object sealed to the configured secret, created once. Run again on an
// initialized repository it checks that the secret opens it, and changes nothing.
func Init(ctx context.Context, server string, r config.Repository) (string, error) {
	if r.Kind == "" {
		return "", fmt.Errorf("%s: no repository is configured (repository = s3://BUCKET/PREFIX or a directory)", server)
	}
	inner, err := openInner(ctx, r)
	if err != nil {
		return "", err
	}
	done := fmt.Sprintf("%s: repository %s ", server, r.URL)
	if r.Encryption != "age" {
		return done + "reachable", nil
	}
	if r.KeyFile != "" {
		if _, err := os.Stat(r.KeyFile); errors.Is(err, os.ErrNotExist) {
			// A first init with a key file that does not exist yet makes it: a new
			// repository's key, as age-keygen would.
			if _, err := crypt.GenerateKeyFile(r.KeyFile); err != nil {
				return "", fmt.Errorf("repository %s: create encryption_key_file: %w", r.URL, err)
			}
			done = fmt.Sprintf("%s: created the key file %s (mode 0600); ", server, r.KeyFile) + done
		}
	}
	u, err := sources(r).Unlock(ctx)
	if err != nil {
		return "", fmt.Errorf("repository %s: %w", r.URL, err)
	}
	_, err = crypt.Open(ctx, inner, u)
	if err == nil {
		return done + "ready: its encryption key opens with the configured secret", nil
	}
	if !errors.Is(err, crypt.ErrNoKey) {
		return "", fmt.Errorf("repository %s: %w", r.URL, err)
	}
	if _, err := crypt.Init(ctx, inner, u, crypt.InitOptions{}); err != nil {
		return "", fmt.Errorf("repository %s: %w", r.URL, err)
	}
	return done + "ready: its encryption key was created (keep a copy of the key file or the passphrase away from it)", nil
}

// HomeStore is the store of cfg's home: the local archive, and for each server with a
// repository that repository behind it (tier.Routed). Without any repository it is
// the local archive itself.
func HomeStore(cfg *config.Config) storage.Store {
	local := storage.NewLocal(cfg.Home)
	openers := Openers(cfg.Servers)
	if len(openers) == 0 {
		return local
	}
	return tier.NewRouted(local, openers)
}

// ReadLocalWhenDown lets the home's listings go on with the local archive alone
// while a repository cannot be reached, warning once per server through warn: a
// command run by a DBA (a restore from the local archive) does not depend on the
// repository being up. The daemon does not: its rebuild must see both tiers.
func ReadLocalWhenDown(home storage.Store, warn func(string)) {
	r, ok := home.(*tier.Routed)
	if !ok {
		return
	}
	var once sync.Map
	r.Degraded = func(server string, err error) {
		if _, seen := once.LoadOrStore(server, true); !seen {
			warn(fmt.Sprintf("warning: %s: the repository cannot be listed (%v): going on with the local archive only", server, err))
		}
	}
}

// Openers are the repositories of the servers that have one, for tier.NewRouted.
func Openers(servers []*config.Server) map[string]tier.Opener {
	out := map[string]tier.Opener{}
	for _, s := range servers {
		if s.Repository.Kind == "" {
			continue
		}
		r := s.Repository
		out[s.Name] = func(ctx context.Context) (storage.Store, error) { return Open(ctx, r) }
	}
	return out
}

func sources(r config.Repository) crypt.Sources {
	return crypt.Sources{KeyFile: r.KeyFile, PassphraseFile: r.PassphraseFile, PassphraseCommand: r.PassphraseCommand}
}

func openInner(ctx context.Context, r config.Repository) (storage.Store, error) {
	switch r.Kind {
	case "dir":
		fi, err := os.Stat(r.Path)
		if err != nil || !fi.IsDir() {
			// Never created here: an unmounted NFS share must not turn into a
			// directory on the local disk that looks like an off-site copy.
			return nil, fmt.Errorf("repository %s: not a directory (mount it, or create it owned by walkeeper's user with mode 0700)", r.URL)
		}
		return storage.NewLocal(r.Path), nil
	case "s3":
		return openS3(ctx, r)
	}
	return nil, fmt.Errorf("repository %q: unknown kind %q", r.URL, r.Kind)
}

func openS3(ctx context.Context, r config.Repository) (storage.Store, error) {
	s, err := s3store.New(ctx, s3store.Options{Endpoint: r.Endpoint, Region: r.Region, Bucket: r.Bucket, Prefix: r.Prefix,
		PathStyle: r.PathStyle, CAFile: r.CAFile, CredentialsFile: r.CredentialsFile, Profile: r.Profile})
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r.URL, err)
	}
	return s, nil
}

// BackupStore is the store a backup of srv writes through: home, or with
// backup_local_copy = off its repository directly (opened now, so that an unreachable
// repository fails the backup before it starts rather than after it streamed).
func BackupStore(ctx context.Context, home storage.Store, srv *config.Server) (storage.Store, error) {
	if srv.Repository.Kind == "" || srv.Repository.BackupLocalCopy {
		return home, nil
	}
	r, ok := home.(*tier.Routed)
	if !ok {
		return nil, fmt.Errorf("%s: backup_local_copy = off needs the repository, which this store has not", srv.Name)
	}
	remote, err := r.Repository(ctx, srv.Name)
	if err != nil {
		return nil, err
	}
	return tier.Direct{Store: home, To: remote}, nil
}

// Requests counts the requests server's repository sent since it was opened (false
// when it is not open, or not an object store).
func Requests(home storage.Store, server string) (storage.RequestCounts, bool) {
	r, ok := home.(*tier.Routed)
	if !ok {
		return storage.RequestCounts{}, false
	}
	s := r.Opened(server)
	if c, ok := s.(*crypt.Store); ok {
		s = c.Inner()
	}
	rc, ok := s.(storage.RequestCounter)
	if !ok {
		return storage.RequestCounts{}, false
	}
	return rc.Requests(), true
}

// LogRequests logs, at debug level (-v), the requests each opened repository of home
// sent: what a command cost on object storage.
func LogRequests(home storage.Store, log *slog.Logger) {
	r, ok := home.(*tier.Routed)
	if !ok {
		return
	}
	for _, server := range r.Servers() {
		if c, ok := Requests(home, server); ok {
			log.Debug("repository requests", "server", server, "total", c.Total(), "put", c.Put, "get", c.Get,
				"list", c.List, "delete", c.Delete, "head", c.Head, "other", c.Other)
		}
	}
}
