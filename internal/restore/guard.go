package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Guard is what a restore refuses to write into whatever --force says: invariant 8,
// a restore never harms production. Every check runs before anything is written.
type Guard struct {
	// Home is walkeeper's home. No target may be it, lie inside it or above it (local
	// restores only: a remote DEST is on another host).
	Home string
	// Scratch are directories inside Home that restore may write into (the sandbox's
	// scratch directory, which holds nothing of the archive).
	Scratch []string
	// ServerAnswers reports whether the backed-up server answers at its conninfo, and
	// where; nil skips the check. A tablespace restored to its original location while
	// the server answers would land on production's tablespace.
	ServerAnswers func(ctx context.Context) (where string, up bool)
}

// LiveCluster is a running PostgreSQL found on a host: its data directory and the
// targets of its pg_tblspc links (all resolved).
type LiveCluster struct {
	PID         int
	DataDir     string
	Tablespaces []string
}

// target is one directory restore would write into, with how the user named it.
type target struct {
	label    string // "DEST" or "tablespace NAME"
	path     string // as given (cleaned)
	resolved string // symlinks resolved
}

func (t target) String() string {
	if t.resolved != "" && t.resolved != t.path {
		return fmt.Sprintf("%s %s (resolves to %s)", t.label, t.path, t.resolved)
	}
	return t.label + " " + t.path
}

// relation says how path p stands to directory d: "is", "inside", "above" or "".
func relation(p, d string) string {
	switch {
	case p == d:
		return "is"
	case within(p, d):
		return "inside"
	case within(d, p) || p == "/":
		return "above"
	}
	return ""
}

// checkHome refuses a target that is walkeeper's home, inside it (unless inside one
// of the scratch directories) or above it. All paths are resolved.
func checkHome(t target, home string, scratch []string) error {
	if home == "" {
		return nil
	}
	switch relation(t.resolved, home) {
	case "is":
		return usage("%s is walkeeper's home: restoring there would destroy the archive; choose a directory outside %s", t, home)
	case "inside":
		for _, s := range scratch {
			if s != "" && within(t.resolved, s) {
				return nil
			}
		}
		return usage("%s is inside walkeeper's home %s: restoring there would damage the archive; choose a directory outside it", t, home)
	case "above":
		return usage("%s contains walkeeper's home %s: --force would delete the archive; choose a directory that does not contain it", t, home)
	}
	return nil
}

// checkLive refuses a target that is, lies inside or contains the data directory or
// a tablespace of a running cluster. All paths are resolved.
func checkLive(t target, live []LiveCluster) error {
	for _, c := range live {
		how := map[string]string{"is": "is", "inside": "is inside", "above": "contains"}
		if r := relation(t.resolved, c.DataDir); r != "" {
			return fmt.Errorf("%s %s the data directory %s of a running PostgreSQL (pid %d): stop that cluster or choose another directory", t, how[r], c.DataDir, c.PID)
		}
		for _, ts := range c.Tablespaces {
			if r := relation(t.resolved, ts); r != "" {
				return fmt.Errorf("%s %s the tablespace %s of the running PostgreSQL in %s (pid %d): choose another directory (--tablespace NAME:PATH relocates a tablespace)", t, how[r], ts, c.DataDir, c.PID)
			}
		}
	}
	return nil
}

// checkOriginal refuses tablespaces restored to their original location while the
// backed-up server answers: that location is most likely production's tablespace.
// A location named explicitly with --tablespace is the DBA's choice and passes (the
// running-cluster check still applies to it).
func checkOriginal(ctx context.Context, server string, ts []TablespaceTarget, relocated map[string]string, answers func(context.Context) (string, bool)) error {
	if answers == nil {
		return nil
	}
	var orig []TablespaceTarget
	for _, t := range ts {
		if _, ok := relocated[t.Name]; !ok {
			orig = append(orig, t)
		}
	}
	if len(orig) == 0 {
		return nil
	}
	where, up := answers(ctx)
	if !up {
		return nil
	}
	t := orig[0]
	return usage("tablespace %s would be restored to its original location %s while server %s answers at %s (production's tablespace): relocate it with --tablespace %s:PATH", t.Name, t.Location, server, where, t.Name)
}

// resolvePath resolves the symlinks of p's longest existing prefix and appends the
// rest, so a target that does not exist yet is compared where it would be created;
// a dangling link is followed to where it points (the restore would create that).
func resolvePath(p string) string { return resolveDepth(filepath.Clean(p), 0) }

