package keyx

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Limits of the Endpoint.
const (
	// InitiationMinInterval: at most one initiation per peer is answered, or sent, in
	// this interval (wireguard-go's HandshakeInitationRate, 1 s / 50), so a recorded
	// stream of genuine initiations cannot make the responder do DH at line rate.
	InitiationMinInterval = 20 * time.Millisecond
	// DefaultLoadThreshold: initiations per second (that pass mac1) beyond which the
	// endpoint is under load and answers initiations without a valid mac2 with a
	// cookie reply instead of doing any Diffie-Hellman.
	DefaultLoadThreshold = 128
	// underLoadLinger: once under load, stay so this long after the last excess
	// initiation (wireguard-go's UnderLoadAfterTime).
	underLoadLinger = time.Second
	// maxTransmits bounds the outgoing queue. Every Handle* call and command queues at
	// most one datagram, and the caller drains after each, so the bound is never met
	// in correct use; past it datagrams are dropped and counted.
	maxTransmits = 8
	// maxIndexDraws bounds the attempts to draw an unused random session index.
	maxIndexDraws = 16
)

// ErrNoIndex: no unused session index was drawn in maxIndexDraws attempts (the table
// is absurdly full or the random source is broken).
var ErrNoIndex = errors.New("keyx: no free session index")

// Config configures an Endpoint.
type Config struct {
	// PrivateKey is the node's static key (DESIGN §4).
	PrivateKey PrivateKey
	// Rand supplies ephemeral keys, session indexes, cookie secrets and cookie nonces:
	// crypto/rand in a driver, a seeded stream in the simulator and tests.
	Rand io.Reader
	// LoadThreshold is initiations per second before the endpoint demands cookies;
	// 0 means DefaultLoadThreshold.
	LoadThreshold int
	// RateTableSize bounds the per-source rate limiter; 0 means DefaultRateTableSize.
	RateTableSize int
	// Suites are the cipher suites the endpoint accepts as responder and may propose
	// as initiator; ChaChaPoly is always among them, and bits of suites this version
	// does not know are ignored. 0 means DefaultSuites(AESHardware()): AES-GCM only
	// where the CPU has AES hardware. This is what a node advertises when it
	// registers (PROTOCOL.md §6.1).
	Suites SuiteSet
	// AESHardware reports whether the CPU has AES hardware when Suites is 0; nil
	// means HasAESHardware. Tests and the simulator inject it (or set Suites), so a
	// run does not depend on the machine.
	AESHardware func() bool
}

// suites resolves Config.Suites and its default.
func (cfg *Config) suites() SuiteSet {
	if cfg.Suites == 0 {
		hw := HasAESHardware
		if cfg.AESHardware != nil {
			hw = cfg.AESHardware
		}
		return DefaultSuites(hw())
	}
	return cfg.Suites&knownSuites | proto.SuitesOf(SuiteChaChaPoly)
}

// Event is something the owner of an Endpoint must learn: one of EventEstablished,
// EventRekey, EventHandshakeTimeout.
type Event interface{ isEvent() }

// EventEstablished: Session is now the peer's current session, the one to Seal with.
// The initiator gets it when the response arrives; the responder when the first
// transport packet from the initiator has opened (key confirmation).
type EventEstablished struct {
	Peer    PublicKey
	Session *Session
}

// EventRekey: the peer's current session is old enough that a new handshake is due
// (RekeyAfterTime for its initiator, ResponderRekeyAfterTime for its responder). The
// owner calls Initiate on the path it prefers; the old session keeps working until
// RejectAfterTime.
type EventRekey struct{ Peer PublicKey }

// EventHandshakeTimeout: an initiation got no response within RekeyTimeout and was
// forgotten. The owner may Initiate again (WireGuard retries for 90 s). Suite is the
// suite it proposed; after an AES-GCM timeout the peer's next initiations fall back to
// ChaChaPoly (see SetPeerSuites).
type EventHandshakeTimeout struct {
	Peer  PublicKey
	Suite Suite
}

