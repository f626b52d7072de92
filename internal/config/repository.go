package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Repository is where a server's archive is kept off the backup host's disk, beside
// the local archive (the first tier): an S3-compatible bucket, or a directory on
// another file system (a second disk, an NFS mount). Empty Kind: none.
type Repository struct {
	Kind   string // "" (none), "s3" or "dir"
	URL    string // as written: s3://bucket/prefix or /absolute/path
	Bucket string // s3
	Prefix string // s3: without leading or trailing slash
	Path   string // dir: absolute, cleaned

	Endpoint        string // s3: the server's URL (default DefaultS3Endpoint)
	Region          string // s3: "" asks the server
	PathStyle       bool   // s3: ENDPOINT/BUCKET rather than BUCKET.ENDPOINT
	CAFile          string // s3: PEM file of CA certificates trusted besides the system's
	Profile         string // s3: profile of the shared credentials file
	CredentialsFile string // s3: shared credentials file (default ~/.aws/credentials)

	// Encryption is "none" (default) or "age": every object leaving the host is
	// sealed; exactly one secret source then: KeyFile, PassphraseFile or
	// PassphraseCommand. The secrets are read when the repository is opened, never here.
	Encryption        string
	KeyFile           string
	PassphraseFile    string
	PassphraseCommand string

	// LocalWALRetention is how long a WAL file's local copy is kept once the
	// repository confirmed it (0: kept until retention removes it).
	LocalWALRetention time.Duration
	// BackupLocalCopy: a backup is kept on the local tier too (default), else it is
	// streamed to the repository only.
	BackupLocalCopy bool
}

// DefaultS3Endpoint is AWS S3's global endpoint.
const DefaultS3Endpoint = "https://s3.amazonaws.com"

// repositoryOptions are the options of a server's repository (inherited from
// [walkeeper] like every server option).
var repositoryOptions = []option{
	{"repository", func(s *Server, v string) error { return s.Repository.setURL(v) }},
	{"repository_endpoint", func(s *Server, v string) error { return setEndpoint(&s.Repository.Endpoint, v) }},
	{"repository_region", func(s *Server, v string) error { s.Repository.Region = strings.TrimSpace(v); return nil }},
	{"repository_path_style", func(s *Server, v string) error { return setBool(&s.Repository.PathStyle, v) }},
	{"repository_ca_file", func(s *Server, v string) error { return setAbsPath(&s.Repository.CAFile, v) }},
	{"repository_profile", func(s *Server, v string) error { s.Repository.Profile = strings.TrimSpace(v); return nil }},
	{"repository_credentials_file", func(s *Server, v string) error { return setAbsPath(&s.Repository.CredentialsFile, v) }},
	{"encryption", func(s *Server, v string) error { return setEnum(&s.Repository.Encryption, v, "none", "age") }},
	{"encryption_key_file", func(s *Server, v string) error { return setAbsPath(&s.Repository.KeyFile, v) }},
	{"encryption_passphrase_file", func(s *Server, v string) error { return setAbsPath(&s.Repository.PassphraseFile, v) }},
	{"encryption_passphrase_command", func(s *Server, v string) error {
		s.Repository.PassphraseCommand = strings.TrimSpace(v)
		return nil
	}},
	{"local_wal_retention", func(s *Server, v string) error { return setDuration(&s.Repository.LocalWALRetention, v, true) }},
	{"backup_local_copy", func(s *Server, v string) error { return setBool(&s.Repository.BackupLocalCopy, v) }},
}

func (r *Repository) setURL(v string) error {
	v = strings.TrimSpace(v)
	r.URL, r.Kind, r.Bucket, r.Prefix, r.Path = v, "", "", "", ""
	switch {
	case v == "":
		return nil
	case strings.HasPrefix(v, "s3://"):
		rest := strings.TrimPrefix(v, "s3://")
		bucket, prefix, _ := strings.Cut(rest, "/")
		if err := checkBucket(bucket); err != nil {
			return err
		}
		prefix = strings.Trim(prefix, "/")
		if prefix != "" && filepath.ToSlash(filepath.Clean(prefix)) != prefix || strings.Contains(prefix, "..") {
			return fmt.Errorf("prefix %q: not a clean path (no //, . or .. parts)", prefix)
		}
		r.Kind, r.Bucket, r.Prefix = "s3", bucket, prefix
		return nil
	case filepath.IsAbs(v):
		r.Kind, r.Path = "dir", filepath.Clean(v)
		return nil
	}
	return errors.New("must be s3://BUCKET[/PREFIX] or an absolute directory path")
}

