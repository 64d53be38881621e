package rendezvous

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// Fuzz input format for FuzzServer: a sequence of records
//
//	ctrl u8 ‖ len u8 ‖ payload (len bytes, cut short at the end of the input)
//
// ctrl bits 0–1 pick the source, bits 2–3 the local socket (3 = an unknown one) of
// the source's family (the server is dual stack: an IPv6 source arrives on an IPv6
// socket) and bits 4–7 advance virtual time by that many 10-second steps, so
// sessions expire and buckets refill under the fuzzer's control.
var (
	fuzzSources  = [4]netip.AddrPort{aliceNAT, bobNAT, v6Node, netip.MustParseAddrPort("[::ffff:203.0.113.77]:9")}
	fuzzLocals   = [4]netip.AddrPort{srvPrimary, srvAltPort, srvAltAddr, netip.MustParseAddrPort("192.0.2.1:1")}
	fuzzLocalsV6 = [4]netip.AddrPort{srvV6, srvV6AltPort, srvV6AltAddr, netip.MustParseAddrPort("[2001:db8:5::1]:1")}
)

func fuzzConfig() Config {
	c := testConfig()
	dualStack(&c)
	c.MaxPeers = 4
	c.MaxSources = 3
	return c
}

// fuzzLocal is the local socket ctrl picks for source from.
func fuzzLocal(ctrl byte, from netip.AddrPort) netip.AddrPort {
	if isIPv4(from) {
		return fuzzLocals[ctrl>>2&3]
	}
	return fuzzLocalsV6[ctrl>>2&3]
}

func fuzzRecord(ctrl byte, p []byte) []byte { return append([]byte{ctrl, byte(len(p))}, p...) }

// fuzzSeeds are whole conversations: the server is deterministic, so the cookie a
// fresh fuzzConfig server hands alice is known and later records can use it.
func fuzzSeeds(f *testing.F) {
	s, err := NewServer(fuzzConfig())
	if err != nil {
		f.Fatal(err)
	}
	buf := make([]byte, MaxDatagramLen)
	reg := registerBytes(1, ticketFor("alice", 1), aliceLAN)
	_ = s.HandleDatagram(1, srvPrimary, aliceNAT, reg)
	tx, _ := s.PollTransmit(1, buf)
	var r proto.Registered
	if err := r.Parse(tx.Payload); err != nil {
		f.Fatal(err)
	}
	regBob := registerBytes(2, ticketFor("bob", 2), bobLAN)
	var conv []byte
	conv = append(conv, fuzzRecord(0x00, reg)...)
	conv = append(conv, fuzzRecord(0x01, regBob)...)
	conv = append(conv, fuzzRecord(0x10, keepaliveBytes(r.Session, 1))...)
	conv = append(conv, fuzzRecord(0x04, probeBytes(r.Session, 2, proto.ChangePort))...)
	conv = append(conv, fuzzRecord(0x00, probeBytes(r.Session, 3, proto.ChangeAddress|proto.ChangePort))...)
	conv = append(conv, fuzzRecord(0x00, introduceBytes(r.Session, 4, "bob", 0))...)
	conv = append(conv, fuzzRecord(0x00, joinBytes(r.Session, 6, "lobby"))...)
	conv = append(conv, fuzzRecord(0x00, joinBytes(r.Session, 7, "lobby"))...)
	conv = append(conv, fuzzRecord(0x00, leaveBytes(r.Session, 8, "lobby"))...)
	conv = append(conv, fuzzRecord(0x01, joinBytes(proto.Session{}, 9, "lobby"))...)
	conv = append(conv, fuzzRecord(0x02, paddedSTUN(5, 64, true))...)
	conv = append(conv, fuzzRecord(0xF3, keepaliveBytes(r.Session, 5))...)
	f.Add(conv)
	f.Add(fuzzRecord(0x00, reg))
	f.Add(fuzzRecord(0x02, unhex(f, rfc5769Request)))
	// PROTOCOL.md §10: a bare request, an RFC 3489 one, and one answered with 420.
	stun := fuzzRecord(0x02, stunRequestBytes(1, false))
	stun = append(stun, fuzzRecord(0x02, classicRequestBytes(2, stunAttr(stunAttrChangeRequest, make([]byte, 4))))...)
	stun = append(stun, fuzzRecord(0x02, stunRequestBytes(3, true, stunAttr(stunAttrChangeRequest, []byte{0, 0, 0, 6})))...)
	f.Add(stun)
	f.Add(fuzzRecord(0x00, keepaliveBytes(proto.Session{}, 1)))
	// alice in two rooms, then her session times out (0x90: 90 s later) and the
	// register after it finds the rooms' notices and the TTL timer.
	rooms := fuzzRecord(0x00, reg)
	rooms = append(rooms, fuzzRecord(0x00, joinBytes(r.Session, 1, "a"))...)
	rooms = append(rooms, fuzzRecord(0x00, joinBytes(r.Session, 2, "b"))...)
	rooms = append(rooms, fuzzRecord(0x90, regBob)...)
	rooms = append(rooms, fuzzRecord(0xF1, leaveBytes(r.Session, 3, "a"))...)
	f.Add(rooms)
	// Dual stack ([SRV-14]): alice binds her IPv6 address (source 2 on srvV6), keeps
	// it with an IPv6 keepalive, is introduced with it; the same family is refused;
	// then 100 s pass and the binding expires before the session's IPv4 keepalive.
	dual := fuzzRecord(0x00, reg)
	dual = append(dual, fuzzRecord(0x01, regBob)...)
	dual = append(dual, fuzzRecord(0x02, regFamilyBytes(r.Session, 1))...)
	dual = append(dual, fuzzRecord(0x00, regFamilyBytes(r.Session, 2))...)
	dual = append(dual, fuzzRecord(0x12, keepaliveBytes(r.Session, 3))...)
	dual = append(dual, fuzzRecord(0x02, regFamilyBytes(r.Session, 1))...)
	dual = append(dual, fuzzRecord(0x00, introduceBytes(r.Session, 4, "bob", 0))...)
	dual = append(dual, fuzzRecord(0x50, keepaliveBytes(r.Session, 5))...)
	dual = append(dual, fuzzRecord(0x50, keepaliveBytes(r.Session, 6))...)
	dual = append(dual, fuzzRecord(0x06, regFamilyBytes(proto.Session{}, 7))...)
	f.Add(dual)
}

