package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// roomEventQueue bounds a Room's unread events; when full the oldest is dropped
// and counted (Room.EventsDropped).
const roomEventQueue = 64

// RoomEventKind says what a RoomEvent reports.
type RoomEventKind uint8

// Room event kinds.
const (
	RoomMemberJoined RoomEventKind = iota + 1 // Member joined the room
	RoomMemberLeft                            // Member left (or its session ended)
	RoomOwnerChanged                          // Member is the owner now (the earliest member still present)
	RoomLinkUp                                // the link with Member is up: Send and Broadcast reach it
	RoomPathChanged                           // the link with Member moved to Path
	RoomMemberSlow                            // Member's outbox is full: broadcasts wait for it (reported once until half of it is free again)
)

func (k RoomEventKind) String() string {
	switch k {
	case RoomMemberJoined:
		return "joined"
	case RoomMemberLeft:
		return "left"
	case RoomOwnerChanged:
		return "owner"
	case RoomLinkUp:
		return "link-up"
	case RoomPathChanged:
		return "path"
	case RoomMemberSlow:
		return "slow"
	}
	return fmt.Sprintf("RoomEventKind(%d)", uint8(k))
}

// RoomEvent is one change in a room; Path is set for RoomPathChanged.
type RoomEvent struct {
	Kind   RoomEventKind
	Member string
	Path   PathEvent
}

// RoomMessage is a message from a member. Data belongs to the caller.
type RoomMessage struct {
	From string
	Lane int
	Mode rudp.Mode
	Data []byte
}

// Room is a named group of peers that all talk to each other (DESIGN §13): the
// server keeps the member list; every pair of members has its own link, a normal
// Conn (direct or relayed, its own keys and flow control). Its methods are safe
// for concurrent use.
//
// A link that ends while both stay members (either side closed it, it timed out) is
// made again by the node, at a backoff (1 s doubling to 16 s, six tries while links
// keep ending): a new Conn, reported by RoomLinkUp; messages queued on the old one
// are gone with it. To stop talking to a member, leave the room.
//
// Links of members do not go to Node.Accept: an incoming connection from a peer
// the node knows as a member of one of its rooms is the room's. The node learns
// who joined from the server's notice, which the server sends before the joiner
// even asks for introductions; when that notice was lost the node refreshes its
// rooms as soon as the stranger is introduced, so the member is known before the
// link is up. Only if that refresh is lost too does the link reach Accept (a room
// application that does not Accept then never gets it: it is refused when the
// accept queue is full).
type Room struct {
	n    *Node
	name string

	joined   chan struct{} // closed when the server answered our join
	joinOnce sync.Once
	done     chan struct{} // closed when the node is out of the room
	doneOnce sync.Once
	ready    chan struct{} // capacity 1: a link queued a message or ended
	events   chan RoomEvent
	drops    atomic.Uint64

	mu      sync.Mutex
	members []string
	epoch   uint32
	links   map[string]*Conn
	next    int   // Recv starts at this member, round robin
	err     error // why the node is out of the room
}

func newRoom(n *Node, name string) *Room {
	return &Room{n: n, name: name, joined: make(chan struct{}), done: make(chan struct{}),
		ready: make(chan struct{}, 1), events: make(chan RoomEvent, roomEventQueue), links: map[string]*Conn{}}
}

// JoinRoom joins the room name on the node's server and returns once the server
// answered: the Room lists the members, this node among them, and the node is
// linking to every member it has no connection with (a late joiner links to
// everyone; members already there take its links as they come). A full room is a
// *RoomError matching ErrRoomFull. Joining a room the node is in returns the same
// Room. If ctx ends first the node leaves the room again.
func (n *Node) JoinRoom(ctx context.Context, name string) (*Room, error) {
	if name == "" || len(name) > proto.MaxRoomNameLen {
		return nil, fmt.Errorf("%w: room name must be 1–%d bytes", ErrBadConfig, proto.MaxRoomNameLen)
	}
	var r *Room
	var jerr error
	err := n.do(func(now proto.Instant) {
		if r = n.room(name); r != nil {
			return
		}
		r = newRoom(n, name)
		if jerr = n.nm.JoinRoom(now, name); jerr == nil {
			n.rooms = append(n.rooms, r)
		}
	})
	if err == nil && jerr != nil {
		err = fmt.Errorf("%w: %v", ErrBadConfig, jerr)
	}
	if err != nil {
		return nil, err
	}
	select {
	case <-r.joined:
		return r, nil
	case <-r.done:
		return nil, r.doneErr()
	case <-ctx.Done():
		r.Leave()
		return nil, ctx.Err()
	}
}

