package restore

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// restoredStatus is the archive_status suffix PostgreSQL gives a file restore_command
// fetched (KeepFileRestoredFromArchive): ".ready" under archive_mode = always, so that
// a standby archives what it replayed, else ".done", so that it is never archived
// again. The prefetcher marks the segments it places in pg_wal the same way.
func restoredStatus(pgwal string) string {
	if v, ok := statusCache.Load(pgwal); ok {
		return v.(string)
	}
	st := ".done"
	if strings.EqualFold(ArchiveMode(filepath.Dir(pgwal)), "always") {
		st = ".ready"
	}
	// archive_mode only changes with a restart, and a prefetcher lives for one
	// recovery: read the configuration once.
	statusCache.Store(pgwal, st)
	return st
}

var statusCache sync.Map

// ArchiveMode is the archive_mode a data directory's server runs with, as far as its
// files tell (see ConfValue). "off" when unset.
func ArchiveMode(dataDir string) string {
	if v := ConfValue(dataDir, "archive_mode"); v != "" {
		return v
	}
	return "off"
}

// ConfValue is the value of a configuration parameter a data directory's server runs
// with, as far as its files tell: postgresql.conf (with its include, include_if_exists
// and include_dir directives), then postgresql.auto.conf, then a -c on the command line
// recorded in postmaster.opts, the last setting winning as in PostgreSQL. "" when unset.
func ConfValue(dataDir, name string) string {
	val := ""
	seen := map[string]bool{}
	set := func(v string) { val = v }
	readConf(filepath.Join(dataDir, "postgresql.conf"), name, set, seen, 0)
	readConf(filepath.Join(dataDir, "postgresql.auto.conf"), name, set, seen, 0)
	if b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.opts")); err == nil {
		re := regexp.MustCompile(`"?(?:-c|--)"?\s*"?` + regexp.QuoteMeta(name) + `=([^"\s]*)"?`)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			set(m[1])
		}
	}
	return val
}

// readConf applies every setting of name in a postgresql.conf-style file to set, in
// order, following include directives (relative to the including file).
func readConf(path, name string, set func(string), seen map[string]bool, depth int) {
	if depth > 10 || seen[path] {
		return
	}
	seen[path] = true
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		key, val, ok := confLine(sc.Text())
		if !ok {
			continue
		}
		rel := func(p string) string {
			if filepath.IsAbs(p) {
				return p
			}
			return filepath.Join(filepath.Dir(path), p)
		}
		switch strings.ToLower(key) {
		case strings.ToLower(name):
			set(val)
		case "include", "include_if_exists":
			readConf(rel(val), name, set, seen, depth+1)
		case "include_dir":
			ents, _ := filepath.Glob(filepath.Join(rel(val), "*.conf"))
			sort.Strings(ents)
			for _, e := range ents {
				if !strings.HasPrefix(filepath.Base(e), ".") {
					readConf(e, name, set, seen, depth+1)
				}
			}
		}
	}
}

// confLine splits "name [=] value # comment", unquoting a '...' value.
func confLine(line string) (key, val string, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false
	}
	i := strings.IndexAny(line, " \t=")
	if i <= 0 {
		return "", "", false
	}
	key, rest := line[:i], strings.TrimLeft(line[i:], " \t")
	rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t")
	if strings.HasPrefix(rest, "'") {
		var b strings.Builder
		for j := 1; j < len(rest); j++ {
			c := rest[j]
			switch {
			case c == '\'' && j+1 < len(rest) && rest[j+1] == '\'':
				b.WriteByte('\'')
				j++
			case c == '\'':
				return key, b.String(), true
			case c == '\\' && j+1 < len(rest):
				j++
				b.WriteByte(rest[j])
			default:
				b.WriteByte(c)
			}
		}
		return "", "", false
	}
	if j := strings.IndexAny(rest, " \t#"); j >= 0 {
		rest = rest[:j]
	}
	return key, rest, rest != ""
}
