package pgtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgresTestsAreNamed enforces the naming rule for test files: whatever uses this
// harness, directly or through a helper of its package (a test that needs a real
// PostgreSQL, or such a helper), lives in a file named *_pg_test.go, and such a file
// uses the harness. A reader then sees from the file name which tests start a cluster.
func TestPostgresTestsAreNamed(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	type decl struct {
		file string // relative to root
		name string
		node ast.Decl
	}
	byDir := map[string][]decl{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, d := range f.Decls {
			byDir[filepath.Dir(rel)] = append(byDir[filepath.Dir(rel)], decl{file: rel, name: declName(d), node: d})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, decls := range byDir {
		// The declarations that need PostgreSQL: those using pgtest, then, until nothing
		// changes, those naming one of them (a helper's caller).
		needs := map[int]bool{}
		names := map[string]bool{}
		for i, d := range decls {
			if usesHarness(d.node) {
				needs[i], names[d.name] = true, true
			}
		}
		for grew := true; grew; {
			grew = false
			for i, d := range decls {
				if !needs[i] && names[d.name] == false && mentions(d.node, names) {
					needs[i], names[d.name], grew = true, true, true
				}
			}
		}
		used := map[string]bool{}
		for i, d := range decls {
			pgFile := strings.HasSuffix(d.file, "_pg_test.go")
			if needs[i] {
				used[d.file] = true
				if !pgFile {
					bad = append(bad, d.file+": "+d.name+" needs PostgreSQL (starts a cluster through pgtest): move it to a *_pg_test.go file")
				}
			}
		}
		for _, d := range decls {
			if strings.HasSuffix(d.file, "_pg_test.go") && !used[d.file] {
				bad = append(bad, d.file+": named *_pg_test.go but nothing in it starts a PostgreSQL")
				used[d.file] = true // once per file
			}
		}
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// mentions reports whether n names one of the functions in names (a call of a helper,
// or a method called through a selector).
func mentions(n ast.Node, names map[string]bool) bool {
	found := false
	ast.Inspect(n, func(x ast.Node) bool {
		switch v := x.(type) {
		case *ast.CallExpr:
			switch fn := v.Fun.(type) {
			case *ast.Ident:
				found = found || names[fn.Name]
			case *ast.SelectorExpr:
				found = found || names[fn.Sel.Name]
			}
		}
		return !found
	})
	return found
}

// startsCluster are the harness's entry points that start or require a real PostgreSQL
// (its other helpers, such as the postgres OS user's file ownership, need none).
var startsCluster = map[string]bool{"New": true, "NewStandby": true, "Adopt": true, "FromDataDir": true,
	"Require": true, "RequireMajor": true, "SkipShort": true}

func usesHarness(n ast.Node) bool {
	found := false
	ast.Inspect(n, func(x ast.Node) bool {
		if se, ok := x.(*ast.SelectorExpr); ok {
			if id, ok := se.X.(*ast.Ident); ok && id.Name == "pgtest" && startsCluster[se.Sel.Name] {
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
	return "" // a type, var or const: only funcs are followed
}
