package rendezvous

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// testCluster is several servers on one synchronous bus: what a server publishes is
// delivered (to every subscriber, wildcards included) before the publishing call
// returns, and a request nobody holds comes back as a NoResponders notice. Each
// server's datagrams are collected per server.
type testCluster struct {
	t    *testing.T
	hs   []*harness
	subs []map[string]bool
	out  [][]sent // datagrams each server sent since the last take
	cut  map[[2]int]bool
}

var measured = proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.EndpointIndependent}

func newTestCluster(t *testing.T, n int) *testCluster {
	return newTestClusterWith(t, n, func(*Config) {})
}

// newTestClusterWith is newTestCluster with mutate applied to every server's config.
func newTestClusterWith(t *testing.T, n int, mutate func(*Config)) *testCluster {
	c := &testCluster{t: t, cut: map[[2]int]bool{}}
	for k := range n {
		h := newHarness(t, func(cfg *Config) {
			mutate(cfg)
			cfg.Cluster = true
			cfg.Seed = [32]byte{byte(k + 1), 7}
		})
		c.hs = append(c.hs, h)
		c.subs = append(c.subs, map[string]bool{})
		c.out = append(c.out, nil)
	}
	for k := range c.hs {
		c.pump(k)
	}
	return c
}

// pump drains server k: its interest, datagrams and events, then its cluster
// messages, delivering each at once.
func (c *testCluster) pump(k int) {
	h := c.hs[k]
	for {
		in, ok := h.s.PollInterest()
		if !ok {
			break
		}
		if in.Subscribe {
			c.subs[k][in.Subject] = true
		} else {
			delete(c.subs[k], in.Subject)
		}
	}
	out, _ := h.drain()
	c.out[k] = append(c.out[k], out...)
	var msgs []ClusterMessage
	for {
		m, ok := h.s.PollCluster()
		if !ok {
			break
		}
		msgs = append(msgs, ClusterMessage{Subject: m.Subject, Reply: m.Reply, Data: bytes.Clone(m.Data)})
	}
	for _, m := range msgs {
		c.publish(k, m)
	}
}

func subscribed(set map[string]bool, subject string) bool {
	if set[subject] {
		return true
	}
	for i := range len(subject) {
		if subject[i] == '.' && set[subject[:i+1]+">"] {
			return true
		}
	}
	return false
}

func (c *testCluster) publish(from int, m ClusterMessage) {
	found := false
	for k := range c.hs {
		if !subscribed(c.subs[k], m.Subject) || c.cut[[2]int{from, k}] || c.cut[[2]int{k, from}] {
			continue
		}
		found = true
		c.hs[k].now = max(c.hs[k].now, c.hs[from].now)
		_ = c.hs[k].s.HandleCluster(c.hs[k].now, m)
		c.pump(k)
	}
	if !found && m.Reply != "" {
		c.publish(from, ClusterMessage{Subject: m.Reply, NoResponders: true})
	}
}

// send delivers datagram p to server k from from, and returns what every server sent.
func (c *testCluster) send(k int, from netip.AddrPort, p []byte) [][]sent {
	c.t.Helper()
	_ = c.hs[k].s.HandleDatagram(c.hs[k].now, srvPrimary, from, p)
	c.pump(k)
	return c.take()
}

// wait moves every server's time forward by d, firing timers and keeping what they
// send.
func (c *testCluster) wait(d time.Duration) {
	for k, h := range c.hs {
		end := h.now.Add(d)
		for dl := h.s.Deadline(); dl <= end; dl = h.s.Deadline() {
			h.now = max(h.now, dl)
			h.s.HandleTimeout(h.now)
			c.pump(k)
		}
		h.now = end
	}
}

func (c *testCluster) take() [][]sent {
	out := c.out
	c.out = make([][]sent, len(c.hs))
	return out
}

// join registers id on server k from addr and reports its NAT.
func (c *testCluster) join(k int, id string, key byte, addr netip.AddrPort) proto.Session {
	c.t.Helper()
	out := c.send(k, addr, registerBytes(uint64(key)<<8|1, ticketFor(id, key)))
	var r proto.Registered
	only(c.t, out[k], &r)
	ka := (&proto.Keepalive{Session: r.Session, Seq: 1, NAT: measured}).Append(nil)
	c.send(k, addr, ka)
	return r.Session
}

