package node

import (
	"slices"
	"time"

	"github.com/natpass/natpass/proto"
)

// Re-linking room members (DESIGN §13): the link with a member can end while both
// stay in the room (closed by either side, an idle timeout, a handshake that never
// finished). The node links again, at a backoff, for as long as the peer is a
// member of one of its rooms; both sides doing so at once end with one pair, as
// with Connect.
const (
	relinkFirst = time.Second      // the first new introduction, after the link ended
	relinkMax   = 16 * time.Second // the backoff doubles up to this
	// relinkTries bounds the attempts while links keep ending; a link that comes
	// up resets it. Past it the member is linked again at the next registration
	// with a server (the rooms' rejoin links every member).
	relinkTries = 6
	// maxRelinks bounds the members waiting: every member of every room.
	maxRelinks = maxRooms * proto.MaxRoomMembers
)

// relink is a member whose link ended.
type relink struct {
	peer  string
	tries int
	next  proto.Instant // Never: not due (given up, or waiting for the link to end)
}

// srvRelinkDue: link with peer again.
type srvRelinkDue struct{ peer string }

func (srvRelinkDue) srvEvent() {}

// isMember reports whether peer is listed in a room we are in.
func (s *serverSession) isMember(peer string) bool {
	return slices.ContainsFunc(s.rooms, func(r *roomJoin) bool { return r.answered && slices.Contains(r.members, peer) })
}

// linkEnded: the link with peer ended (or an introduction for it failed). A member
// is linked again after the backoff; its tries are counted until a link is up.
func (s *serverSession) linkEnded(now proto.Instant, peer string) {
	if !s.isMember(peer) {
		return
	}
	i := slices.IndexFunc(s.relinks, func(r relink) bool { return r.peer == peer })
	if i < 0 {
		if len(s.relinks) >= maxRelinks {
			s.relinks = slices.DeleteFunc(s.relinks, func(r relink) bool { return !s.isMember(r.peer) })
		}
		if len(s.relinks) >= maxRelinks {
			return // cannot happen while the bound holds every member of every room
		}
		s.relinks = append(s.relinks, relink{peer: peer, next: proto.Never})
		i = len(s.relinks) - 1
	}
	r := &s.relinks[i]
	if r.tries >= relinkTries {
		return
	}
	r.next = now.Add(min(relinkFirst<<r.tries, relinkMax))
	r.tries++
	s.timers.earlier(srvRelink, r.next)
}

// relinking reports whether peer's link is being made again.
func (s *serverSession) relinking(peer string) bool {
	return slices.ContainsFunc(s.relinks, func(r relink) bool { return r.peer == peer })
}

// linkUp: the link with peer is up; its backoff starts afresh next time.
func (s *serverSession) linkUp(peer string) {
	s.relinks = slices.DeleteFunc(s.relinks, func(r relink) bool { return r.peer == peer })
}

// retryRelinks asks Node to link the members that are due, and forgets those
// that are no members any more.
func (s *serverSession) retryRelinks(now proto.Instant) {
	s.relinks = slices.DeleteFunc(s.relinks, func(r relink) bool { return !s.isMember(r.peer) })
	for i := range s.relinks {
		r := &s.relinks[i]
		if r.next <= now {
			r.next = proto.Never
			s.emit(srvRelinkDue{r.peer})
		}
		s.timers.earlier(srvRelink, r.next)
	}
}

// peerLinkEvent follows a peer's events for the room re-links.
func (n *Node) peerLinkEvent(now proto.Instant, e Event) {
	switch e := e.(type) {
	case EventPeerClosed:
		n.srv.linkEnded(now, e.Peer)
	case EventConnected:
		n.srv.linkUp(e.Peer)
	}
}

// memberAppeared: member id is listed now and the node has no live link with it.
// A member that joins asks for its introductions itself (a late joiner links to
// everyone), so the node only waits: the re-link backoff asks after relinkFirst
// unless a link is up or on its way by then. Members that appear without joining
// need it — two rooms of one name that merged on a cluster's home (PROTOCOL.md
// §13.1): none of them is the joiner, and nobody else would ask.
func (n *Node) memberAppeared(now proto.Instant, id string) {
	if p, ok := n.byID[id]; ok && !p.closed && !p.closing {
		return
	}
	n.srv.linkEnded(now, id)
}

// relinkDue links with a member whose link ended, unless a live peer is there
// already (the member linked with us first).
func (n *Node) relinkDue(now proto.Instant, peer string) {
	if p, ok := n.byID[peer]; ok && !p.closed && !p.closing {
		return
	}
	n.stats.Relinks++
	n.linkMember(now, peer)
}
