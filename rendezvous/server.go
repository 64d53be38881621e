package rendezvous

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// Server is the rendezvous server as one state machine: it registers nodes,
// answers keepalives, nat-probes and STUN Binding requests, introduces peers to
// each other, relays keyx packets between introduced peers over channels they
// allocate with their relay token, and keeps rooms of sessions (PROTOCOL.md §5, §8,
// §10, §13). It owns no socket and reads no clock.
//
// Getters: Stats, Peer, Deadline.
//
// Inputs: HandleDatagram (one received datagram, with the local socket it arrived
// on) and HandleTimeout (the deadline passed; spurious calls are no-ops).
//
// Commands: SetWallClock (re-anchor wall time), ReportNAT (store a node's measured
// NAT behaviour, passed on in introductions).
//
// Outputs: PollTransmit (datagrams to send, each naming the local socket it must
// leave from) and PollEvent (registrations, rebinds, expiries, introductions, room
// joins and leaves).
//
// Drain rule: after any Handle* or command call PollTransmit until it returns
// false, then PollEvent until false, then read Deadline and call HandleTimeout when
// it passes. `now` never decreases across calls (the server panics if it does).
// Deadline is now while output waits for transmit room (drain and room notices):
// the driver calls HandleTimeout at once, after draining.
//
// Every queue is bounded: at most 8 datagrams (one input makes at most two, except
// a room change, which fills the queue with notices to the room's members and
// leaves the rest to HandleTimeout; a relay-send at most one, of its own size),
// 256 events, 1024 pending room notices, Config.MaxPeers sessions,
// Config.MaxSources rate-limit entries, Config.MaxRelayChannels relay channels,
// Config.MaxRooms rooms. Nothing is
// allocated per datagram in steady state. Bad input returns a sentinel error (see
// errors.go, and the STUN errors in stun.go), is counted in Stats, and leaves the
// presence table unchanged; it may consume rate-limit budget.
//
// A Server is not safe for concurrent use; the driver serialises calls.
type Server struct {
	cfg     Config
	touched uint64 // what Touch read, kept so its reads are not optimised away
	rng     *rand.ChaCha8
	now     proto.Instant
	wall    proto.WallClock
	sockets [numSockets]netip.AddrPort // zero where the config has none

	tickets *ticketVerifier
	tokens  *relayframe.TokenSigner
	pairMAC hash.Hash // keyed with a random per-server key: PSKs and pair IDs
	pairSum [sha256.Size]byte

	keepaliveS   uint16
	startDelayMs uint16
	// deriveStart: no start delay was configured, so a pair whose round trips
	// are measured gets one from them (introTiming).
	deriveStart bool

	id          uint64 // server ID in the cluster, drawn at start
	ownSubject  string // srv.<id>
	interest    interestSet
	cluster     clusterQueue
	asks        askTable
	remotes     remoteTable
	tombstones  tombstones
	relaySubj   map[uint64]string // srv.<id>.relay of the servers frames went to
	draining    bool
	drainStart  proto.Instant
	drainRounds int             // rounds of notices started
	drainList   []proto.Session // sessions still to be told to move this round

	peers         presence
	sources       sourceTable
	unauth        gcra // server-wide budget of replies to unauthenticated senders
	noSession     gcra // server-wide budget of error-5 answers to unknown cookies
	openRegisters gcra // server-wide budget of unproven registers from new sources ([SRV-15])
	admission     admission
	timers        [timerCount]proto.Instant

	tx      txQueue
	events  eventQueue
	stats   Stats
	pending pendingTable      // introductions not yet acknowledged by both sides
	rooms   roomTable         // PROTOCOL.md §13
	relay   *relayframe.Table // nil with Config.DisableRelay

	// Scratch values reused by every call, so parsing and encoding allocate nothing.
	register  proto.Register
	retry     proto.Retry
	regFamily proto.RegisterFamily
	ticket    proto.Ticket
	keepalive proto.Keepalive
	probe     proto.NATProbe
	introReq  proto.IntroduceRequest
	claimMsg  proto.ClusterClaim
	askMsg    proto.ClusterIntroAsk
	answerMsg proto.ClusterIntroAnswer
	bindMsg   proto.ClusterRelayBind
	boundMsg  proto.ClusterRelayBound
	introAck  proto.IntroductionAck
	intro     proto.Introduction
	cands     [proto.MaxCandidates]proto.Candidate
	token     [relayframe.TokenLen]byte // the renewed token of a relay-allocated
	relayReq  proto.RelayAllocate
	roomJoin  proto.RoomJoin
	roomLeave proto.RoomLeave
	// Cluster room messages (§13.1).
	roomJoinMsg        proto.ClusterRoomJoin
	roomLeaveMsg       proto.ClusterRoomLeave
	roomStateMsg       proto.ClusterRoomState
	roomClaimMsg       proto.ClusterRoomClaim
	roomClusterMembers [proto.MaxRoomMembers]proto.ClusterRoomMember
	// roomMembers holds the member IDs of the room-state being encoded.
	roomMembers [proto.MaxRoomMembers][]byte
}

