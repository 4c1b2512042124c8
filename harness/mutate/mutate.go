// Package mutate generates mutants of Go source files: small, one-site
// changes of the kinds real safety bugs are made of (a comparison off by
// one, a condition negated, a constant off by one, a persist, send or
// return removed). Each mutant is the whole mutated file, so that a build
// can overlay it on the real tree (go build -overlay).
//
// It owns the mutation operators and the rules of which sites are not
// mutated (the bug switches' own code, logging, String methods). It only
// reads source; building and judging mutants is the caller's.
package mutate

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Operator names a kind of mutation.
type Operator string

// The operators.
const (
	OpCompare  Operator = "compare"   // < <=, > >=, == != swapped for their neighbour
	OpLogic    Operator = "logic"     // && and || swapped
	OpArith    Operator = "arith"     // + and - swapped
	OpIncDec   Operator = "incdec"    // ++ and -- swapped
	OpNegate   Operator = "negate-if" // an if's condition negated
	OpConstInc Operator = "const+1"   // an integer constant k becomes k+1
	OpConstDec Operator = "const-1"   // an integer constant k becomes k-1
	OpBool     Operator = "bool"      // true and false swapped
	OpRemove   Operator = "remove"    // a call, assignment, ++/-- or bare return removed
)

// Operators lists every operator, in a stable order.
func Operators() []Operator {
	return []Operator{OpCompare, OpLogic, OpArith, OpIncDec, OpNegate, OpConstInc, OpConstDec, OpBool, OpRemove}
}

// Mutant is one mutated file.
type Mutant struct {
	ID       string   `json:"id"`   // file:line:col:operator, stable across runs of the same source
	File     string   `json:"file"` // as given to Generate
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Operator Operator `json:"operator"`
	Func     string   `json:"func"` // the enclosing function
	Before   string   `json:"before"`
	After    string   `json:"after"`
	Src      []byte   `json:"-"` // the whole mutated file
}

// Diff is the mutant as a one-line unified diff.
func (m Mutant) Diff() string {
	return fmt.Sprintf("--- %s:%d (%s, in %s)\n-%s\n+%s\n", m.File, m.Line, m.Operator, m.Func, m.Before, m.After)
}

// edit replaces src[from:to] with text.
type edit struct {
	from, to int
	text     string
}

type site struct {
	pos  token.Pos
	op   Operator
	fn   string
	edit []edit
}

// Generate returns every mutant of the given files, in file and position
// order. Files are read from disk; names are kept as given.
func Generate(files []string) ([]Mutant, error) {
	var out []Mutant
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("mutate: %w", err)
		}
		ms, err := FromSource(f, src)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// FromSource returns every mutant of one file's source.
func FromSource(name string, src []byte) ([]Mutant, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("mutate: parse %s: %w", name, err)
	}
	c := &collector{fset: fset, src: src}
	for _, d := range file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil || skipFunc(fd) {
			continue
		}
		c.fn = fd.Name.Name
		c.bugDerived = bugDerivedIdents(fd.Body)
		c.voidFunc = fd.Type.Results == nil || len(fd.Type.Results.List) == 0
		ast.Inspect(fd.Body, c.visit)
	}
	sort.SliceStable(c.sites, func(i, j int) bool { return c.sites[i].pos < c.sites[j].pos })
	lines := strings.Split(string(src), "\n")
	var out []Mutant
	seen := map[string]int{}
	for _, s := range c.sites {
		p := fset.Position(s.pos)
		mutated := apply(src, s.edit)
		after := strings.Split(string(mutated), "\n")
		before := strings.TrimSpace(lines[p.Line-1])
		afterLine := ""
		if p.Line-1 < len(after) {
			afterLine = strings.TrimSpace(after[p.Line-1])
		}
		if s.op == OpRemove {
			afterLine = "(removed)"
		}
		id := fmt.Sprintf("%s:%d:%d:%s", name, p.Line, p.Column, s.op)
		if k := seen[id]; k > 0 {
			id = fmt.Sprintf("%s#%d", id, k)
		}
		seen[id]++
		out = append(out, Mutant{ID: id, File: name, Line: p.Line, Col: p.Column, Operator: s.op, Func: s.fn,
			Before: before, After: afterLine, Src: mutated})
	}
	return out, nil
}

func apply(src []byte, edits []edit) []byte {
	es := append([]edit(nil), edits...)
	sort.Slice(es, func(i, j int) bool { return es[i].from > es[j].from })
	out := append([]byte(nil), src...)
	for _, e := range es {
		var b bytes.Buffer
		b.Write(out[:e.from])
		b.WriteString(e.text)
		b.Write(out[e.to:])
		out = b.Bytes()
	}
	return out
}

// skipFunc leaves out functions whose mutants could only change text or
// validation: String methods and config defaults.
func skipFunc(fd *ast.FuncDecl) bool {
	switch fd.Name.Name {
	case "String", "validate", "Validate":
		return true
	}
	return false
}

type collector struct {
	fset       *token.FileSet
	src        []byte
	fn         string
	voidFunc   bool
	bugDerived map[string]bool
	sites      []site
}

func (c *collector) off(p token.Pos) int { return c.fset.Position(p).Offset }

func (c *collector) add(pos token.Pos, op Operator, edits ...edit) {
	c.sites = append(c.sites, site{pos: pos, op: op, fn: c.fn, edit: edits})
}