// checkBucket applies S3's bucket naming rules, so that a typo is reported here
// rather than as a signature or DNS error from the server.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket %q: must be 3-63 characters", b)
	}
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("bucket %q: only a-z, 0-9, '-' and '.' are allowed", b)
		}
		if (i == 0 || i == len(b)-1) && (c == '-' || c == '.') {
			return fmt.Errorf("bucket %q: must begin and end with a letter or a digit", b)
		}
	}
	return nil
}

func setEndpoint(dst *string, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		*dst = ""
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http:// or https:// URL, e.g. https://s3.eu-west-1.amazonaws.com")
	}
	if u.User != nil {
		return errors.New("must not carry credentials (use the environment, repository_credentials_file or the instance's role)")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return errors.New("must be the server's URL alone (the bucket and prefix go in repository = s3://BUCKET/PREFIX)")
	}
	*dst = strings.TrimSuffix(v, "/")
	return nil
}

func setAbsPath(dst *string, v string) error {
	v = strings.TrimSpace(v)
	if v != "" && !filepath.IsAbs(v) {
		return errors.New("must be an absolute path")
	}
	if v != "" {
		v = filepath.Clean(v)
	}
	*dst = v
	return nil
}

// checkRepository validates a server's repository options together, once all are set.
func checkRepository(s *Server) error {
	r := &s.Repository
	secrets := map[string]string{"encryption_key_file": r.KeyFile, "encryption_passphrase_file": r.PassphraseFile,
		"encryption_passphrase_command": r.PassphraseCommand}
	var set []string
	for _, name := range []string{"encryption_key_file", "encryption_passphrase_file", "encryption_passphrase_command"} {
		if secrets[name] != "" {
			set = append(set, name)
		}
	}
	if r.Kind == "" {
		if _, written := s.Settings["repository"]; written {
			return nil // "repository =" opts a server out of the repository [walkeeper] sets
		}
		for _, o := range repositoryOptions[1:] {
			if _, ok := s.Settings[o.name]; ok && !(o.name == "encryption" && r.Encryption == "none") {
				return fmt.Errorf("%s is set but no repository is: add repository = s3://BUCKET/PREFIX (or remove %s)", o.name, o.name)
			}
		}
		return nil
	}
	if r.Kind == "dir" {
		for _, name := range []string{"repository_endpoint", "repository_region", "repository_path_style", "repository_ca_file",
			"repository_profile", "repository_credentials_file"} {
			if _, ok := s.Settings[name]; ok {
				return fmt.Errorf("%s: only for an s3:// repository (repository = %s is a directory)", name, r.URL)
			}
		}
		if rel, err := filepath.Rel(s.Home, r.Path); err == nil && !strings.HasPrefix(rel, "..") {
			return fmt.Errorf("repository = %s: inside home %s: a repository must survive the loss of the local archive's disk", r.URL, s.Home)
		}
	}
	switch {
	case r.Encryption == "age" && len(set) == 0:
		return errors.New("encryption = age: set one of encryption_key_file, encryption_passphrase_file, encryption_passphrase_command")
	case r.Encryption == "age" && len(set) > 1:
		return fmt.Errorf("encryption: %s are set together; set only one", strings.Join(set, " and "))
	case r.Encryption == "none" && len(set) > 0:
		return fmt.Errorf("%s is set but encryption = none: set encryption = age (or remove %s)", set[0], set[0])
	}
	if r.Kind == "s3" && r.Endpoint == "" {
		r.Endpoint = DefaultS3Endpoint
	}
	return nil
}
