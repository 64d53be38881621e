// Package determinism enforces the rules of DESIGN §1 on natpass's core packages: no
// clock, no global randomness, no operating system, no goroutines or channels. The
// rules are checked on source text with go/parser, so a violation fails `go test`
// before any behaviour could reveal it.
package determinism

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// CorePackages are the directories (relative to the module root) the rules cover.
// sim/ is a core package too: its determinism is what makes a seed replay a failure.
var CorePackages = []string{"proto", "keyx", "rudp", "punch", "relayframe", "streamframe", "rendezvous", "node", "sim"}

// rule says what of one imported package a core package may use.
type rule struct {
	why     string
	allowed []string // when non-nil, only these names may be used
	denied  []string // when non-nil, these names may not be used
	// neither set: the import itself is forbidden
}

// Forbidden is the guard's list: import path → what of it is forbidden. Removing an
// entry (or a name from one) is the only way to let such a use through.
var Forbidden = map[string]rule{
	"net":              {why: "sockets belong to driver/; use net/netip"},
	"os":               {why: "no operating system in a state machine"},
	"os/exec":          {why: "no operating system in a state machine"},
	"os/signal":        {why: "no operating system in a state machine"},
	"syscall":          {why: "no operating system in a state machine"},
	"io/ioutil":        {why: "no operating system in a state machine"},
	"log":              {why: "logging writes to stderr and reads the clock"},
	"sync":             {why: "a state machine is single-threaded; the caller serialises"},
	"sync/atomic":      {why: "a state machine is single-threaded; the caller serialises"},
	"crypto/rand":      {why: "key material comes from an injected io.Reader"},
	"math/rand":        {why: "v1 has a global source; use a seeded math/rand/v2 ChaCha8"},
	"unsafe":           {why: "could reach the runtime behind the guard's back"},
	"runtime":          {why: "scheduling is the driver's business"},
	"reflect":          {why: "could call forbidden functions by name"},
	"time":             {why: "time enters as an argument", denied: []string{"Now", "Since", "Until", "After", "AfterFunc", "Sleep", "Tick", "NewTicker", "NewTimer"}},
	"math/rand/v2":     {why: "randomness comes from the machine's seeded generator", allowed: []string{"New", "NewChaCha8", "NewPCG", "Rand", "ChaCha8", "PCG", "Source"}},
	"fmt":              {why: "printing is I/O", denied: []string{"Print", "Printf", "Println", "Scan", "Scanf", "Scanln"}},
	"testing/synctest": {why: "no goroutines in a state machine"},
}

// netAllowed lists the net/... packages a core package may import.
var netAllowed = map[string]bool{"net/netip": true}

// Violation is one broken rule at one place.
type Violation struct {
	Pos  token.Position
	What string
}

func (v Violation) String() string { return fmt.Sprintf("%s: %s", v.Pos, v.What) }

// CheckDir parses the non-test Go files of one directory and checks them.
func CheckDir(dir string) ([]Violation, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var out []Violation
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		out = append(out, CheckFile(fset, f)...)
	}
	return out, nil
}

// CheckSource checks one file given as text; tests use it to prove the guard bites.
func CheckSource(name, src string) ([]Violation, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	return CheckFile(fset, f), nil
}

// CheckFile checks one parsed file.
func CheckFile(fset *token.FileSet, f *ast.File) []Violation {
	var out []Violation
	bad := func(n ast.Node, format string, args ...any) {
		out = append(out, Violation{Pos: fset.Position(n.Pos()), What: fmt.Sprintf(format, args...)})
	}

	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, "//go:linkname") {
				bad(c, "go:linkname reaches around the import rules")
			}
		}
	}

	local := map[string]string{} // local name → import path, for imports with name rules
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if strings.HasPrefix(path, "net/") && !netAllowed[path] {
			bad(imp, "import %q: sockets belong to driver/", path)
			continue
		}
		r, ok := Forbidden[path]
		if !ok {
			continue
		}
		if r.allowed == nil && r.denied == nil {
			bad(imp, "import %q: %s", path, r.why)
			continue
		}
		name := path[strings.LastIndex(path, "/")+1:]
		if path == "math/rand/v2" {
			name = "rand"
		}
		if imp.Name != nil {
			name = imp.Name.Name
		}
		switch name {
		case ".":
			bad(imp, "dot import of %q hides which of its names are used", path)
			continue
		case "_":
			continue
		}
		local[name] = path
	}

	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			bad(n, "go statement: a state machine starts no goroutine")
		case *ast.ChanType:
			bad(n, "channel type: a state machine uses no channels")
		case *ast.SendStmt:
			bad(n, "channel send: a state machine uses no channels")
		case *ast.SelectStmt:
			bad(n, "select: a state machine uses no channels")
		case *ast.UnaryExpr:
			if n.Op == token.ARROW {
				bad(n, "channel receive: a state machine uses no channels")
			}
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			if !ok {
				break
			}
			path, ok := local[id.Name]
			if !ok {
				break
			}
			r := Forbidden[path]
			sel := n.Sel.Name
			if r.allowed != nil && !contains(r.allowed, sel) || contains(r.denied, sel) {
				// Any reference counts, not only a call: `f := time.Now` is a clock read
				// waiting to happen.
				bad(n, "%s.%s: %s", path, sel, r.why)
			}
		}
		return true
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pos.Offset < out[j].Pos.Offset })
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
