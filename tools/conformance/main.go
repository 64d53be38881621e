// Command conformance runs natpass's test vectors (proto/testdata/vectors) against an
// implementation and prints which pass.
//
//	go run ./tools/conformance                         # the Go implementation in this repository
//	go run ./tools/conformance -impl 'python3 port.py'  # another one, over the line protocol
//	go run ./tools/conformance -serve                  # be the Go implementation on stdin/stdout
//
// The vectors alone drive it: it reads every JSON file of the vector folder, sends
// each vector to the implementation as one JSON request line and compares the one
// response line with the vector. proto/testdata/vectors/README.md documents the file
// format and the line protocol; -serve speaks that protocol for the Go implementation,
// as a reference for ports and to test a port's harness.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// request is one line to the implementation (README.md, "the conformance line
// protocol").
type request struct {
	File   string            `json:"file"`
	Name   string            `json:"name"`
	Kind   string            `json:"kind"`
	Type   string            `json:"type,omitempty"`
	Hex    *string           `json:"hex,omitempty"`
	Inputs map[string]string `json:"inputs,omitempty"`
}

// response is one line from the implementation.
type response struct {
	Hex     *string           `json:"hex,omitempty"`
	Fields  json.RawMessage   `json:"fields,omitempty"`
	Error   string            `json:"error,omitempty"`
	Outputs map[string]string `json:"outputs,omitempty"`
	Skip    string            `json:"skip,omitempty"`
}

// vector is one entry of any vector file; which fields are set depends on the kind.
type vector struct {
	Name    string            `json:"name"`
	Type    string            `json:"type"`
	Hex     *string           `json:"hex"`
	Fields  json.RawMessage   `json:"fields"`
	Rule    string            `json:"rule"`
	Error   string            `json:"error"`
	Kind    string            `json:"kind"`
	Inputs  map[string]string `json:"inputs"`
	Outputs map[string]string `json:"outputs"`
}

// testCase is a vector with the request it becomes.
type testCase struct {
	req request
	vec vector
}

