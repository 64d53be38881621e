package rendezvous

import (
	"errors"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// The relay (PROTOCOL.md §8): relay-allocate hands a session its channel of a pair
// after checking the relay token of the pair's introduction; relay-send is
// forwarded, as relay-deliver of the same size, to the registered address of the
// session holding the pair's other channel. The forwarding table, its expiry heap and
// its byte budgets are relayframe.Table; this file ties it to sessions and sockets.

// RelayStats counts the relay's work and every reason it refused or dropped.
// Channels is a gauge; the rest only grow.
type RelayStats struct {
	Channels        int    // channels in the forwarding table now
	Allocations     uint64 // channels created
	Refreshes       uint64 // relay-allocates that renewed a channel the session held
	ChannelsExpired uint64 // ended at their token's expiry
	ChannelsClosed  uint64 // ended with their session
	// ChannelsReplaced: ended by their session's allocation for a newer pair of the
	// same two keys ([RELAY-1]).
	ChannelsReplaced uint64
	ReadyNotices     uint64 // repeated relay-allocated telling a peer its channel is now linked
	Forwarded        uint64 // relay-deliver frames queued
	BytesForwarded   uint64 // their bytes (equal to the relay-send bytes they came from)

	// relay-allocate refused (error code in brackets).
	DeniedDisabled     uint64 // [8] the relay is off
	DeniedBadToken     uint64 // [8] malformed token or MAC mismatch (forged, another server's)
	DeniedExpiredToken uint64 // [8]
	DeniedForeignToken uint64 // [8] the requester's key is not in the token
	DeniedPeerKey      uint64 // [8] the named peer's key is not the token's other key, or it is the requester
	UnknownPeer        uint64 // [4] the named peer has no live session
	TableFull          uint64 // [7] forwarding table or the session's channel quota full

	// relay-send dropped, silently.
	DropMalformed    uint64 // does not parse (length, channel 0)
	DropNoChannel    uint64 // no such channel (never allocated, expired, or its session ended)
	DropWrongSource  uint64 // not from the holder's registered address and socket
	DropPeerNotReady uint64 // the pair's other channel does not exist (yet)
	DropSessionRate  uint64 // over the holder's relay budget
	DropServerRate   uint64 // over the server-wide relay budget
	DropQueueFull    uint64 // transmit queue full (the caller did not drain)
}

// Errors of the relay handlers; each is also a counter in RelayStats.
var (
	ErrRelayNoChannel    = errors.New("rendezvous: relay frame on an unknown channel")
	ErrRelayWrongSource  = errors.New("rendezvous: relay frame not from the channel's registered address")
	ErrRelayPeerNotReady = errors.New("rendezvous: relay peer holds no channel of the pair")
	ErrRelayRate         = errors.New("rendezvous: relay budget spent")
	ErrRelayToken        = errors.New("rendezvous: relay token refused")
	ErrRelayTableFull    = errors.New("rendezvous: relay table or session quota full")
)

var (
	textRelayOff      = []byte("relay off")
	textRelayBadToken = []byte("bad relay token")
	textRelayExpired  = []byte("relay token expired")
	textRelayForeign  = []byte("relay token not yours")
	textRelayPeerKey  = []byte("peer key not in relay token")
	textRelayFull     = []byte("relay full")
)

// handleRelayAllocate checks a relay-allocate in the order of PROTOCOL.md §8.4 and
// answers relay-allocated with the channel and a renewed token. Every reply is no
// larger than the request (limit len(p)), although the sender is authenticated.
func (s *Server) handleRelayAllocate(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	m := &s.relayReq
	if err := m.Parse(p); err != nil {
		s.stats.DropMalformed++
		return err
	}
	i, err := s.session(now, sock, from, &m.Session, m.TxID, len(p))
	if err != nil {
		return err
	}
	deny := func(n *uint64, text []byte) error {
		*n++
		_ = s.sendError(sock, from, m.TxID, proto.CodeRelayDenied, text, len(p))
		return ErrRelayToken
	}
	st := &s.stats.Relay
	if s.relay == nil {
		return deny(&st.DeniedDisabled, textRelayOff)
	}
	unix := s.wall.UnixAt(now)
	tok, err := s.tokens.VerifyToken(m.Token, unix)
	switch {
	case errors.Is(err, relayframe.ErrTokenExpired):
		return deny(&st.DeniedExpiredToken, textRelayExpired)
	case err != nil:
		return deny(&st.DeniedBadToken, textRelayBadToken)
	}
	req := &s.peers.sessions[i]
	if !tok.Holds(req.key) {
		return deny(&st.DeniedForeignToken, textRelayForeign)
	}
	other := tok.KeyA
	if other == req.key {
		other = tok.KeyB
	}
	j, ok := s.localPeer(now, m.PeerID)
	if !ok && s.cfg.Cluster {
		s.replaceOlderPair(i, other, tok.PairID)
		return s.allocateRemote(now, sock, from, m, i, tok, other, unix, len(p))
	}
	if !ok {
		st.UnknownPeer++
		_ = s.sendError(sock, from, m.TxID, proto.CodeUnknownPeer, textUnknownPeer, len(p))
		return ErrUnknownPeer
	}
	tgt := &s.peers.sessions[j]
	if j == i || tgt.key != other {
		return deny(&st.DeniedPeerKey, textRelayPeerKey)
	}
	s.replaceOlderPair(i, other, tok.PairID)
	return s.allocateRelay(now, sock, from, m.TxID, i, j, tok, unix, len(p))
}

// allocateRelay takes session i's channel for the pair of tok, linked to session j's,
// and answers relay-allocated (and the peer's ready notice when this links them).
func (s *Server) allocateRelay(now proto.Instant, sock int, from netip.AddrPort, txid uint64, i, j int32, tok relayframe.Token, unix uint64, size int) error {
	req, tgt := &s.peers.sessions[i], &s.peers.sessions[j]
	st := &s.stats.Relay
	// The channel expires with a token renewed now: the lifetime from now, never
	// after either ticket. Both tickets are valid (checked above), so expiry > unix.
	expiry := min(unix+uint64(s.cfg.RelayTokenLifetime/time.Second), req.ticketExpiryUnix, tgt.ticketExpiryUnix)
	a, err := s.relay.Allocate(i, j, tok.PairID, s.wall.InstantAt(expiry), expiry, txid)
	if err != nil {
		st.TableFull++
		_ = s.sendError(sock, from, txid, proto.CodeServerFull, textRelayFull, size)
		return ErrRelayTableFull
	}
	if a.Refreshed {
		st.Refreshes++
	} else {
		st.Allocations++
	}
	s.sendAllocated(sock, from, txid, a.Number, a.PeerReady, unix, expiry, tok, size)
	if a.NewLink && !s.cfg.DisableRelayReadyNotice && s.tx.free() > 0 {
		// The peer allocated first and was told "not ready": answer its latest
		// request again, now with "peer ready", at its registered address, so that
		// it need not poll and learns its channel even if our first answer was lost
		// (PROTOCOL.md §8.2). Its channel keeps its expiry; the token matches it.
		st.ReadyNotices++
		s.sendAllocated(s.socketIndex(tgt.local), tgt.addr, a.PeerTag, a.PeerNumber, true, unix, a.PeerExpiryUnix, tok, unlimited)
	}
	return nil
}

// relayPeer is a relay pair a session allocated a channel of, by the key at the
// pair's other end.
type relayPeer struct {
	key    [proto.KeyLen]byte
	pairID uint64
}

// replaceOlderPair notes that session i allocates its channel of pair pairID with
// the peer whose key is other, and releases the channel it holds of another pair of
// the same two keys ([RELAY-1]): both registered again (a server died, the
// next introduced them anew, with a new pair ID and token), and the old channel
// would otherwise hold a place in the session's quota until its token expired, so
// that a session with many peers (a room) is refused "relay full".
func (s *Server) replaceOlderPair(i int32, other [proto.KeyLen]byte, pairID uint64) {
	req := &s.peers.sessions[i]
	kept := req.relayPeers[:0]
	for _, rp := range req.relayPeers {
		if _, _, _, _, ok := s.relay.Find(i, rp.pairID); !ok || rp.pairID == pairID {
			continue // ended, or the pair noted again below
		}
		if rp.key == other {
			if s.relay.Release(i, rp.pairID) {
				s.stats.Relay.ChannelsReplaced++
			}
			continue
		}
		kept = append(kept, rp)
	}
	req.relayPeers = append(kept, relayPeer{key: other, pairID: pairID})
}

// sendAllocated sends a relay-allocated for channel ch expiring at expiry, with a
// token for tok's pair renewed to that expiry.
func (s *Server) sendAllocated(sock int, to netip.AddrPort, txid uint64, ch uint16, ready bool, unix, expiry uint64, tok relayframe.Token, limit int) {
	tok.ExpiryUnix = expiry
	m := proto.RelayAllocated{
		TxID:      txid,
		Channel:   ch,
		LifetimeS: uint32(min(max(expiry, unix+1)-unix, 1<<32-1)),
		Token:     s.tokens.AppendToken(s.token[:0], tok),
	}
	if ready {
		m.Flags = proto.RelayPeerReady
	}
	_ = s.commitReply(sock, to, m.Append(s.tx.begin()), limit)
}

// Touch reads the table entries and sessions HandleDatagram will read for p if p is
// a relay-send, and nothing else: no state changes, no counter moves. A caller
// that holds a batch of datagrams may touch each before handling any, so that the
// cache misses of different frames overlap (at game rates across many sessions
// each frame's channel and sessions are out of the cache, and the driver reads
// datagrams in batches). Handling is the same with or without it.
func (s *Server) Touch(p []byte) {
	if s.relay == nil {
		return
	}
	n, _, err := relayframe.ParseSend(p)
	if err != nil {
		return
	}
	owner, peer := s.relay.Touch(n)
	if owner >= 0 {
		s.touched ^= uint64(s.peers.sessions[owner].addr.Port())
	}
	if peer >= 0 {
		s.touched ^= uint64(s.peers.sessions[peer].addr.Port())
	}
}

// handleRelaySend forwards one relay-send (PROTOCOL.md §8.4). It never answers: a
// frame is forwarded whole, as a relay-deliver of the same size, or dropped and
// counted. Nothing here allocates.
func (s *Server) handleRelaySend(now proto.Instant, sock int, from netip.AddrPort, p []byte) error {
	st := &s.stats.Relay
	n, _, err := relayframe.ParseSend(p)
	if err != nil {
		st.DropMalformed++
		return err
	}
	if s.relay == nil {
		st.DropNoChannel++
		return ErrRelayNoChannel
	}
	r, ok := s.relay.Lookup(n)
	if !ok {
		st.DropNoChannel++
		return ErrRelayNoChannel
	}
	// The holder proved at registration that it receives at its address, and only
	// that address on that socket may use its channel: anyone else would relay at the
	// holder's expense, or make the server a reflector.
	owner := &s.peers.sessions[r.Owner]
	if from != owner.addr || owner.local != s.sockets[sock] {
		st.DropWrongSource++
		return ErrRelayWrongSource
	}
	owner.lastActive = now
	if r.Peer == relayframe.NoOwner {
		if r.RemoteServer != 0 {
			return s.relayRemote(now, r, n, p)
		}
		st.DropPeerNotReady++
		return ErrRelayPeerNotReady
	}
	b := s.tx.begin()
	if b == nil {
		st.DropQueueFull++
		return ErrQueueFull
	}
	if err := s.chargeRelay(now, r.Owner, len(p)); err != nil {
		return err
	}
	// The copy is the only work on the bytes: type and channel are rewritten in
	// place, the packet is never looked at.
	b = append(b, p...)
	relayframe.PutDeliverHeader(b, r.PeerChannel)
	peer := &s.peers.sessions[r.Peer]
	s.tx.commit(peer.local, peer.addr, b)
	st.Forwarded++
	st.BytesForwarded += uint64(len(b))
	return nil
}

// chargeRelay takes a frame of n bytes from owner's relay budget and the server's,
// counting a refusal by the budget that refused.
func (s *Server) chargeRelay(now proto.Instant, owner int32, n int) error {
	switch err := s.relay.Charge(now, owner, n); err {
	case nil:
		return nil
	case relayframe.ErrOwnerRate:
		s.stats.Relay.DropSessionRate++
	default:
		s.stats.Relay.DropServerRate++
	}
	return ErrRelayRate
}

// expireChannels ends the channels whose token has expired.
func (s *Server) expireChannels(now proto.Instant) {
	if s.relay != nil {
		s.stats.Relay.ChannelsExpired += uint64(s.relay.Expire(now))
	}
}
