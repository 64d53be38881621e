package rendezvous

import (
	"testing"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

// serverSnapshot is the presence table a rejected datagram must leave alone. The
// drop counters in Stats and the rate meters change by design (Server's doc).
type serverSnapshot struct {
	Sessions   int
	Alice, Bob PeerInfo
	AliceOK    bool
	BobOK      bool
}

func snapServer(s *Server) serverSnapshot {
	alice, aok := s.Peer([]byte("alice"))
	bob, bok := s.Peer([]byte("bob"))
	return serverSnapshot{s.Stats().Sessions, alice, bob, aok, bok}
}

// contractSubject is a server with two registered sessions, so the session timer is
// armed and keepalives are its steady state.
func contractSubject(t *testing.T) *machinetest.Subject {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT, aliceLAN)
	h.register("bob", 2, bobNAT, bobLAN)
	ka := keepaliveBytes(alice.Session, 1)
	reg := registerBytes(9, ticketFor("carol", 3))
	m := machinetest.Of(h.s)
	return &machinetest.Subject{
		Machine:  m,
		Now:      h.now,
		Local:    srvPrimary,
		From:     aliceNAT,
		Snapshot: func() any { return snapServer(h.s) },
		Rejected: [][]byte{
			nil,
			{0xE1},                                 // a header cut short
			reg[:len(reg)/2],                       // a register cut in half
			(&proto.Probe{Pair: 1}).Append(nil),    // a peer's probe: not for the server
			proto.AppendTransportHeader(nil, 1, 1), // transport data: not for the server
		},
		Inputs: [][]byte{ka, reg, probeBytes(alice.Session, 5, 0),
			introduceBytes(alice.Session, 6, "bob", 0), keepaliveBytes(alice.Session, 2),
			joinBytes(alice.Session, 7, "lobby"), leaveBytes(alice.Session, 8, "lobby")},
		// Every session times out when no keepalive comes.
		Idle: func(now proto.Instant) proto.Instant {
			for range 16 {
				if d := h.s.Deadline(); d != proto.Never {
					now = max(now, d)
					h.s.HandleTimeout(now)
					machinetest.Discard(m, now, h.buf)
				}
			}
			return now
		},
		// A keepalive and its answer, at the pace the source and session rates allow.
		Steady: func(now proto.Instant) proto.Instant {
			now = now.Add(DefaultSourceRate.Interval)
			if err := h.s.HandleDatagram(now, srvPrimary, aliceNAT, ka); err != nil {
				t.Fatal(err)
			}
			if n, _ := machinetest.Discard(m, now, h.buf); n != 1 {
				t.Fatalf("%d answers to a keepalive", n)
			}
			return now
		},
	}
}

func TestServerContract(t *testing.T) {
	machinetest.Check(t, machinetest.Spec{New: contractSubject, BufLen: MaxDatagramLen, Seed: 44})
}
