package rendezvous

import (
	"strconv"
	"strings"
	"time"

	"github.com/natpass/natpass/proto"
)

// Bounded tables of the cluster: requests waiting for an answer, what other servers
// told us about their peers, and the cookies of replaced sessions.
const (
	maxAsks      = 256              // requests awaiting an answer; a slot is reused after askTimeout
	askTimeout   = 5 * time.Second  // an answer later than this finds no request
	maxRemotes   = 4096             // peers of other servers remembered for introductions
	remoteMemory = 30 * time.Second // a remote record older than this is not used
	maxTombstone = 1024             // replaced sessions remembered for error 10
)

// askKind says what a pending request asked.
type askKind uint8

const (
	askIntro askKind = iota + 1 // a cluster-intro-ask
	askBind                     // a cluster-relay-bind
	askRoom                     // a cluster-room-join for a node's room-join
)

// pendingAsk is one request sent on the bus, with what its answer needs: the node
// session that caused it and that request's txid.
type pendingAsk struct {
	id       uint64 // 0: free
	kind     askKind
	sent     proto.Instant
	cookie   proto.Session
	txid     uint64
	flags    uint8  // intro: the introduce-request's flags
	channel  uint16 // bind: the requester's channel
	pairID   uint64 // bind
	otherKey [proto.KeyLen]byte
	room     RoomName // room: the room joined
}

// askTable holds pending requests in a fixed ring indexed by id: bounded, no
// allocation; a slot reused before its answer came is counted.
type askTable struct {
	next  uint64
	slots [maxAsks]pendingAsk
}

// add returns a fresh request slot with its id set.
func (s *Server) addAsk(now proto.Instant, kind askKind) *pendingAsk {
	t := &s.asks
	t.next++
	a := &t.slots[t.next%maxAsks]
	if a.id != 0 && now < a.sent.Add(askTimeout) {
		s.stats.Cluster.AsksOverwritten++
	}
	*a = pendingAsk{id: t.next, kind: kind, sent: now}
	return a
}

// takeAsk returns and frees the pending request a reply subject names, or nil.
func (s *Server) takeAsk(now proto.Instant, subject string, kind askKind) *pendingAsk {
	rest, ok := strings.CutPrefix(subject, s.ownSubject+".r.")
	if !ok {
		return nil
	}
	id, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || id == 0 {
		return nil
	}
	a := &s.asks.slots[id%maxAsks]
	if a.id != id || (kind != 0 && a.kind != kind) || now >= a.sent.Add(askTimeout) {
		return nil
	}
	cp := *a
	a.id = 0
	return &cp
}

// remotePeer is a peer registered on another server, as that server described it.
type remotePeer struct {
	session
	server uint64
	seen   proto.Instant
}

// remoteTable remembers the peers of other servers that introductions involve, so
// that repeats and acknowledgements of a pair's introduction find them. Bounded:
// when full, the record seen longest ago goes.
type remoteTable struct {
	byPeer map[PeerID]*remotePeer
}

// storeRemote records what server said about a peer and returns it as a session.
func (s *Server) storeRemote(now proto.Instant, server uint64, m *proto.ClusterPeer) *session {
	t := &s.remotes
	if t.byPeer == nil {
		t.byPeer = make(map[PeerID]*remotePeer)
	}
	id := makePeerID(m.PeerID)
	r := t.byPeer[id]
	if r == nil {
		if len(t.byPeer) >= maxRemotes {
			t.evictOldest()
		}
		r = new(remotePeer)
		t.byPeer[id] = r
	}
	r.server, r.seen = server, now
	r.session = session{peer: id, key: m.Key, tag: m.Tag, addr: m.Addr, nat: m.NAT,
		predicted: m.Predicted, suites: m.Suites, ticketExpiryUnix: m.TicketExpiryUnix, addr2: m.OtherAddr}
	r.nhosts = uint8(copy(r.hosts[:], m.Hosts))
	return &r.session
}

func (t *remoteTable) evictOldest() {
	var oldest PeerID
	var at proto.Instant = proto.Never
	for id, r := range t.byPeer {
		if r.seen < at || r.seen == at && id.String() < oldest.String() {
			oldest, at = id, r.seen
		}
	}
	delete(t.byPeer, oldest)
}

// remote returns the fresh record of a peer of another server, or nil.
func (s *Server) remote(now proto.Instant, id PeerID) *session {
	r := s.remotes.byPeer[id]
	if r == nil || now >= r.seen.Add(remoteMemory) {
		return nil
	}
	return &r.session
}

// anyPeer returns the session of peer id: local, else the remote record.
func (s *Server) anyPeer(id PeerID) *session {
	if j, ok := s.peers.byPeer[id]; ok {
		return &s.peers.sessions[j]
	}
	return s.remote(s.now, id)
}

// sideSession returns the session behind one side of a pending introduction.
func (s *Server) sideSession(sd *pendingSide) *session {
	if !sd.remote {
		if i, ok := s.peers.byCookie[sd.cookie]; ok {
			return &s.peers.sessions[i]
		}
		return nil
	}
	if r := s.remote(s.now, sd.peer); r != nil && r.tag == sd.tag {
		return r
	}
	return nil
}

// clusterPeer describes session ss for another server, its other-family address
// included (PROTOCOL.md §12.2), so that peers on other servers get it as a candidate.
func clusterPeer(ss *session) proto.ClusterPeer {
	p := proto.ClusterPeer{
		PeerID: ss.peer.Bytes(), Key: ss.key, Tag: ss.tag, NAT: ss.nat, Addr: ss.addr,
		Predicted: ss.predicted, Hosts: ss.hosts[:ss.nhosts], TicketExpiryUnix: ss.ticketExpiryUnix,
		Suites: ss.suites,
	}
	// Always of the other family (handleKeepalive keeps it so); checked because the
	// encoder refuses anything else.
	if ss.addr2.IsValid() && isIPv4(ss.addr2) != isIPv4(ss.addr) {
		p.OtherAddr = ss.addr2
	}
	return p
}

// tombstones remembers the cookies of replaced sessions for a while, so their node
// hears "replaced" again instead of "register again".
type tombstones struct {
	at map[proto.Session]proto.Instant
}

func (s *Server) addTombstone(now proto.Instant, c proto.Session) {
	t := &s.tombstones
	if t.at == nil {
		t.at = make(map[proto.Session]proto.Instant)
	}
	if len(t.at) >= maxTombstone {
		for k, at := range t.at { // full: forget the expired ones
			if now >= at.Add(s.cfg.SessionTimeout) {
				delete(t.at, k)
			}
		}
	}
	if len(t.at) >= maxTombstone {
		s.stats.Cluster.TombstonesDropped++
		return
	}
	t.at[c] = now
}

func (t *tombstones) has(now proto.Instant, c *proto.Session, memory time.Duration) bool {
	at, ok := t.at[*c]
	if ok && now >= at.Add(memory) {
		delete(t.at, *c)
		return false
	}
	return ok
}
