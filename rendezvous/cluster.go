package rendezvous

import (
	"encoding/hex"
	"errors"
	"strconv"

	"github.com/natpass/natpass/proto"
)

// The cluster (PROTOCOL.md §12, DESIGN §12): servers that share a ticket secret
// exchange ClusterMessages over a bus (natsbus binds it to NATS, sim to a
// deterministic in-memory bus). Presence is subject interest: a server asks the bus
// (PollInterest) for the subject of every peer registered on it, so a message for a
// peer reaches the one server holding it, and a request for a peer nobody holds
// comes back as a NoResponders notice on its Reply subject.

// ClusterMessage is one message on the cluster bus. As an output (PollCluster) Data
// is valid until the next call into the server; as an input (HandleCluster) it is
// only read during the call.
type ClusterMessage struct {
	// Subject is where the message goes: a peer's subject or a server's.
	Subject string
	// Reply is the subject an answer goes to, "" when none is wanted. When nobody
	// subscribes to Subject, the bus delivers a NoResponders notice to Reply.
	Reply string
	// Data is the message (PROTOCOL.md §12.2), empty in a NoResponders notice.
	Data []byte
	// NoResponders (input only): the bus found no subscriber for the request whose
	// Reply subject is Subject.
	NoResponders bool
}

// Interest is a change of the subjects the server receives: the bus subscribes to
// Subject when Subscribe is true and unsubscribes otherwise. A subject ending in
// ".>" covers every subject under it (NATS's full wildcard). The server's own
// subject is the first interest a clustered server reports.
type Interest struct {
	Subject   string
	Subscribe bool
}

// ErrNotClustered: a cluster message reached a server configured without
// Config.Cluster.
var ErrNotClustered = errors.New("rendezvous: cluster message to a server outside a cluster")

// Errors of HandleCluster.
var (
	ErrClusterUnknownAsk = errors.New("rendezvous: cluster answer to no pending request")
	ErrClusterSubject    = errors.New("rendezvous: cluster message on a subject this server does not serve")
)

// maxClusterQueue bounds the cluster messages waiting for PollCluster. One input
// makes at most two, except a room change at its home (one notice per other server
// with members, up to 15), a hand-over (a join per member, up to 16) and a liveness
// sweep; a full queue means the owner stopped draining or a sweep dropped members
// of many rooms at once, and what does not fit is dropped and counted
// (ClusterStats.DropQueueFull): the nodes' next refreshes repair it. Interest changes need
// no bound of their own: each peer ID is pending at most once (see interestSet).
const maxClusterQueue = 64

// ClusterStats counts the server's cluster work. Every drop has its counter.
type ClusterStats struct {
	MessagesIn, MessagesOut uint64
	NoResponders            uint64 // requests nobody held the subject of ("peer not here")
	Claims                  uint64 // claims sent (registrations and claims back)
	ClaimsBack              uint64 // claims answered with our newer registration
	MovedAway               uint64 // sessions ended by a newer registration of the same key elsewhere
	Replaced                uint64 // sessions ended by a newer registration of another key (error 10 sent)
	IntroAsks               uint64 // intro-asks sent for a peer on another server
	IntroAsksServed         uint64 // intro-asks answered with an introduction
	RelayBinds              uint64 // relay-binds sent
	RelayLinks              uint64 // channels linked to another server's (new links)
	RelayFramesOut          uint64 // relay frames forwarded to another server
	RelayBytesOut           uint64
	RelayFramesIn           uint64 // relay frames from another server delivered to a node
	RelayBytesIn            uint64

	DropMalformed      uint64 // did not parse
	DropSubject        uint64 // a type this subject does not carry, or a subject not ours
	DropUnknownAsk     uint64 // an answer to no pending request (late, or duplicated)
	DropQueueFull      uint64 // PollCluster not drained
	DropRelayNoLink    uint64 // relay data for a channel not linked to its sender
	DropRelayRate      uint64 // relay data over this server's budget
	DropRelayTxFull    uint64 // relay data with no transmit slot free
	AsksOverwritten    uint64 // a pending request's slot reused before its answer came
	TombstonesDropped  uint64 // replaced sessions not remembered (table full)
	DrainNoticesQueued uint64 // error-11 notices sent while draining

	// Rooms across the cluster (PROTOCOL.md §13.1).
	RoomJoinsSent       uint64 // cluster-room-joins sent (forwarded room-joins, hand-overs, epoch refreshes)
	RoomJoinsServed     uint64 // cluster-room-joins served as the room's home
	RoomLeavesSent      uint64 // cluster-room-leaves sent (a member here left or ended)
	RoomLeavesServed    uint64 // cluster-room-leaves that took a member out at the home
	RoomStatesSent      uint64 // cluster-room-states sent: answers and notices
	RoomStatesIn        uint64 // cluster-room-states received
	RoomsFormed         uint64 // rooms this server became the home of, new
	RoomsReformed       uint64 // rooms this server became the home of from its replica (the home had gone)
	RoomClaims          uint64 // room claims sent
	RoomHandovers       uint64 // rooms given to an older home
	RoomEpochRaises     uint64 // [CLUSTER-5]: a join from a replica of another home raised the epoch
	RoomMembersTimedOut uint64 // remote members dropped for want of refreshes
	RoomStale           uint64 // states older than the replica, or for a room this server is the home of
	DropRoomNotHome     uint64 // room joins and leaves for a room this server is not the home of
}