// Name is the room's name.
func (r *Room) Name() string { return r.name }

// Members returns the members in the order they joined, this node included.
func (r *Room) Members() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.members)
}

// Owner is the earliest member still present.
func (r *Room) Owner() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.members) == 0 {
		return ""
	}
	return r.members[0]
}

// Linked returns the members whose link is up, in member order.
func (r *Room) Linked() []string {
	var out []string
	for _, l := range r.linkList() {
		if l.c.isUp() && l.c.closeErr() == nil {
			out = append(out, l.id)
		}
	}
	return out
}

// Conn returns the link with member: the normal Conn, to read its path or stats.
// Reading it with Conn.Recv takes messages from Room.Recv.
func (r *Room) Conn(member string) (*Conn, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.links[member]
	return c, ok
}

// Events delivers the room's changes: members joining and leaving, the owner
// changing, links coming up and changing path. When 64 are unread the oldest is
// dropped (EventsDropped counts them; Members and Owner are always current).
func (r *Room) Events() <-chan RoomEvent { return r.events }

// EventsDropped counts the events Events could not hold.
func (r *Room) EventsDropped() uint64 { return r.drops.Load() }

// Done is closed when the node is out of the room (Leave, or the node stopped).
func (r *Room) Done() <-chan struct{} { return r.done }

type roomLink struct {
	id string
	c  *Conn
}

// linkList returns the links in member order.
func (r *Room) linkList() []roomLink {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]roomLink, 0, len(r.links))
	for _, id := range r.members {
		if c := r.links[id]; c != nil {
			out = append(out, roomLink{id, c})
		}
	}
	return out
}

// Send sends msg to one member on its link (which waits while the link's send
// buffer is full, as Conn.Send does, and behind the broadcasts waiting in the
// link's outbox, so order holds on a lane). ErrNotMember if the node has no link
// with member.
func (r *Room) Send(member string, lane int, mode rudp.Mode, msg []byte) error {
	c, ok := r.Conn(member)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotMember, member)
	}
	return c.Send(lane, mode, msg)
}

// Broadcast sends msg to every member on its own link: direct or relayed, whatever
// the link is. A link not up yet holds it and delivers it once up; a member the
// node has no link with at all yet (it joined a moment ago and its introduction has
// not come) does not get it. The bytes are copied once, for every link.
//
// Flow control holds per link: msg goes into each link's outbox (bounded by
// Config.RoomOutboxBytes), which the node moves into the connection as its send
// buffer takes it, so a member that reads slowly slows only what goes to it.
// Broadcast waits only while some member's outbox is full (RoomMemberSlow reports
// it, Backlog shows it), and then only for that member; the others already have
// msg. A reliable message is never dropped; an unreliable one finds a full outbox
// dropped for that member and counted (Backlog's Dropped). Order holds per lane for
// the broadcasts (and Sends) of one goroutine. Links that ended are skipped.
func (r *Room) Broadcast(lane int, mode rudp.Mode, msg []byte) error {
	return r.BroadcastContext(context.Background(), lane, mode, msg)
}