func (EventEstablished) isEvent()      {}
func (EventRekey) isEvent()            {}
func (EventHandshakeTimeout) isEvent() {}

// Stats counts what the endpoint did that an operator or a test wants to see.
type Stats struct {
	DHOps             uint64 // X25519 operations for handshakes (see Identity.DHOps)
	CookieRepliesSent uint64
	TransmitsDropped  uint64 // queue overflow: the caller did not drain
}

// Endpoint is one node's handshake machinery: its static identity, the set of peers
// it accepts (by static public key, with an optional pre-shared key each), their
// handshakes and sessions, the table of receiver indexes, and the guard that protects
// the responder (mac1 before any Diffie-Hellman, cookie replies under load, a per-
// source rate limit, timestamps that must grow, one initiation per peer per 20 ms).
//
// Call contract (DESIGN §2):
//   - Getters: PublicKey, Suites, Current, Stats, Deadline.
//   - Inputs: HandleDatagram for handshake messages (initiation, response, cookie
//     reply) and Open for transport data; HandleTimeout when Deadline has passed
//     (spurious calls are no-ops).
//   - Commands: AddPeer, SetPeerSuites, RemovePeer, Initiate.
//   - Outputs: PollTransmit, PollEvent.
//
// Drain rule: after any Handle*, Open or command, call PollTransmit until false, then
// PollEvent until false, then read Deadline. now never decreases; a decrease is a
// caller bug and panics. Bad datagrams return a sentinel error and change no session,
// handshake or peer state (the rate and load meters count them, by design).
//
// The Endpoint never learns paths: replies go to the source of what they answer, and
// initiations to the address Initiate names. Sessions are found by receiver index, so
// the owner may move a session between paths freely.
type Endpoint struct {
	id      *Identity
	rand    io.Reader
	suites  SuiteSet // accepted as responder, proposable as initiator
	now     proto.Instant
	peers   map[PublicKey]*peer
	order   []*peer // insertion order: timers and events walk this, never the map
	indexes map[uint32]indexEntry
	// The last hits of Current and Open: a bulk flow asks for the same peer and the
	// same receiver index packet after packet, and comparing them is cheaper than
	// hashing a 32-byte key or probing the map (issue 18). setIndex and freeIndex keep
	// lastIndex true; RemovePeer clears lastPeer.
	lastPub        PublicKey
	lastPeer       *peer // nil: no hit cached
	lastIndex      uint32
	lastIndexEntry indexEntry // peer nil: no hit cached

	cookies       cookieIssuer
	limiter       rateLimiter
	loadThreshold int
	loadStart     proto.Instant // start of the current one-second count
	loadCount     int
	loadUntil     proto.Instant // under load before this instant

	out      [maxTransmits]queuedTransmit
	outHead  int
	outLen   int
	events   []Event
	eventPos int
	stats    Stats
}

type queuedTransmit struct {
	from, to netip.AddrPort
	n        int
	payload  [proto.InitiationLen]byte
}

// indexEntry is what a receiver index names: a pending initiation of peer (session
// nil) or one of its sessions.
type indexEntry struct {
	peer    *peer
	session *Session
}

// peer is the state kept per allowed static key.
type peer struct {
	key *PeerKey
	// suites the peer advertised (SetPeerSuites; ChaChaPoly alone until then), and
	// whether an AES-GCM initiation to it timed out since, which makes Initiate fall
	// back to ChaChaPoly.
	suites      SuiteSet
	aesTimedOut bool

	// Responder side: the greatest timestamp answered and when (whitepaper §5.1).
	lastTimestamp  Timestamp
	lastAnswered   proto.Instant
	answeredBefore bool

	// Initiator side: the one initiation in flight.
	pending          bool
	hs               Handshake
	pendingIndex     uint32
	pendingSent      proto.Instant
	pendingFrom      netip.AddrPort
	pendingTo        netip.AddrPort
	pendingMsg       [proto.InitiationLen]byte
	resentWithCookie bool
	sentBefore       bool
	lastSent         proto.Instant
	lastSentStamp    Timestamp

	// The latest cookie the peer gave us, for mac2 on messages to it.
	cookie     [proto.CookieLen]byte
	cookieAt   proto.Instant
	haveCookie bool

	// Sessions as in whitepaper §6: current sends; previous still receives packets in
	// flight; next is a responder's session awaiting its first packet.
	current, previous, next *Session
	rekeyAnnounced          bool // EventRekey already sent for current
}