// Local sockets, by the role the config gives them: Primary's family first, then
// the other family's (OtherPrimary and its alternates).
const (
	sockPrimary = iota
	sockAltPort
	sockAltAddr
	sockOtherPrimary
	sockOtherAltPort
	sockOtherAltAddr
	numSockets
)

// timer indexes the server's timer table; Deadline is the table's minimum.
type timer uint8

const (
	// timerSessionExpiry: the least recently refreshed session times out.
	timerSessionExpiry timer = iota
	// timerIntroRepeat: an introduction copy was not acknowledged in time.
	timerIntroRepeat
	// timerRelayExpiry: the relay channel whose token expires first ends.
	timerRelayExpiry
	// timerDrain: draining, and sessions are still to be told to move.
	timerDrain
	// timerRooms: room notices wait for transmit room (now), or an empty room is
	// to be forgotten.
	timerRooms
	// timerBindingExpiry: the least recently refreshed other-family binding ends.
	timerBindingExpiry
	timerCount
)

// Labels of the per-pair derivations (see derivePair).
var (
	labelPairKey = []byte("natpass pair key v1")
	labelPairPSK = []byte("natpass pair psk v1")
	labelPairID  = []byte("natpass pair id v1")
)

// Error texts, cut to fit by sendError. Package variables so that passing them to an
// encoder does not allocate.
var (
	textBadTicket   = []byte("bad ticket")
	textExpired     = []byte("ticket expired")
	textUnknownPeer = []byte("unknown peer")
	textNoSession   = []byte("no session: register again")
	textRateLimited = []byte("rate limited")
	textServerFull  = []byte("server full")
	textRelayDenied = []byte("relay denied")
	textNotReady    = []byte("peer not ready: ask again")
	textNoAltSocket = []byte("no socket for that change")
	textSelf        = []byte("cannot introduce a peer to itself")
	textReplaced    = []byte("replaced: another node registered this ID")
	textMoving      = []byte("server draining: register with another")
	textNotHere     = []byte("peer not here")
)

// ErrBadSource: the datagram's source address is invalid or has port 0, so it could
// not be answered.
var ErrBadSource = errors.New("rendezvous: invalid source address")

// NewServer returns a server for cfg, or the first configuration problem.
func NewServer(cfg Config) (*Server, error) {
	deriveStart := cfg.StartDelay == 0
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		rng:          rand.NewChaCha8(cfg.Seed),
		wall:         cfg.WallClock,
		keepaliveS:   uint16(cfg.KeepaliveInterval / time.Second),
		startDelayMs: uint16(cfg.StartDelay / time.Millisecond),
		deriveStart:  deriveStart,
		peers:        newPresence(cfg.MaxPeers),
		sources:      newSourceTable(cfg.MaxSources),
		tickets:      newTicketVerifier(cfg.Secret),
		admission:    newAdmission(cfg.Seed),
		rooms:        newRoomTable(cfg.MaxPeers),
	}
	s.sockets[sockPrimary] = cfg.Primary
	s.sockets[sockAltPort] = cfg.AltPort
	s.sockets[sockAltAddr] = cfg.AltAddr
	s.sockets[sockOtherPrimary] = cfg.OtherPrimary
	s.sockets[sockOtherAltPort] = cfg.OtherAltPort
	s.sockets[sockOtherAltAddr] = cfg.OtherAltAddr

	tokenKey, pairKey := s.sharedKeys(cfg)
	s.tokens = relayframe.NewTokenSigner(tokenKey)
	s.pairMAC = hmac.New(sha256.New, pairKey[:])
	s.id = s.rng.Uint64() | 1 // never 0: 0 means "no server" in relay links
	s.ownSubject = serverSubject(s.id)
	if !cfg.DisableRelay {
		s.relay, err = relayframe.NewTable(relayframe.TableConfig{
			MaxChannels: cfg.MaxRelayChannels,
			MaxPerOwner: cfg.MaxRelayChannelsPerSession,
			MaxOwners:   cfg.MaxPeers,
			OwnerRate:   cfg.RelaySessionRate,
			ServerRate:  cfg.RelayServerRate,
		}, s.rng)
		if err != nil {
			return nil, ErrBadConfigValues
		}
	}
	s.rearm()
	return s, nil
}

