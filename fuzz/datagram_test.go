package fuzz

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/natpass/natpass/proto"
)

// Where a fuzzed datagram comes from and arrives on. route bits 0–1 pick the node's
// source, bits 2–3 the server's source, bits 4–5 the server's socket.
var (
	addrPeerMoved    = netip.MustParseAddrPort("198.51.100.8:50001")
	addrStranger6    = netip.MustParseAddrPort("[2001:db8::99]:7777")
	addrUnknownLocal = netip.MustParseAddrPort("192.0.2.1:1")

	nodeSources   = [4]netip.AddrPort{addrServer, addrPeer, addrStranger, addrPeerMoved}
	serverSources = [4]netip.AddrPort{addrAlice, addrBob, addrStranger, addrStranger6}
	serverLocals  = [4]netip.AddrPort{addrServer, addrAltPort, addrAltAddr, addrUnknownLocal}
)

// FuzzAnyDatagram: see the package doc.
func FuzzAnyDatagram(f *testing.F) {
	for _, s := range datagramSeeds(f) {
		f.Add(s.route, s.p)
	}
	f.Fuzz(func(t *testing.T, route uint8, p []byte) {
		defer func() {
			if t.Failed() {
				t.Logf("replay: route %#x datagram %x", route, p)
			}
		}()
		checkParsers(t, p, 0)
		checkNode(t, nodeSources[route&3], p)
		checkServer(t, serverSources[route>>2&3], serverLocals[route>>4&3], p)
	})
}

// checkNode hands p to a node with an established session. A refused datagram moves
// exactly one drop counter by one and changes nothing else that shows: no transmit,
// no event, the same deadline.
func checkNode(t *testing.T, from netip.AddrPort, p []byte) {
	pr := fixture(t)
	n := pr.node
	st0, d0 := n.Stats(), n.Deadline()
	err := n.HandleDatagram(pr.now, addrNode, from, bytes.Clone(p))
	var sent []string
	for i := 0; ; i++ {
		tx, ok := n.PollTransmit(pr.now, pr.buf)
		if !ok {
			break
		}
		if i == 1<<16 {
			t.Fatal("node: PollTransmit never returns false")
		}
		sent = append(sent, fmt.Sprintf("%v %x", tx.To, tx.Payload[:min(len(tx.Payload), 2)]))
	}
	var events []string
	for {
		e, ok := n.PollEvent()
		if !ok {
			break
		}
		events = append(events, fmt.Sprintf("%T", e))
	}
	if err == nil {
		return
	}
	st1, d1 := n.Stats(), n.Deadline()
	rose := diffCounters(reflect.ValueOf(st0), reflect.ValueOf(st1), "")
	if len(rose) != 1 || reflect.ValueOf(st1).FieldByName(rose[0]).Int() != reflect.ValueOf(st0).FieldByName(rose[0]).Int()+1 {
		t.Fatalf("node refused a datagram from %v (%v) and moved counters %v, want one by one", from, err, rose)
	}
	if len(sent) != 0 || len(events) != 0 || d1 != d0 {
		t.Fatalf("node refused a datagram from %v (%v, counted %s) but sent %v, emitted %v, deadline %v → %v",
			from, err, rose[0], sent, events, d0, d1)
	}
}

// checkServer hands p to a server with two registered, introduced, relaying nodes.
// What it sends in answer to a datagram without a live session cookie is no larger
// in total than the datagram (PROTOCOL.md §5.10), a STUN datagram's at most 24 bytes
// larger (§10 [STUN-3]); a refused datagram changes nothing but a counter
// (serverRejects).
func checkServer(t *testing.T, from, local netip.AddrPort, p []byte) {
	s := serverFixture(t)
	st0, d0 := s.srv.Stats(), s.srv.Deadline()
	err := s.srv.HandleDatagram(s.now, local, from, bytes.Clone(p))
	var sent [][]byte
	out := 0
	for i := 0; ; i++ {
		tx, ok := s.srv.PollTransmit(s.now, s.buf)
		if !ok {
			break
		}
		if i == 1<<16 {
			t.Fatal("server: PollTransmit never returns false")
		}
		sent = append(sent, bytes.Clone(tx.Payload))
		out += len(tx.Payload)
	}
	events := 0
	for ; ; events++ {
		if _, ok := s.srv.PollEvent(); !ok {
			break
		}
	}
	limit := len(p)
	if proto.Classify(p) == proto.ClassSTUN {
		limit += 24 // PROTOCOL.md [STUN-3]: an IPv6 address answering a bare request
	}
	if !s.authenticated(p) && out > limit {
		t.Fatalf("server sent %d bytes for an unauthenticated %d-byte datagram from %v", out, len(p), from)
	}
	if err != nil {
		serverRejects(t, st0, s.srv.Stats(), d0, s.srv.Deadline(), sent, events)
	}
}

// authenticated reports whether p carries a live session cookie where the messages
// that have one carry it (right after the header).
func (s *server) authenticated(p []byte) bool {
	h, rest, err := proto.ParseHeader(p)
	if err != nil || len(rest) < proto.SessionLen {
		return false
	}
	switch h.Type {
	case proto.TypeKeepalive, proto.TypeNATProbe, proto.TypeIntroduceRequest, proto.TypeIntroductionAck, proto.TypeRelayAllocate:
	default:
		return false
	}
	for _, c := range s.cookies {
		if bytes.Equal(rest[:proto.SessionLen], c[:]) {
			return true
		}
	}
	return false
}

// stunRequest is a Binding request with a SOFTWARE attribute padding it to n bytes
// (n ≥ 24, a multiple of 4), large enough to be answered (PROTOCOL.md §10).
func stunRequest(n int) []byte {
	b := binary.BigEndian.AppendUint16(nil, 0x0001)
	b = binary.BigEndian.AppendUint16(b, uint16(n-20))
	b = binary.BigEndian.AppendUint32(b, 0x2112A442)
	b = append(b, "fuzz-txid-12"...)
	b = binary.BigEndian.AppendUint16(b, 0x8022)
	b = binary.BigEndian.AppendUint16(b, uint16(n-24))
	return append(b, bytes.Repeat([]byte{'s'}, n-24)...)
}
