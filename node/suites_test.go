package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
)

// Issue 18: a node advertises its endpoint's suites in its register, and takes
// the peer's from every introduction before a handshake: two nodes with AES
// hardware agree on AES-GCM; one without makes it ChaCha20-Poly1305.
func TestSuiteFollowsBothNodesAESHardware(t *testing.T) {
	for _, c := range []struct {
		hwA, hwB bool
		want     keyx.Suite
	}{
		{true, true, keyx.SuiteAESGCM},
		{true, false, keyx.SuiteChaChaPoly},
		{false, true, keyx.SuiteChaChaPoly},
	} {
		t.Run(fmt.Sprintf("a=%v,b=%v", c.hwA, c.hwB), func(t *testing.T) {
			w := startMoveWorld(t, 0, func(cfg *Config) {
				hw := c.hwA
				if string(cfg.ID) == "b" {
					hw = c.hwB
				}
				cfg.AESHardware = func() bool { return hw }
			})
			if got := w.a.srv.suites; got.Has(keyx.SuiteAESGCM) != c.hwA {
				t.Errorf("a advertises %v with AES hardware %v", got, c.hwA)
			}
			w.a.Connect(w.net.Now, "b")
			w.net.Drain()
			w.run(5 * time.Second)
			w.stream(5, 20*time.Millisecond)
			if w.received != w.sent {
				t.Fatalf("b got %d of %d messages", w.received, w.sent)
			}
			if st := w.a.Stats().Keyx; st.DHOps == 0 {
				t.Errorf("Stats.Keyx %+v: the handshake's X25519 operations are not passed through", st)
			}
			for _, x := range []struct {
				n    *Node
				peer [32]byte
			}{{w.a, w.b.PublicKey()}, {w.b, w.a.PublicKey()}} {
				s := x.n.keyx.Current(keyx.PublicKey(x.peer))
				if s == nil || s.Suite() != c.want {
					t.Errorf("%s: session %v, want suite %v", x.n.cfg.ID, s, c.want)
				}
			}
		})
	}
}

// The register carries the endpoint's suites; a node pinned without AES
// hardware advertises ChaChaPoly alone.
func TestRegisterCarriesSuites(t *testing.T) {
	for _, hw := range []bool{false, true} {
		n := moveNode("a", moveA, 1, func(cfg *Config) { cfg.AESHardware = func() bool { return hw } })
		n.Start(0)
		var m proto.Register
		txs := drainTx(n, 0)
		if len(txs) == 0 || m.Parse(txs[0].Payload) != nil {
			t.Fatalf("no register among %d transmits", len(txs))
		}
		if want := keyx.DefaultSuites(hw); m.Suites != want {
			t.Errorf("AES hardware %v: register advertises %v, want %v", hw, m.Suites, want)
		}
	}
}