// introductionTo returns the one introduction in out addressed to to.
func introductionTo(t *testing.T, out []sent, to netip.AddrPort) proto.Introduction {
	t.Helper()
	for _, d := range out {
		var m proto.Introduction
		if d.To == to && m.Parse(d.Payload) == nil {
			m.RelayToken = bytes.Clone(m.RelayToken)
			return m
		}
	}
	t.Fatalf("no introduction to %v in %d datagrams", to, len(out))
	return proto.Introduction{}
}

// Two peers on two servers are introduced to each other: each hears from its own
// server, with the same pair (PSK) and the other's addresses, and each token
// verifies on both servers.
func TestClusterIntroduction(t *testing.T) {
	c := newTestCluster(t, 2)
	alice := c.join(0, "alice", 1, aliceNAT)
	c.join(1, "bob", 2, bobNAT)
	out := c.send(0, aliceNAT, introduceBytes(alice, 42, "bob", 0))
	toAlice := introductionTo(t, out[0], aliceNAT)
	toBob := introductionTo(t, out[1], bobNAT)
	if string(toAlice.PeerID) != "bob" || string(toBob.PeerID) != "alice" || toAlice.TxID != 42 || toBob.TxID != 0 {
		t.Fatalf("introductions: to alice %+v, to bob %+v", toAlice, toBob)
	}
	if toAlice.PSK != toBob.PSK || toAlice.PSK == ([proto.KeyLen]byte{}) {
		t.Fatal("the two servers derived different PSKs for the pair")
	}
	hasCand := func(m proto.Introduction, a netip.AddrPort) bool {
		for _, cd := range m.Candidates {
			if cd.Addr == a {
				return true
			}
		}
		return false
	}
	if !hasCand(toAlice, bobNAT) || !hasCand(toBob, aliceNAT) {
		t.Fatalf("candidates: alice got %v, bob got %v", toAlice.Candidates, toBob.Candidates)
	}
	for k, h := range c.hs {
		for _, tok := range [][]byte{toAlice.RelayToken, toBob.RelayToken} {
			if _, err := h.s.tokens.VerifyToken(tok, h.s.wall.UnixAt(h.now)); err != nil {
				t.Errorf("server %d refuses a cluster token: %v", k, err)
			}
		}
	}
	if c.hs[0].s.Stats().Cluster.IntroAsks != 1 || c.hs[1].s.Stats().Cluster.IntroAsksServed != 1 {
		t.Errorf("stats: %+v / %+v", c.hs[0].s.Stats().Cluster, c.hs[1].s.Stats().Cluster)
	}
}

// A lost introduction copy is repeated by the server of that side only, and the
// acknowledgement of a cross-server introduction stops the repeats.
func TestClusterIntroductionRepeatsUntilAcked(t *testing.T) {
	c := newTestCluster(t, 2)
	alice := c.join(0, "alice", 1, aliceNAT)
	bob := c.join(1, "bob", 2, bobNAT)
	c.send(0, aliceNAT, introduceBytes(alice, 42, "bob", 0))
	ack := (&proto.IntroductionAck{Session: alice, PeerID: []byte("bob")}).Append(nil)
	c.send(0, aliceNAT, ack)
	c.wait(300 * time.Millisecond)
	out := c.take()
	if len(out[0]) != 0 {
		t.Errorf("server 0 repeated an acknowledged copy: %d datagrams", len(out[0]))
	}
	introductionTo(t, out[1], bobNAT) // bob's copy is repeated by his server
	c.send(1, bobNAT, (&proto.IntroductionAck{Session: bob, PeerID: []byte("alice")}).Append(nil))
	c.wait(time.Second)
	if out := c.take(); len(out[0])+len(out[1]) != 0 {
		t.Errorf("repeats after both acks: %d + %d datagrams", len(out[0]), len(out[1]))
	}
}

// A peer registered nowhere in the cluster: the node hears "peer not here" (error
// 4) at once, from the bus's no-responders notice, never silence.
func TestClusterPeerNotHere(t *testing.T) {
	c := newTestCluster(t, 3)
	alice := c.join(0, "alice", 1, aliceNAT)
	out := c.send(0, aliceNAT, introduceBytes(alice, 7, "carol", 0))
	var e proto.Error
	only(t, out[0], &e)
	if e.Code != proto.CodeUnknownPeer || e.TxID != 7 || string(e.Text) != "peer not here" {
		t.Fatalf("error %+v, want code 4 'peer not here' for txid 7", e)
	}
	if st := c.hs[0].s.Stats().Cluster; st.NoResponders != 1 {
		t.Errorf("NoResponders = %d", st.NoResponders)
	}
}