// New returns an Endpoint for cfg at time now.
func New(cfg Config, now proto.Instant) *Endpoint {
	if cfg.Rand == nil {
		panic("keyx: Config.Rand is nil")
	}
	id := NewIdentity(cfg.PrivateKey)
	e := &Endpoint{
		id:            id,
		rand:          cfg.Rand,
		suites:        cfg.suites(),
		now:           now,
		peers:         map[PublicKey]*peer{},
		indexes:       map[uint32]indexEntry{},
		cookies:       newCookieIssuer(id),
		loadThreshold: cfg.LoadThreshold,
		loadStart:     now,
	}
	if e.loadThreshold <= 0 {
		e.loadThreshold = DefaultLoadThreshold
	}
	size := cfg.RateTableSize
	if size <= 0 {
		size = DefaultRateTableSize
	}
	e.limiter = newRateLimiter(size)
	return e
}

// PublicKey returns the node's static public key.
func (e *Endpoint) PublicKey() PublicKey { return e.id.public }

// Suites returns the cipher suites the endpoint accepts: what its node advertises in
// registration (PROTOCOL.md §5.1).
func (e *Endpoint) Suites() SuiteSet { return e.suites }

// Stats returns the counters.
func (e *Endpoint) Stats() Stats {
	s := e.stats
	s.DHOps = e.id.DHOps
	return s
}

func (e *Endpoint) advance(now proto.Instant) {
	if now < e.now {
		panic("keyx: time went backwards")
	}
	e.now = now
}

// AddPeer allows handshakes with the holder of pub, with psk as the pair's pre-shared
// key (zero for none). Adding a known peer replaces its PSK for future handshakes.
// It fails with ErrLowOrder for a low-order key.
func (e *Endpoint) AddPeer(pub PublicKey, psk PresharedKey) error {
	k, err := e.id.NewPeerKey(pub, psk)
	if err != nil {
		return err
	}
	if p, ok := e.peers[pub]; ok {
		p.key = k
		return nil
	}
	p := &peer{key: k, suites: proto.SuitesOf(SuiteChaChaPoly)}
	e.peers[pub] = p
	e.order = append(e.order, p)
	return nil
}

// SetPeerSuites records the cipher suites pub advertised (the introduction carries
// them, PROTOCOL.md §5.8). Initiate then proposes AES-GCM when both sides have it and
// ChaChaPoly otherwise. It also ends a fallback: after an AES-GCM initiation to pub
// timed out, initiations to it use ChaChaPoly until the next SetPeerSuites. It fails
// with ErrUnknownPeer for a peer not added.
func (e *Endpoint) SetPeerSuites(pub PublicKey, suites SuiteSet) error {
	p, ok := e.peers[pub]
	if !ok {
		return ErrUnknownPeer
	}
	p.suites = suites | proto.SuitesOf(SuiteChaChaPoly)
	p.aesTimedOut = false
	return nil
}

// proposal is the suite of the next initiation to p.
func (e *Endpoint) proposal(p *peer) Suite {
	both := e.suites & p.suites
	if p.aesTimedOut {
		both &^= proto.SuitesOf(SuiteAESGCM)
	}
	return preferred(both)
}

