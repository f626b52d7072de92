package restore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/pgutil"
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
	return homeRefusal(t, relation(t.resolved, home), home, scratch)
}

// homeRefusal is the refusal of target t that stands in relation rel ("is", "inside",
// "above" or "") to walkeeper's home, or nil.
func homeRefusal(t target, rel, home string, scratch []string) error {
	switch rel {
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
// a tablespace of a running cluster. All paths are resolved. Like every refused
// target, a bad argument: exit status 2.
func checkLive(t target, live []LiveCluster) error {
	for _, c := range live {
		how := map[string]string{"is": "is", "inside": "is inside", "above": "contains"}
		if r := relation(t.resolved, c.DataDir); r != "" {
			return usage("%s %s the data directory %s of a running PostgreSQL (pid %d): stop that cluster or choose another directory", t, how[r], c.DataDir, c.PID)
		}
		for _, ts := range c.Tablespaces {
			if r := relation(t.resolved, ts); r != "" {
				return usage("%s %s the tablespace %s of the running PostgreSQL in %s (pid %d): choose another directory (--tablespace NAME:PATH relocates a tablespace)", t, how[r], ts, c.DataDir, c.PID)
			}
		}
	}
	return nil
}

// checkOriginal refuses tablespaces restored to their original location while the
// backed-up server answers: that location is most likely production's tablespace.
// A location named explicitly with --tablespace is the DBA's choice and passes (the
// running-cluster check still applies to it).
func checkOriginal(ctx context.Context, server string, ts []TablespaceTarget, answers func(context.Context) (string, bool)) error {
	if answers == nil {
		return nil
	}
	var orig []TablespaceTarget
	for _, t := range ts {
		if !t.relocated {
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
	return usage("tablespace %s would be restored to its original location %s while server %s answers at %s (production's tablespace): relocate it with --tablespace %s:PATH", t.label(), t.Location, server, where, t.label())
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
	if err := checkOriginal(ctx, o.Server, ts, o.Guard.ServerAnswers); err != nil {
		return err
	}
	targets := []target{{label: "DEST", path: o.Dest}}
	for _, t := range ts {
		targets = append(targets, target{label: "tablespace " + t.label(), path: t.Target})
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

// ArchiveConf renders ArchiveSettings for postgresql.auto.conf under a comment that
// says what the line overrides and how to archive anyway: PostgreSQL reads
// postgresql.auto.conf after postgresql.conf and says nothing when one overrides the
// other, so a DBA who sets archive_mode = always in postgresql.conf (a restored standby
// that archives what it replays) would otherwise see it ignored without a word.
func ArchiveConf(archive bool) string {
	s := ArchiveSettings(archive)
	if len(s) == 0 {
		return ""
	}
	return RenderSettings(ArchiveOffNote, s)
}

// ArchiveOffNote is the comment above the archive_mode = off a restore writes.
const ArchiveOffNote = "walkeeper restore: this copy does not archive (it came with production's archive_command).\n" +
	"This line wins over postgresql.conf. To archive (e.g. a standby with archive_mode = always),\n" +
	"restore with --archive, or ALTER SYSTEM SET archive_mode, or remove these lines."

// targetLabels names each root of a restore the way errors show it.
func targetLabels(dest string, ts []TablespaceTarget) map[string]string {
	m := map[string]string{dest: "DEST"}
	for _, t := range ts {
		m[t.Target] = "tablespace " + t.label()
	}
	return m
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

// GuardFor is what a restore of srv refuses to write into: walkeeper's home (except
// the given scratch directories) and, while the server answers at its conninfo, its
// tablespaces' original locations.
func GuardFor(srv *config.Server, scratch []string) Guard {
	return Guard{Home: srv.Home, Scratch: scratch,
		ServerAnswers: func(ctx context.Context) (string, bool) {
			return pgutil.Answers(ctx, srv.Conninfo, 5*time.Second)
		}}
}