// Subjects (PROTOCOL.md §12.1).
const (
	subjectPeer   = "peer."
	subjectServer = "srv."
)

// peerSubject is the subject of a peer ID: "peer." and its bytes in hex.
func peerSubject(id []byte) string { return subjectPeer + hex.EncodeToString(id) }

// serverSubject is the subject prefix of server id: "srv." and 16 hex digits.
func serverSubject(id uint64) string {
	var b [16]byte
	const digits = "0123456789abcdef"
	for i := range b {
		b[15-i] = digits[(id>>(4*i))&0xF]
	}
	return subjectServer + string(b[:])
}

// clusterSlot is one queued cluster message.
type clusterSlot struct {
	subject, reply string
	data           []byte // grown once to the largest message, then reused
}

// clusterQueue is a ring of reusable slots, like txQueue.
type clusterQueue struct {
	slots      [maxClusterQueue]clusterSlot
	head, size int
}

// begin returns the empty buffer of the next slot (never nil), or nil when the ring
// is full.
func (q *clusterQueue) begin() []byte {
	if q.size == maxClusterQueue {
		return nil
	}
	s := &q.slots[(q.head+q.size)%maxClusterQueue]
	if s.data == nil {
		s.data = make([]byte, 0, 256)
	}
	return s.data[:0]
}

// commit queues b (grown from begin's buffer) for subject with reply.
func (q *clusterQueue) commit(subject, reply string, b []byte) {
	s := &q.slots[(q.head+q.size)%maxClusterQueue]
	s.subject, s.reply, s.data = subject, reply, b
	q.size++
}

func (q *clusterQueue) pop() *clusterSlot {
	if q.size == 0 {
		return nil
	}
	s := &q.slots[q.head]
	q.head = (q.head + 1) % maxClusterQueue
	q.size--
	return s
}

// interestSet tracks what the bus is subscribed to against what the server wants:
// the server's own subject, and the subject of every peer ID with a session here.
// A peer whose session changed is queued once (dirty); PollInterest compares.
type interestSet struct {
	started    bool            // the server's own subject was reported
	subscribed map[PeerID]bool // peer subjects the bus holds
	dirty      []PeerID        // peers to compare, each at most once
	isDirty    map[PeerID]bool

	// The same for the rooms this server is the home of (§13.1).
	roomSubscribed map[RoomName]bool
	roomDirty      []RoomName
	roomIsDirty    map[RoomName]bool
}

func (t *interestSet) markRoom(r RoomName) {
	if t.roomIsDirty == nil {
		t.roomIsDirty, t.roomSubscribed = make(map[RoomName]bool), make(map[RoomName]bool)
	}
	if !t.roomIsDirty[r] {
		t.roomIsDirty[r] = true
		t.roomDirty = append(t.roomDirty, r)
	}
}

// pollRoomInterest returns the next change of the room subjects: a room this
// server is the home of is subscribed.
func (s *Server) pollRoomInterest() (Interest, bool) {
	t := &s.interest
	for len(t.roomDirty) > 0 {
		name := t.roomDirty[0]
		t.roomDirty = t.roomDirty[1:]
		delete(t.roomIsDirty, name)
		r, ok := s.rooms.byName[name]
		want := ok && !s.rooms.rooms[r].replica
		if want != t.roomSubscribed[name] {
			if want {
				t.roomSubscribed[name] = true
			} else {
				delete(t.roomSubscribed, name)
			}
			return Interest{Subject: roomSubject(name.Bytes()), Subscribe: want}, true
		}
	}
	t.roomDirty = t.roomDirty[:0:0]
	return Interest{}, false
}