// FuzzServer feeds arbitrary datagram sequences to one server. Properties: nothing
// panics; the tables stay within their bounds; and every datagram that does not
// carry a live session cookie is answered with at most as many bytes as it had (a STUN
// request: at most stunMaxGrowth more, PROTOCOL.md [STUN-3]).
func FuzzServer(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := fuzzConfig()
		s, err := NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, MaxDatagramLen)
		now := proto.Instant(1)
		for len(in) >= 2 {
			ctrl, n := in[0], int(in[1])
			in = in[2:]
			n = min(n, len(in))
			p := in[:n]
			in = in[n:]
			now = now.Add(time.Duration(ctrl>>4) * 10 * time.Second)
			fuzzTimeouts(t, s, now, buf)
			authenticated := false
			if h, _, err := proto.ParseHeader(p); err == nil && len(p) >= proto.HeaderLen+proto.SessionLen {
				switch h.Type {
				case proto.TypeKeepalive, proto.TypeNATProbe, proto.TypeIntroduceRequest,
					proto.TypeRoomJoin, proto.TypeRoomLeave:
					_, authenticated = s.peers.byCookie[proto.Session(p[2:18])]
				}
			}
			from := fuzzSources[ctrl&3]
			_ = s.HandleDatagram(now, fuzzLocal(ctrl, from), from, p)
			out := fuzzDrain(s, now, buf)
			limit := len(p)
			if proto.Classify(p) == proto.ClassSTUN {
				limit += stunMaxGrowth // STUN's stated bound, PROTOCOL.md [STUN-3]
			}
			if !authenticated && out > limit {
				t.Fatalf("%d bytes sent for an unauthenticated %d-byte datagram %x", out, len(p), p)
			}
			// What waits for transmit room (room notices) goes out now.
			fuzzTimeouts(t, s, now, buf)
			if rs := s.Stats().Rooms; rs.Rooms > s.cfg.MaxRooms {
				t.Fatalf("room table over bound: %+v", rs)
			}
			if st := s.Stats(); st.Sessions > cfg.MaxPeers || st.Sources > cfg.MaxSources {
				t.Fatalf("tables over bound: %+v", st)
			}
			if d := s.Deadline(); d != proto.Never && d <= now {
				t.Fatalf("deadline %d not after now %d after handling everything due", d, now)
			}
		}
	})
}

// fuzzDrain empties the server's queues and returns the bytes it sent.
func fuzzDrain(s *Server, now proto.Instant, buf []byte) int {
	out := 0
	for {
		tx, ok := s.PollTransmit(now, buf)
		if !ok {
			break
		}
		out += len(tx.Payload)
	}
	for {
		if _, ok := s.PollEvent(); !ok {
			break
		}
	}
	return out
}

// fuzzTimeouts fires the timer while it is due, as a driver does; the server must
// settle in a bounded number of rounds.
func fuzzTimeouts(t *testing.T, s *Server, now proto.Instant, buf []byte) {
	for range 1 + roomNoticeQueueLen/txQueueLen {
		if s.Deadline() > now {
			return
		}
		s.HandleTimeout(now)
		fuzzDrain(s, now, buf)
	}
	t.Fatalf("deadline %d stays at or before now %d", s.Deadline(), now)
}
