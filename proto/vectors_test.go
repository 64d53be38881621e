package proto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/natpass/natpass/internal/vectorfile"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors from the encoders")

// message is what every packet type in this package implements.
type message interface {
	Append(b []byte) []byte
	Parse(p []byte) error
}

// vectorCase is one golden vector: a named, fully populated message. File groups
// vectors into testdata/vectors/<file>.json; New returns an empty value to parse into.
type vectorCase struct {
	File string
	Name string
	Msg  message
	New  func() message
}

// vectorCases is filled by the *_vectors_test.go files of each message family.
var vectorCases []vectorCase

// vectorFile is the on-disk form: enough for a port to check its own encoder and
// parser without reading Go.
type vectorFile struct {
	Comment string   `json:"comment"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name   string         `json:"name"`
	Type   string         `json:"type"`
	Hex    string         `json:"hex"`
	Fields map[string]any `json:"fields"`
}

const vectorComment = "natpass golden vectors; regenerate with: go test ./proto -update. " +
	"hex is the whole packet; fields are the decoded values (byte strings in hex, " +
	"addresses as text, absent addresses as \"\", 64-bit integers as decimal text)."

// TestVectors checks every encoder against the committed bytes and every parser
// against the committed fields, so a change of one byte on the wire fails here.
func TestVectors(t *testing.T) {
	files := map[string]*vectorFile{}
	for _, c := range vectorCases {
		f := files[c.File]
		if f == nil {
			f = &vectorFile{Comment: vectorComment}
			files[c.File] = f
		}
		f.Vectors = append(f.Vectors, vector{
			Name:   c.Name,
			Type:   reflect.TypeOf(c.Msg).Elem().Name(),
			Hex:    hex.EncodeToString(c.Msg.Append(nil)),
			Fields: fieldsOf(c.Msg),
		})
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join("testdata", "vectors", name+".json")
		want := files[name]
		if *update {
			b, err := json.MarshalIndent(want, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./proto -update to create it)", err)
		}
		var got vectorFile
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		// Round-trip the generated fields through JSON so numbers compare alike.
		var wantJSON vectorFile
		b, _ := json.Marshal(want)
		_ = json.Unmarshal(b, &wantJSON)
		if diff := cmp.Diff(wantJSON, got); diff != "" {
			t.Errorf("%s differs from the encoders (-encoder +file):\n%s", path, diff)
		}
	}
	// Every committed vector must parse back to its message and re-encode exactly.
	for _, c := range vectorCases {
		wire := c.Msg.Append(nil)
		got := c.New()
		if err := got.Parse(wire); err != nil {
			t.Errorf("%s/%s: parse: %v", c.File, c.Name, err)
			continue
		}
		if diff := cmp.Diff(c.Msg, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("%s/%s: parsed message differs (-want +got):\n%s", c.File, c.Name, diff)
		}
		if again := got.Append(nil); !reflect.DeepEqual(again, wire) {
			t.Errorf("%s/%s: re-encoding differs:\n got %x\nwant %x", c.File, c.Name, again, wire)
		}
	}
}

// TestVectorsCoverEveryType makes sure no message type ships without a vector.
func TestVectorsCoverEveryType(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, c := range append(vectorCases[:len(vectorCases):len(vectorCases)], openEndedVectorCases...) {
		h, _, err := ParseHeader(c.Msg.Append(nil))
		if err == nil {
			seen[h.Type] = true
		}
	}
	for typ := TypeRegister; typ <= TypeIntroductionAck; typ++ {
		if !seen[typ] {
			t.Errorf("no golden vector for %v", typ)
		}
	}
	for _, typ := range []MsgType{TypeRegisterFamily, TypeRetry} {
		if !seen[typ] {
			t.Errorf("no golden vector for %v", typ)
		}
	}
	for typ := TypeInitiation; typ <= TypeInitiationAESGCM; typ++ {
		if !seen[typ] {
			t.Errorf("no golden vector for %v", typ)
		}
	}
	for _, typ := range []MsgType{TypeProbe, TypeProbeReply} {
		if !seen[typ] {
			t.Errorf("no golden vector for %v", typ)
		}
	}
}

// fieldsOf renders m's fields as the vector files do (internal/vectorfile).
func fieldsOf(m any) map[string]any { return vectorfile.Fields(m) }

// checkOpenEndedVectors pins messages whose last field runs to the end of the
// datagram (transport data, relay data): the generic machinery cannot test them by
// truncation alone. Encoder against the file, parser against the encoder, and every
// prefix shorter than minLen+1 bytes rejected.
func checkOpenEndedVectors(t *testing.T, file, typeName string, cases []vectorCase, minLen int) {
	t.Helper()
	want := vectorFile{Comment: vectorComment}
	for _, c := range cases {
		wire := c.Msg.Append(nil)
		want.Vectors = append(want.Vectors, vector{Name: c.Name, Type: typeName,
			Hex: hex.EncodeToString(wire), Fields: fieldsOf(c.Msg)})
		got := c.New()
		if err := got.Parse(wire); err != nil {
			t.Fatalf("%s: parse: %v", c.Name, err)
		}
		if again := got.Append(nil); !bytes.Equal(again, wire) {
			t.Errorf("%s: re-encoding differs:\n got %x\nwant %x", c.Name, again, wire)
		}
		for n := 0; n <= minLen && n < len(wire); n++ {
			if err := c.New().Parse(wire[:n]); err == nil {
				t.Errorf("%s: prefix of %d bytes accepted", c.Name, n)
			}
		}
	}
	path := filepath.Join("testdata", "vectors", file+".json")
	wantJSON, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	wantJSON = append(wantJSON, '\n')
	if *update {
		if err := os.WriteFile(path, wantJSON, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./proto -update to create it)", err)
	}
	if !bytes.Equal(got, wantJSON) {
		t.Errorf("%s differs from the encoder; run go test ./proto -update and review the diff", path)
	}
}
