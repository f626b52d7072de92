package archive

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestLayering checks the import graph of the module's own packages (code, not tests;
// transitively): the readers of the archive go through this package, never through
// the writer, and the low layers stay low.
func TestLayering(t *testing.T) {
	root := moduleRoot(t)
	deps := moduleDeps(t, root)
	rules := []struct {
		pkg     string
		mustNot []string
	}{
		// The rule: the archive's readers do not import its writer.
		{"internal/restore", []string{"internal/ingest"}},
		{"internal/verify", []string{"internal/ingest"}},
		{"internal/retention", []string{"internal/ingest"}},
		{"internal/check", []string{"internal/ingest"}},
		{"internal/basebackup", []string{"internal/ingest", "internal/rebuild"}},
		// The archive layer sits on storage, below everything that uses it.
		{"internal/archive", []string{"internal/ingest", "internal/index", "internal/basebackup", "internal/restore",
			"internal/verify", "internal/retention", "internal/check", "internal/config", "internal/rebuild"}},
		// The index knows nothing of backups' format or of the pipeline; the rebuild,
		// which needs both, sits above it.
		{"internal/index", []string{"internal/basebackup", "internal/ingest", "internal/rebuild"}},
		{"internal/ingest", []string{"internal/basebackup", "internal/retention", "internal/restore", "internal/rebuild"}},
		// The storage layer (stores, encryption, tiers) knows nothing of the archive's
		// layout or configuration; repo, which opens a configured repository, sits on it.
		{"internal/storage/s3store", []string{"internal/archive", "internal/config", "internal/crypt", "internal/tier"}},
		{"internal/crypt", []string{"internal/archive", "internal/config", "internal/tier", "internal/storage/s3store"}},
		{"internal/tier", []string{"internal/archive", "internal/config", "internal/repo", "internal/crypt"}},
		{"internal/repo", []string{"internal/ingest", "internal/restore", "internal/retention", "internal/upload", "internal/basebackup"}},
		{"internal/upload", []string{"internal/ingest", "internal/restore", "internal/retention", "internal/repo"}},
	}
	for _, r := range rules {
		got, ok := deps[r.pkg]
		if !ok {
			t.Errorf("%s: no such package", r.pkg)
			continue
		}
		for _, bad := range r.mustNot {
			if got[bad] {
				t.Errorf("%s imports %s (directly or through another package)", r.pkg, bad)
			}
		}
	}
}

// moduleDeps maps each package of the module (by its path below root) to the
// module's packages it imports, transitively, from its non-test files.
func moduleDeps(t *testing.T, root string) map[string]map[string]bool {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	modPath := ""
	for _, l := range strings.Split(string(gomod), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			modPath = strings.Trim(strings.TrimSpace(m), `"`)
		}
	}
	if modPath == "" {
		t.Fatal("go.mod names no module")
	}
	direct := map[string][]string{}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		if _, ok := direct[rel]; !ok {
			direct[rel] = nil
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(ip, modPath+"/"); ok {
				direct[rel] = append(direct[rel], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]map[string]bool{}
	var visit func(pkg string, into map[string]bool)
	visit = func(pkg string, into map[string]bool) {
		for _, d := range direct[pkg] {
			if !into[d] {
				into[d] = true
				visit(d, into)
			}
		}
	}
	for pkg := range direct {
		all[pkg] = map[string]bool{}
		visit(pkg, all[pkg])
	}
	return all
}

// TestLayeringSeesImports proves moduleDeps reads the graph: packages known to depend
// on others are seen to.
func TestLayeringSeesImports(t *testing.T) {
	deps := moduleDeps(t, moduleRoot(t))
	for pkg, dep := range map[string]string{
		"cmd/walkeeper":      "internal/ingest",
		"internal/rebuild":   "internal/basebackup",
		"internal/restore":   "internal/archive",
		"internal/archive":   "internal/storage",
		"internal/ingest":    "internal/segments", // directly
		"internal/retention": "internal/segments", // also through archive
	} {
		if !deps[pkg][dep] {
			var got []string
			for d := range deps[pkg] {
				got = append(got, d)
			}
			sort.Strings(got)
			t.Errorf("%s: %s not among its imports %v", pkg, dep, got)
		}
	}
}
