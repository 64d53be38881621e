package sim

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

func TestRebootForgetsMappingsAndRenumberMovesTheAddress(t *testing.T) {
	pr := NewPair(PairConfig{Seed: 1, A: MustPreset("port-restricted-cone"), B: MustPreset("open")})
	a, b := pr.A.Host, pr.B.Host
	box := pr.A.Inner()
	ra, rb := &recorder{}, &recorder{}
	a.Attach(ra)
	b.Attach(rb)
	send := func() {
		ra.out = append(ra.out, proto.Transmit{From: a.Socket(), To: b.Socket(), Payload: []byte("x")})
		a.Drain()
		if err := pr.Sim.RunFor(time.Second); err != nil {
			t.Fatal(err)
		}
	}
	send()
	ext, ok := box.Lookup(a.Socket(), b.Socket())
	if box.Mappings() != 1 || !ok || len(rb.got) != 1 || rb.got[0].from != ext {
		t.Fatalf("before reboot: %d mappings, got %+v", box.Mappings(), rb.got)
	}
	box.Reboot()
	if box.Mappings() != 0 {
		t.Fatalf("%d mappings after reboot", box.Mappings())
	}
	old := box.Addr()
	na := box.Renumber()
	if na == old || box.Addr() != na {
		t.Fatalf("renumber kept %v", old)
	}
	send()
	ext2, ok := box.Lookup(a.Socket(), b.Socket())
	if !ok || ext2.Addr() != na || len(rb.got) != 2 || rb.got[1].from != ext2 {
		t.Fatalf("after renumber: mapping %v (ok=%v), got %+v; want the new address %v", ext2, ok, rb.got, na)
	}
}
