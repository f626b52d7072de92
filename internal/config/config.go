// Package config loads walkeeper's Barman-style INI configuration file.
//
// The file has one [walkeeper] section of global settings and defaults and one
// section per PostgreSQL server. Every server option written in [walkeeper] is
// a default for every server; a server section overrides it. Unknown options,
// bad values, duplicate sections and duplicate keys are errors that name the
// file, the section and the option.
//
// Size values (bandwidth_limit, min_free_disk) accept a plain number of bytes
// or a number with a unit. Units are SI (1000-based: kB, MB, GB, TB) and IEC
// (1024-based: KiB, MiB, GiB, TiB); unit letters are case-insensitive except
// that the "i" selects IEC, so "10MB" is 10,000,000 bytes and "10MiB" is
// 10,485,760 bytes. A bare "k", "M", "G", "T" suffix is SI too.
//
// Syntax follows Barman's (Python configparser): option names are
// case-insensitive, values may be wrapped in matching single, double or triple
// quotes, and ';' or '#' begin a comment only at the start of a line, so a
// conninfo password may contain them. A slot_name in [walkeeper] is not
// inherited (servers would share one slot); each server defaults to
// walkeeper_<name> with '-' mapped to '_'.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/archive"
	"gopkg.in/ini.v1"
)

// GlobalSection is the name of the section holding global settings and
// server defaults.
const GlobalSection = "walkeeper"

// DefaultHome is used when the [walkeeper] section sets no home.
const DefaultHome = "/var/lib/walkeeper"

// EnvConfig is the environment variable naming the config file.
const EnvConfig = "WALKEEPER_CONFIG"

// SystemConfig is the last place Find looks.
const SystemConfig = "/etc/walkeeper.conf"

// UserConfigName is the file Find looks for in the user's home directory.
const UserConfigName = ".walkeeper.conf"

// Config is a loaded configuration file.
type Config struct {
	File     string    // path loaded
	Home     string    // global home; absolute; default DefaultHome
	LogLevel string    // debug|info|warn|error, default info
	Servers  []*Server // in file order
	// Warnings lists harmless Barman options that were ignored.
	Warnings []string
}

// Server is the configuration of one PostgreSQL server.
type Server struct {
	Name                   string // section name: [a-z0-9_-] only, not "walkeeper"
	Home                   string // the global home (servers live in <Home>/<Name>)
	Description            string
	Active                 bool   // default true
	Conninfo               string // libpq key=value or postgres:// URL; required
	StreamingConninfo      string // default: Conninfo
	PrimaryConninfo        string // for a standby: how to reach the primary; optional
	StreamingArchiver      bool   // default false
	SlotName               string // default "walkeeper_<name>"
	CreateSlot             string // auto|manual, default manual
	ApplicationName        string // default "walkeeper"
	Archiver               bool   // archive_command ingest, default true
	Compression            string // zstd|gzip|none, default zstd (WAL)
	CompressionLevel       int    // 0 = library default; zstd 1-22, gzip 1-9
	BackupCompression      string // zstd|gzip|none, default zstd
	BackupCompressionLevel int    // default 3; zstd 1-22, gzip 1-9
	BandwidthLimit         int64  // bytes/second, 0 = unlimited
	ParallelJobs           int    // default runtime.NumCPU()
	RetentionPolicy        string // raw, e.g. "REDUNDANCY 3" or "RECOVERY WINDOW OF 30 DAYS"; "" = none
	WALRetentionPolicy     string // "main" (default) or "RECOVERY WINDOW OF ..."
	MinimumRedundancy      int    // default 0
	RetentionInterval      time.Duration
	LastBackupMaximumAge   time.Duration // 0 = not checked
	BackupWaitTimeout      time.Duration // default 10m
	FailedBackupGrace      time.Duration // default 7 days
	MinFreeDisk            int64         // bytes, default 1GB (10^9)
	Repository             Repository    // off-site copy of the archive; Kind "" = none
	// Settings holds every option that applies to this server as written
	// (inherited from [walkeeper] or set in the section), keyed by the
	// lower-cased option name. Values are raw: callers redact when printing.
	Settings map[string]string
}

// Dir is <Home>/<Name>.
func (s *Server) Dir() string { return filepath.Join(s.Home, s.Name) }