// RemovePeer forgets pub: its handshake and sessions are erased and their indexes
// freed.
func (e *Endpoint) RemovePeer(pub PublicKey) {
	p, ok := e.peers[pub]
	if !ok {
		return
	}
	e.dropPending(p)
	for _, s := range []**Session{&p.current, &p.previous, &p.next} {
		e.dropSession(s)
	}
	delete(e.peers, pub)
	if e.lastPeer == p {
		e.lastPeer = nil
	}
	for i, q := range e.order {
		if q == p {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
}

// Current returns the session to Seal with for pub, or nil if there is none. It may be
// past RejectAfterTime, in which case Seal says so.
func (e *Endpoint) Current(pub PublicKey) *Session {
	if e.lastPeer != nil && e.lastPub == pub {
		return e.lastPeer.current
	}
	if p, ok := e.peers[pub]; ok {
		e.lastPub, e.lastPeer = pub, p
		return p.current
	}
	return nil
}

// Initiate starts a handshake with pub: it queues an initiation from local to to, in
// AES-GCM if both this endpoint and pub's advertised suites have it and no AES-GCM
// initiation to pub has timed out since SetPeerSuites, in ChaChaPoly otherwise.
// wall is the wall-clock time the TAI64N timestamp carries. Any initiation already in
// flight to pub is forgotten. It fails with ErrUnknownPeer, with ErrRateLimited within
// InitiationMinInterval of the previous initiation to pub (the peer would drop it), or
// if Rand fails.
func (e *Endpoint) Initiate(now proto.Instant, wall time.Time, pub PublicKey, local, to netip.AddrPort) error {
	e.advance(now)
	p, ok := e.peers[pub]
	if !ok {
		return ErrUnknownPeer
	}
	if p.sentBefore && now.Before(p.lastSent.Add(InitiationMinInterval)) {
		return ErrRateLimited
	}
	ts := TAI64N(wall)
	if p.sentBefore && !ts.After(p.lastSentStamp) {
		ts = p.lastSentStamp.next() // the responder demands strictly growing stamps
	}
	index, err := e.newIndex()
	if err != nil {
		return err
	}
	var hs Handshake
	m := proto.Initiation{Sender: index, Suite: e.proposal(p)}
	if err := hs.CreateInitiation(e.id, p.key, e.rand, ts, &m); err != nil {
		return err
	}
	e.dropPending(p)
	p.pending, p.hs, p.pendingIndex = true, hs, index
	p.pendingSent, p.pendingFrom, p.pendingTo = now, local, to
	p.resentWithCookie = false
	p.sentBefore, p.lastSent, p.lastSentStamp = true, now, ts
	m.Append(p.pendingMsg[:0])
	writeMACs(p.pendingMsg[:], &p.key.mac1Key, p.freshCookie(now))
	e.setIndex(index, indexEntry{peer: p})
	e.queue(local, to, p.pendingMsg[:])
	return nil
}

// freshCookie returns the peer's cookie if it is young enough to use for mac2.
func (p *peer) freshCookie(now proto.Instant) *[proto.CookieLen]byte {
	if p.haveCookie && now.Before(p.cookieAt.Add(cookieLifetime)) {
		return &p.cookie
	}
	return nil
}

// newIndex draws a random receiver index no session or handshake uses. 0 is never
// drawn so that a zeroed field can never name a live session.
func (e *Endpoint) newIndex() (uint32, error) {
	var b [4]byte
	for range maxIndexDraws {
		if _, err := io.ReadFull(e.rand, b[:]); err != nil {
			return 0, err
		}
		i := binary.BigEndian.Uint32(b[:])
		if _, used := e.indexes[i]; i != 0 && !used {
			return i, nil
		}
	}
	return 0, ErrNoIndex
}

// HandleDatagram takes a handshake message (initiation, response or cookie reply)
// that arrived on local from from. Transport data goes to Open instead; other types
// return proto.ErrWrongType.
func (e *Endpoint) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	e.advance(now)
	h, _, err := proto.ParseHeader(p)
	if err != nil {
		return err
	}
	switch h.Type {
	case proto.TypeInitiation, proto.TypeInitiationAESGCM:
		return e.handleInitiation(now, local, from, p)
	case proto.TypeResponse:
		return e.handleResponse(now, p)
	case proto.TypeCookieReply:
		return e.handleCookieReply(now, p)
	}
	return proto.ErrWrongType
}

// underLoad counts an initiation that passed mac1 and reports whether the endpoint is
// under load.
func (e *Endpoint) underLoad(now proto.Instant) bool {
	if !now.Before(e.loadStart.Add(time.Second)) {
		e.loadStart, e.loadCount = now, 0
	}
	e.loadCount++
	if e.loadCount > e.loadThreshold {
		e.loadUntil = now.Add(underLoadLinger)
	}
	return now.Before(e.loadUntil)
}

func (e *Endpoint) handleInitiation(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	var m proto.Initiation
	if err := m.Parse(p); err != nil {
		return err
	}
	// A suite we do not accept costs nothing and gets nothing: the initiator's
	// handshake times out and it falls back to ChaChaPoly.
	if !e.suites.Has(m.Suite) {
		return ErrSuite
	}
	// mac1 first: it costs one BLAKE2s and proves the sender knows our public key.
	if !checkMAC1(p, &e.id.mac1Key) {
		return ErrBadMAC
	}
	if e.underLoad(now) {
		if !e.cookies.checkMAC2(now, from, p) {
			// No Diffie-Hellman for a sender that has not shown it receives at its
			// address: answer with a cookie, which is smaller than the initiation.
			var cr proto.CookieReply
			if err := e.cookies.reply(now, e.rand, from, m.Sender, m.MAC1[:], &cr); err != nil {
				return err
			}
			e.stats.CookieRepliesSent++
			var buf [proto.CookieReplyLen]byte
			e.queue(local, from, cr.Append(buf[:0]))
			return nil
		}
		if !e.limiter.allow(now, from.Addr()) {
			return ErrRateLimited
		}
	}
	var hs Handshake
	defer hs.Erase() // on every path: the keys are either taken or not needed
	ts, err := hs.ConsumeInitiation(e.id, &m, e.lookup)
	if err != nil {
		return err
	}
	pr := e.peers[hs.Peer().public]
	if pr.answeredBefore {
		if !ts.After(pr.lastTimestamp) {
			return ErrReplay
		}
		if now.Before(pr.lastAnswered.Add(InitiationMinInterval)) {
			return ErrRateLimited
		}
	}
	index, err := e.newIndex()
	if err != nil {
		return err
	}
	resp := proto.Response{Sender: index, Receiver: m.Sender}
	if err := hs.CreateResponse(e.id, e.rand, &resp); err != nil {
		return err
	}
	// Every check passed: from here on the state changes.
	suite := hs.Suite()
	send, recv := hs.TransportKeys()
	pr.lastTimestamp, pr.lastAnswered, pr.answeredBefore = ts, now, true
	s := newSession(now, pr.key.public, index, m.Sender, false, suite, &send, &recv)
	e.dropSession(&pr.next)
	pr.next = s
	e.setIndex(index, indexEntry{peer: pr, session: s})
	var buf [proto.ResponseLen]byte
	msg := resp.Append(buf[:0])
	writeMACs(msg, &pr.key.mac1Key, pr.freshCookie(now))
	e.queue(local, from, msg)
	return nil
}

func (e *Endpoint) lookup(pub PublicKey) *PeerKey {
	if p, ok := e.peers[pub]; ok {
		return p.key
	}
	return nil
}

// pendingFor returns the peer whose initiation in flight has index i.
func (e *Endpoint) pendingFor(i uint32) (*peer, error) {
	ent, ok := e.indexes[i]
	if !ok || ent.session != nil || !ent.peer.pending || ent.peer.pendingIndex != i {
		return nil, ErrUnknownIndex
	}
	return ent.peer, nil
}

func (e *Endpoint) handleResponse(now proto.Instant, p []byte) error {
	var m proto.Response
	if err := m.Parse(p); err != nil {
		return err
	}
	// A response can only answer an initiation we sent, found by its index before
	// any Diffie-Hellman; a guessed index still has to pass mac1.
	pr, err := e.pendingFor(m.Receiver)
	if err != nil {
		return err
	}
	if !checkMAC1(p, &e.id.mac1Key) {
		return ErrBadMAC
	}
	hs := pr.hs // a copy: a failed response leaves the initiation in flight as it was
	defer hs.Erase()
	if err := hs.ConsumeResponse(e.id, &m); err != nil {
		return err
	}
	suite := hs.Suite()
	send, recv := hs.TransportKeys()
	s := newSession(now, pr.key.public, m.Receiver, m.Sender, true, suite, &send, &recv)
	pr.hs.Erase()
	pr.pending = false
	e.setIndex(m.Receiver, indexEntry{peer: pr, session: s})
	e.promote(pr, s)
	return nil
}

// promote makes s the peer's current session and announces it.
func (e *Endpoint) promote(pr *peer, s *Session) {
	e.dropSession(&pr.previous)
	pr.previous, pr.current = pr.current, s
	pr.rekeyAnnounced = false
	e.events = append(e.events, EventEstablished{Peer: pr.key.public, Session: s})
}

func (e *Endpoint) handleCookieReply(now proto.Instant, p []byte) error {
	var m proto.CookieReply
	if err := m.Parse(p); err != nil {
		return err
	}
	pr, err := e.pendingFor(m.Receiver)
	if err != nil {
		return err
	}
	mac1 := pr.pendingMsg[proto.InitiationMAC1Offset:proto.InitiationMAC2Offset]
	tau, err := openCookieReply(pr.key, &m, mac1)
	if err != nil {
		return err
	}
	pr.cookie, pr.cookieAt, pr.haveCookie = tau, now, true
	// Send the same initiation again, now with mac2, so the peer completes after one
	// cookie round trip. Only once per initiation: a replayed cookie reply must not
	// make us send anything.
	if !pr.resentWithCookie {
		pr.resentWithCookie = true
		writeMACs(pr.pendingMsg[:], &pr.key.mac1Key, &pr.cookie)
		e.queue(pr.pendingFrom, pr.pendingTo, pr.pendingMsg[:])
	}
	return nil
}

// Open authenticates and decrypts a transport data packet into dst, finding the
// session by receiver index. It returns the session (so the owner knows the peer) and
// the extended dst. A responder's new session becomes current at its first packet,
// which queues an EventEstablished. Errors are those of Session.Open, plus
// ErrUnknownIndex; none changes any state.
func (e *Endpoint) Open(now proto.Instant, dst, p []byte) (*Session, []byte, error) {
	e.advance(now)
	var m proto.TransportData
	if err := m.Parse(p); err != nil {
		return nil, dst, err
	}
	ent, ok := e.lastIndexEntry, e.lastIndexEntry.peer != nil && e.lastIndex == m.Receiver
	if !ok {
		if ent, ok = e.indexes[m.Receiver]; ok {
			e.lastIndex, e.lastIndexEntry = m.Receiver, ent
		}
	}
	if !ok || ent.session == nil {
		return nil, dst, ErrUnknownIndex
	}
	out, err := ent.session.open(now, dst, &m)
	if err != nil {
		return nil, dst, err
	}
	if pr := ent.peer; pr.next == ent.session {
		pr.next = nil
		e.promote(pr, ent.session)
	}
	return ent.session, out, nil
}

// setIndex makes index name ent. Every change to the index table goes through setIndex
// and freeIndex, which keep Open's cached hit true.
func (e *Endpoint) setIndex(index uint32, ent indexEntry) {
	e.indexes[index] = ent
	if e.lastIndexEntry.peer != nil && e.lastIndex == index {
		e.lastIndexEntry = ent
	}
}

// freeIndex makes index name nothing.
func (e *Endpoint) freeIndex(index uint32) {
	delete(e.indexes, index)
	if e.lastIndex == index {
		e.lastIndexEntry = indexEntry{}
	}
}

// dropPending forgets the peer's initiation in flight.
func (e *Endpoint) dropPending(p *peer) {
	if !p.pending {
		return
	}
	e.freeIndex(p.pendingIndex)
	p.hs.Erase()
	p.pending = false
}

// dropSession erases *slot and frees its index.
func (e *Endpoint) dropSession(slot **Session) {
	if s := *slot; s != nil {
		s.erase()
		e.freeIndex(s.localIndex)
		*slot = nil
	}
}

func (e *Endpoint) queue(from, to netip.AddrPort, payload []byte) {
	if e.outLen == maxTransmits {
		e.stats.TransmitsDropped++
		return
	}
	q := &e.out[(e.outHead+e.outLen)%maxTransmits]
	q.from, q.to = from, to
	q.n = copy(q.payload[:], payload)
	e.outLen++
}

// TransmitPending reports whether PollTransmit has a datagram to return. A caller
// that asks for every datagram it sends checks this first: with none pending, as
// nearly always, it costs less than PollTransmit's zero Transmit.
func (e *Endpoint) TransmitPending() bool { return e.outLen > 0 }

// PollTransmit copies the next queued datagram into buf (which must hold
// proto.InitiationLen bytes) and returns it.
func (e *Endpoint) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if e.outLen == 0 {
		return proto.Transmit{}, false
	}
	q := &e.out[e.outHead]
	if len(buf) < q.n {
		panic("keyx: PollTransmit buffer too small")
	}
	e.outHead = (e.outHead + 1) % maxTransmits
	e.outLen--
	n := copy(buf, q.payload[:q.n])
	return proto.Transmit{From: q.from, To: q.to, Payload: buf[:n]}, true
}

