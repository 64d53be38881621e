// Package simtest is the test side of sim: it picks the seeds a seeded test runs with
// and, when the test fails, prints the seed and the command that replays it.
//
// It reads a -seed flag (registered when a test binary imports this package) and the
// NATPASS_SEED and NATPASS_LONG environment variables, so it is not a core package and
// nothing but tests imports it.
package simtest

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var seedFlag = flag.String("seed", "", "run seeded sim tests with only this seed (also NATPASS_SEED)")

// Long reports whether NATPASS_LONG=1 asks for the heavy version of a test.
func Long() bool { return os.Getenv("NATPASS_LONG") == "1" }

// Fixed returns the seed given with -seed or NATPASS_SEED, if any.
func Fixed() (uint64, bool) {
	v := *seedFlag
	if v == "" {
		v = os.Getenv("NATPASS_SEED")
	}
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		panic("simtest: bad seed " + strconv.Quote(v) + ": " + err.Error())
	}
	return n, true
}

// Seed returns the seed for a single-seed test: the fixed one if given, else def. It
// arranges for a failure to print the replay line.
func Seed(t testing.TB, def uint64) uint64 {
	t.Helper()
	seed := def
	if n, ok := Fixed(); ok {
		seed = n
	}
	OnFailure(t, seed)
	return seed
}

// Seeds runs f as a subtest once per seed: seeds first..first+n-1 (n×long under
// NATPASS_LONG=1), or only the fixed seed when one is given. Each failing subtest prints
// its replay line.
func Seeds(t *testing.T, first uint64, n, long int, f func(t *testing.T, seed uint64)) {
	t.Helper()
	seeds := make([]uint64, 0, n)
	if s, ok := Fixed(); ok {
		seeds = append(seeds, s)
	} else {
		if Long() {
			n *= long
		}
		for i := range n {
			seeds = append(seeds, first+uint64(i))
		}
	}
	for _, seed := range seeds {
		t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) {
			OnFailure(t, seed)
			f(t, seed)
		})
	}
}

// OnFailure makes t print, if it fails, the line that replays it with seed.
func OnFailure(t testing.TB, seed uint64) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(ReplayLine(t.Name(), seed))
		}
	})
}

// ReplayLine is "seed=N, replay: go test ./PKG -run '^TestX$' -seed N" for the test
// named name (subtests are dropped: with -seed only that seed runs).
func ReplayLine(name string, seed uint64) string {
	top, _, _ := strings.Cut(name, "/")
	s := strconv.FormatUint(seed, 10)
	return "seed=" + s + ", replay: go test ./" + packageDir() + " -run '^" + regexp.QuoteMeta(top) + "$' -seed " + s
}

// packageDir is the test's package directory relative to the module root: go test
// runs a test binary in its package's directory.
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			rel, err := filepath.Rel(dir, wd)
			if err != nil || rel == "." {
				return "."
			}
			return filepath.ToSlash(rel)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "."
		}
		dir = parent
	}
}