// IncomingDir is where archive-wal drops WAL files: <Home>/<Name>/incoming.
func (s *Server) IncomingDir() string { return archive.IncomingDir(s.Dir()) }

// ErrorsDir holds rejected WAL files: <Home>/<Name>/errors.
func (s *Server) ErrorsDir() string { return archive.ErrorsDir(s.Dir()) }

// StreamingDir holds the streaming receiver's files: <Home>/<Name>/streaming.
func (s *Server) StreamingDir() string { return archive.StreamingDir(s.Dir()) }

// Server returns the server with the given name.
func (c *Config) Server(name string) (*Server, error) {
	for _, s := range c.Servers {
		if s.Name == name {
			return s, nil
		}
	}
	names := c.ServerNames()
	list := "none"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("unknown server %q (configured: %s)", name, list)
}

// ServerNames returns the configured server names in file order.
func (c *Config) ServerNames() []string {
	names := make([]string, 0, len(c.Servers))
	for _, s := range c.Servers {
		names = append(names, s.Name)
	}
	return names
}

// Find returns the config file to load: explicit if not empty, else
// $WALKEEPER_CONFIG, else ~/.walkeeper.conf, else /etc/walkeeper.conf.
// An explicit path or $WALKEEPER_CONFIG that does not exist is an error (it
// does not fall through). When nothing is found the error lists every place
// looked at.
func Find(explicit string) (string, error) {
	return find(explicit, SystemConfig)
}

func find(explicit, system string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("config file %s (--config): %w", explicit, err)
		}
		return explicit, nil
	}
	if env := os.Getenv(EnvConfig); env != "" {
		if _, err := os.Stat(env); err != nil {
			return "", fmt.Errorf("config file %s ($%s): %w", env, EnvConfig, err)
		}
		return env, nil
	}
	var looked []string
	looked = append(looked, "--config (not given)", "$"+EnvConfig+" (not set)")
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		p := filepath.Join(home, UserConfigName)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		looked = append(looked, p)
	} else {
		looked = append(looked, "~/"+UserConfigName+" (no home directory)")
	}
	if st, err := os.Stat(system); err == nil && !st.IsDir() {
		return system, nil
	}
	looked = append(looked, system)
	return "", fmt.Errorf("no walkeeper configuration file found; looked at: %s", strings.Join(looked, ", "))
}

// Load reads and parses the file at path. A file that holds a password (in a
// conninfo) and that group or others may read gets a warning in Warnings.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	// A home that cannot be a directory is a bad value of this file, not a failure
	// of whatever command first tries to create something in it.
	if fi, err := os.Stat(cfg.Home); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%s: [%s] home = %q: exists and is not a directory", path, GlobalSection, cfg.Home)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if where := passwordAt(cfg); where != "" {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s is readable by group or others (mode %04o) and holds a password (%s): chmod 600 %s, or keep the password in ~/.pgpass",
				path, fi.Mode().Perm(), where, path))
		}
	}
	return cfg, nil
}

// passwordAt names the first option holding a password ("" when none does).
func passwordAt(cfg *Config) string {
	for _, s := range cfg.Servers {
		for _, k := range []string{"conninfo", "streaming_conninfo", "primary_conninfo"} {
			if v, ok := s.Settings[k]; ok && RedactConninfo(v) != v {
				return fmt.Sprintf("[%s] %s", s.Name, k)
			}
		}
	}
	return ""
}

// ReservedNames are names a server section may not take: walkeeper keeps its own
// directories under them in home (the index), where a server's directory would
// share them.
var ReservedNames = []string{"index"}

// option describes one server option.
type option struct {
	name string
	set  func(s *Server, v string) error // v is the unquoted value
}

// ignoredBarman are Barman options that make no sense for walkeeper but are
// harmless; they are ignored with a warning so a Barman file can be ported.
var ignoredBarman = map[string]bool{
	"backup_method":                 true,
	"backup_options":                true,
	"ssh_command":                   true,
	"path_prefix":                   true,
	"barman_home":                   true,
	"barman_user":                   true,
	"barman_lock_directory":         true,
	"log_file":                      true,
	"configuration_files_directory": true,
	"reuse_backup":                  true,
	"network_compression":           true,
	"basebackup_retry_times":        true,
	"basebackup_retry_sleep":        true,
	"check_timeout":                 true,
	"archiver_batch_size":           true,
	"streaming_archiver_name":       true,
	"streaming_backup_name":         true,
	"backup_directory":              true,
	"wals_directory":                true,
	"incoming_wals_directory":       true,
	"streaming_wals_directory":      true,
	"errors_directory":              true,
	"immediate_checkpoint":          true,
	"custom_compression_filter":     true,
	"custom_decompression_filter":   true,
}

