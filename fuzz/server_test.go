package fuzz

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
)

var (
	serverSecret = []byte("natpass fuzz secret, tests only")
	addrAlice    = netip.MustParseAddrPort("198.51.100.10:40001")
	addrBob      = netip.MustParseAddrPort("198.51.100.20:40002")
)

// server is a rendezvous server with two registered nodes that reported their NATs,
// were introduced to each other, and each hold a relay channel of the pair: every
// handler has state to act on. Everything it was sent is kept, so seeds can reuse
// the cookies, tokens and channels (the server is seeded, so a fresh one hands out
// the same ones).
type server struct {
	t       testing.TB
	now     proto.Instant
	srv     *rendezvous.Server
	cookies map[netip.AddrPort]proto.Session
	tokens  map[netip.AddrPort][]byte
	channel map[netip.AddrPort]uint16
	buf     []byte
}

func serverFixture(t testing.TB) *server {
	s := &server{t: t, now: 1, buf: make([]byte, rendezvous.MaxDatagramLen),
		cookies: map[netip.AddrPort]proto.Session{}, tokens: map[netip.AddrPort][]byte{}, channel: map[netip.AddrPort]uint16{}}
	srv, err := rendezvous.NewServer(rendezvous.Config{Secret: serverSecret, Seed: [32]byte{3},
		Primary: addrServer, AltPort: addrAltPort, AltAddr: addrAltAddr,
		WallClock: proto.WallClock{At: 0, Time: wallStart}})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	for i, who := range []netip.AddrPort{addrAlice, addrBob} {
		name := []string{"alice", "bob"}[i]
		priv := keyx.PrivateKey{byte(40 + i)}
		tk := proto.Ticket{PeerID: []byte(name), PublicKey: [32]byte(priv.Public()), ExpiryUnix: uint64(wallStart.Unix()) + 3600}
		s.send(who, (&proto.Register{TxID: uint64(i + 1), Ticket: rendezvous.MintTicket(serverSecret, tk), Hosts: []netip.AddrPort{who}}).Append(nil))
		nat := proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.EndpointIndependent}
		s.send(who, (&proto.Keepalive{Session: s.cookies[who], Seq: 1, NAT: nat}).Append(nil))
	}
	s.send(addrAlice, (&proto.IntroduceRequest{Session: s.cookies[addrAlice], TxID: 3, PeerID: []byte("bob")}).Append(nil))
	for i, who := range []netip.AddrPort{addrAlice, addrBob} {
		peer := []string{"bob", "alice"}[i]
		s.send(who, (&proto.IntroductionAck{Session: s.cookies[who], PeerID: []byte(peer)}).Append(nil))
		s.send(who, (&proto.RelayAllocate{Session: s.cookies[who], TxID: uint64(10 + i), PeerID: []byte(peer), Token: s.tokens[who]}).Append(nil))
	}
	if s.channel[addrAlice] == 0 || s.channel[addrBob] == 0 {
		t.Fatalf("server fixture: relay channels %v", s.channel)
	}
	s.now = s.now.Add(time.Millisecond)
	return s
}

// send hands the server a datagram on its primary socket and files what it answers.
func (s *server) send(from netip.AddrPort, p []byte) {
	s.now = s.now.Add(time.Millisecond)
	if err := s.srv.HandleDatagram(s.now, addrServer, from, p); err != nil {
		s.t.Fatalf("server fixture: %x refused: %v", p[:2], err)
	}
	for {
		tx, ok := s.srv.PollTransmit(s.now, s.buf)
		if !ok {
			break
		}
		var reg proto.Registered
		var intro proto.Introduction
		var alloc proto.RelayAllocated
		switch {
		case reg.Parse(tx.Payload) == nil:
			s.cookies[tx.To] = reg.Session
		case intro.Parse(tx.Payload) == nil:
			s.tokens[tx.To] = bytes.Clone(intro.RelayToken)
		case alloc.Parse(tx.Payload) == nil:
			s.channel[tx.To] = alloc.Channel
		}
	}
	for {
		if _, ok := s.srv.PollEvent(); !ok {
			return
		}
	}
}

// serverRejects checks what a refused datagram may do to the server: no event, no
// session gained or lost, the timers as they were, nothing sent but error messages,
// and one reason counted (a rate-limit refusal may count its notice too).
func serverRejects(t *testing.T, before, after rendezvous.Stats, deadline0, deadline1 proto.Instant, sent [][]byte, events int) {
	if events != 0 || before.Sessions != after.Sessions || deadline0 != deadline1 {
		t.Fatalf("refused datagram: %d events, sessions %d → %d, deadline %v → %v", events, before.Sessions, after.Sessions, deadline0, deadline1)
	}
	for _, p := range sent {
		var m proto.Error
		if m.Parse(p) != nil {
			t.Fatalf("refused datagram answered with %x, not an error message", p)
		}
	}
	// Traffic counters and the per-source table move with every datagram.
	for _, st := range []*rendezvous.Stats{&before, &after} {
		st.DatagramsIn, st.BytesIn, st.DatagramsOut, st.BytesOut = 0, 0, 0, 0
		st.Sources, st.SourceEvictions = 0, 0
	}
	rose := diffCounters(reflect.ValueOf(before), reflect.ValueOf(after), "")
	if len(rose) == 1 || len(rose) == 2 && rose[0] == "DropRateLimited" && rose[1] == "RateLimitNotices" {
		return
	}
	t.Fatalf("refused datagram moved counters %v, want exactly one drop reason", rose)
}

// diffCounters lists the integer fields (of nested structs too) that differ.
func diffCounters(a, b reflect.Value, prefix string) []string {
	var out []string
	for i := range a.NumField() {
		name := prefix + a.Type().Field(i).Name
		fa, fb := a.Field(i), b.Field(i)
		switch fa.Kind() {
		case reflect.Struct:
			out = append(out, diffCounters(fa, fb, name+".")...)
		case reflect.Int, reflect.Int64:
			if fa.Int() != fb.Int() {
				out = append(out, name)
			}
		case reflect.Uint64, reflect.Uint32:
			if fa.Uint() != fb.Uint() {
				out = append(out, name)
			}
		}
	}
	return out
}
