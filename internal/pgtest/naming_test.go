package pgtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgresTestsAreNamed enforces the naming rule for test files: whatever uses this
// harness (a test that needs a real PostgreSQL, or its helper) lives in a file named
// *_pg_test.go, and such a file uses the harness. A reader then sees from the file name
// which tests start a cluster, and `-short` (SkipShort) is where they all are.
func TestPostgresTestsAreNamed(t *testing.T) {
	root := repoRoot(t)
	var bad []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") || filepath.Dir(path) == filepath.Join(root, "internal", "pgtest") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		pgFile := strings.HasSuffix(path, "_pg_test.go")
		uses := false
		for _, d := range f.Decls {
			if !usesHarness(d) {
				continue
			}
			uses = true
			if !pgFile {
				bad = append(bad, rel+": "+declName(d)+" uses pgtest: move it to a *_pg_test.go file")
			}
		}
		if pgFile && !uses {
			bad = append(bad, rel+": named *_pg_test.go but nothing in it uses pgtest")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Error(b)
	}
}

func usesHarness(n ast.Node) bool {
	found := false
	ast.Inspect(n, func(x ast.Node) bool {
		if se, ok := x.(*ast.SelectorExpr); ok {
			if id, ok := se.X.(*ast.Ident); ok && id.Name == "pgtest" {
				found = true
			}
		}
		return !found
	})
	return found
}

func declName(d ast.Decl) string {
	if fd, ok := d.(*ast.FuncDecl); ok {
		return fd.Name.Name
	}
	return "a declaration"
}

// repoRoot is the directory of go.mod above this package.
func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
