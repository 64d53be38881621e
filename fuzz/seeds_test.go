package fuzz

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// sessionSeeds are rudp packets of every frame kind, as the stand-in would send
// them after the fixture's exchange, plus near misses.
func sessionSeeds() [][]byte {
	pkt := func(pn uint64, frames ...interface{ Append([]byte) []byte }) []byte {
		b := proto.AppendVarint(nil, pn)
		for _, f := range frames {
			b = f.Append(b)
		}
		return b
	}
	data := func(mode proto.RUDPMode, lane uint8, seq uint64, msg string) *proto.RUDPData {
		return &proto.RUDPData{Mode: mode, Lane: lane, Seq: seq, Total: uint64(len(msg)), Data: []byte(msg)}
	}
	ping := rawFrame{byte(proto.RUDPPing)}
	return [][]byte{
		{},
		pkt(100, ping),
		pkt(100, data(proto.RUDPReliableOrdered, 0, 1, "forged next")),
		pkt(100, data(proto.RUDPReliableOrdered, 0, 2, "forged ahead")),
		pkt(100, data(proto.RUDPReliableUnordered, 1, 0, "unordered")),
		pkt(100, data(proto.RUDPUnreliableSequenced, 2, 9, "sequenced")),
		pkt(100, data(proto.RUDPUnreliable, 3, 0, "unreliable")),
		pkt(100, data(proto.RUDPReliableOrdered, 9, 0, "no such lane")),
		pkt(100, &proto.RUDPData{Mode: proto.RUDPReliableOrdered, Lane: 0, Seq: 1, Total: 3000, Count: 3, Index: 1, Data: make([]byte, 1000)}),
		pkt(100, &proto.RUDPAck{Ranges: []proto.RUDPAckRange{{Smallest: 0, Largest: 1}}}),
		pkt(100, &proto.RUDPAck{Ranges: []proto.RUDPAckRange{{Smallest: 0, Largest: 1 << 20}}}),
		pkt(100, &proto.RUDPMaxData{Limit: 1 << 40}),
		pkt(100, &proto.RUDPClose{Code: 7, Text: []byte("bye")}),
		pkt(100, &proto.RUDPAckFrequency{Sequence: 0, Threshold: 9, MaxAckDelayMicros: 2500, ReorderThreshold: 3}),
		pkt(100, &proto.RUDPAckFrequency{Sequence: 1, Threshold: 0, MaxAckDelayMicros: 0, ReorderThreshold: 0}),
		pkt(0, ping),                    // a packet number the stand-in used
		pkt(5, ping),                    // one it will use next
		pkt(proto.MaxVarint, ping),      // the last one
		append(pkt(101, ping), 0, 0, 0), // padding
		append(pkt(101, ping), 0, 1),    // padding that is not
		pkt(102, data(proto.RUDPReliableOrdered, 0, 4095, "far")),
		pkt(102, data(proto.RUDPReliableOrdered, 0, 4096, "beyond the window")),
	}
}

// rawFrame is a frame given as its bytes.
type rawFrame []byte

func (r rawFrame) Append(b []byte) []byte { return append(b, r...) }

// datagramSeed is one FuzzAnyDatagram input.
type datagramSeed struct {
	route uint8
	p     []byte
}

// Routes for the seeds (see nodeSources, serverSources, serverLocals).
const (
	toNodeFromServer   = 0
	toNodeFromPeer     = 1
	toNodeFromStranger = 2
	toServerFromBob    = 1 << 2
	toServerFromV6     = 3 << 2
	toServerAltPort    = 1 << 4
)

// datagramSeeds are genuine datagrams for every machine in the state the fixtures
// leave it in (both are deterministic, so cookies, channels and session counters
// repeat in every execution), and a few near misses.
func datagramSeeds(tb testing.TB) []datagramSeed {
	var seeds []datagramSeed
	add := func(route uint8, p []byte) { seeds = append(seeds, datagramSeed{route, p}) }

	pr := fixture(tb)
	pr.record = true
	pr.run(3*time.Second, nil) // punch probes and keepalives go out
	for _, b := range pr.sent {
		add(toNodeFromPeer, b) // the node's own datagrams reflected back at it
	}
	sess := pr.peerKeyx.Current(pr.nodePub)
	// The next counter of the stand-in's session is unused in a fresh fixture.
	ping := proto.AppendVarint(nil, 1000)
	ping = append(ping, byte(proto.RUDPPing))
	if sealed, err := sess.Seal(pr.now, nil, ping); err == nil {
		add(toNodeFromPeer, sealed)
		add(toNodeFromPeer|toServerFromBob, sealed[:len(sealed)-1])
	}
	add(toNodeFromServer, (&proto.KeepaliveAck{Seq: 1, Observed: addrNodeNAT}).Append(nil))
	add(toNodeFromServer, (&proto.KeepaliveAck{Seq: 1, Observed: addrStranger}).Append(nil))
	add(toNodeFromServer, (&proto.Registered{TxID: 1, Observed: addrNodeNAT, Keepalive: 25}).Append(nil))
	add(toNodeFromServer, (&proto.Introduction{PeerID: []byte("eve"), PeerKey: [32]byte{9}}).Append(nil))
	add(toNodeFromServer, (&proto.Error{TxID: 1, Code: proto.CodeNoSession}).Append(nil))
	add(toNodeFromStranger, (&proto.Error{TxID: 1, Code: proto.CodeNoSession}).Append(nil))
	add(toNodeFromServer, (&proto.RelayAllocated{TxID: 1, Channel: 7, LifetimeS: 60, Token: []byte{1}}).Append(nil))
	add(toNodeFromServer, (&proto.RelayData{Deliver: true, Channel: 7, Packet: []byte{0xE1, 0x13}}).Append(nil))

	s := serverFixture(tb)
	alice := s.cookies[addrAlice]
	add(0, (&proto.Keepalive{Session: alice, Seq: 2}).Append(nil))
	add(toServerAltPort, (&proto.NATProbe{Session: alice, TxID: 5, Change: proto.ChangePort}).Append(nil))
	add(0, (&proto.NATProbe{Session: alice, TxID: 6, Change: proto.ChangeAddress | proto.ChangePort}).Append(nil))
	add(0, (&proto.IntroduceRequest{Session: alice, TxID: 7, PeerID: []byte("bob"), Flags: proto.IntroRefresh}).Append(nil))
	add(0, (&proto.IntroduceRequest{Session: alice, TxID: 8, PeerID: []byte("carol")}).Append(nil))
	add(0, (&proto.IntroductionAck{Session: alice, PeerID: []byte("bob")}).Append(nil))
	add(0, (&proto.RelayAllocate{Session: alice, TxID: 9, PeerID: []byte("bob"), Token: s.tokens[addrAlice]}).Append(nil))
	add(0, (&proto.RelayData{Channel: s.channel[addrAlice], Packet: []byte{0xE1, 0x13, 1, 2, 3}}).Append(nil))
	add(toServerFromBob, (&proto.RelayData{Channel: s.channel[addrAlice], Packet: []byte{0xE1, 0x13}}).Append(nil))
	add(toServerFromV6, (&proto.Keepalive{Session: proto.Session{1}, Seq: 1}).Append(nil))
	add(toServerFromV6, (&proto.Register{TxID: 1, Ticket: []byte("not a ticket"), Hosts: []netip.AddrPort{addrStranger6}}).Append(nil))
	add(0, stunRequest(64))
	add(toServerFromV6, stunRequest(44))
	add(0, stunRequest(24))
	add(0, []byte{0xE2, 0x01})
	add(0, []byte{0xE1})
	add(0, nil)
	return seeds
}
