package rendezvous

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// Rooms across a cluster (PROTOCOL.md §13.1), on the synchronous test bus.

var carolNAT = netip.MustParseAddrPort("203.0.113.30:40000")

// clusterNode is a node registered on server k of a test cluster.
type clusterNode struct {
	id     string
	k      int
	addr   netip.AddrPort
	cookie proto.Session
}

func (c *testCluster) node(k int, id string, key byte, addr netip.AddrPort) clusterNode {
	c.t.Helper()
	return clusterNode{id: id, k: k, addr: addr, cookie: c.join(k, id, key, addr)}
}

// roomJoin sends n's room-join and returns what every server sent.
func (c *testCluster) roomJoin(n clusterNode, txid uint64, room string) [][]sent {
	c.t.Helper()
	return c.send(n.k, n.addr, joinBytes(n.cookie, txid, room))
}

// stateTo returns the last room-state in out for n (the freshest), failing when
// there is none.
func stateTo(t *testing.T, out [][]sent, n clusterNode) proto.RoomState {
	t.Helper()
	st, ok := lastStateTo(t, out, n)
	if !ok {
		t.Fatalf("no room-state to %s", n.id)
	}
	return st
}

func lastStateTo(t *testing.T, out [][]sent, n clusterNode) (proto.RoomState, bool) {
	t.Helper()
	var st proto.RoomState
	found := false
	for _, d := range out[n.k] {
		var m proto.RoomState
		if d.To == n.addr && m.Parse(d.Payload) == nil {
			st, found = roomState(t, d), true
		}
	}
	return st, found
}

// kill makes server k dead to the bus: nothing reaches it or leaves it, and its
// subscriptions are gone.
func (c *testCluster) kill(k int) {
	c.subs[k] = map[string]bool{}
	for j := range c.hs {
		if j != k {
			c.cut[[2]int{k, j}] = true
		}
	}
}

// homes returns the servers subscribed to room's subject.
func (c *testCluster) homes(room string) []int {
	var ks []int
	for k := range c.hs {
		if c.subs[k][roomSubject([]byte(room))] {
			ks = append(ks, k)
		}
	}
	return ks
}

// [CLUSTER-4], [CLUSTER-7]: members joining from two servers are in one room: the
// first server becomes the home (nobody held the room), the second forwards its
// node's join, and each side hears of the other's changes through its own server.
func TestClusterRoomJoinFromTwoServers(t *testing.T) {
	c := newTestCluster(t, 2)
	alice := c.node(0, "alice", 1, aliceNAT)
	bob := c.node(1, "bob", 2, bobNAT)
	out := c.roomJoin(alice, 10, "r")
	checkState(t, stateTo(t, out, alice), 10, "r", 1, "alice")
	if h := c.homes("r"); len(h) != 1 || h[0] != 0 {
		t.Fatalf("homes %v, want server 0", h)
	}
	out = c.roomJoin(bob, 20, "r")
	checkState(t, stateTo(t, out, bob), 20, "r", 2, "alice", "bob")
	checkState(t, stateTo(t, out, alice), proto.SessionTag(&alice.cookie), "r", 2, "alice", "bob")
	// A refresh from the second server changes nothing and tells nobody.
	out = c.roomJoin(bob, 20, "r")
	checkState(t, stateTo(t, out, bob), 20, "r", 2, "alice", "bob")
	if _, ok := lastStateTo(t, out, alice); ok {
		t.Fatal("a refresh was noticed to the other members")
	}
	// The home's own member's change crosses the other way.
	carol := c.node(0, "carol", 3, carolNAT)
	out = c.roomJoin(carol, 30, "r")
	checkState(t, stateTo(t, out, carol), 30, "r", 3, "alice", "bob", "carol")
	checkState(t, stateTo(t, out, bob), proto.SessionTag(&bob.cookie), "r", 3, "alice", "bob", "carol")
	st0, st1 := c.hs[0].s.Stats().Cluster, c.hs[1].s.Stats().Cluster
	if st0.RoomsFormed != 1 || st1.RoomJoinsSent != 2 || st0.RoomJoinsServed != 2 || st0.RoomStatesSent == 0 || st1.RoomStatesIn == 0 {
		t.Errorf("stats %+v / %+v", st0, st1)
	}
}