func resolveDepth(p string, depth int) string {
	var rest []string
	for d := p; ; d = filepath.Dir(d) {
		if fi, err := os.Lstat(d); err == nil {
			if fi.Mode()&os.ModeSymlink != 0 && depth < 40 {
				if r, err := filepath.EvalSymlinks(d); err == nil {
					return filepath.Join(append([]string{r}, rest...)...)
				}
				if l, err := os.Readlink(d); err == nil {
					if !filepath.IsAbs(l) {
						l = filepath.Join(filepath.Dir(d), l)
					}
					return resolveDepth(filepath.Join(append([]string{l}, rest...)...), depth+1)
				}
			}
			if r, err := filepath.EvalSymlinks(d); err == nil {
				return filepath.Join(append([]string{r}, rest...)...)
			}
		}
		if d == filepath.Dir(d) {
			return p
		}
		rest = append([]string{filepath.Base(d)}, rest...)
	}
}

// guardTargets runs every check that applies to the targets of a restore; live is
// nil for a remote restore (its running clusters are checked on the remote host).
func guardTargets(ctx context.Context, o Options, ts []TablespaceTarget, live []LiveCluster) error {
	// First the tablespaces left at their original location: when the server
	// answers, that is the refusal that says what to do (relocate).
	if err := checkOriginal(ctx, o.Server, ts, o.Tablespaces, o.Guard.ServerAnswers); err != nil {
		return err
	}
	targets := []target{{label: "DEST", path: o.Dest}}
	for _, t := range ts {
		targets = append(targets, target{label: "tablespace " + t.Name, path: t.Target})
	}
	local := o.Remote == nil
	home := ""
	var scratch []string
	if local && o.Guard.Home != "" {
		home = resolvePath(o.Guard.Home)
		for _, s := range o.Guard.Scratch {
			scratch = append(scratch, resolvePath(s))
		}
	}
	for i := range targets {
		if local {
			targets[i].resolved = resolvePath(targets[i].path)
		} else {
			targets[i].resolved = targets[i].path
		}
		if err := checkHome(targets[i], home, scratch); err != nil {
			return err
		}
		if err := checkLive(targets[i], live); err != nil {
			return err
		}
	}
	if local {
		// Two targets that are the same directory once links are resolved would
		// overwrite each other (tablespaceTargets compares the names as given).
		for i := range targets {
			for j := i + 1; j < len(targets); j++ {
				if relation(targets[i].resolved, targets[j].resolved) != "" {
					return usage("%s and %s overlap once symlinks are resolved: relocate the tablespace with --tablespace NAME:PATH", targets[i], targets[j])
				}
			}
		}
	}
	return nil
}

// LocalClusters finds the PostgreSQL servers running on this host from /proc: every
// process named postgres (or postmaster) in our mount namespace whose working
// directory we may read is in its data directory (PostgreSQL chdirs there), and the
// data directory's pg_tblspc links name its tablespaces. Processes of other users
// are invisible to a non-root caller; postmaster.pid in a target still catches those.
func LocalClusters() []LiveCluster {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	selfNS, _ := os.Readlink("/proc/self/ns/mnt")
	byDir := map[string]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		base := "/proc/" + e.Name()
		comm, err := os.ReadFile(base + "/comm")
		if err != nil {
			continue
		}
		if c := strings.TrimSpace(string(comm)); c != "postgres" && c != "postmaster" {
			continue
		}
		if ns, err := os.Readlink(base + "/ns/mnt"); err == nil && selfNS != "" && ns != selfNS {
			continue // a container's path means nothing here
		}
		cwd, err := os.Readlink(base + "/cwd")
		if err != nil || !filepath.IsAbs(cwd) {
			continue
		}
		// Short-lived helpers (postgres -C, initdb's bootstrap) run elsewhere.
		if _, err := os.Stat(filepath.Join(cwd, "PG_VERSION")); err != nil && !errors.Is(err, os.ErrPermission) {
			continue
		}
		if old, ok := byDir[cwd]; !ok || pid < old {
			byDir[cwd] = pid
		}
	}
	out := make([]LiveCluster, 0, len(byDir))
	for dir, pid := range byDir {
		c := LiveCluster{PID: pid, DataDir: dir}
		if p := postmasterPID(filepath.Join(dir, "postmaster.pid")); p > 0 {
			c.PID = p
		}
		links, _ := os.ReadDir(filepath.Join(dir, "pg_tblspc"))
		for _, l := range links {
			if r, err := filepath.EvalSymlinks(filepath.Join(dir, "pg_tblspc", l.Name())); err == nil {
				c.Tablespaces = append(c.Tablespaces, r)
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DataDir < out[j].DataDir })
	return out
}