// The target's server says "not ready" (no NAT report yet): the requester hears
// code 9 for its txid, as on one server.
func TestClusterTargetNotReady(t *testing.T) {
	c := newTestCluster(t, 2)
	alice := c.join(0, "alice", 1, aliceNAT)
	c.send(1, bobNAT, registerBytes(0x201, ticketFor("bob", 2)))
	out := c.send(0, aliceNAT, introduceBytes(alice, 8, "bob", 0))
	var e proto.Error
	only(t, out[0], &e)
	if e.Code != proto.CodePeerNotReady || e.TxID != 8 {
		t.Fatalf("error %+v, want code 9 for txid 8", e)
	}
}

// One ID on two servers: another key → the older node is told "replaced" (with its
// session tag, and again when it uses its dead cookie); the same key → the node
// moved, and nothing is sent to it.
func TestClusterNewestRegistrationWins(t *testing.T) {
	c := newTestCluster(t, 2)
	old := c.join(0, "alice", 1, aliceNAT)
	c.hs[1].now += proto.Instant(time.Millisecond)
	out := c.send(1, bobNAT, registerBytes(0x301, ticketFor("alice", 3)))
	var e proto.Error
	only(t, out[0], &e)
	if e.Code != proto.CodeReplaced || e.TxID != proto.SessionTag(&old) || out[0][0].To != aliceNAT {
		t.Fatalf("to the old node: %+v to %v, want code 10 with its session tag", e, out[0][0].To)
	}
	if _, ok := c.hs[0].s.Peer([]byte("alice")); ok {
		t.Fatal("server 0 kept the replaced session")
	}
	out = c.send(0, aliceNAT, keepaliveBytes(old, 2))
	only(t, out[0], &e)
	if e.Code != proto.CodeReplaced {
		t.Fatalf("keepalive with the replaced cookie: code %d, want 10", e.Code)
	}

	// Same key, another server: a move.
	c.hs[0].now += proto.Instant(time.Millisecond)
	out = c.send(0, aliceNAT, registerBytes(0x302, ticketFor("alice", 3)))
	if len(out[1]) != 0 {
		t.Fatalf("server 1 sent %d datagrams to a node that moved away", len(out[1]))
	}
	if _, ok := c.hs[1].s.Peer([]byte("alice")); ok {
		t.Fatal("server 1 kept the session of a node that moved")
	}
	if st := c.hs[1].s.Stats().Cluster; st.MovedAway != 1 {
		t.Errorf("MovedAway = %d", st.MovedAway)
	}
}

// A claim lost in a partition: the older registration survives it, and the next
// claim (after the heal) ends it. Claims back settle skewed clocks.
func TestClusterClaimAfterPartitionHeals(t *testing.T) {
	c := newTestCluster(t, 2)
	c.join(0, "alice", 1, aliceNAT)
	c.cut[[2]int{0, 1}] = true
	c.hs[1].now += proto.Instant(time.Millisecond)
	c.send(1, bobNAT, registerBytes(0x301, ticketFor("alice", 3)))
	_, on0 := c.hs[0].s.Peer([]byte("alice"))
	_, on1 := c.hs[1].s.Peer([]byte("alice"))
	if !on0 || !on1 {
		t.Fatal("during the partition both servers hold their registration")
	}
	delete(c.cut, [2]int{0, 1})
	c.hs[1].s.claim(c.hs[1].s.peers.byPeer[makePeerID([]byte("alice"))]) // a later re-claim (e.g. re-registration)
	c.pump(1)
	_, on0 = c.hs[0].s.Peer([]byte("alice"))
	_, on1 = c.hs[1].s.Peer([]byte("alice"))
	if on0 || !on1 {
		t.Fatalf("after the heal: on 0 %v, on 1 %v; want only the newest (1)", on0, on1)
	}
}

// allocated returns the relay-allocated messages in out addressed to to.
func allocatedTo(out []sent, to netip.AddrPort) []proto.RelayAllocated {
	var got []proto.RelayAllocated
	for _, d := range out {
		var m proto.RelayAllocated
		if d.To == to && m.Parse(d.Payload) == nil {
			m.Token = bytes.Clone(m.Token)
			got = append(got, m)
		}
	}
	return got
}