// sharedKeys returns the relay-token key and the pair key. Both derive from the
// ticket secret (or, for an InsecureDev cluster, the cluster secret), so every
// server of a cluster verifies the others' tokens and derives the same pair IDs and
// PSKs; a lone InsecureDev server draws them at random.
func (s *Server) sharedKeys(cfg Config) (token, pair [sha256.Size]byte) {
	src := cfg.Secret
	if cfg.InsecureDev {
		src = cfg.ClusterSecret
	}
	if len(src) == 0 {
		s.rng.Read(token[:])
		s.rng.Read(pair[:])
		return token, pair
	}
	mac := hmac.New(sha256.New, src)
	mac.Write(labelPairKey)
	copy(pair[:], mac.Sum(nil))
	return relayframe.DeriveTokenKey(src), pair
}

// ID is the server's random 64-bit identity in its cluster (PROTOCOL.md §12.1).
func (s *Server) ID() uint64 { return s.id }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := s.stats
	st.Sessions = s.peers.len()
	st.Sources = len(s.sources.entries)
	if s.relay != nil {
		st.Relay.Channels = s.relay.Len()
	}
	st.Rooms.Rooms = s.rooms.len()
	st.FamilyBindings = s.peers.nbound
	return st
}

// PeerInfo is what the server holds about a registered peer. The Other* fields are
// its other-family binding (register-family, PROTOCOL.md [SRV-14]); OtherAddr is
// zero without one.
type PeerInfo struct {
	Key      [proto.KeyLen]byte
	Addr     netip.AddrPort // observed (server-reflexive) address
	Local    netip.AddrPort // the server socket it registered on
	NAT      proto.NATBehavior
	LastSeen proto.Instant

	OtherAddr     netip.AddrPort    // observed address in the other IP family
	OtherLocal    netip.AddrPort    // the server socket the binding reached
	OtherNAT      proto.NATBehavior // that family's NAT report (not passed to peers)
	OtherLastSeen proto.Instant
}

// Peer returns the session of a registered peer ID.
func (s *Server) Peer(id []byte) (PeerInfo, bool) {
	if len(id) == 0 || len(id) > proto.MaxPeerIDLen {
		return PeerInfo{}, false
	}
	i, ok := s.peers.byPeer[makePeerID(id)]
	if !ok {
		return PeerInfo{}, false
	}
	ss := &s.peers.sessions[i]
	return PeerInfo{Key: ss.key, Addr: ss.addr, Local: ss.local, NAT: ss.nat, LastSeen: ss.lastSeen,
		OtherAddr: ss.addr2, OtherLocal: ss.local2, OtherNAT: ss.nat2, OtherLastSeen: ss.lastSeen2}, true
}

// Deadline is when HandleTimeout must next be called; proto.Never when no session
// and no room exists.
func (s *Server) Deadline() proto.Instant {
	d := proto.Never
	for _, t := range s.timers {
		d = proto.Min(d, t)
	}
	return d
}

// SetWallClock re-anchors wall time: at now the Unix time is unix seconds.
func (s *Server) SetWallClock(now proto.Instant, unix int64) {
	s.advance(now)
	s.wall = proto.WallClock{At: now, Time: time.Unix(unix, 0)}
	if s.relay != nil {
		s.relay.Reanchor(s.wall.InstantAt)
		s.expireChannels(now)
	}
	s.rearm()
}

