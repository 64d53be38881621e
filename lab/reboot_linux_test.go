package lab

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
	"github.com/natpass/natpass/sim/simtest"
)

// Issue 15, the simulator's side of the netns test TestNetnsNATRebootReturnsDirect:
// two Linux NATs (the linux preset: port-restricted cone with conntrack's port
// clash), direct; one NAT reboots while the peer behind the other is sending. The
// peer's packets reach the rebooted NAT before its host sent anything and leave
// [UNREPLIED] entries there, so the host's next flow toward the peer gets another
// port, which the peer's NAT filters (DESIGN §9); the peer keeps the entries alive for
// as long as it sends to the old mapping. Every message must arrive and the pair be
// direct again within 5 s of the reboot: both sides search again from a
// fresh socket on each side (PROTOCOL.md §9.3), whichever NAT rebooted.
func TestLinuxNATRebootWhilePeerSendsReturnsDirect(t *testing.T) {
	for _, rebooted := range []string{"a", "b"} {
		t.Run("reboot-"+rebooted, func(t *testing.T) {
			simtest.Seeds(t, 1, 10, 4, func(t *testing.T, seed uint64) { rebootWhilePeerSends(t, seed, rebooted == "a") })
		})
	}
}

// rebootWhilePeerSends is one run: A's NAT reboots (rebootA) or B's.
func rebootWhilePeerSends(t *testing.T, seed uint64, rebootA bool) {
	w := connected(t, "linux", "linux", seed, 0)
	if err := w.s.RunFor(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	host, peer, boxes := w.a, w.b, w.pr.A.Boxes
	if !rebootA {
		host, peer, boxes = w.b, w.a, w.pr.B.Boxes
	}
	t0 := w.s.Now()
	rebootAll(boxes)
	// The peer speaks first: the host has nothing to send until the peer's data
	// asks for acks.
	wantHost, wantPeer := host.received+20, peer.received+10
	if err := peer.sendMore(t0, 10); err != nil {
		t.Fatal(err)
	}
	if err := w.s.RunFor(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := host.sendMore(w.s.Now(), 10); err != nil {
		t.Fatal(err)
	}
	if err := peer.sendMore(w.s.Now(), 10); err != nil {
		t.Fatal(err)
	}
	direct := func(sd *side) bool {
		k, _ := sd.node.Peer(sd.peer)
		return k == proto.PathDirect && sd.lastDirect >= sd.lastDown
	}
	back := func() bool {
		return direct(w.a) && direct(w.b) && host.received >= wantHost && peer.received >= wantPeer
	}
	if err := w.s.RunUntil(t0.Add(5*time.Second), back); err != nil {
		t.Fatal(err)
	}
	if !back() {
		t.Fatalf("not back 5 s after the reboot: a direct %v, b direct %v, host got %d/%d, peer got %d/%d",
			direct(w.a), direct(w.b), host.received, wantHost, peer.received, wantPeer)
	}
	if w.a.corrupt+w.b.corrupt != 0 {
		t.Fatalf("%d messages out of order or altered", w.a.corrupt+w.b.corrupt)
	}
	if rebinds := w.a.node.Stats().Rebinds + w.b.node.Stats().Rebinds; rebinds == 0 {
		t.Fatalf("direct again with no fresh socket taken: the scenario no longer reproduces the port clash")
	}
	t.Logf("direct again %v after the reboot (a down %v, b down %v; fresh sockets a %d, b %d)", w.s.Now().Sub(t0),
		w.a.lastDown.Sub(t0), w.b.lastDown.Sub(t0), w.a.node.Stats().Rebinds, w.b.node.Stats().Rebinds)
}

// rebootAll reboots every NAT box of a side.
func rebootAll(boxes []*sim.Box) {
	for _, b := range boxes {
		b.Reboot()
	}
}