func (t *interestSet) mark(p PeerID) {
	if t.isDirty == nil {
		t.isDirty, t.subscribed = make(map[PeerID]bool), make(map[PeerID]bool)
	}
	if !t.isDirty[p] {
		t.isDirty[p] = true
		t.dirty = append(t.dirty, p)
	}
}

// PollInterest returns the next change of the subjects the server must receive.
// Every change is reported once, in order; nothing is dropped.
func (s *Server) PollInterest() (Interest, bool) {
	if !s.cfg.Cluster {
		return Interest{}, false
	}
	t := &s.interest
	if !t.started {
		t.started = true
		return Interest{Subject: s.ownSubject + ".>", Subscribe: true}, true
	}
	for len(t.dirty) > 0 {
		p := t.dirty[0]
		t.dirty = t.dirty[1:]
		delete(t.isDirty, p)
		_, want := s.peers.byPeer[p]
		if want != t.subscribed[p] {
			if want {
				t.subscribed[p] = true
			} else {
				delete(t.subscribed, p)
			}
			return Interest{Subject: peerSubject(p.Bytes()), Subscribe: want}, true
		}
	}
	t.dirty = t.dirty[:0:0] // release the consumed prefix
	return s.pollRoomInterest()
}

// PollCluster returns the next cluster message to publish. Its Data is valid until
// the next call into the server.
func (s *Server) PollCluster() (ClusterMessage, bool) {
	slot := s.cluster.pop()
	if slot == nil {
		return ClusterMessage{}, false
	}
	s.stats.Cluster.MessagesOut++
	return ClusterMessage{Subject: slot.subject, Reply: slot.reply, Data: slot.data}, true
}

// publish queues message m (appended by add) to subject; reply names where its
// answer goes ("" for none). It reports whether the message was queued.
func (s *Server) publish(subject, reply string, add func([]byte) []byte) bool {
	b := s.cluster.begin()
	if b == nil {
		s.stats.Cluster.DropQueueFull++
		return false
	}
	s.cluster.commit(subject, reply, add(b))
	return true
}

// replySubject names the answer to request id: srv.<own id>.r.<id>.
func (s *Server) replySubject(id uint64) string {
	return s.ownSubject + ".r." + strconv.FormatUint(id, 10)
}

// HandleCluster processes one message the bus delivered on a subject the server
// subscribed to, or a NoResponders notice for one of its requests.
func (s *Server) HandleCluster(now proto.Instant, m ClusterMessage) error {
	s.advance(now)
	defer s.rearm()
	if !s.cfg.Cluster {
		return ErrNotClustered
	}
	st := &s.stats.Cluster
	st.MessagesIn++
	if m.NoResponders {
		return s.handleNoResponders(now, m.Subject)
	}
	h, _, err := proto.ParseHeader(m.Data)
	if err != nil {
		st.DropMalformed++
		return err
	}
	switch h.Type {
	case proto.TypeClusterClaim:
		return s.handleClaim(now, m.Data)
	case proto.TypeClusterIntroAsk:
		return s.handleIntroAsk(now, m.Data, m.Reply)
	case proto.TypeClusterIntroAnswer:
		return s.handleIntroAnswer(now, m.Subject, m.Data)
	case proto.TypeClusterRelayBind:
		return s.handleRelayBind(now, m.Data, m.Reply)
	case proto.TypeClusterRelayBound:
		return s.handleRelayBound(now, m.Subject, m.Data)
	case proto.TypeClusterRelayData:
		return s.handleRelayData(now, m.Data)
	case proto.TypeClusterRoomJoin:
		return s.handleRoomJoinAsk(now, m.Data, m.Reply)
	case proto.TypeClusterRoomLeave:
		return s.handleRoomLeaveAsk(m.Data)
	case proto.TypeClusterRoomState:
		return s.handleRoomState(now, m.Subject, m.Data)
	case proto.TypeClusterRoomClaim:
		return s.handleRoomClaim(m.Data)
	}
	st.DropSubject++
	return ErrClusterSubject
}
