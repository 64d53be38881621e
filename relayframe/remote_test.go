package relayframe

import (
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// TestRemoteLink: a channel whose peer is on another server is not ready until
// LinkRemote, then routes to (server, channel); a new remote link replaces the old
// (the peer moved), and a local allocation by the peer replaces a remote link.
func TestRemoteLink(t *testing.T) {
	tb := newTestTable(t, 8, 2, 4)
	dl := proto.Instant(time.Hour)
	a, err := tb.Allocate(0, NoOwner, 77, dl, 100, 1)
	if err != nil || a.PeerReady {
		t.Fatalf("allocate with a remote peer: %+v %v, want not ready", a, err)
	}
	if r, _ := tb.Lookup(a.Number); r.Peer != NoOwner || r.RemoteServer != 0 {
		t.Fatalf("route before the link: %+v", r)
	}
	if ok, changed := tb.LinkRemote(a.Number, 5, 900); !ok || !changed {
		t.Fatalf("LinkRemote = %v %v", ok, changed)
	}
	if ok, changed := tb.LinkRemote(a.Number, 5, 900); !ok || changed {
		t.Fatalf("the same link again = %v %v, want ok, unchanged", ok, changed)
	}
	if r, _ := tb.Lookup(a.Number); r.RemoteServer != 5 || r.PeerChannel != 900 || r.Peer != NoOwner {
		t.Fatalf("route after the link: %+v", r)
	}
	if n, _, _, linked, ok := tb.Find(0, 77); !ok || n != a.Number || !linked {
		t.Fatalf("Find = %d %v %v", n, linked, ok)
	}
	if again, _ := tb.Allocate(0, NoOwner, 77, dl, 100, 2); !again.Refreshed || !again.PeerReady {
		t.Fatalf("refresh of a remotely linked channel: %+v", again)
	}
	tb.LinkRemote(a.Number, 6, 901)
	if r, _ := tb.Lookup(a.Number); r.RemoteServer != 6 || r.PeerChannel != 901 {
		t.Fatalf("route after the peer moved: %+v", r)
	}
	b, _ := tb.Allocate(1, 0, 77, dl, 100, 3)
	if !b.NewLink || !b.PeerReady {
		t.Fatalf("local peer allocation: %+v", b)
	}
	if r, _ := tb.Lookup(a.Number); r.RemoteServer != 0 || r.Peer != 1 || r.PeerChannel != b.Number {
		t.Fatalf("route after the peer came local: %+v", r)
	}
	if ok, _ := tb.LinkRemote(12345, 5, 1); ok && tb.byChannel[12345] == nilSlot {
		t.Fatal("LinkRemote of an unknown channel reported ok")
	}
}

// TestChargeServerOnlyServerBudget: frames from another server spend the server's
// budget and no owner's.
func TestChargeServerOnlyServerBudget(t *testing.T) {
	rate := ByteRate{BytesPerSecond: 10_000, Burst: 4 * (MaxFrameLen + FrameCostOverhead)}
	tb, err := NewTable(TableConfig{MaxChannels: 4, MaxPerOwner: 2, MaxOwners: 2, OwnerRate: roomyRate, ServerRate: rate}, zeroRand{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for tb.ChargeServer(0, MaxFrameLen) == nil {
		n++
		if n > 100 {
			t.Fatal("server budget never ran out")
		}
	}
	if n != 4 {
		t.Fatalf("%d full frames fit a burst of 4", n)
	}
	if err := tb.Charge(0, 0, 100); err != ErrServerRate {
		t.Fatalf("owner charge after the server budget ran out: %v, want ErrServerRate", err)
	}
}

type zeroRand struct{}

func (zeroRand) Uint64() uint64 { return 0 }