// relayThrough sends one relay-send on channel ch from from to server k and returns
// the relay-deliver frames every server sent, by server.
func (c *testCluster) relayThrough(k int, from netip.AddrPort, ch uint16, payload string) [][]sent {
	c.t.Helper()
	frame := append(proto.AppendRelayDataHeader(nil, false, ch), []byte(payload)...)
	return c.send(k, from, frame)
}

func deliveredTo(t *testing.T, out []sent, to netip.AddrPort) (ch uint16, payload string) {
	t.Helper()
	if len(out) != 1 || out[0].To != to {
		t.Fatalf("want one relay-deliver to %v, got %d datagrams %v", to, len(out), out)
	}
	n, p, err := relayframe.ParseDeliver(out[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	return n, string(p)
}

// The relay across servers: UDP to the sender's server, one bus hop, UDP from the
// receiver's server; both ends get "peer ready"; the link follows a peer that moves
// to a third server with the token it holds, with no new introduction.
func TestClusterRelayAcrossServersAndMove(t *testing.T) {
	c := newTestCluster(t, 3)
	alice := c.join(0, "alice", 1, aliceNAT)
	bob := c.join(1, "bob", 2, bobNAT)
	out := c.send(0, aliceNAT, introduceBytes(alice, 42, "bob", 0))
	tokA, tokB := introductionTo(t, out[0], aliceNAT).RelayToken, introductionTo(t, out[1], bobNAT).RelayToken

	out = c.send(0, aliceNAT, allocateBytes(alice, 10, "bob", tokA))
	a := allocatedTo(out[0], aliceNAT)
	if len(a) != 1 || a[0].Flags&proto.RelayPeerReady != 0 {
		t.Fatalf("alice's first allocation: %+v, want one, not ready", a)
	}
	chA := a[0].Channel
	out = c.send(1, bobNAT, allocateBytes(bob, 20, "alice", tokB))
	b := allocatedTo(out[1], bobNAT)
	if len(b) != 2 || b[1].Flags&proto.RelayPeerReady == 0 || b[1].TxID != 20 {
		t.Fatalf("bob's allocation: %+v, want the answer and a ready notice", b)
	}
	chB := b[0].Channel
	if n := allocatedTo(out[0], aliceNAT); len(n) != 1 || n[0].Flags&proto.RelayPeerReady == 0 || n[0].TxID != 10 || n[0].Channel != chA {
		t.Fatalf("alice's ready notice: %+v", n)
	}

	out = c.relayThrough(0, aliceNAT, chA, "hello bob")
	if n, p := deliveredTo(t, out[1], bobNAT); n != chB || p != "hello bob" {
		t.Fatalf("bob got channel %d %q, want %d", n, p, chB)
	}
	out = c.relayThrough(1, bobNAT, chB, "hello alice")
	if n, p := deliveredTo(t, out[0], aliceNAT); n != chA || p != "hello alice" {
		t.Fatalf("alice got channel %d %q, want %d", n, p, chA)
	}

	// Alice's server dies; she registers on server 2 and re-allocates with her token.
	c.cut[[2]int{0, 1}], c.cut[[2]int{0, 2}] = true, true
	alice2 := c.join(2, "alice", 1, aliceNAT)
	out = c.send(2, aliceNAT, allocateBytes(alice2, 11, "bob", tokA))
	a2 := allocatedTo(out[2], aliceNAT)
	if len(a2) != 2 || a2[1].Flags&proto.RelayPeerReady == 0 {
		t.Fatalf("alice's allocation on server 2: %+v, want the answer and a ready notice", a2)
	}
	out = c.relayThrough(1, bobNAT, chB, "still there?")
	if n, p := deliveredTo(t, out[2], aliceNAT); n != a2[0].Channel || p != "still there?" {
		t.Fatalf("after the move alice got channel %d %q, want %d", n, p, a2[0].Channel)
	}
	out = c.relayThrough(2, aliceNAT, a2[0].Channel, "yes")
	if n, p := deliveredTo(t, out[1], bobNAT); n != chB || p != "yes" {
		t.Fatalf("bob got channel %d %q after alice moved", n, p)
	}
	if c.hs[1].s.Stats().Introductions != 1 || c.hs[2].s.Stats().Introductions != 0 {
		t.Error("the move made a new introduction")
	}
}

// Relay data that does not match a link is dropped and counted, whatever it claims.
func TestClusterRelayDataUnlinkedDropped(t *testing.T) {
	c := newTestCluster(t, 2)
	bob := c.join(1, "bob", 2, bobNAT)
	c.join(0, "alice", 1, aliceNAT)
	out := c.send(1, bobNAT, introduceBytes(bob, 1, "alice", 0))
	tokB := introductionTo(t, out[1], bobNAT).RelayToken
	out = c.send(1, bobNAT, allocateBytes(bob, 20, "alice", tokB))
	chB := allocatedTo(out[1], bobNAT)[0].Channel
	h := c.hs[1]
	frame := append(proto.AppendRelayDataHeader(nil, false, 99), "forged"...)
	data := append(proto.AppendClusterRelayData(nil, c.hs[0].s.ID(), 99, chB), frame...)
	if err := h.s.HandleCluster(h.now, ClusterMessage{Subject: serverSubject(h.s.ID()) + ".relay", Data: data}); err == nil {
		t.Fatal("unlinked relay data accepted")
	}
	if out, _ := h.drain(); len(out) != 0 {
		t.Fatalf("unlinked relay data was forwarded: %v", out)
	}
	if st := h.s.Stats().Cluster; st.DropRelayNoLink != 1 {
		t.Errorf("DropRelayNoLink = %d", st.DropRelayNoLink)
	}
	if err := h.s.HandleCluster(h.now, ClusterMessage{Subject: "srv.x", Data: []byte{0xe1, 0x41, 1}}); err == nil {
		t.Error("a malformed ask was accepted")
	}
}

// Draining: every session hears error 11 with its session tag (more sessions than
// the transmit queue holds: the notices go out over HandleTimeout calls), and every
// request, registrations included, is answered with error 11.
func TestClusterDrainTellsEveryNode(t *testing.T) {
	c := newTestCluster(t, 1)
	const n = 20
	cookies := map[netip.AddrPort]proto.Session{}
	for i := range n {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), 4000)
		cookies[addr] = c.join(0, "n"+strings.Repeat("x", i), byte(i+1), addr)
	}
	h := c.hs[0]
	h.s.Drain(h.now)
	told := map[netip.AddrPort]bool{}
	for range 10 {
		out, _ := h.drain()
		for _, d := range out {
			var e proto.Error
			if e.Parse(d.Payload) != nil || e.Code != proto.CodeMoving {
				t.Fatalf("drain sent %x", d.Payload)
			}
			ck := cookies[d.To]
			if e.TxID != proto.SessionTag(&ck) {
				t.Fatalf("notice to %v has txid %x, want its session tag", d.To, e.TxID)
			}
			told[d.To] = true
		}
		if h.s.Deadline() > h.now {
			break
		}
		h.s.HandleTimeout(h.now)
	}
	if len(told) != n {
		t.Fatalf("%d of %d nodes told to move", len(told), n)
	}
	out := c.send(0, strangerA, registerBytes(0x999, ticketFor("late", 99)))
	if code := errorCode(t, out[0]); code != proto.CodeMoving {
		t.Fatalf("register while draining: code %d, want 11", code)
	}
}