// PollEvent returns the next event. Events are queued at most one per Handle*, Open
// or command call and at most two per peer per HandleTimeout, and the drain rule
// empties the queue after each call.
func (e *Endpoint) PollEvent() (Event, bool) {
	if e.eventPos == len(e.events) {
		e.events, e.eventPos = e.events[:0], 0
		return nil, false
	}
	ev := e.events[e.eventPos]
	e.events[e.eventPos] = nil
	e.eventPos++
	return ev, true
}

// timer names the entries of a peer's timer table.
type timer uint8

const (
	timerHandshake timer = iota // the initiation in flight is given up (RekeyTimeout)
	timerRekey                  // EventRekey for the current session
	timerZero                   // the earliest session to erase (ZeroAfterTime)
	numTimers
)

// timers returns the peer's timer table; the Endpoint's deadline is the minimum over
// every peer's table.
func (p *peer) timers() (t [numTimers]proto.Instant) {
	t[timerHandshake], t[timerRekey], t[timerZero] = proto.Never, proto.Never, proto.Never
	if p.pending {
		t[timerHandshake] = p.pendingSent.Add(RekeyTimeout)
	}
	if p.current != nil && !p.rekeyAnnounced {
		t[timerRekey] = p.current.rekeyAt()
	}
	for _, s := range []*Session{p.current, p.previous, p.next} {
		if s != nil {
			t[timerZero] = proto.Min(t[timerZero], s.Deadline())
		}
	}
	return t
}

// Deadline is the earliest instant HandleTimeout has work, or proto.Never.
func (e *Endpoint) Deadline() proto.Instant {
	d := proto.Never
	for _, p := range e.order {
		for _, t := range p.timers() {
			d = proto.Min(d, t)
		}
	}
	return d
}

// HandleTimeout runs every timer that has expired by now.
func (e *Endpoint) HandleTimeout(now proto.Instant) {
	e.advance(now)
	for _, p := range e.order {
		t := p.timers()
		if !now.Before(t[timerHandshake]) {
			suite := p.hs.Suite()
			p.aesTimedOut = p.aesTimedOut || suite == SuiteAESGCM
			e.dropPending(p)
			e.events = append(e.events, EventHandshakeTimeout{Peer: p.key.public, Suite: suite})
		}
		if !now.Before(t[timerRekey]) {
			p.rekeyAnnounced = true
			e.events = append(e.events, EventRekey{Peer: p.key.public})
		}
		if !now.Before(t[timerZero]) {
			for _, slot := range []**Session{&p.current, &p.previous, &p.next} {
				if s := *slot; s != nil && !now.Before(s.Deadline()) {
					e.dropSession(slot)
				}
			}
		}
	}
}