// ReportNAT stores the NAT behaviour the node holding cookie measured; later
// introductions pass it to its peers. The wire has no message for this yet
// (PROTOCOL.md §5.10); until it has, the driver or a test calls this.
func (s *Server) ReportNAT(now proto.Instant, cookie proto.Session, nat proto.NATBehavior) error {
	s.advance(now)
	i, ok := s.peers.byCookie[cookie]
	if !ok {
		return ErrNoSession
	}
	if !validNAT(nat) {
		return proto.ErrMalformed
	}
	s.peers.sessions[i].nat = nat
	return nil
}

// validNAT mirrors PROTOCOL.md §4.2, so a stored value always encodes.
func validNAT(n proto.NATBehavior) bool {
	return n.Mapping <= proto.AddressAndPortDependent && n.Filtering <= proto.AddressAndPortDependent &&
		n.Allocation <= proto.AllocationRandom && n.Hairpin <= proto.HairpinNo &&
		(n.PortDelta == 0 || n.Allocation == proto.AllocationSequential)
}

// HandleTimeout expires the sessions and empty rooms whose time has come and sends
// what waited for transmit room (introduction repeats, drain and room notices).
func (s *Server) HandleTimeout(now proto.Instant) {
	s.advance(now)
	s.repeatIntroductions(now)
	s.sendDrainNotices()
	s.sweepRoomMembers(now)
	s.sendRoomNotices()
	s.rearm()
}

// PollTransmit returns the next datagram to send. Its Payload is copied into buf,
// which must hold MaxDatagramLen bytes (a shorter buf is caller misuse and panics).
func (s *Server) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	slot := s.tx.pop()
	if slot == nil {
		return proto.Transmit{}, false
	}
	if len(buf) < slot.n {
		panic("rendezvous: PollTransmit buffer shorter than MaxDatagramLen")
	}
	n := copy(buf, slot.buf[:slot.n])
	s.stats.DatagramsOut++
	s.stats.BytesOut += uint64(n)
	return proto.Transmit{From: slot.from, To: slot.to, Payload: buf[:n]}, true
}

// PollEvent returns the next event.
func (s *Server) PollEvent() (Event, bool) { return s.events.pop() }

// HandleDatagram processes one datagram p that arrived on the local socket local
// from the remote address from. p is only read during the call.
func (s *Server) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	s.advance(now)
	defer s.rearm()
	s.stats.DatagramsIn++
	s.stats.BytesIn += uint64(len(p))
	sock := s.socketIndex(local)
	if sock < 0 {
		s.stats.DropUnknownSocket++
		return ErrUnknownSocket
	}
	if !from.IsValid() || from.Port() == 0 {
		s.stats.DropBadSource++
		return ErrBadSource
	}
	switch proto.Classify(p) {
	case proto.ClassSTUN:
		return s.handleSTUN(now, sock, from, p)
	case proto.ClassNatpass:
	default:
		s.stats.DropNotNatpass++
		return proto.ErrNotNatpass
	}
	h, _, err := proto.ParseHeader(p)
	if err != nil {
		if errors.Is(err, proto.ErrUnknownVersion) {
			s.stats.DropUnknownVersion++
		} else {
			s.stats.DropMalformed++
		}
		return err
	}
	switch h.Type {
	case proto.TypeRegister:
		return s.handleRegister(now, sock, from, p)
	case proto.TypeRegisterFamily:
		return s.handleRegisterFamily(now, sock, from, p)
	case proto.TypeKeepalive:
		return s.handleKeepalive(now, sock, from, p)
	case proto.TypeNATProbe:
		return s.handleNATProbe(now, sock, from, p)
	case proto.TypeIntroduceRequest:
		return s.handleIntroduce(now, sock, from, p)
	case proto.TypeIntroductionAck:
		return s.handleIntroductionAck(now, sock, from, p)
	case proto.TypeRelaySend:
		return s.handleRelaySend(now, sock, from, p)
	case proto.TypeRelayAllocate:
		return s.handleRelayAllocate(now, sock, from, p)
	case proto.TypeRoomJoin:
		return s.handleRoomJoin(now, sock, from, p)
	case proto.TypeRoomLeave:
		return s.handleRoomLeave(now, sock, from, p)
	}
	if h.Type >= proto.TypeRelayFirst && h.Type <= proto.TypeRelayLast {
		s.stats.DropRelay++
		return ErrNotForServer
	}
	s.stats.DropNotForServer++
	return ErrNotForServer
}

