package keyx

import (
	"bytes"
	"testing"

	"github.com/natpass/natpass/proto"
)

// FuzzOpen drives the transport open path with arbitrary datagrams. Properties: no
// panic; a rejected datagram changes nothing; an accepted one is byte for byte a
// packet the genuine sender sealed (forging is infeasible) and opens to its plaintext.
func FuzzOpen(f *testing.F) {
	p := newPair(f, 40, PresharedKey{}, nil)
	sa, sb := p.handshake()
	genuine := map[string][]byte{}
	for c := uint64(1); c <= 4; c++ {
		msg := bytes.Repeat([]byte{byte(c)}, int(c)*7)
		pkt := sealAt(f, sa, c, msg)
		genuine[string(pkt)] = msg
		f.Add(pkt)
	}
	f.Add([]byte{})
	forged := proto.AppendTransportHeader(nil, sb.localIndex, RejectAfterMessages-1)
	f.Add(append(forged, make([]byte, proto.TagLen)...))
	template := *sb
	f.Fuzz(func(t *testing.T, in []byte) {
		*sb = template
		before := snap(p.b)
		s, out, err := p.b.Open(p.now, nil, in)
		if err != nil {
			if sb.window != template.window || sb.confirmed != template.confirmed || !equalSnap(before, snap(p.b)) {
				t.Fatalf("rejected datagram (%v) changed state", err)
			}
			return
		}
		want, ok := genuine[string(in)]
		if !ok || s != sb || !bytes.Equal(out, want) {
			t.Fatalf("accepted a datagram the sender never sealed: %x", in)
		}
	})
}

// FuzzHandleDatagram drives the handshake input of a fresh responder and of an
// initiator with one initiation in flight. Properties: no panic; a rejected datagram
// changes no state and sends nothing; nothing sent back to the source is larger
// than what it sent, except the initiator's own one resend after a cookie reply.
func FuzzHandleDatagram(f *testing.F) {
	seedPair := newPair(f, 41, PresharedKey{}, func(c *Config) { c.LoadThreshold = 1 })
	if err := seedPair.a.Initiate(seedPair.now, seedPair.wall(), seedPair.b.PublicKey(), addrA, addrB); err != nil {
		f.Fatal(err)
	}
	init := seedPair.one(seedPair.a)
	f.Add(init.Payload)
	seedPair.deliver(seedPair.b, init)
	f.Add(seedPair.one(seedPair.b).Payload) // a response
	seedPair.deliver(seedPair.b, init)
	f.Add(seedPair.one(seedPair.b).Payload) // under load: a cookie reply
	f.Add([]byte{0xE1, byte(proto.TypeTransportData)})
	f.Fuzz(func(t *testing.T, in []byte) {
		p := newPair(t, 41, PresharedKey{}, nil)
		if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
			t.Fatal(err)
		}
		transmits(p.a, p.now)
		for _, e := range []*Endpoint{p.a, p.b} {
			before := snap(e)
			err := e.HandleDatagram(p.now, addrB, addrA, in)
			txs := transmits(e, p.now)
			if err != nil && (len(txs) != 0 || !equalSnap(before, snap(e))) {
				t.Fatalf("rejected datagram (%v) sent %d replies or changed state", err, len(txs))
			}
			for _, tx := range txs {
				resend := e == p.a && len(in) > 1 && in[1] == byte(proto.TypeCookieReply)
				if len(tx.Payload) > len(in) && !resend {
					t.Fatalf("reply of %d bytes to a datagram of %d", len(tx.Payload), len(in))
				}
			}
		}
	})
}