// [CLUSTER-6]: a leave and a session end on a member's server reach the home at
// once, and the others hear of them.
func TestClusterRoomLeaveAndSessionEndCross(t *testing.T) {
	c := newTestCluster(t, 2)
	alice := c.node(0, "alice", 1, aliceNAT)
	bob := c.node(1, "bob", 2, bobNAT)
	carol := c.node(1, "carol", 3, carolNAT)
	c.roomJoin(alice, 10, "r")
	c.roomJoin(bob, 20, "r")
	c.roomJoin(carol, 30, "r")
	out := c.send(1, bob.addr, leaveBytes(bob.cookie, 21, "r"))
	checkState(t, stateTo(t, out, alice), proto.SessionTag(&alice.cookie), "r", 4, "alice", "carol")
	checkState(t, stateTo(t, out, carol), proto.SessionTag(&carol.cookie), "r", 4, "alice", "carol")
	if st := stateTo(t, out, bob); st.TxID != 21 {
		t.Fatalf("bob's leave answered with txid %x", st.TxID)
	}
	// carol registers again on her server: her old session ends, and leaves.
	out = c.send(1, carolNAT, registerBytes(99, ticketFor("carol", 3)))
	checkState(t, stateTo(t, out, alice), proto.SessionTag(&alice.cookie), "r", 5, "alice")
	if n := c.hs[1].s.Stats().Rooms.Rooms; n != 0 {
		t.Errorf("server 1 keeps %d rooms with no member of its own", n)
	}
}

// [CLUSTER-6]: a remote member whose server stops refreshing it (cut off from the
// home) is dropped after 30 s; one whose refreshes arrive stays.
func TestClusterRoomRemoteMemberLiveness(t *testing.T) {
	c := newTestCluster(t, 3)
	alice := c.node(0, "alice", 1, aliceNAT)
	bob := c.node(1, "bob", 2, bobNAT)
	carol := c.node(2, "carol", 3, carolNAT)
	c.roomJoin(alice, 10, "r")
	c.roomJoin(bob, 20, "r")
	c.roomJoin(carol, 30, "r")
	c.cut[[2]int{1, 0}] = true
	c.take()
	for range 4 { // 40 s of node refreshes every 10 s
		c.wait(10 * time.Second)
		for _, n := range []clusterNode{alice, bob, carol} {
			c.send(n.k, n.addr, keepaliveBytes(n.cookie, 2))
			c.roomJoin(n, 1+uint64(n.k)*10, "r")
		}
	}
	c.take()
	home := c.hs[0].s
	r := home.rooms.byName[makeRoomName([]byte("r"))]
	var ids []string
	for _, m := range home.rooms.rooms[r].members {
		ids = append(ids, m.peer.String())
	}
	if len(ids) != 2 || ids[0] != "alice" || ids[1] != "carol" {
		t.Fatalf("home's members %v, want alice and carol (bob's server is cut off)", ids)
	}
	if n := home.Stats().Cluster.RoomMembersTimedOut; n != 1 {
		t.Errorf("%d members timed out, want 1", n)
	}
}

// [CLUSTER-4]: two servers that both found nobody holding a room (partitioned)
// each make it; once they hear each other, the older keeps it, the other hands its
// member over, and both members end in one room with one home.
func TestClusterRoomSimultaneousCreationOneHome(t *testing.T) {
	c := newTestCluster(t, 2)
	alice := c.node(0, "alice", 1, aliceNAT)
	bob := c.node(1, "bob", 2, bobNAT)
	c.cut[[2]int{0, 1}] = true
	c.roomJoin(alice, 10, "r")
	c.roomJoin(bob, 20, "r")
	if h := c.homes("r"); len(h) != 2 {
		t.Fatalf("homes %v, want both (partitioned)", h)
	}
	delete(c.cut, [2]int{0, 1})
	c.wait(11 * time.Second)
	c.send(0, alice.addr, keepaliveBytes(alice.cookie, 2))
	c.send(1, bob.addr, keepaliveBytes(bob.cookie, 2))
	c.take()
	c.roomJoin(alice, 10, "r") // a refresh: the home claims again
	out := c.roomJoin(bob, 20, "r")
	if h := c.homes("r"); len(h) != 1 {
		t.Fatalf("homes %v, want one", h)
	}
	out2 := c.roomJoin(alice, 10, "r")
	sa, sb := stateTo(t, out2, alice), stateTo(t, out, bob)
	if len(sa.Members) != 2 || len(sb.Members) != 2 || sa.Epoch < sb.Epoch {
		t.Fatalf("alice sees %v (epoch %d), bob %v (epoch %d): want both in one room", memberIDs(sa), sa.Epoch, memberIDs(sb), sb.Epoch)
	}
	if c.hs[0].s.Stats().Cluster.RoomHandovers+c.hs[1].s.Stats().Cluster.RoomHandovers != 1 {
		t.Error("no hand-over counted")
	}
}

