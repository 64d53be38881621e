package keyx

import (
	"bytes"
	"testing"

	"github.com/natpass/natpass/proto"
)

// FuzzOpen drives the transport open path of a ChaChaPoly and an AES-GCM session
// with arbitrary datagrams. Properties: no panic; a rejected datagram changes
// nothing; an accepted one is byte for byte a packet the genuine sender sealed
// (forging is infeasible) and opens to its plaintext.
func FuzzOpen(f *testing.F) {
	type target struct {
		p        *pair
		sb       *Session
		template Session
		genuine  map[string][]byte
	}
	var targets []*target
	for s := range Suite(proto.NumSuites) {
		p := suitePair(f, 40, bothSuites, bothSuites, proto.SuitesOf(s))
		sa, sb := p.handshake()
		if sb.Suite() != s {
			f.Fatalf("session in %v, want %v", sb.Suite(), s)
		}
		tg := &target{p: p, sb: sb, genuine: map[string][]byte{}}
		for c := uint64(1); c <= 4; c++ {
			msg := bytes.Repeat([]byte{byte(c)}, int(c)*7)
			pkt := sealAt(f, sa, c, msg)
			tg.genuine[string(pkt)] = msg
			f.Add(pkt)
		}
		forged := proto.AppendTransportHeader(nil, sb.localIndex, RejectAfterMessages-1)
		f.Add(append(forged, make([]byte, proto.TagLen)...))
		tg.template = *sb
		targets = append(targets, tg)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, tg := range targets {
			*tg.sb = tg.template
			before := snap(tg.p.b)
			s, out, err := tg.p.b.Open(tg.p.now, nil, in)
			if err != nil {
				if tg.sb.window != tg.template.window || tg.sb.confirmed != tg.template.confirmed || !equalSnap(before, snap(tg.p.b)) {
					t.Fatalf("%v: rejected datagram (%v) changed state", tg.sb.Suite(), err)
				}
				continue
			}
			want, ok := tg.genuine[string(in)]
			if !ok || s != tg.sb || !bytes.Equal(out, want) {
				t.Fatalf("%v: accepted a datagram the sender never sealed: %x", tg.sb.Suite(), in)
			}
		}
	})
}

// FuzzHandleDatagram drives the handshake input of a fresh responder accepting both
// suites and of an initiator with one initiation in flight, in each suite.
// Properties: no panic; a rejected datagram changes no state and sends nothing;
// nothing sent back to the source is larger than what it sent, except the
// initiator's own one resend after a cookie reply.
func FuzzHandleDatagram(f *testing.F) {
	for s := range Suite(proto.NumSuites) {
		seedPair := suitePair(f, 41, bothSuites, bothSuites, proto.SuitesOf(s))
		seedPair.b.loadThreshold = 1
		if err := seedPair.a.Initiate(seedPair.now, seedPair.wall(), seedPair.b.PublicKey(), addrA, addrB); err != nil {
			f.Fatal(err)
		}
		init := seedPair.one(seedPair.a)
		f.Add(init.Payload)
		seedPair.deliver(seedPair.b, init)
		f.Add(seedPair.one(seedPair.b).Payload) // a response
		seedPair.deliver(seedPair.b, init)
		f.Add(seedPair.one(seedPair.b).Payload) // under load: a cookie reply
	}
	f.Add([]byte{0xE1, byte(proto.TypeTransportData)})
	f.Fuzz(func(t *testing.T, in []byte) {
		for s := range Suite(proto.NumSuites) {
			p := suitePair(t, 41, bothSuites, bothSuites, proto.SuitesOf(s))
			if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
				t.Fatal(err)
			}
			transmits(p.a, p.now)
			checkHandshakeInput(t, p, in)
		}
	})
}

func checkHandshakeInput(t *testing.T, p *pair, in []byte) {
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
}
