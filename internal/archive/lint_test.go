package archive

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/pgtest"
)

// The layout's names, as a package outside this one would spell them to build or parse
// a key or a server directory's path.
var (
	// keyFragment matches a literal holding a piece of a storage key with its slash
	// ("/wals/", server+"/base/", "history/", ".../backup.info").
	keyFragment = regexp.MustCompile(`(^|/)(wals|base|history)/|/(wals|base|history)$|/(identity\.json|backup\.info|backup_manifest|contents\.json(\.zst)?)$`)
	// keyNames are the names that, as an operand of + or an argument of a path or
	// affix function, make a storage key.
	keyNames = map[string]bool{
		walsDir: true, historyDir: true, backupsDir: true, identityName: true, backupInfo: true,
		backupMan: true, contentsName: true, contentsV1: true, reasonSuffix: true,
	}
	// dirNames are the server directories on local disk, made by a path join.
	dirNames = map[string]bool{incomingDir: true, errorsDir: true, streamingDir: true}
	// anywhere are names with no other meaning: spelled anywhere, they are the layout's.
	anywhere = regexp.MustCompile(`identity\.json|\.wk-dup-|contents\.json`)
	// backupObjects are the key names below a backup's data/ prefix: basebackup's own.
	backupObjects = regexp.MustCompile(`(^|/)(bundles|pgdata)/`)
)

// pathFuncs take or return paths and affixes: a layout name passed to one of them is
// being used as a piece of the layout.
var pathFuncs = map[string]bool{
	"filepath.Join": true, "path.Join": true, "strings.HasPrefix": true, "strings.HasSuffix": true,
	"strings.TrimPrefix": true, "strings.TrimSuffix": true, "strings.CutPrefix": true,
	"strings.CutSuffix": true, "strings.Contains": true, "strings.Index": true, "strings.LastIndex": true,
	"fmt.Sprintf": true,
}

// TestNoLayoutOutsideArchive fails when a package other than this one spells the
// archive's layout (a storage key or a server directory's name) in its code: every
// other package builds and parses keys through this package's functions. Tests are
// exempt (they pin the layout from outside, which is what keeps existing archives
// readable); basebackup alone names the objects below a backup's data/ prefix.
func TestNoLayoutOutsideArchive(t *testing.T) {
	root := moduleRoot(t)
	var found []string
	for _, top := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if rel == "internal/archive" || d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			found = append(found, layoutLiterals(t, rel, src, strings.HasPrefix(rel, "internal/basebackup/"))...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(found) > 0 {
		sort.Strings(found)
		t.Errorf("the archive's layout is spelled outside internal/archive (build the key with archive's functions instead):\n  %s",
			strings.Join(found, "\n  "))
	}
}

// layoutLiterals returns "file:line: literal (why)" for each literal of file that
// spells the layout.
func layoutLiterals(t *testing.T, rel string, src []byte, basebackup bool) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	report := func(lit *ast.BasicLit, why string) {
		out = append(out, fmt.Sprintf("%s:%d: %s (%s)", rel, fset.Position(lit.Pos()).Line, lit.Value, why))
	}
	// Literals used to make keys: operands of + and arguments of the key and affix
	// functions (joined); literals joined into a path (inPath).
	joined := map[*ast.BasicLit]bool{}
	inPath := map[*ast.BasicLit]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if n.Op == token.ADD {
				for _, e := range []ast.Expr{n.X, n.Y} {
					if lit, ok := e.(*ast.BasicLit); ok {
						joined[lit] = true
					}
				}
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && pathFuncs[id.Name+"."+sel.Sel.Name] {
					// Storage keys are slash-separated, never made by filepath.Join:
					// its arguments are paths on local disk (where "base" is also
					// PostgreSQL's own directory).
					local := id.Name == "filepath"
					for _, a := range n.Args {
						if lit, ok := a.(*ast.BasicLit); ok {
							joined[lit] = joined[lit] || !local
							inPath[lit] = inPath[lit] || sel.Sel.Name == "Join"
						}
					}
				}
			}
		}
		return true
	})
	skip := map[*ast.BasicLit]bool{}
	for _, imp := range f.Imports {
		skip[imp.Path] = true
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if fl, ok := n.(*ast.Field); ok && fl.Tag != nil {
			skip[fl.Tag] = true
		}
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING || skip[lit] {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			return true
		}
		switch {
		case keyFragment.MatchString(s):
			report(lit, "a piece of a storage key")
		case anywhere.MatchString(s):
			report(lit, "a name of the layout")
		case joined[lit] && keyNames[strings.Trim(s, "/")]:
			report(lit, "a name of the layout used to make a key")
		case inPath[lit] && dirNames[strings.Trim(s, "/")]:
			report(lit, "a server directory's name used to make its path")
		case !basebackup && backupObjects.MatchString(s):
			report(lit, "a key below a backup's data/, which only basebackup names")
		}
		return true
	})
	return out
}

// TestLayoutLintCatches proves the lint above can fail: each way the layout was
// spelled outside this package before it existed is caught, and the look-alikes that
// are not the layout (a kind's name, prose, a struct tag) are not.
func TestLayoutLintCatches(t *testing.T) {
	caught := []string{
		`server + "/wals/"`,
		`server + "/wals/" + segments.HistoryDir + "/"`,
		`s.server + "/base/"`,
		`server + "/identity.json"`,
		`Prefix(server, id) + "backup.info"`,
		`p[:len(p)-len("/backup.info")]`,
		`Prefix(server, id) + "contents.json.zst"`,
		`strings.HasSuffix(name, ".reason")`,
		`dir + "/" + name + ".reason"`,
		`fmt.Sprintf("%s%s%020d", name, ".wk-dup-", stamp)`,
		`filepath.Join(s.Dir(), "errors")`,
		`filepath.Join(s.Dir(), "incoming")`,
		`filepath.Join(s.Dir(), "streaming")`,
		`DataPrefix(server, id) + fmt.Sprintf("bundles/%06d.zst", n)`,
	}
	for _, e := range caught {
		src := "package p\nvar _ = " + e + "\n"
		if got := layoutLiterals(t, "p.go", []byte(src), false); len(got) == 0 {
			t.Errorf("not caught: %s", e)
		}
	}
	if got := layoutLiterals(t, "p.go", []byte("package p\nvar _ = DataPrefix(server, id) + fmt.Sprintf(\"bundles/%06d\", n)\n"), true); len(got) != 0 {
		t.Errorf("basebackup may name its data objects: %v", got)
	}
	fine := []string{
		`"history"`,
		`"backup.info says " + status`,
		`"streaming/" + n.Raw`,
		`"files in errors/"`,
		`struct{ E []string ` + "`json:\"errors,omitempty\"`" + ` }{}`,
		`filepath.Join(dest, "base", "1")`,
	}
	for _, e := range fine {
		src := "package p\nvar _ = " + e + "\n"
		if got := layoutLiterals(t, "p.go", []byte(src), false); len(got) != 0 {
			t.Errorf("caught, but not the layout: %s: %v", e, got)
		}
	}
}

// moduleRoot is the repository's root (pgtest's ModuleRoot: go.mod above the test).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := pgtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