// advance moves the clock to now and ends the sessions whose timeout has passed, so
// that every input sees a table with no expired session in it.
func (s *Server) advance(now proto.Instant) {
	if now < s.now {
		panic("rendezvous: time went backwards")
	}
	s.now = now
	// Bounded by the table size: each iteration removes one session.
	for i := s.peers.oldest(); i != nilSlot; i = s.peers.oldest() {
		if now < s.peers.sessions[i].lastSeen.Add(s.cfg.SessionTimeout) {
			break
		}
		s.expire(i, ExpireTimeout)
	}
	s.expireBindings(now)
	s.expireChannels(now)
	s.expireRooms(now)
}

func (s *Server) expire(i int32, why ExpireReason) {
	s.stats.Expired++
	s.pushEvent(EventExpired{Peer: s.peers.sessions[i].peer, Reason: why})
	s.endSession(i)
}

// endSession removes session i, the relay channels it holds (channels die with
// their sessions, PROTOCOL.md §8.4) and its room memberships ([ROOM-3]).
func (s *Server) endSession(i int32) {
	s.leaveAllRooms(i)
	if s.relay != nil {
		s.stats.Relay.ChannelsClosed += uint64(s.relay.DropOwner(i))
	}
	if s.cfg.Cluster {
		s.interest.mark(s.peers.sessions[i].peer)
	}
	s.peers.remove(i)
}

// rearm recomputes the timer table.
func (s *Server) rearm() {
	s.timers[timerSessionExpiry] = proto.Never
	if i := s.peers.oldest(); i != nilSlot {
		s.timers[timerSessionExpiry] = s.peers.sessions[i].lastSeen.Add(s.cfg.SessionTimeout)
	}
	s.timers[timerIntroRepeat] = s.pending.deadline()
	s.timers[timerRelayExpiry] = proto.Never
	if s.relay != nil {
		s.timers[timerRelayExpiry] = s.relay.Deadline()
	}
	s.timers[timerDrain] = s.drainDeadline()
	s.timers[timerRooms] = s.roomDeadline()
	s.timers[timerBindingExpiry] = proto.Never
	if i := s.peers.oldestBound(); i != nilSlot {
		s.timers[timerBindingExpiry] = s.peers.sessions[i].lastSeen2.Add(s.cfg.SessionTimeout)
	}
}

func (s *Server) pushEvent(e Event) {
	if !s.events.push(e) {
		s.stats.EventsDropped++
	}
}

func sameAddrPort(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap().WithZone("") == b.Addr().Unmap().WithZone("")
}

func (s *Server) socketIndex(local netip.AddrPort) int {
	for i, a := range s.sockets {
		if a.IsValid() && sameAddrPort(a, local) {
			return i
		}
	}
	return -1
}

// chooseSocket picks the socket a nat-probe reply leaves from (PROTOCOL.md §5.5 and
// §5.10). ChangePort alone needs the same IP with another port, because that is
// what tells address-dependent from address-and-port-dependent filtering (RFC 5780
// §4.4). ChangeAddress needs another IP; whether the port also differs does not
// change what the node learns (a filter that drops another IP drops it on every
// port), so the exact match is preferred but not required.
func (s *Server) chooseSocket(arrival int, change uint8) (int, bool) {
	if change == 0 {
		return arrival, true
	}
	a := s.sockets[arrival]
	fallback := -1
	for i, c := range s.sockets {
		// A reply from the other IP family would tell the node nothing about the
		// NAT of the family it probes (PROTOCOL.md §5.12).
		if !c.IsValid() || i == arrival || isIPv4(c) != isIPv4(a) {
			continue
		}
		sameIP := c.Addr().Unmap() == a.Addr().Unmap()
		samePort := c.Port() == a.Port()
		switch {
		case change&proto.ChangeAddress == 0:
			if sameIP && !samePort {
				return i, true
			}
		case !sameIP:
			if samePort == (change&proto.ChangePort == 0) {
				return i, true
			}
			if fallback < 0 {
				fallback = i
			}
		}
	}
	return fallback, fallback >= 0
}

