package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
)

var vectorDir = filepath.Join("..", "..", "proto", "testdata", "vectors")

// The Go implementation passes every vector, skipping none, and checks fields too.
func TestGoImplementationPassesEveryVector(t *testing.T) {
	cases, err := loadCases(vectorDir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s, err := run(cases, goImpl{}, nil, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if s.fail != 0 || s.skip != 0 || s.fieldsUnchecked != 0 || s.pass != len(cases) {
		t.Fatalf("%+v of %d vectors:\n%s", s, len(cases), out.String())
	}
	kinds := map[string]bool{}
	for _, c := range cases {
		kinds[c.req.Kind] = true
	}
	for _, k := range []string{"layout", "reject", "ticket-mint", "ticket-verify", "token-key", "token-mint",
		"token-verify", "probe-key", "probe-seal", "probe-verify", "stun-binding"} {
		if !kinds[k] {
			t.Errorf("no vector of kind %s", k)
		}
	}
}

// The line protocol: the runner talking to -serve over pipes gets the same verdicts
// as in process, which is what a port's harness sees.
func TestLineProtocolRoundTrip(t *testing.T) {
	cases, err := loadCases(vectorDir)
	if err != nil {
		t.Fatal(err)
	}
	reqR, reqW := io.Pipe()
	respR, respW := io.Pipe()
	go func() { _ = serve(reqR, respW); respW.Close() }()
	var out strings.Builder
	s, err := run(cases, newExternal(reqW, respR), nil, false, &out)
	reqW.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s.fail != 0 || s.pass != len(cases) {
		t.Fatalf("%+v of %d vectors:\n%s", s, len(cases), out.String())
	}
}

// acceptAll is a broken implementation: it parses everything and computes nothing.
type acceptAll struct{}

func (acceptAll) do(req request) (response, error) {
	switch req.Kind {
	case "layout", "reject":
		return response{Hex: req.Hex}, nil
	}
	return response{Skip: "not implemented"}, nil
}

// A runner that cannot fail is no test: an implementation that accepts every input
// fails every reject vector, and its skips are counted apart.
func TestBrokenImplementationFails(t *testing.T) {
	cases, err := loadCases(vectorDir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s, err := run(cases, acceptAll{}, nil, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	rejects := 0
	for _, c := range cases {
		if c.req.Kind == "reject" {
			rejects++
		}
	}
	if s.fail != rejects || s.skip == 0 || !strings.Contains(out.String(), "FAIL reject.json/") {
		t.Fatalf("%+v (want %d failures):\n%.2000s", s, rejects, out.String())
	}
}
