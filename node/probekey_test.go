package node

import (
	"encoding/hex"
	"testing"

	"github.com/natpass/natpass/internal/vectorfile"
)

// The node's probe key is the one PROTOCOL.md §9 [PROBE-1] defines: the vectors in
// proto/testdata/vectors/probe-key.json (which ports check themselves against) pin
// this code, not only the spec's text.
func TestProbeKeyMatchesVectors(t *testing.T) {
	file := vectorfile.Load(t, "probe-key")
	key32 := func(s string) (k [32]byte) {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			t.Fatalf("bad 32-byte hex %q", s)
		}
		return [32]byte(b)
	}
	checked := 0
	for _, v := range file.Vectors {
		if v.Kind != "probe-key" {
			continue
		}
		priv, peer, psk := key32(v.Inputs["private_key"]), key32(v.Inputs["peer_public_key"]), key32(v.Inputs["psk"])
		k, err := probeKey(&priv, &peer, &psk)
		switch v.Outputs["verdict"] {
		case "ok":
			if err != nil || hex.EncodeToString(k[:]) != v.Outputs["probe_key"] {
				t.Errorf("%s: probe key %x (%v), want %s", v.Name, k, err, v.Outputs["probe_key"])
			}
		default:
			if err == nil {
				t.Errorf("%s: want %s, got a key", v.Name, v.Outputs["verdict"])
			}
		}
		checked++
	}
	if checked < 4 {
		t.Fatalf("%d probe-key vectors checked", checked)
	}
}