// loadCases reads every vector file in dir, in name order, and turns each vector into
// a request: layout files (hex and fields), reject.json (hex, rule, error class) and
// derivation files (kind, inputs, outputs).
func loadCases(dir string) ([]testCase, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no vector files in %s", dir)
	}
	sort.Strings(paths)
	var cases []testCase
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var f struct {
			Vectors []vector `json:"vectors"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		file := filepath.Base(path)
		for _, v := range f.Vectors {
			req := request{File: file, Name: v.Name}
			switch {
			case v.Kind != "":
				req.Kind, req.Inputs = v.Kind, v.Inputs
			case v.Error != "":
				req.Kind, req.Type, req.Hex = "reject", v.Type, v.Hex
			case v.Hex != nil && v.Type != "":
				req.Kind, req.Type, req.Hex = "layout", v.Type, v.Hex
			default:
				return nil, fmt.Errorf("%s/%s: not a layout, reject or derivation vector", file, v.Name)
			}
			cases = append(cases, testCase{req: req, vec: v})
		}
	}
	return cases, nil
}

// implementation answers requests: in process (the Go code) or over pipes.
type implementation interface {
	do(request) (response, error)
}

// verdict compares a response with its vector: "" when it passes.
func verdict(c testCase, r response) string {
	switch c.req.Kind {
	case "layout":
		if r.Error != "" {
			return "parse failed: " + r.Error
		}
		if r.Hex == nil || *r.Hex != *c.vec.Hex {
			return fmt.Sprintf("re-encoded %s, want %s", deref(r.Hex), *c.vec.Hex)
		}
		if len(r.Fields) > 0 && !sameJSON(r.Fields, c.vec.Fields) {
			return fmt.Sprintf("fields %s, want %s", compact(r.Fields), compact(c.vec.Fields))
		}
	case "reject":
		if r.Error != c.vec.Error {
			got := r.Error
			if got == "" {
				got = "accepted"
			}
			return fmt.Sprintf("%s, want %s (rule %s)", got, c.vec.Error, c.vec.Rule)
		}
	default:
		var diffs []string
		for _, k := range sortedKeys(c.vec.Outputs) {
			if got, ok := r.Outputs[k]; !ok || got != c.vec.Outputs[k] {
				diffs = append(diffs, fmt.Sprintf("%s = %q, want %q", k, got, c.vec.Outputs[k]))
			}
		}
		if r.Error != "" {
			diffs = append(diffs, "error "+r.Error)
		}
		return strings.Join(diffs, "; ")
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func compact(m json.RawMessage) string {
	var b strings.Builder
	var v any
	if json.Unmarshal(m, &v) != nil {
		return string(m)
	}
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSpace(b.String())
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// summary counts the outcomes of a run.
type summary struct{ pass, fail, skip, fieldsUnchecked int }

// run sends every selected case to impl and prints one line per case (passes only
// with verbose) and the summary.
func run(cases []testCase, impl implementation, sel *regexp.Regexp, verbose bool, out io.Writer) (summary, error) {
	var s summary
	for _, c := range cases {
		id := c.req.File + "/" + c.req.Name
		if sel != nil && !sel.MatchString(id) {
			continue
		}
		r, err := impl.do(c.req)
		if err != nil {
			return s, fmt.Errorf("%s: %w", id, err)
		}
		switch why := verdict(c, r); {
		case r.Skip != "":
			s.skip++
			fmt.Fprintf(out, "SKIP %s: %s\n", id, r.Skip)
		case why != "":
			s.fail++
			fmt.Fprintf(out, "FAIL %s: %s\n", id, why)
		default:
			s.pass++
			if c.req.Kind == "layout" && len(r.Fields) == 0 {
				s.fieldsUnchecked++
			}
			if verbose {
				fmt.Fprintf(out, "PASS %s\n", id)
			}
		}
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped", s.pass, s.fail, s.skip)
	if s.fieldsUnchecked > 0 {
		fmt.Fprintf(out, " (%d layout vectors passed on bytes alone: no fields returned)", s.fieldsUnchecked)
	}
	fmt.Fprintln(out)
	return s, nil
}

// external is an implementation in another process, spoken to over its stdin and
// stdout, one JSON line each way per vector.
type external struct {
	w   io.Writer
	r   *bufio.Reader
	enc *json.Encoder
}

func newExternal(w io.Writer, r io.Reader) *external {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &external{w: w, r: bufio.NewReaderSize(r, 1<<20), enc: enc}
}

func (e *external) do(req request) (response, error) {
	if err := e.enc.Encode(req); err != nil {
		return response{}, err
	}
	line, err := e.r.ReadBytes('\n')
	if err != nil {
		return response{}, fmt.Errorf("reading the implementation's response: %w", err)
	}
	var r response
	if err := json.Unmarshal(line, &r); err != nil {
		return response{}, fmt.Errorf("the implementation's response is not JSON: %w (%q)", err, line)
	}
	return r, nil
}

// serve answers requests from r on w with the Go implementation until r ends.
func serve(r io.Reader, w io.Writer) error {
	in := bufio.NewReaderSize(r, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var impl goImpl
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			var req request
			if err := json.Unmarshal(line, &req); err != nil {
				return fmt.Errorf("request is not JSON: %w", err)
			}
			resp, _ := impl.do(req)
			if err := enc.Encode(resp); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// findVectors looks for proto/testdata/vectors from the working directory upwards,
// so the command runs from anywhere inside the repository.
func findVectors() string {
	dir, _ := os.Getwd()
	for {
		p := filepath.Join(dir, "proto", "testdata", "vectors")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("proto", "testdata", "vectors")
		}
		dir = parent
	}
}

func main() { os.Exit(realMain()) }

// realMain runs the command and returns its exit status: 0 all selected vectors
// passed (or were skipped), 1 some failed, 2 the run itself failed.
func realMain() int {
	dir := flag.String("dir", "", "vector folder (default: proto/testdata/vectors of the enclosing repository)")
	implCmd := flag.String("impl", "", "command of an implementation speaking the line protocol (default: the Go implementation)")
	doServe := flag.Bool("serve", false, "speak the line protocol on stdin/stdout as the Go implementation")
	sel := flag.String("run", "", "run only vectors whose file/name matches this regular expression")
	verbose := flag.Bool("v", false, "print passing vectors too")
	flag.Parse()
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "conformance: %s%v\n", what, err)
		return 2
	}
	if *doServe {
		if err := serve(os.Stdin, os.Stdout); err != nil {
			return fail("", err)
		}
		return 0
	}
	if *dir == "" {
		*dir = findVectors()
	}
	cases, err := loadCases(*dir)
	if err != nil {
		return fail("", err)
	}
	var re *regexp.Regexp
	if *sel != "" {
		if re, err = regexp.Compile(*sel); err != nil {
			return fail("-run: ", err)
		}
	}
	var impl implementation = goImpl{}
	if *implCmd != "" {
		cmd := exec.Command("sh", "-c", *implCmd)
		cmd.Stderr = os.Stderr
		stdin, err1 := cmd.StdinPipe()
		stdout, err2 := cmd.StdoutPipe()
		if err := errors.Join(err1, err2, cmd.Start()); err != nil {
			return fail("starting the implementation: ", err)
		}
		impl = newExternal(stdin, stdout)
		defer func() { stdin.Close(); _ = cmd.Wait() }()
	}
	s, err := run(cases, impl, re, *verbose, os.Stdout)
	if err != nil {
		return fail("", err)
	}
	if s.fail > 0 {
		return 1
	}
	return 0
}