// [CLUSTER-4], [CLUSTER-5]: the home dies; the next server to forward a join finds
// nobody and forms the room again from its replica, without the dead server's
// members, at an epoch above every state its nodes hold; the third server's member
// stays in it and hears the new state.
func TestClusterRoomHomeKilledReforms(t *testing.T) {
	c := newTestCluster(t, 3)
	alice := c.node(0, "alice", 1, aliceNAT)
	bob := c.node(1, "bob", 2, bobNAT)
	carol := c.node(2, "carol", 3, carolNAT)
	c.roomJoin(alice, 10, "r")
	c.roomJoin(bob, 20, "r")
	out := c.roomJoin(carol, 30, "r")
	before := stateTo(t, out, carol).Epoch
	c.kill(0)
	out = c.roomJoin(bob, 20, "r")
	sb, sc := stateTo(t, out, bob), stateTo(t, out, carol)
	checkState(t, sb, 20, "r", sb.Epoch, "bob", "carol")
	checkState(t, sc, proto.SessionTag(&carol.cookie), "r", sb.Epoch, "bob", "carol")
	if sb.Epoch <= before {
		t.Fatalf("re-formed at epoch %d, not above %d", sb.Epoch, before)
	}
	if h := c.homes("r"); len(h) != 1 || h[0] != 1 {
		t.Fatalf("homes %v, want server 1", h)
	}
	// alice moves to server 2 and joins again from there.
	alice2 := c.node(2, "alice", 1, aliceNAT)
	out = c.roomJoin(alice2, 11, "r")
	checkState(t, stateTo(t, out, alice2), 11, "r", sb.Epoch+1, "bob", "carol", "alice")
	if c.hs[1].s.Stats().Cluster.RoomsReformed != 1 {
		t.Errorf("stats %+v", c.hs[1].s.Stats().Cluster)
	}
}

// [CLUSTER-5]: a new home behind the epoch a replica holds (it missed a notice of
// the old home) raises its epoch past the replica's at the replica's first word.
func TestClusterRoomNewHomeRaisesEpoch(t *testing.T) {
	c := newTestCluster(t, 3)
	alice := c.node(0, "alice", 1, aliceNAT)
	bob := c.node(1, "bob", 2, bobNAT)
	carol := c.node(2, "carol", 3, carolNAT)
	dave := c.node(0, "dave", 4, netip.MustParseAddrPort("203.0.113.40:40000"))
	c.roomJoin(alice, 10, "r")
	c.roomJoin(bob, 20, "r")
	c.roomJoin(carol, 30, "r")
	c.cut[[2]int{0, 1}] = true // server 1 misses dave's join
	out := c.roomJoin(dave, 40, "r")
	held := stateTo(t, out, carol).Epoch
	c.kill(0)
	delete(c.cut, [2]int{0, 1})
	out = c.roomJoin(bob, 20, "r") // server 1 re-forms from its older replica
	sc := stateTo(t, out, carol)
	if sc.Epoch <= held {
		t.Fatalf("carol's last state has epoch %d, not above the %d she held", sc.Epoch, held)
	}
	checkState(t, sc, proto.SessionTag(&carol.cookie), "r", sc.Epoch, "bob", "carol")
	if c.hs[1].s.Stats().Cluster.RoomEpochRaises == 0 {
		t.Errorf("no epoch raise: %+v", c.hs[1].s.Stats().Cluster)
	}
}

// [CLUSTER-6]: a join past the member cap at the home is refused to the node on
// the other server with error 12.
func TestClusterRoomFullAcrossServers(t *testing.T) {
	c := newTestCluster(t, 2)
	for k := range c.hs {
		c.hs[k].s.cfg.MaxRoomMembers = 1
	}
	alice := c.node(0, "alice", 1, aliceNAT)
	bob := c.node(1, "bob", 2, bobNAT)
	c.roomJoin(alice, 10, "r")
	out := c.roomJoin(bob, 20, "r")
	if code := errorCode(t, out[1]); code != proto.CodeRoomFull {
		t.Fatalf("error %d, want 12", code)
	}
}