// BroadcastContext is Broadcast that stops waiting when ctx ends: then the members
// whose outboxes were still full did not get msg, and the error is a
// *BroadcastError naming them (wrapping ctx.Err()). A deadline thus bounds how
// long a stopped member can hold the broadcaster.
func (r *Room) BroadcastContext(ctx context.Context, lane int, mode rudp.Mode, msg []byte) error {
	if err := r.doneErr(); err != nil {
		return err
	}
	if err := r.n.checkMessage(lane, mode, msg); err != nil {
		return err
	}
	m := outMsg{lane: lane, mode: mode, data: bytes.Clone(msg)}
	var full []roomLink
	for _, l := range r.linkList() {
		if l.c.offer(m) == offerFull {
			full = append(full, l)
		}
	}
	var late []string
	for i, l := range full {
		if err := r.waitOutbox(ctx, l.c, m); err != nil {
			for _, l := range full[i:] {
				if l.c.offer(m) == offerFull {
					late = append(late, l.id)
				}
			}
			if len(late) > 0 {
				return &BroadcastError{Members: late, Err: err}
			}
			return nil
		}
	}
	return nil
}

// waitOutbox waits until m is in c's outbox (or c ended); ctx's error when ctx
// ends first, or the room's when the node is out of it.
func (r *Room) waitOutbox(ctx context.Context, c *Conn, m outMsg) error {
	for {
		select {
		case <-c.outSpace:
			if res := c.offer(m); res != offerFull {
				return nil
			}
		case <-c.done:
			return nil
		case <-r.done:
			return r.doneErr()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Backlog returns, for every linked member in member order, what waits in its
// link's outbox: a member that stops reading shows here first.
func (r *Room) Backlog() []MemberBacklog {
	var out []MemberBacklog
	for _, l := range r.linkList() {
		l.c.mu.Lock()
		o := &l.c.out
		out = append(out, MemberBacklog{Member: l.id, Messages: o.len(), Bytes: o.bytes, Peak: o.peak, Dropped: o.dropped})
		l.c.mu.Unlock()
	}
	return out
}

// Flush waits until every link that is open acknowledged everything sent on it,
// what waited in its outbox included.
func (r *Room) Flush(ctx context.Context) error {
	var errs []error
	for _, l := range r.linkList() {
		if err := l.c.Flush(ctx); err != nil && l.c.closeErr() == nil {
			errs = append(errs, fmt.Errorf("member %q: %w", l.id, err))
		}
	}
	return errors.Join(errs...)
}

// Recv returns the next message from any member, taking the links in turn so that
// a busy member does not starve the others. Taking a message gives its credit back
// to that link only: a member whose messages are not read holds only itself.
// After Leave, or when the node stopped, it returns the reason.
func (r *Room) Recv(ctx context.Context) (RoomMessage, error) {
	for {
		if m, ok := r.take(); ok {
			return m, nil
		}
		if err := r.doneErr(); err != nil {
			return RoomMessage{}, err
		}
		select {
		case <-r.ready:
		case <-r.done:
		case <-ctx.Done():
			return RoomMessage{}, ctx.Err()
		}
	}
}

// take returns a queued message of some link, starting at r.next.
func (r *Room) take() (RoomMessage, bool) {
	links := r.linkList()
	r.mu.Lock()
	start := r.next
	r.mu.Unlock()
	for i := range links {
		j := (start + i) % len(links)
		if m, ok, _ := links[j].c.take(); ok {
			r.mu.Lock()
			r.next = j + 1
			r.mu.Unlock()
			return RoomMessage{From: links[j].id, Lane: m.Lane, Mode: m.Mode, Data: m.Data}, true
		}
	}
	return RoomMessage{}, false
}

// Leave leaves the room: the server is told, Recv returns ErrRoomLeft, and the
// links the room made (those with members the node did not Connect to and that
// are in none of its other rooms) are closed.
func (r *Room) Leave() error {
	return r.n.do(func(now proto.Instant) {
		n := r.n
		if i := slices.Index(n.rooms, r); i >= 0 {
			n.rooms = slices.Delete(n.rooms, i, i+1)
			n.nm.LeaveRoom(now, r.name)
		}
		r.fail(ErrRoomLeft)
		for _, l := range r.linkList() {
			n.relinkConn(l.c)
			if l.c.incoming && len(n.roomsOf(l.id)) == 0 && n.conns[l.id] == l.c {
				l.c.fail(fmt.Errorf("%w: left the room", ErrConnClosed))
				_ = n.nm.ClosePeer(now, l.id, rudp.CodeNormal, "left the room")
				delete(n.conns, l.id)
			}
		}
	})
}

func (r *Room) doneErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// The methods below run on the loop, holding its mu.

func (r *Room) wake() {
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

func (r *Room) fail(err error) {
	r.doneOnce.Do(func() {
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(r.done)
	})
}

func (r *Room) push(e RoomEvent) {
	for range 2 {
		select {
		case r.events <- e:
			return
		default:
			select {
			case <-r.events: // drop the oldest
				r.drops.Add(1)
			default:
			}
		}
	}
}

func (r *Room) isMember(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.members, id)
}

// room returns the joined Room called name, or nil.
func (n *Node) room(name string) *Room {
	for _, r := range n.rooms {
		if r.name == name {
			return r
		}
	}
	return nil
}

// roomsOf returns the rooms that list peer as a member.
func (n *Node) roomsOf(peer string) []*Room {
	var out []*Room
	for _, r := range n.rooms {
		if r.isMember(peer) {
			out = append(out, r)
		}
	}
	return out
}

// relinkConn makes c the link of every room that lists its peer, and of no other.
func (n *Node) relinkConn(c *Conn) {
	rooms := n.roomsOf(c.peer)
	c.setRooms(rooms)
	for _, r := range n.rooms {
		r.mu.Lock()
		if slices.Contains(rooms, r) {
			r.links[c.peer] = c
		} else if r.links[c.peer] == c {
			delete(r.links, c.peer)
		}
		r.mu.Unlock()
		r.wake()
	}
}

// roomEvent takes the node's room events; it reports whether e was one.
func (n *Node) roomEvent(e node.Event) bool {
	switch e := e.(type) {
	case node.EventRoomState:
		n.roomState(e)
	case node.EventRoomMemberJoined:
		if r := n.room(e.Room); r != nil {
			r.push(RoomEvent{Kind: RoomMemberJoined, Member: e.Member})
		}
	case node.EventRoomMemberLeft:
		if r := n.room(e.Room); r != nil {
			r.push(RoomEvent{Kind: RoomMemberLeft, Member: e.Member})
		}
	case node.EventRoomOwnerChanged:
		if r := n.room(e.Room); r != nil {
			r.push(RoomEvent{Kind: RoomOwnerChanged, Member: e.Owner})
		}
	case node.EventRoomError:
		if r := n.room(e.Room); r != nil {
			n.rooms = slices.DeleteFunc(n.rooms, func(q *Room) bool { return q == r })
			r.fail(&RoomError{Room: e.Room, Code: e.Code, Text: e.Text})
		}
	default:
		return false
	}
	return true
}

// roomState takes a room's new member list: links of members that left are
// dropped, the connections of members present become its links.
func (n *Node) roomState(e node.EventRoomState) {
	r := n.room(e.Room)
	if r == nil {
		return
	}
	r.mu.Lock()
	r.members, r.epoch = e.Members, e.Epoch
	gone := make([]*Conn, 0, len(r.links))
	for id, c := range r.links {
		if !slices.Contains(e.Members, id) {
			gone = append(gone, c)
		}
	}
	r.mu.Unlock()
	for _, c := range gone {
		n.relinkConn(c)
	}
	for _, id := range e.Members {
		if c := n.conns[id]; c != nil && id != n.id {
			n.relinkConn(c)
		}
	}
	r.joinOnce.Do(func() { close(r.joined) })
}

// roomPath tells the rooms that have the link with peer about its path change.
func (n *Node) roomPath(peer string, kind RoomEventKind, pe PathEvent) {
	for _, r := range n.roomsOf(peer) {
		r.push(RoomEvent{Kind: kind, Member: peer, Path: pe})
	}
}

// unlinkConn removes c, which ended, from every room's links.
func (n *Node) unlinkConn(c *Conn) {
	for _, r := range n.rooms {
		r.mu.Lock()
		if r.links[c.peer] == c {
			delete(r.links, c.peer)
		}
		r.mu.Unlock()
	}
}