// lazyRE compiles a pattern on first use: config is linked into every command, and
// compiling all patterns at start-up was a measurable part of a get-wal call's cost
// (restore_command runs once per segment).
func lazyRE(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

var (
	nameRE      = lazyRE(`^[a-z0-9_-]+$`)
	slotRE      = lazyRE(`^[a-z0-9_]{1,63}$`)
	appNameRE   = lazyRE(`^[\x20-\x7e]{1,63}$`)
	retentionRE = lazyRE(`(?i)^(REDUNDANCY\s+[0-9]+|RECOVERY\s+WINDOW\s+OF\s+[0-9]+\s+(DAY|DAYS|WEEK|WEEKS|MONTH|MONTHS))$`)
	walRetRE    = lazyRE(`(?i)^(MAIN|RECOVERY\s+WINDOW\s+OF\s+[0-9]+\s+(DAY|DAYS|WEEK|WEEKS|MONTH|MONTHS))$`)
	barmanDurRE = lazyRE(`(?i)^([0-9]+)\s*(SECOND|SECONDS|MINUTE|MINUTES|HOUR|HOURS|DAY|DAYS|WEEK|WEEKS|MONTH|MONTHS|[smhdw])$`)
	sizeRE      = lazyRE(`^([0-9]+)\s*([A-Za-z]*)$`)
)

var compressions = []string{"zstd", "gzip", "none"}

var serverOptions = []option{
	{"description", func(s *Server, v string) error { s.Description = v; return nil }},
	{"active", func(s *Server, v string) error { return setBool(&s.Active, v) }},
	{"conninfo", func(s *Server, v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("must not be empty")
		}
		s.Conninfo = v
		return nil
	}},
	{"streaming_conninfo", func(s *Server, v string) error { s.StreamingConninfo = v; return nil }},
	{"primary_conninfo", func(s *Server, v string) error { s.PrimaryConninfo = v; return nil }},
	{"streaming_archiver", func(s *Server, v string) error { return setBool(&s.StreamingArchiver, v) }},
	{"slot_name", func(s *Server, v string) error {
		if !slotRE().MatchString(v) {
			return errors.New("must be a PostgreSQL slot name: 1-63 of a-z, 0-9, _")
		}
		s.SlotName = v
		return nil
	}},
	{"create_slot", func(s *Server, v string) error { return setEnum(&s.CreateSlot, v, "auto", "manual") }},
	{"application_name", func(s *Server, v string) error {
		if !appNameRE().MatchString(v) {
			return errors.New("must be 1-63 printable ASCII characters")
		}
		s.ApplicationName = v
		return nil
	}},
	{"archiver", func(s *Server, v string) error { return setBool(&s.Archiver, v) }},
	{"compression", func(s *Server, v string) error { return setEnum(&s.Compression, v, compressions...) }},
	{"compression_level", func(s *Server, v string) error { return setInt(&s.CompressionLevel, v, 0, 22) }},
	{"backup_compression", func(s *Server, v string) error { return setEnum(&s.BackupCompression, v, compressions...) }},
	{"backup_compression_level", func(s *Server, v string) error { return setInt(&s.BackupCompressionLevel, v, 0, 22) }},
	{"bandwidth_limit", func(s *Server, v string) error { return setSize(&s.BandwidthLimit, v) }},
	{"parallel_jobs", func(s *Server, v string) error { return setInt(&s.ParallelJobs, v, 1, 1024) }},
	{"retention_policy", func(s *Server, v string) error {
		v = normSpace(v)
		if v != "" && !retentionRE().MatchString(v) {
			return errors.New(`must be "REDUNDANCY <n>" or "RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS" (or empty)`)
		}
		s.RetentionPolicy = v
		return nil
	}},
	{"wal_retention_policy", func(s *Server, v string) error {
		v = normSpace(v)
		if !walRetRE().MatchString(v) {
			return errors.New(`must be "main" or "RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS"`)
		}
		if strings.EqualFold(v, "main") {
			v = "main"
		}
		s.WALRetentionPolicy = v
		return nil
	}},
	{"minimum_redundancy", func(s *Server, v string) error { return setInt(&s.MinimumRedundancy, v, 0, 1<<20) }},
	{"retention_interval", func(s *Server, v string) error { return setDuration(&s.RetentionInterval, v, false) }},
	{"last_backup_maximum_age", func(s *Server, v string) error { return setDuration(&s.LastBackupMaximumAge, v, true) }},
	{"backup_wait_timeout", func(s *Server, v string) error { return setDuration(&s.BackupWaitTimeout, v, true) }},
	{"failed_backup_grace", func(s *Server, v string) error { return setDuration(&s.FailedBackupGrace, v, true) }},
	{"min_free_disk", func(s *Server, v string) error { return setSize(&s.MinFreeDisk, v) }},
}