var swapCompare = map[token.Token]token.Token{
	token.LSS: token.LEQ, token.LEQ: token.LSS, token.GTR: token.GEQ, token.GEQ: token.GTR,
	token.EQL: token.NEQ, token.NEQ: token.EQL,
}

func (c *collector) visit(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.IfStmt:
		if c.touchesBugs(x.Cond) {
			// a bug switch's own branch: its condition turns a known bug on,
			// and its body is dead code in the correct build
			return false
		}
		c.add(x.Cond.Pos(), OpNegate, edit{c.off(x.Cond.Pos()), c.off(x.Cond.Pos()), "!("}, edit{c.off(x.Cond.End()), c.off(x.Cond.End()), ")"})
	case *ast.BinaryExpr:
		if c.touchesBugs(x) {
			return false
		}
		opText := func(t token.Token) edit {
			o := c.off(x.OpPos)
			return edit{o, o + len(x.Op.String()), t.String()}
		}
		switch {
		case swapCompare[x.Op] != 0:
			c.add(x.OpPos, OpCompare, opText(swapCompare[x.Op]))
		case x.Op == token.LAND:
			c.add(x.OpPos, OpLogic, opText(token.LOR))
		case x.Op == token.LOR:
			c.add(x.OpPos, OpLogic, opText(token.LAND))
		case x.Op == token.ADD && !isString(x.X) && !isString(x.Y):
			c.add(x.OpPos, OpArith, opText(token.SUB))
		case x.Op == token.SUB:
			c.add(x.OpPos, OpArith, opText(token.ADD))
		}
	case *ast.BasicLit:
		if x.Kind != token.INT {
			return true
		}
		v, err := strconv.ParseInt(x.Value, 0, 64)
		if err != nil {
			return true
		}
		o := c.off(x.Pos())
		c.add(x.Pos(), OpConstInc, edit{o, o + len(x.Value), strconv.FormatInt(v+1, 10)})
		if v > 0 {
			c.add(x.Pos(), OpConstDec, edit{o, o + len(x.Value), strconv.FormatInt(v-1, 10)})
		}
	case *ast.Ident:
		if x.Name == "true" || x.Name == "false" {
			o := c.off(x.Pos())
			other := map[string]string{"true": "false", "false": "true"}[x.Name]
			c.add(x.Pos(), OpBool, edit{o, o + len(x.Name), other})
		}
	case *ast.CallExpr:
		if isLogOrPanic(x) {
			return false // formatting and logging arguments
		}
	case *ast.BlockStmt:
		c.removals(x.List)
	case *ast.CaseClause:
		c.removals(x.Body)
	case *ast.IncDecStmt:
		o := c.off(x.TokPos)
		other := map[token.Token]string{token.INC: "--", token.DEC: "++"}[x.Tok]
		c.add(x.TokPos, OpIncDec, edit{o, o + 2, other})
	}
	return true
}

// removals adds a removal of each removable statement of a statement list.
func (c *collector) removals(list []ast.Stmt) {
	for _, s := range list {
		ok := false
		switch x := s.(type) {
		case *ast.ExprStmt:
			call, isCall := x.X.(*ast.CallExpr)
			ok = isCall && !isLogOrPanic(call) && !c.touchesBugs(call)
		case *ast.AssignStmt:
			ok = x.Tok != token.DEFINE && !c.touchesBugs(x)
		case *ast.IncDecStmt:
			ok = true
		case *ast.ReturnStmt:
			ok = len(x.Results) == 0 && c.voidFunc
		}
		if ok {
			c.add(s.Pos(), OpRemove, edit{c.off(s.Pos()), c.off(s.End()), ""})
		}
	}
}

// touchesBugs reports whether n reads a bug switch (a .Bugs selector or a
// local variable set from one).
func (c *collector) touchesBugs(n ast.Node) bool {
	found := false
	ast.Inspect(n, func(m ast.Node) bool {
		switch x := m.(type) {
		case *ast.SelectorExpr:
			if x.Sel.Name == "Bugs" {
				found = true
			}
		case *ast.Ident:
			if c.bugDerived[x.Name] {
				found = true
			}
		}
		return !found
	})
	return found
}

// bugDerivedIdents lists the local variables a function sets from a bug
// switch (omit := n.cfg.Bugs.X).
func bugDerivedIdents(body *ast.BlockStmt) map[string]bool {
	out := map[string]bool{}
	ast.Inspect(body, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok {
			return true
		}
		bug := false
		for _, r := range as.Rhs {
			ast.Inspect(r, func(m ast.Node) bool {
				if s, ok := m.(*ast.SelectorExpr); ok && s.Sel.Name == "Bugs" {
					bug = true
				}
				return !bug
			})
		}
		if bug {
			for _, l := range as.Lhs {
				if id, ok := l.(*ast.Ident); ok {
					out[id.Name] = true
				}
			}
		}
		return true
	})
	return out
}

func isString(e ast.Expr) bool {
	l, ok := e.(*ast.BasicLit)
	return ok && l.Kind == token.STRING
}

// isLogOrPanic: a call that only logs, formats or panics.
func isLogOrPanic(call *ast.CallExpr) bool {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return f.Name == "panic"
	case *ast.SelectorExpr:
		switch f.Sel.Name {
		case "Warn", "Info", "Error", "Debug", "Errorf", "Sprintf", "Logf", "logf":
			return true
		}
	}
	return false
}
