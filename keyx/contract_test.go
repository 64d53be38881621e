package keyx

import (
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

// keyxSubject is the responder b of an established pair: its sessions' timers are
// armed, and the handshake's own datagrams are kept as inputs.
func keyxSubject(t *testing.T) *machinetest.Subject {
	p := newPair(t, 40, PresharedKey{5}, nil)
	if err := p.a.Initiate(p.now, p.wall(), p.b.PublicKey(), addrA, addrB); err != nil {
		t.Fatal(err)
	}
	init := p.one(p.a)
	if err := p.deliver(p.b, init); err != nil {
		t.Fatal(err)
	}
	resp := p.one(p.b)
	if err := p.deliver(p.a, resp); err != nil {
		t.Fatal(err)
	}
	sa := established(t, p.a, p.b.PublicKey())
	keepalive, err := sa.Seal(p.now, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.b.Open(p.now, nil, keepalive); err != nil {
		t.Fatal(err)
	}
	badMAC := append([]byte(nil), init.Payload...)
	badMAC[proto.InitiationMAC2Offset-1] ^= 1
	m := machinetest.Of(p.b)
	sealed, opened, msg := make([]byte, 0, 64), make([]byte, 0, 64), []byte("steady")
	buf := make([]byte, proto.InitiationLen)
	return &machinetest.Subject{
		Machine:  m,
		Now:      p.now,
		Local:    addrB,
		From:     addrA,
		Snapshot: func() any { return snap(p.b) },
		Rejected: [][]byte{
			nil,
			{0x00, 0x01},                           // STUN: proto.ErrNotNatpass
			proto.AppendTransportHeader(nil, 1, 1), // data: proto.ErrWrongType
			init.Payload[:proto.InitiationLen-1],   // truncated
			badMAC,                                 // ErrBadMAC, before any DH
			init.Payload,                           // ErrReplay: its timestamp was answered
		},
		Inputs: [][]byte{init.Payload, resp.Payload, keepalive},
		Idle: func(now proto.Instant) proto.Instant {
			p.b.RemovePeer(p.a.PublicKey())
			return now
		},
		// Transport data both ways, as a node's data path runs it, and the drain.
		Steady: func(now proto.Instant) proto.Instant {
			now = now.Add(time.Millisecond)
			pkt, err := sa.Seal(now, sealed[:0], msg)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := p.b.Open(now, opened[:0], pkt); err != nil {
				t.Fatal(err)
			}
			if p.b.Deadline() <= now {
				p.b.HandleTimeout(now)
			}
			machinetest.Discard(m, now, buf)
			return now
		},
	}
}

func TestEndpointContract(t *testing.T) {
	machinetest.Check(t, machinetest.Spec{New: keyxSubject, BufLen: proto.InitiationLen, Seed: 40})
}