var globalOnly = []string{"home", "log_level"}

func lookupOption(name string) *option {
	for _, opts := range [][]option{serverOptions, repositoryOptions} {
		for i := range opts {
			if opts[i].name == name {
				return &opts[i]
			}
		}
	}
	return nil
}

func allowedOptions(global bool) string {
	var names []string
	if global {
		names = append(names, globalOnly...)
	}
	for _, o := range slices.Concat(serverOptions, repositoryOptions) {
		names = append(names, o.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// rawKey is one option as written.
type rawKey struct {
	name, value string
}

// Parse parses a configuration file's contents; file names it in errors.
func Parse(data []byte, file string) (*Config, error) {
	base := file
	if file == "" {
		base = "config"
	}
	f, err := ini.LoadSources(ini.LoadOptions{
		InsensitiveKeys:            true,
		AllowNonUniqueSections:     true,
		AllowShadows:               true,
		AllowDuplicateShadowValues: true,
		IgnoreInlineComment:        true,
		IgnoreContinuation:         true,
	}, data)
	if err != nil {
		// The library may quote the offending line: never echo a password.
		return nil, fmt.Errorf("%s: %s", base, RedactConninfo(err.Error()))
	}
	errf := func(section, format string, args ...any) error {
		return fmt.Errorf("%s: [%s] "+format, append([]any{base, section}, args...)...)
	}

	cfg := &Config{File: file, Home: DefaultHome, LogLevel: "info"}
	var global []rawKey
	type rawSection struct {
		name string
		keys []rawKey
	}
	var servers []rawSection
	seen := map[string]bool{}

	readKeys := func(sec *ini.Section, name string) ([]rawKey, error) {
		var keys []rawKey
		for _, k := range sec.Keys() {
			vals := k.ValueWithShadows()
			if len(vals) > 1 {
				return nil, errf(name, "%s: option set more than once", k.Name())
			}
			keys = append(keys, rawKey{k.Name(), unquote(k.Value())})
		}
		return keys, nil
	}

	for _, sec := range f.Sections() {
		name := sec.Name()
		if name == ini.DefaultSection {
			if len(sec.Keys()) > 0 {
				return nil, fmt.Errorf("%s: option %q outside any section (put global options in [%s])", base, sec.Keys()[0].Name(), GlobalSection)
			}
			continue
		}
		if seen[name] {
			return nil, fmt.Errorf("%s: section [%s] appears more than once", base, name)
		}
		seen[name] = true
		keys, err := readKeys(sec, name)
		if err != nil {
			return nil, err
		}
		if name == GlobalSection {
			global = keys
			continue
		}
		if !nameRE().MatchString(name) {
			return nil, fmt.Errorf("%s: section [%s]: server name must use only a-z, 0-9, _ and -", base, name)
		}
		if slices.Contains(ReservedNames, name) {
			return nil, fmt.Errorf("%s: section [%s]: the name is reserved (walkeeper keeps <home>/%s for itself): give the server another name", base, name, name)
		}
		servers = append(servers, rawSection{name, keys})
	}

	// Global section: home, log_level, defaults.
	var defaults []rawKey
	for _, k := range global {
		switch k.name {
		case "home":
			if !filepath.IsAbs(k.value) {
				return nil, errf(GlobalSection, "home = %q: must be an absolute path", k.value)
			}
			cfg.Home = filepath.Clean(k.value)
		case "log_level":
			v := strings.ToLower(k.value)
			if v == "warning" {
				v = "warn"
			}
			if !slices.Contains([]string{"debug", "info", "warn", "error"}, v) {
				return nil, errf(GlobalSection, "log_level = %q: must be one of debug, info, warn, error", k.value)
			}
			cfg.LogLevel = v
		default:
			if ignoredBarman[k.name] {
				cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s: [%s] %s: Barman option not used by walkeeper, ignored", base, GlobalSection, k.name))
				continue
			}
			o := lookupOption(k.name)
			if o == nil {
				return nil, errf(GlobalSection, "unknown option %q (allowed: %s)", k.name, allowedOptions(true))
			}
			// Validate the default once, against a scratch server, so a bad
			// default is reported against [walkeeper].
			if err := o.set(newServer("x", cfg.Home), k.value); err != nil {
				return nil, errf(GlobalSection, "%s = %q: %v", k.name, shown(k), err)
			}
			defaults = append(defaults, k)
		}
	}

	for _, rs := range servers {
		s := newServer(rs.name, cfg.Home)
		for _, k := range defaults {
			if k.name == "slot_name" {
				// A shared slot name would make servers fight over one slot.
				continue
			}
			_ = lookupOption(k.name).set(s, k.value) // validated above
			s.Settings[k.name] = k.value
		}
		for _, k := range rs.keys {
			if k.name == "home" || k.name == "log_level" {
				return nil, errf(rs.name, "%s: only allowed in [%s]", k.name, GlobalSection)
			}
			if ignoredBarman[k.name] {
				cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s: [%s] %s: Barman option not used by walkeeper, ignored", base, rs.name, k.name))
				continue
			}
			o := lookupOption(k.name)
			if o == nil {
				return nil, errf(rs.name, "unknown option %q (allowed: %s)", k.name, allowedOptions(false))
			}
			if err := o.set(s, k.value); err != nil {
				return nil, errf(rs.name, "%s = %q: %v", k.name, shown(k), err)
			}
			s.Settings[k.name] = k.value
		}
		if s.Conninfo == "" {
			return nil, errf(rs.name, "conninfo: required (e.g. conninfo = host=pg1 user=walkeeper dbname=postgres)")
		}
		if s.StreamingConninfo == "" {
			s.StreamingConninfo = s.Conninfo
		}
		// A level nobody wrote (the built-in default) does not apply to "none".
		if _, set := s.Settings["compression_level"]; !set && s.Compression == "none" {
			s.CompressionLevel = 0
		}
		if _, set := s.Settings["backup_compression_level"]; !set && s.BackupCompression == "none" {
			s.BackupCompressionLevel = 0
		}
		if err := checkLevel(s.Compression, s.CompressionLevel); err != nil {
			return nil, errf(rs.name, "compression_level = \"%d\": %v", s.CompressionLevel, err)
		}
		if err := checkLevel(s.BackupCompression, s.BackupCompressionLevel); err != nil {
			return nil, errf(rs.name, "backup_compression_level = \"%d\": %v", s.BackupCompressionLevel, err)
		}
		if err := checkRepository(s); err != nil {
			return nil, errf(rs.name, "%v", err)
		}
		cfg.Servers = append(cfg.Servers, s)
	}
	return cfg, nil
}

// shown is an option's value as it may appear in an error: conninfo values
// are redacted.
func shown(k rawKey) string {
	if strings.Contains(k.name, "conninfo") {
		return RedactConninfo(k.value)
	}
	return k.value
}

func newServer(name, home string) *Server {
	return &Server{
		Name:                   name,
		Home:                   home,
		Active:                 true,
		SlotName:               defaultSlot(name),
		CreateSlot:             "manual",
		ApplicationName:        "walkeeper",
		Archiver:               true,
		Compression:            "zstd",
		BackupCompression:      "zstd",
		BackupCompressionLevel: 3,
		ParallelJobs:           runtime.NumCPU(),
		WALRetentionPolicy:     "main",
		RetentionInterval:      time.Hour,
		BackupWaitTimeout:      10 * time.Minute,
		FailedBackupGrace:      7 * 24 * time.Hour,
		MinFreeDisk:            1_000_000_000,
		Repository:             Repository{Encryption: "none", BackupLocalCopy: true},
		Settings:               map[string]string{},
	}
}

// defaultSlot is "walkeeper_<name>" made a valid slot name ('-' -> '_',
// at most 63 characters).
func defaultSlot(name string) string {
	s := "walkeeper_" + strings.ReplaceAll(name, "-", "_")
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// checkLevel validates a compression level for its algorithm; 0 means the
// library default.
func checkLevel(alg string, level int) error {
	if level == 0 {
		return nil
	}
	switch alg {
	case "gzip":
		if level < 1 || level > 9 {
			return errors.New("gzip levels are 1-9 (0 = default)")
		}
	case "zstd":
		if level < 1 || level > 22 {
			return errors.New("zstd levels are 1-22 (0 = default)")
		}
	case "none":
		return errors.New("no level applies to compression none (use 0)")
	}
	return nil
}

func normSpace(v string) string { return strings.Join(strings.Fields(v), " ") }

// unquote strips one pair of matching surrounding quotes that the INI library
// left in place.
func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

func setBool(dst *bool, v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "true", "yes", "1":
		*dst = true
	case "off", "false", "no", "0":
		*dst = false
	default:
		return errors.New("must be a boolean: on, off, true, false, yes, no, 1, 0")
	}
	return nil
}

func setEnum(dst *string, v string, allowed ...string) error {
	lv := strings.ToLower(strings.TrimSpace(v))
	if !slices.Contains(allowed, lv) {
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
	*dst = lv
	return nil
}

func setInt(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("must be an integer from %d to %d", lo, hi)
	}
	*dst = n
	return nil
}

// ParseSize parses a byte size: a plain integer, or an integer with an SI
// (kB, MB, GB, TB; 1000-based) or IEC (KiB, MiB, GiB, TiB; 1024-based) unit.
// Unit case is ignored; a trailing "B" is optional ("10M" = "10MB").
func ParseSize(v string) (int64, error) {
	m := sizeRE().FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, errors.New(`must be a size in bytes, e.g. 1048576, 500kB, 10MB, 1GiB`)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, errors.New("size out of range")
	}
	var mult int64
	switch strings.ToLower(m[2]) {
	case "", "b":
		mult = 1
	case "k", "kb":
		mult = 1000
	case "m", "mb":
		mult = 1000 * 1000
	case "g", "gb":
		mult = 1000 * 1000 * 1000
	case "t", "tb":
		mult = 1000 * 1000 * 1000 * 1000
	case "kib":
		mult = 1 << 10
	case "mib":
		mult = 1 << 20
	case "gib":
		mult = 1 << 30
	case "tib":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("unknown unit %q (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)", m[2])
	}
	if n > (1<<63-1)/mult {
		return 0, errors.New("size out of range")
	}
	return n * mult, nil
}

func setSize(dst *int64, v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}

// ParseDuration parses a Go duration ("90m", "1h30m") or a Barman-style one
// ("1 HOURS", "2 DAYS", "3 WEEKS", "1 MONTHS"; a month is 30 days; also
// "30 s", "5 d"). A plain "0" is zero.
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "0" {
		return 0, nil
	}
	if m := barmanDurRE().FindStringSubmatch(v); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return 0, errors.New("duration out of range")
		}
		var unit time.Duration
		switch u := strings.ToLower(m[2]); {
		case u == "s" || strings.HasPrefix(u, "second"):
			unit = time.Second
		case u == "m" || strings.HasPrefix(u, "minute"):
			unit = time.Minute
		case u == "h" || strings.HasPrefix(u, "hour"):
			unit = time.Hour
		case u == "d" || strings.HasPrefix(u, "day"):
			unit = 24 * time.Hour
		case u == "w" || strings.HasPrefix(u, "week"):
			unit = 7 * 24 * time.Hour
		default: // month
			unit = 30 * 24 * time.Hour
		}
		if n > int64((1<<63-1)/unit) {
			return 0, errors.New("duration out of range")
		}
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New(`must be a duration such as 90m, 1h30m, "1 HOURS", "2 DAYS", "3 WEEKS", "1 MONTHS"`)
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

func setDuration(dst *time.Duration, v string, zeroOK bool) error {
	d, err := ParseDuration(v)
	if err != nil {
		return err
	}
	if d == 0 && !zeroOK {
		return errors.New("must be greater than zero")
	}
	*dst = d
	return nil
}