// --- replies -----------------------------------------------------------------------

// unlimited is the reply limit for a sender that proved its session cookie.
const unlimited = -1

// commitReply queues b, the buffer from s.tx.begin grown by one message, from socket
// sock to to. limit is the size of the request when the sender is unauthenticated:
// this is the one place that enforces "no reply larger than the request", so no
// handler can forget it.
func (s *Server) commitReply(sock int, to netip.AddrPort, b []byte, limit int) error {
	if limit != unlimited && len(b) > limit {
		s.stats.DropAmplification++
		return ErrAmplification
	}
	s.tx.commit(s.sockets[sock], to, b)
	return nil
}

// sendError answers txid with code, its text cut so the reply fits in limit bytes.
func (s *Server) sendError(sock int, to netip.AddrPort, txid uint64, code proto.ErrorCode, text []byte, limit int) error {
	b := s.tx.begin()
	if b == nil {
		s.stats.DropQueueFull++
		return ErrQueueFull
	}
	n := min(len(text), proto.MaxErrorTextLen)
	if limit != unlimited {
		n = max(0, min(n, limit-proto.ErrorLen(0)))
	}
	m := proto.Error{TxID: txid, Code: code, Text: text[:n]}
	return s.commitReply(sock, to, m.Append(b), limit)
}

// refuseRate handles a request a bucket refused: an error-6 notice at most once per
// noticeInterval, silence otherwise.
func (s *Server) refuseRate(now proto.Instant, l *limiter, sock int, to netip.AddrPort, txid uint64, limit int) error {
	s.stats.DropRateLimited++
	if l.refuse(now) && (limit == unlimited || s.unauth.allow(now, s.cfg.UnauthRate)) {
		s.stats.RateLimitNotices++
		_ = s.sendError(sock, to, txid, proto.CodeRateLimited, textRateLimited, limit)
	}
	return ErrRateLimited
}

// admitNoSession charges a request with an unknown cookie to the server-wide
// no-session budget and nothing else: no per-source entry, no MAC. After a restart
// every node's first keepalive lands here, thousands of them from one carrier-grade
// NAT address, and each must hear error 5 to re-register at once rather than after
// three missed keepalives; a per-source bucket would answer ten a second. The answer
// is no larger than the request ([AMP-1]), so a spoofed flood of such requests buys
// no amplification, and its own budget keeps it from spending the one retry and
// registered answers draw on (UnauthRate).
func (s *Server) admitNoSession(now proto.Instant) error {
	return s.chargeBudget(now, &s.noSession, s.cfg.NoSessionRate, &s.stats.DropNoSessionBusy)
}

// chargeBudget charges one answer to server-wide budget b (rate r; a refusal
// counted in busy) and makes sure the answer has transmit room.
func (s *Server) chargeBudget(now proto.Instant, b *gcra, r Rate, busy *uint64) error {
	if !b.allow(now, r) {
		*busy++
		return ErrBusy
	}
	if s.tx.free() == 0 {
		s.stats.DropQueueFull++
		return ErrQueueFull
	}
	return nil
}

// admitUnauthenticated charges a STUN request (the one request without a session
// that is not a register) to its source bucket and to the server-wide budget; a
// refused one is dropped without a notice, as STUN senders get none. A nil error
// means: do the work and reply (within [STUN-3]'s size).
func (s *Server) admitUnauthenticated(now proto.Instant, from netip.AddrPort) error {
	l, evicted := s.sources.get(from)
	if evicted {
		s.stats.SourceEvictions++
	}
	if !l.bucket.allow(now, s.cfg.SourceRate) {
		s.stats.DropRateLimited++
		return ErrRateLimited
	}
	if !s.unauth.allow(now, s.cfg.UnauthRate) {
		s.stats.DropBusy++
		return ErrBusy
	}
	if s.tx.free() == 0 {
		s.stats.DropQueueFull++
		return ErrQueueFull
	}
	return nil
}
