package rendezvous

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
	"github.com/natpass/natpass/sim"
)

// relayClient is the smallest client of the relay, as a sim machine: it registers,
// (the introducer) asks for a relay-only introduction, allocates its channel with the
// introduction's token through a relayframe.Client, and once the channel is ready
// sends its packets through the relay; the other side echoes every packet back. It
// stands in for node/ so that the server's relay (and relayframe.Client against it)
// can be tested through the simulator's NAT models on their own.
type relayClient struct {
	t             *testing.T
	name, peer    string
	key           byte
	local, server netip.AddrPort
	introducer    bool

	cookie proto.Session
	token  []byte
	rc     relayframe.Client
	next   proto.Instant
	out    [][]byte

	toSend   [][]byte // packets still to send (the introducer)
	sent     [][]byte
	received [][]byte
}

const simAllocTx = 0x5e

func (c *relayClient) queue(m interface{ Append([]byte) []byte }) {
	c.out = append(c.out, m.Append(nil))
}

func (c *relayClient) HandleTimeout(now proto.Instant) {
	c.rc.HandleTimeout(now)
	if b := c.rc.AppendAllocate(now, nil, c.cookie, []byte(c.peer)); len(b) > 0 {
		c.out = append(c.out, b)
	}
	if now < c.next {
		return
	}
	c.next = now.Add(300 * time.Millisecond) // retry whatever step is pending
	switch {
	case c.cookie == proto.Session{}:
		c.queue(&proto.Register{TxID: 1, Ticket: ticketFor(c.name, c.key)})
	case c.token == nil && c.introducer:
		c.queue(&proto.IntroduceRequest{Session: c.cookie, TxID: 2, PeerID: []byte(c.peer), Flags: proto.IntroRelayOnly})
	case c.rc.Ready() && len(c.toSend) > 0:
		p := c.toSend[0]
		c.toSend = c.toSend[1:]
		c.sendRelay(p)
		c.next = now.Add(5 * time.Millisecond)
	default:
		c.next = proto.Never
	}
}

// sendRelay frames p the way a node does: packet at buf[4:], header in place.
func (c *relayClient) sendRelay(p []byte) {
	buf := make([]byte, relayframe.DataHeaderLen+len(p))
	copy(buf[relayframe.DataHeaderLen:], p)
	relayframe.PutSendHeader(buf, c.rc.Channel())
	c.out = append(c.out, buf)
	if c.introducer {
		c.sent = append(c.sent, p)
	}
}

func (c *relayClient) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	if from != c.server {
		c.t.Errorf("%s: datagram from %v, not the server", c.name, from)
		return nil
	}
	h, _, err := proto.ParseHeader(p)
	if err != nil {
		return err
	}
	switch h.Type {
	case proto.TypeRegistered:
		var m proto.Registered
		if m.Parse(p) == nil {
			c.cookie, c.next = m.Session, now
		}
	case proto.TypeIntroduction:
		var m proto.Introduction
		if m.Parse(p) == nil {
			c.queue(&proto.IntroductionAck{Session: c.cookie, PeerID: m.PeerID})
			if c.token == nil {
				c.token = bytes.Clone(m.RelayToken)
				c.rc.Start(now, c.token, simAllocTx)
			}
		}
	case proto.TypeRelayAllocated:
		var m proto.RelayAllocated
		if m.Parse(p) != nil {
			return nil
		}
		if !c.rc.HandleAllocated(now, &m) {
			c.t.Errorf("%s: relay-allocated %+v is not mine", c.name, m)
		}
		if c.rc.Ready() {
			c.next = now
		}
	case proto.TypeRelayDeliver:
		ch, pkt, err := relayframe.ParseDeliver(p)
		if err != nil || ch != c.rc.Channel() {
			c.t.Errorf("%s: relay-deliver on channel %d (mine %d): %v", c.name, ch, c.rc.Channel(), err)
			return nil
		}
		c.received = append(c.received, bytes.Clone(pkt))
		if !c.introducer {
			c.sendRelay(pkt) // echo
		}
	}
	return nil
}

func (c *relayClient) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if len(c.out) == 0 {
		return proto.Transmit{}, false
	}
	n := copy(buf, c.out[0])
	c.out = c.out[1:]
	return proto.Transmit{From: c.local, To: c.server, Payload: buf[:n]}, true
}

func (c *relayClient) Deadline() proto.Instant { return proto.Min(c.next, c.rc.Deadline()) }

// TestRelayThroughSimulatedNATs: two clients behind random-symmetric NATs (where no
// direct path is practical, DESIGN §6.5) exchange packets only through the relay.
// Every packet arrives once, in order, byte for byte, both ways; the server relayed
// exactly as many bytes as it was given.
func TestRelayThroughSimulatedNATs(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			pr := sim.NewPair(sim.PairConfig{Seed: seed, A: sim.MustPreset("symmetric-random"), B: sim.MustPreset("symmetric-random")})
			s := pr.Sim
			socks := pr.Server.Sockets()
			srv, err := NewServer(Config{Secret: testSecret, Seed: s.NewSeed32(), Primary: socks[0], AltPort: socks[1],
				AltAddr: socks[2], WallClock: proto.WallClock{At: s.Now(), Time: time.Unix(wallStart, 0)}})
			if err != nil {
				t.Fatal(err)
			}
			pr.Server.Attach(srv)
			pr.Server.AfterStep = func(proto.Instant) {
				for {
					if _, ok := srv.PollEvent(); !ok {
						return
					}
				}
			}
			rng := rand.New(rand.NewPCG(seed, 7))
			a := &relayClient{t: t, name: "alice", peer: "bob", key: 1, local: pr.A.Host.Socket(), server: socks[0], introducer: true}
			b := &relayClient{t: t, name: "bob", peer: "alice", key: 2, local: pr.B.Host.Socket(), server: socks[0]}
			for i := 0; i < 40; i++ {
				p := make([]byte, 1+rng.IntN(relayframe.MaxPacketLen))
				for k := range p {
					p[k] = byte(rng.Uint32())
				}
				a.toSend = append(a.toSend, p)
			}
			// Bob registers first, so that alice's introduction finds him.
			b.next, a.next = s.Now(), s.Now().Add(200*time.Millisecond)
			pr.A.Host.Attach(a)
			pr.B.Host.Attach(b)
			done := func() bool { return len(a.received) == 40 }
			if err := s.RunUntil(s.Now().Add(10*time.Second), done); err != nil {
				t.Fatalf("seed %d: %v (replay: go test ./rendezvous -run 'TestRelayThroughSimulatedNATs/%d')", seed, err, seed)
			}
			if len(b.received) != 40 || len(a.received) != 40 {
				t.Fatalf("seed %d: bob got %d, alice got %d echoes of 40 (replay: go test ./rendezvous -run 'TestRelayThroughSimulatedNATs/%d')",
					seed, len(b.received), len(a.received), seed)
			}
			for i := range a.sent {
				if !bytes.Equal(b.received[i], a.sent[i]) || !bytes.Equal(a.received[i], a.sent[i]) {
					t.Fatalf("seed %d: packet %d changed in the relay", seed, i)
				}
			}
			st := srv.Stats().Relay
			in := 0
			for _, p := range a.sent {
				in += 2 * (len(p) + relayframe.DataHeaderLen) // there and back
			}
			if st.Forwarded != 80 || st.BytesForwarded != uint64(in) || st.ReadyNotices != 1 || st.DropPeerNotReady != 0 {
				t.Fatalf("seed %d: relay stats %+v, want 80 frames, %d bytes", seed, st, in)
			}
		})
	}
}