// A drain settles once every node has moved, or when those left stayed silent
// through every round of notices (dead nodes do not hold a server for its whole
// drain timeout); a node still sending keepalives keeps it waiting.
func TestClusterDrainSettles(t *testing.T) {
	c := newTestCluster(t, 1)
	live := c.join(0, "live", 1, aliceNAT)
	c.join(0, "dead", 2, bobNAT)
	h := c.hs[0]
	h.s.Drain(h.now)
	notices := func() int { return int(h.s.Stats().Cluster.DrainNoticesQueued) }
	for range 10 { // the live node keeps using the server for 5 s, not moving yet
		c.wait(500 * time.Millisecond)
		c.send(0, aliceNAT, keepaliveBytes(live, 9))
		if h.s.DrainSettled(h.now) {
			t.Fatalf("settled at %v while a registered node still uses the server", h.now)
		}
	}
	if n := notices(); n != 2*drainRounds {
		t.Errorf("%d notices, want %d rounds to both", n, drainRounds)
	}
	c.wait(drainRepeat)
	if !h.s.DrainSettled(h.now) {
		t.Fatal("not settled once every session left has been silent through the rounds")
	}
	h.s.expire(h.s.peers.byPeer[makePeerID([]byte("dead"))], ExpireTimeout)
	h.s.expire(h.s.peers.byPeer[makePeerID([]byte("live"))], ExpireMoved)
	if !h.s.DrainSettled(h.now) || h.s.Stats().Sessions != 0 {
		t.Fatal("not settled with no session left")
	}
}
