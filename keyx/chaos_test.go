package keyx

import (
	"bytes"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"pgregory.net/rapid"
)

// Two endpoints on a network that drops, duplicates, reorders and delays, both
// initiating, rekeying, timing out on virtual time and forgetting each other. Invariants
// at every step: the index table holds at most a pending initiation and three sessions
// per peer; the cached lookups agree with the tables; a packet opens only as the peer
// that sealed it and to the bytes sealed. At the end,
// on a clean network, one handshake from either side brings both to sessions that
// carry data both ways.
func TestHandshakeUnderChaos(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		p := newPair(t, rapid.Uint64Range(100, 1<<20).Draw(rt, "seed"), PresharedKey{3}, nil)
		type flight struct {
			to *Endpoint
			tx proto.Transmit
		}
		var wire []flight
		collect := func(from, to *Endpoint) {
			for _, tx := range transmits(from, p.now) {
				if len(tx.Payload) > proto.InitiationLen {
					rt.Fatalf("handshake datagram of %d bytes", len(tx.Payload))
				}
				wire = append(wire, flight{to, tx})
			}
			events(from)
		}
		other := func(e *Endpoint) *Endpoint {
			if e == p.a {
				return p.b
			}
			return p.a
		}
		check := func() {
			for _, e := range []*Endpoint{p.a, p.b} {
				if len(e.indexes) > 4 {
					rt.Fatalf("%d index entries for one peer", len(e.indexes))
				}
				checkLookupCaches(rt, e)
			}
		}
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			switch rapid.IntRange(0, 7).Draw(rt, "op") {
			case 0, 1: // a side initiates (it may be refused within 20 ms)
				e := p.a
				if rapid.Bool().Draw(rt, "fromB") {
					e = p.b
				}
				e.Initiate(p.now, p.wall(), other(e).PublicKey(), addrA, addrB)
				collect(e, other(e))
			case 2, 3: // deliver one datagram in flight, perhaps twice, perhaps not at all
				if len(wire) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(wire)-1).Draw(rt, "which")
				f := wire[i]
				if !rapid.Bool().Draw(rt, "keep") {
					wire = append(wire[:i], wire[i+1:]...)
				}
				if rapid.IntRange(0, 4).Draw(rt, "lose") != 0 {
					f.to.HandleDatagram(p.now, f.tx.To, f.tx.From, f.tx.Payload)
					collect(f.to, other(f.to))
				}
			case 4: // time passes: a little, or to the next deadline
				if rapid.Bool().Draw(rt, "jump") {
					if d := proto.Min(p.a.Deadline(), p.b.Deadline()); d != proto.Never {
						p.now = d
					}
				} else {
					p.now = p.now.Add(time.Duration(rapid.IntRange(1, 3000).Draw(rt, "ms")) * time.Millisecond)
				}
				p.a.HandleTimeout(p.now)
				p.b.HandleTimeout(p.now)
				collect(p.a, p.b)
				collect(p.b, p.a)
			case 5, 6: // a side sends data on its current session
				e := p.a
				if rapid.Bool().Draw(rt, "dataFromB") {
					e = p.b
				}
				s := e.Current(other(e).PublicKey())
				if s == nil {
					continue
				}
				msg := []byte{byte(rapid.IntRange(0, 255).Draw(rt, "byte"))}
				pkt, err := s.Seal(p.now, nil, msg)
				if err != nil {
					continue
				}
				got, out, err := other(e).Open(p.now, nil, pkt)
				if err == nil && (got.Peer() != e.PublicKey() || !bytes.Equal(out, msg)) {
					rt.Fatal("a packet opened as another peer or to other bytes")
				}
				events(other(e))
			case 7: // a side forgets the other and allows it again: sessions gone
				e := p.a
				if rapid.Bool().Draw(rt, "forgetOnB") {
					e = p.b
				}
				e.RemovePeer(other(e).PublicKey())
				if err := e.AddPeer(other(e).PublicKey(), PresharedKey{3}); err != nil {
					rt.Fatal(err)
				}
				if e.Current(other(e).PublicKey()) != nil {
					rt.Fatal("a session survived RemovePeer")
				}
			}
			check()
		}
		// Liveness on a clean network, after the 20 ms rule has passed.
		p.now = p.now.Add(time.Second)
		p.a.HandleTimeout(p.now)
		p.b.HandleTimeout(p.now)
		transmits(p.a, p.now)
		transmits(p.b, p.now)
		events(p.a)
		events(p.b)
		sa, sb := p.handshake()
		for _, dir := range [][2]*Session{{sa, sb}, {sb, sa}} {
			pkt, err := dir[0].Seal(p.now, nil, []byte("after chaos"))
			if err != nil {
				rt.Fatal(err)
			}
			if _, err := dir[1].Open(p.now, nil, pkt); err != nil {
				rt.Fatalf("sessions after chaos do not interoperate: %v", err)
			}
		}
	})
}

// checkLookupCaches fails unless the last hits Current and Open cached are what the
// peer and index tables say now.
func checkLookupCaches(t *rapid.T, e *Endpoint) {
	if e.lastPeer != nil && e.peers[e.lastPub] != e.lastPeer {
		t.Fatal("Current's cached peer is not the table's")
	}
	if e.lastIndexEntry.peer != nil {
		if ent, ok := e.indexes[e.lastIndex]; !ok || ent != e.lastIndexEntry {
			t.Fatalf("Open's cached entry for index %d is not the table's", e.lastIndex)
		}
	}
}
