// Package vectorfile is the shape of natpass's derivation vector files
// (proto/testdata/vectors/README.md, "Derivation files") and the golden-file check
// the packages that own a derivation share: each test builds its File from the
// implementation, and Check compares it with the committed file, or rewrites the
// file when the test runs with -update.
package vectorfile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Vector is one entry: every value a string, bytes in hex, integers in decimal,
// verdicts as words.
type Vector struct {
	Name    string            `json:"name"`
	Kind    string            `json:"kind"`
	Rule    string            `json:"rule"`
	Inputs  map[string]string `json:"inputs"`
	Outputs map[string]string `json:"outputs"`
}

// File is one derivation vector file.
type File struct {
	Comment string   `json:"comment"`
	Vectors []Vector `json:"vectors"`
}

// Dir is the vector folder as seen from a package directory one level below the
// module root (every package that owns a derivation is).
var Dir = filepath.Join("..", "proto", "testdata", "vectors")

// Check compares f with Dir/<name>.json, or writes it when update is set. pkg names
// the package for the hint in a failure ("go test ./<pkg> -update").
func Check(t testing.TB, name, pkg string, f File, update bool) {
	t.Helper()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join(Dir, name+".json")
	if update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./%s -update to create it)", err, pkg)
	}
	if !bytes.Equal(file, b) {
		t.Fatalf("%s differs from the implementation; run go test ./%s -update and review the diff", path, pkg)
	}
}

// Load reads Dir/<name>.json.
func Load(t testing.TB, name string) File {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(Dir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f File
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	return f
}
