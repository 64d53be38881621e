package determinism

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorePackagesAreDeterministic is the guard itself: it fails CI when a core
// package reads the clock, global randomness or the OS, or starts a goroutine.
func TestCorePackagesAreDeterministic(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	for _, pkg := range CorePackages {
		dir := filepath.Join(root, pkg)
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			continue // a package is created when it gets code
		}
		vs, err := CheckDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			t.Errorf("%s: %v", pkg, v)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no core package found: the guard is looking in the wrong place")
	}
}

// The guard must bite: each snippet breaks one rule, in the ways someone might try
// to slip it past a naive check.
func TestGuardCatchesViolations(t *testing.T) {
	bad := map[string]string{
		"time.Now call":       `package p; import "time"; func f() { _ = time.Now() }`,
		"time.Now reference":  `package p; import "time"; var now = time.Now`,
		"renamed time import": `package p; import clock "time"; func f() { clock.Sleep(1) }`,
		"dot import of time":  `package p; import . "time"; func f() { _ = Now() }`,
		"global rand v2":      `package p; import "math/rand/v2"; func f() int { return rand.IntN(3) }`,
		"math/rand v1":        `package p; import "math/rand"; func f() int { return rand.Intn(3) }`,
		"crypto/rand":         `package p; import "crypto/rand"; var r = rand.Reader`,
		"net":                 `package p; import "net"; var _ net.Conn`,
		"net/http":            `package p; import "net/http"; var _ = http.Get`,
		"os":                  `package p; import "os"; var _ = os.Args`,
		"sync":                `package p; import "sync"; var mu sync.Mutex`,
		"go statement":        `package p; func f() { go f() }`,
		"channel type":        `package p; var c chan int`,
		"channel receive":     `package p; func f(c <-chan int) { <-c }`,
		"select":              `package p; func f() { select {} }`,
		"fmt.Println":         `package p; import "fmt"; func f() { fmt.Println() }`,
		"linkname":            "package p\nimport _ \"unsafe\"\n//go:linkname now time.now\nfunc now() int64",
	}
	for name, src := range bad {
		vs, err := CheckSource(name+".go", src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(vs) == 0 {
			t.Errorf("%s: guard found nothing in %q", name, src)
		}
	}
	good := `package p
import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"
)
type M struct{ rng *rand.Rand }
func New(seed [32]byte) *M { return &M{rng: rand.New(rand.NewChaCha8(seed))} }
func (m *M) Draw() uint64 { return m.rng.Uint64() }
var d = 25 * time.Second
var _ = netip.AddrPort{}
var _ = fmt.Sprintf("%v", d)
`
	vs, err := CheckSource("good.go", good)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 0 {
		t.Errorf("guard flags allowed code: %v", vs)
	}
}

// Every directory named in CorePackages is spelled as DESIGN §1 spells it; a typo
// would silently exempt a package.
func TestCorePackagesMatchDesign(t *testing.T) {
	design, err := os.ReadFile(filepath.Join("..", "..", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range CorePackages {
		if !strings.Contains(string(design), "`"+pkg+"/`") {
			t.Errorf("core package %s/ is not in ARCHITECTURE.md", pkg)
		}
	}
}
