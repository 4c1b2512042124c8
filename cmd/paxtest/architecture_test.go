package main

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/paxtest/paxtest/"

// mayImport is ARCHITECTURE.md's table of rules: the packages of ours each
// package may import, as prefixes ("target/" is every package under
// target). A package that is not in the table fails the test: a new one
// comes with its rule and its line in ARCHITECTURE.md.
var mayImport = map[string][]string{
	"cmd/paxtest":       {""},
	"harness":           {"harness/", "nemesis", "workloads", "checker", "reports", "target/api", "target/bugs"},
	"harness/cluster":   {"harness/db", "nemesis/network", "target/api"},
	"harness/db":        {"target/api"},
	"harness/disk":      nil,
	"harness/hosts":     {"harness/cluster", "nemesis/network"},
	"harness/hoststest": {"harness/hosts"},
	"harness/layout":    nil,
	"harness/mutate":    nil,
	"nemesis":           {"nemesis/", "target/api", "target/quorum"},
	"nemesis/fault":     nil,
	"nemesis/network":   nil,
	"workloads":         {"checker/history", "target/api"},
	"checker":           {"checker/history", "nemesis/fault", "target/api", "target/quorum"},
	"checker/history":   nil,
	"reports":           {"checker", "harness/layout", "nemesis/fault"},
	"target/server":     {"target/"},
	"target/paxos":      {"target/bugs", "target/quorum"},
	"target/kv":         {"target/api"},
	"target/api":        nil,
	"target/wal":        {"target/paxos"},
	"target/transport":  {"target/paxos"},
	"target/quorum":     nil,
	"target/bugs":       nil,
}

// imports lists each package of ours with the packages of ours it imports.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	require.NoError(t, err, "go list")
	got := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(f[0], module)
		got[pkg] = nil
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module) {
				got[pkg] = append(got[pkg], strings.TrimPrefix(imp, module))
			}
		}
	}
	require.NotEmpty(t, got)
	return got
}

func TestTheImportGraphKeepsTheArchitecturesRules(t *testing.T) {
	arch, err := os.ReadFile(filepath.Join("..", "..", "ARCHITECTURE.md"))
	require.NoError(t, err)
	for pkg, imps := range imports(t) {
		rules, known := mayImport[pkg]
		require.True(t, known, "package %s has no rule: add it to mayImport and to ARCHITECTURE.md", pkg)
		require.Contains(t, string(arch), "`"+pkg+"`", "ARCHITECTURE.md does not describe %s", pkg)
		for _, imp := range imps {
			require.False(t, strings.HasPrefix(pkg, imp+"/"), "%s imports its ancestor %s", pkg, imp)
			ok := false
			for _, r := range rules {
				if imp == r || strings.HasPrefix(imp, r) && (r == "" || strings.HasSuffix(r, "/") || strings.HasPrefix(imp, r+"/")) {
					ok = true
				}
			}
			require.True(t, ok, "%s imports %s, which ARCHITECTURE.md does not allow (it may import: %v)", pkg, imp, rules)
		}
		if strings.HasPrefix(pkg, "target/") {
			for _, imp := range imps {
				require.True(t, strings.HasPrefix(imp, "target/"), "the system under test imports the harness: %s imports %s", pkg, imp)
			}
		}
	}
}

// No function over 80 lines outside the protocol core, no file over 600:
// a long one is split into named steps.
func TestFunctionsAndFilesStayShort(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "store" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		require.LessOrEqual(t, bytes.Count(src, []byte("\n")), 600, "%s is over 600 lines", rel)
		if strings.HasPrefix(filepath.ToSlash(rel), "target/paxos/") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Body != nil {
				lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line
				require.LessOrEqual(t, lines, 80, "%s: %s is %d lines", rel, fn.Name.Name, lines)
			}
		}
		return nil
	})
	require.NoError(t, err)
}
