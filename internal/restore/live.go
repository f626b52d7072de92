package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

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

// remoteProbeScript prints, for the remote host, one "REAL <i> <path>" line per root
// (symlinks resolved with GNU readlink -m, the path itself without it), one
// "IDS <i> <dev:ino>..." line per root with the identity of the resolved root and of
// each of its parents up to / ("-" where nothing exists yet), the host's
// "BOOT <boot id>", then
// "LIVE <pid> <datadir>" for every running postgres in the shell's mount namespace
// and "TBLSPC <datadir> <location>" for its tablespaces: the same facts
// LocalClusters reads here.
func remoteProbeScript(roots []string) string {
	var b strings.Builder
	for i, r := range roots {
		q := ShellQuote(r)
		fmt.Fprintf(&b, "echo \"REAL %d $(readlink -m %s 2>/dev/null || echo %s)\"\n", i, q, q)
		fmt.Fprintf(&b, `p=$(readlink -m %s 2>/dev/null || echo %s); ids=""
while :; do ids="$ids $(stat -L -c %%d:%%i "$p" 2>/dev/null || echo -)"; [ "$p" = / ] && break; p=$(dirname "$p"); done
echo "IDS %d$ids"
`, q, q, i)
	}
	b.WriteString("echo \"BOOT $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)\"\n")
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

// remoteIdentity is what remoteProbeScript says about where the roots are: the remote
// kernel's boot id and, per root, the dev:ino of the resolved root and of its parents
// ("-" for a component that does not exist).
type remoteIdentity struct {
	boot string
	ids  map[int][]string
}

func parseRemoteIdentity(out string) remoteIdentity {
	ri := remoteIdentity{ids: map[int][]string{}}
	for _, line := range strings.Split(out, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "BOOT":
			ri.boot = strings.TrimSpace(rest)
		case "IDS":
			f := strings.Fields(rest)
			if len(f) < 2 {
				continue
			}
			if i, err := strconv.Atoi(f[0]); err == nil {
				ri.ids[i] = f[1:]
			}
		}
	}
	return ri
}

// fileID is the dev:ino of what p names (links followed), as stat -L -c %d:%i
// prints it.
func fileID(p string) string {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// homeOnRemote says how the remote root whose identity chain is ids (itself, then
// its parents) stands to walkeeper's home on this host: "is", "inside", "above" or
// "". A remote restore reaches this host itself when the remote kernel is this
// kernel (same boot id: ssh to localhost, or to a container of this host with the
// home mounted), and then the home is compared by identity, whatever path it has
// there.
func homeOnRemote(ri remoteIdentity, i int, home string) string {
	if home == "" || ri.boot == "" || ri.boot != bootID() {
		return ""
	}
	ids := ri.ids[i]
	homeID := fileID(home)
	if len(ids) == 0 || homeID == "" {
		return ""
	}
	if ids[0] == homeID {
		return "is"
	}
	for _, id := range ids[1:] {
		if id == homeID {
			return "inside"
		}
	}
	for d := filepath.Dir(home); ; d = filepath.Dir(d) {
		if fileID(d) == ids[0] {
			return "above"
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}
