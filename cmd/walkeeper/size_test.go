package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cmd/walkeeper holds wiring and printing only (DESIGN.md): logic lives in the package
// that owns it, where it is unit-tested. These budgets keep it so: every .go file of the
// package (tests included) under 1,500 lines, each command's Run under 60.
func TestCommandLineStaysThin(t *testing.T) {
	const maxPackageLines, maxRunLines = 1500, 60
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	total, runs := 0, 0
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		total += strings.Count(string(src), "\n")
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil && fn.Name.Name == "Run" {
				runs++
				if n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1; n >= maxRunLines {
					t.Errorf("%s: Run is %d lines, the budget is under %d: move its logic into the package that owns it", fset.Position(fn.Pos()), n, maxRunLines)
				}
			}
		}
	}
	if runs < 20 {
		t.Fatalf("found %d Run methods in %d files: not reading cmd/walkeeper?", runs, len(files))
	}
	if total >= maxPackageLines {
		t.Errorf("cmd/walkeeper is %d lines, the budget is under %d: move logic into internal packages", total, maxPackageLines)
	}
	t.Logf("cmd/walkeeper: %d lines in %d files, %d Run methods", total, len(files), runs)
}
