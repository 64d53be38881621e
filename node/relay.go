package node

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// RelayPolicy is the application's choice about relaying through the server (DESIGN
// §6.7).
type RelayPolicy uint8

const (
	// RelayAuto: relay from the first message, move to a direct path when one is
	// confirmed, back to the relay when it dies.
	RelayAuto RelayPolicy = iota
	// RelayForce: relay only; the server shares no addresses with the peer.
	RelayForce
	// RelayNever: direct or nothing.
	RelayNever
)

// Relay timing (PROTOCOL.md §8).
const (
	relayRTO        = 300 * time.Millisecond // repeat an unanswered relay-allocate, doubling
	relayRTOMax     = 2 * time.Second
	relayTries      = 8                      // then give up on the relay
	relayReadyPoll  = 250 * time.Millisecond // ask again until the peer holds its channel
	relayReadyPolls = 40
)

// relayState is one peer's end of the relay (PROTOCOL.md §8).
type relayState struct {
	// addr is a synthetic address that names "through the relay to this peer" to
	// keyx and the routing code: the relay is one more path. It comes from the
	// RFC 6666 discard prefix 100::/64, which no real packet uses.
	addr    netip.AddrPort
	token   []byte
	channel uint16
	ready   bool // the peer holds a channel of the pair too
	off     bool // policy forbids, or the server refused
	txid    uint64
	tries   int
	polls   int
	next    proto.Instant
	// checkOut: a stalled relay made us ask the server whether it is there, and the
	// answer has not come; lastCheck is when we last asked, if checked.
	checkOut  bool
	checked   bool
	lastCheck proto.Instant
	unknown   int // "unknown peer" answers in a row
}

// relayCheckWait is how long a keepalive sent because relayed data stalled may go
// unacknowledged before the server counts as lost; relayCheckEvery spaces such
// checks while the server answers but the peer stays silent.
const (
	relayCheckWait    = 2 * time.Second
	relayCheckEvery   = 5 * time.Second
	relayUnknownRetry = time.Second
	relayUnknownTries = 60
)

// restartRelay allocates a peer's relay again after a re-registration.
func (n *Node) restartRelay(now proto.Instant, p *peer) {
	r := &p.relay
	if r.channel != 0 {
		delete(n.byChannel, r.channel)
	}
	r.channel, r.ready, r.tries, r.polls, r.checkOut = 0, false, 0, 0, false
	r.off = len(r.token) == 0 || p.flags&proto.IntroNoRelay != 0 || n.cfg.Relay == RelayNever
	r.next = proto.Never
	if !r.off {
		r.next = now
	}
}

// quietRelayDue is when relayed data in flight with the peer silent makes the node
// check on the server; Never when no check is due.
func (n *Node) quietRelayDue(p *peer) proto.Instant {
	if !n.registered || !p.established || p.closed || !p.relay.ready || p.relay.checkOut {
		return proto.Never
	}
	if _, remote, ok := p.route(n.cfg.Local); !ok || remote != p.relay.addr {
		return proto.Never
	}
	st := p.conn.Stats()
	if st.BytesInFlight == 0 {
		return proto.Never
	}
	due := p.lastRecv.Add(max(4*st.SRTT, time.Second))
	if p.relay.checked {
		due = max(due, p.relay.lastCheck.Add(relayCheckEvery))
	}
	return due
}

func relayAddrFor(i int) netip.AddrPort {
	var a [16]byte
	a[0], a[1] = 0x01, 0x00
	binary.BigEndian.PutUint32(a[12:], uint32(i)+1)
	return netip.AddrPortFrom(netip.AddrFrom16(a), 1)
}

// startRelay begins allocating the relay for a newly introduced peer.
func (n *Node) startRelay(now proto.Instant, p *peer, token []byte, flags uint8) {
	n.relaySeq++ // never reused, even after a peer is forgotten
	p.relay.addr = relayAddrFor(n.relaySeq)
	n.byRelayAddr[p.relay.addr] = p
	p.relay.token = bytes.Clone(token)
	p.relay.off = len(token) == 0 || flags&proto.IntroNoRelay != 0 || n.cfg.Relay == RelayNever
	p.relay.next = proto.Never
	if !p.relay.off {
		p.relay.next = now
	}
}

// sendAllocate asks the server for (or refreshes) our channel of the pair.
func (n *Node) sendAllocate(now proto.Instant, p *peer) {
	r := &p.relay
	if r.tries >= relayTries {
		r.off, r.next = true, proto.Never
		n.emit(EventPeerError{Peer: p.id, Text: "relay: no answer from the server"})
		return
	}
	r.tries++
	r.txid = n.rng.Uint64() | 1 // 0 marks the server's ready notice
	n.queue(n.cfg.Server, &proto.RelayAllocate{Session: n.session, TxID: r.txid, PeerID: []byte(p.id), Token: bytes.Clone(r.token)})
	// The first message waits for the relay: a lost allocate must not cost a second.
	r.next = now.Add(min(relayRTO<<(r.tries-1), relayRTOMax))
}