// ArchiveSettings are what a restore writes about archiving. By default the restored
// cluster does not archive: it carries production's archive_command (and
// archive_library), and once promoted it would archive its new timeline into
// production's archive, where the next default restore follows it (`latest`) and
// returns the drill's data instead of production's. archive_mode = off stops the
// archiver whatever the command; it wins over postgresql.conf because
// postgresql.auto.conf is read last. With archive (--archive) production's settings
// stay as they came with the backup.
func ArchiveSettings(archive bool) []Setting {
	if archive {
		return nil
	}
	return []Setting{{"archive_mode", "off"}}
}

// targetLabels names each root of a restore the way errors show it.
func targetLabels(dest string, ts []TablespaceTarget) map[string]string {
	m := map[string]string{dest: "DEST"}
	for _, t := range ts {
		m[t.Target] = "tablespace " + t.Name
	}
	return m
}

// remoteProbeScript prints, for the remote host, one "REAL <i> <path>" line per root
// (symlinks resolved with GNU readlink -m, the path itself without it), then
// "LIVE <pid> <datadir>" for every running postgres in the shell's mount namespace
// and "TBLSPC <datadir> <location>" for its tablespaces: the same facts
// LocalClusters reads here.
func remoteProbeScript(roots []string) string {
	var b strings.Builder
	for i, r := range roots {
		q := ShellQuote(r)
		fmt.Fprintf(&b, "echo \"REAL %d $(readlink -m %s 2>/dev/null || echo %s)\"\n", i, q, q)
	}
	b.WriteString(`me=$(readlink /proc/$$/ns/mnt 2>/dev/null)
for p in /proc/[0-9]*; do
  case "$(cat "$p/comm" 2>/dev/null)" in postgres|postmaster) ;; *) continue;; esac
  [ -z "$me" ] || [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$me" ] || continue
  d=$(readlink "$p/cwd" 2>/dev/null) || continue
  [ -e "$d/PG_VERSION" ] || continue
  echo "${p#/proc/} $d"
done | sort -n | while read -r pid d; do
  echo "LIVE $pid $d"
  for l in "$d"/pg_tblspc/*; do [ -L "$l" ] && echo "TBLSPC $d $(readlink -f "$l")"; done
done
`)
	return b.String()
}

// parseRemoteProbe reads remoteProbeScript's answer: the resolved roots (by index)
// and the running clusters, one per data directory (the lowest pid).
func parseRemoteProbe(out string, roots []string) ([]string, []LiveCluster) {
	real := append([]string(nil), roots...)
	var live []LiveCluster
	at := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		a, b, _ := strings.Cut(rest, " ")
		if kind != "TBLSPC" && !filepath.IsAbs(b) {
			continue
		}
		switch kind {
		case "REAL":
			if i, err := strconv.Atoi(a); err == nil && i >= 0 && i < len(real) {
				real[i] = filepath.Clean(b)
			}
		case "LIVE":
			pid, err := strconv.Atoi(a)
			if _, dup := at[b]; err != nil || dup {
				continue
			}
			at[b] = len(live)
			live = append(live, LiveCluster{PID: pid, DataDir: filepath.Clean(b)})
		case "TBLSPC":
			// The data directory may hold spaces: the location is the absolute path
			// after the data directory's own text.
			for dir, i := range at {
				if strings.HasPrefix(rest, dir+" ") {
					live[i].Tablespaces = append(live[i].Tablespaces, filepath.Clean(strings.TrimPrefix(rest, dir+" ")))
				}
			}
		}
	}
	return real, live
}

// Check runs the local checks (home, running clusters) on one directory before a
// caller creates it (the sandbox's scratch directory).
func (g Guard) Check(dir string) error {
	t := target{label: "directory", path: filepath.Clean(dir), resolved: resolvePath(dir)}
	var scratch []string
	for _, s := range g.Scratch {
		scratch = append(scratch, resolvePath(s))
	}
	if g.Home != "" {
		if err := checkHome(t, resolvePath(g.Home), scratch); err != nil {
			return err
		}
	}
	return checkLive(t, LocalClusters())
}