// onRelayAllocated takes the server's answer to a relay-allocate, or its ready
// notice (txid 0: the peer just allocated its end of a channel we hold).
func (n *Node) onRelayAllocated(now proto.Instant, m *proto.RelayAllocated) error {
	var p *peer
	if m.TxID == 0 {
		p = n.byChannel[m.Channel]
		if p == nil {
			return nil // our own request is in flight; its answer will say "peer ready"
		}
	}
	for _, q := range n.peers {
		if m.TxID != 0 && q.relay.txid == m.TxID && !q.relay.off {
			p = q
		}
	}
	if p == nil {
		n.stats.Unexpected++
		return ErrUnexpected
	}
	r := &p.relay
	if r.channel != 0 && r.channel != m.Channel {
		delete(n.byChannel, r.channel)
	}
	r.channel = m.Channel
	n.byChannel[m.Channel] = p
	r.token = bytes.Clone(m.Token)
	r.tries, r.unknown = 0, 0
	wasReady := r.ready
	r.ready = m.Flags&proto.RelayPeerReady != 0
	switch {
	case r.ready:
		// Refresh before half the lifetime has passed (PROTOCOL.md §8.4).
		r.next = now.Add(time.Duration(m.LifetimeS) * time.Second / 2)
	case r.polls < relayReadyPolls:
		r.polls++
		r.next = now.Add(relayReadyPoll)
	default:
		r.next = now.Add(time.Duration(m.LifetimeS) * time.Second / 2)
	}
	if r.ready && !wasReady {
		if _, direct := p.agent.Active(); !direct {
			p.path = proto.PathRelay
			n.emit(EventPathChanged{Peer: p.id, Kind: proto.PathRelay, Remote: n.cfg.Server, Reason: "relay ready"})
			p.conn.PathChanged(now)
		}
		n.initiate(now, p, false)
	}
	return nil
}

// onRelayError handles an error answering one of our relay-allocates; it reports
// whether the error was one.
func (n *Node) onRelayError(now proto.Instant, m *proto.Error) bool {
	for _, p := range n.peers {
		if p.relay.txid == m.TxID && !p.relay.off {
			switch m.Code {
			case proto.CodeRateLimited:
				return true // the repeat timer asks again
			case proto.CodeUnknownPeer, proto.CodeNoSession:
				// The peer (or we) is registering again after a server restart: ask
				// again in a while rather than give the relay up.
				if p.relay.unknown < relayUnknownTries {
					p.relay.unknown++
					p.relay.tries = 0
					p.relay.next = now.Add(relayUnknownRetry)
					return true
				}
			}
			p.relay.off, p.relay.next = true, proto.Never
			n.emit(EventPeerError{Peer: p.id, Code: m.Code, Text: "relay: " + string(m.Text)})
			return true
		}
	}
	return false
}

// handleRelayDeliver unwraps a relayed packet and handles it as if it came from the
// peer on the relay path.
func (n *Node) handleRelayDeliver(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	if !n.isServer(from) {
		n.stats.NotFromServer++
		return ErrNotFromServer
	}
	_, rest, err := proto.ParseHeader(p)
	if err != nil {
		n.stats.Malformed++
		return err
	}
	ch, inner, err := proto.ParseRelayDataBody(rest)
	if err != nil {
		n.stats.Malformed++
		return err
	}
	pe, ok := n.byChannel[ch]
	if !ok {
		n.stats.Unexpected++
		return ErrUnexpected
	}
	h, _, err := proto.ParseHeader(inner)
	if err != nil || h.Type < proto.TypeKeyxFirst || h.Type > proto.TypeKeyxLast {
		// Only keyx packets travel the relay (PROTOCOL.md §8.3).
		n.stats.Malformed++
		return proto.ErrMalformed
	}
	if h.Type == proto.TypeTransportData {
		return n.handleTransport(now, local, pe.relay.addr, inner)
	}
	return n.handleKeyx(now, local, pe.relay.addr, inner)
}

// wrapRelay turns a transmit addressed to a peer's synthetic relay address into a
// relay-send to the server. The packet sits at buf[off:]; with off ≥ 4 the header
// goes in front without a copy.
func (n *Node) wrapRelay(t proto.Transmit, buf []byte, off int) (proto.Transmit, bool) {
	p, ok := n.byRelayAddr[t.To]
	if !ok {
		return t, true
	}
	if !p.relay.ready || len(t.Payload) > proto.MaxRelayPacketLen {
		n.stats.RelayDrops++
		return proto.Transmit{}, false
	}
	size := len(t.Payload)
	if off < proto.RelayDataHeaderLen {
		copy(buf[proto.RelayDataHeaderLen:], t.Payload)
		off = proto.RelayDataHeaderLen
	}
	start := off - proto.RelayDataHeaderLen
	proto.AppendRelayDataHeader(buf[start:start], false, p.relay.channel)
	return proto.Transmit{From: n.cfg.Local, To: n.cfg.Server, Payload: buf[start : off+size]}, true
}
