package proto

import (
	"encoding/binary"
	"net/netip"
)

// Bounds of signaling fields (PROTOCOL.md, "Rendezvous signaling").
const (
	SessionLen        = 16  // server session cookie
	MaxHostCandidates = 8   // host addresses a node reports in Register
	MaxCandidates     = 16  // candidates in one Introduction
	MaxRelayTokenLen  = 128 // opaque relay token in an Introduction
	MaxErrorTextLen   = 128 // human-readable text of an Error
	MaxKeepaliveS     = 3600
)

// Session is the cookie the server hands out in Registered. Every later request
// carries it: it proves the sender receives at its registered address, which is the
// server's test for "authenticated" when it decides how large a reply may be.
type Session [SessionLen]byte

// Register (client → server) asks the server to admit the node named by Ticket and to
// report the address it observes. Hosts are the node's own interface addresses, passed
// to peers as host candidates for paths inside one LAN. Suites are the cipher suites
// the node's keyx endpoint accepts (PROTOCOL.md §5.1, [SUITE-2]); the server passes
// them to the node's peers in introductions. They travel as the byte the node sent:
// bit 0 counts as set and unknown bits are ignored by whoever uses them, so no value
// is malformed, and the zero value means ChaChaPoly only.
//
// Token is the admission token of a retry (PROTOCOL.md §5.13) the server sent in
// answer to this register: empty (absent on the wire) or exactly RetryTokenLen bytes,
// echoed as they came ([REG-4]). Parse leaves it pointing into the packet, as Ticket.
type Register struct {
	TxID   uint64
	Ticket []byte // an encoded Ticket, verified by the server
	Hosts  []netip.AddrPort
	Suites SuiteSet
	Token  []byte // empty, or the RetryTokenLen bytes of a retry
}

// Append encodes m; a Token of another length than 0 or RetryTokenLen is caller
// misuse and panics.
func (m *Register) Append(b []byte) []byte {
	if len(m.Token) != 0 && len(m.Token) != RetryTokenLen {
		panic("proto: register token must be empty or RetryTokenLen bytes")
	}
	b = AppendHeader(b, TypeRegister)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = appendVec16(b, "register ticket", m.Ticket, 1, MaxTicketLen)
	b = appendAddrList(b, "register hosts", m.Hosts, MaxHostCandidates)
	b = append(b, byte(m.Suites))
	return append(b, m.Token...)
}

func (m *Register) Parse(p []byte) error {
	rest, err := body(p, TypeRegister)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.TxID = r.u64()
	m.Ticket = r.vec16(1, MaxTicketLen)
	m.Hosts = r.addrList(m.Hosts[:0], MaxHostCandidates)
	m.Suites = SuiteSet(r.u8())
	m.Token = nil
	if r.err == nil && len(r.b) > 0 {
		// [REG-4]: anything after the suites byte is the token, all 16 bytes of it.
		m.Token = r.bytes(RetryTokenLen)
	}
	return r.done()
}

// Registered (server → client) admits a node. Observed is the node's address as the
// server saw it (server-reflexive). AltPort and AltAddr are the server's other sockets
// for NAT-behaviour probes: AltPort shares the primary IP, AltAddr has another IP;
// either may be absent (zero).
type Registered struct {
	TxID      uint64
	Session   Session
	Observed  netip.AddrPort
	Keepalive uint16 // seconds between keepalives the server asks for, 1..3600
	AltPort   netip.AddrPort
	AltAddr   netip.AddrPort
}

func (m *Registered) Append(b []byte) []byte {
	if m.Keepalive == 0 || m.Keepalive > MaxKeepaliveS || !m.Observed.IsValid() {
		panic("proto: invalid Registered")
	}
	b = AppendHeader(b, TypeRegistered)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Session[:]...)
	b = appendAddr(b, m.Observed)
	b = binary.BigEndian.AppendUint16(b, m.Keepalive)
	b = appendAddr(b, m.AltPort)
	return appendAddr(b, m.AltAddr)
}

func (m *Registered) Parse(p []byte) error {
	rest, err := body(p, TypeRegistered)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.TxID = r.u64()
	r.array(m.Session[:])
	m.Observed = r.addr()
	m.Keepalive = r.u16()
	if r.err == nil && (m.Keepalive == 0 || m.Keepalive > MaxKeepaliveS) {
		r.fail(ErrMalformed)
	}
	m.AltPort = r.addrOpt()
	m.AltAddr = r.addrOpt()
	return r.done()
}

// Keepalive (client → server) refreshes the node's NAT mapping and presence, and
// reports the NAT behaviour the node measured (unknown until it has), which the server
// passes to peers in introductions. Predicted, when valid, is the external address the
// node's sequential NAT will give its next mapping; the server passes it on as a
// predicted candidate. Carrying the report in every keepalive makes it survive loss
// without a message of its own, and keeps a keepalive (30 bytes at least) larger than
// its ack (at most 25).
type Keepalive struct {
	Session   Session
	Seq       uint32
	NAT       NATBehavior
	Predicted netip.AddrPort
}

func (m *Keepalive) Append(b []byte) []byte {
	b = AppendHeader(b, TypeKeepalive)
	b = append(b, m.Session[:]...)
	b = binary.BigEndian.AppendUint32(b, m.Seq)
	b = appendNATBehavior(b, m.NAT)
	return appendAddr(b, m.Predicted)
}

func (m *Keepalive) Parse(p []byte) error {
	rest, err := body(p, TypeKeepalive)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	r.array(m.Session[:])
	m.Seq = r.u32()
	m.NAT = r.natBehavior()
	m.Predicted = r.addrOpt()
	return r.done()
}

// KeepaliveAck (server → client) echoes Seq and the address the server now observes;
// a change tells the node its NAT rebound or it moved.
type KeepaliveAck struct {
	Seq      uint32
	Observed netip.AddrPort
}

func (m *KeepaliveAck) Append(b []byte) []byte {
	b = AppendHeader(b, TypeKeepaliveAck)
	b = binary.BigEndian.AppendUint32(b, m.Seq)
	return appendAddr(b, m.Observed)
}

func (m *KeepaliveAck) Parse(p []byte) error {
	rest, err := body(p, TypeKeepaliveAck)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Seq = r.u32()
	m.Observed = r.addr()
	return r.done()
}

// Change flags of a NATProbe: which server socket should answer (RFC 5780 §7.2's
// CHANGE-REQUEST, moved into natpass's own message).
const (
	ChangePort    = 0x01 // answer from the socket with the other port
	ChangeAddress = 0x02 // answer from the socket with the other IP address
)

// NATProbe (client → any server socket) asks for the observed address as seen by the
// socket it arrived on; with Change flags the answer comes from another socket, which
// tests the NAT's filtering.
type NATProbe struct {
	Session Session
	TxID    uint64
	Change  uint8
}

func (m *NATProbe) Append(b []byte) []byte {
	if m.Change&^(ChangePort|ChangeAddress) != 0 {
		panic("proto: invalid NATProbe change flags")
	}
	b = AppendHeader(b, TypeNATProbe)
	b = append(b, m.Session[:]...)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	return append(b, m.Change)
}

func (m *NATProbe) Parse(p []byte) error {
	rest, err := body(p, TypeNATProbe)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	r.array(m.Session[:])
	m.TxID = r.u64()
	m.Change = r.u8()
	if r.err == nil && m.Change&^(ChangePort|ChangeAddress) != 0 {
		r.fail(ErrMalformed)
	}
	return r.done()
}

// NATProbeReply (server → client) answers a NATProbe. The socket it came from is in
// the datagram's source address.
type NATProbeReply struct {
	TxID     uint64
	Observed netip.AddrPort
}

func (m *NATProbeReply) Append(b []byte) []byte {
	b = AppendHeader(b, TypeNATProbeReply)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	return appendAddr(b, m.Observed)
}

func (m *NATProbeReply) Parse(p []byte) error {
	rest, err := body(p, TypeNATProbeReply)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.TxID = r.u64()
	m.Observed = r.addr()
	return r.done()
}

// Introduction flags: the relay policy the requesting app chose (DESIGN §6.7).
const (
	IntroNoRelay   = 0x01 // never relay: direct or nothing
	IntroRelayOnly = 0x02 // relay only: addresses are not shared
	// IntroRefresh: the pair is already introduced, but a path was lost or a side
	// moved; the server makes a new introduction (fresh candidates, a new start
	// instant) instead of repeating the last one, and both sides search again.
	IntroRefresh = 0x04
	// IntroRebound (introduce-request only, with IntroRefresh): the request carries
	// the external address of a fresh local socket the requester will search from
	// (Rebound); the server passes it to the peer as a predicted candidate of a new
	// introduction, never merged with a recent refresh (PROTOCOL.md §5.7, [SRV-6]).
	IntroRebound = 0x08
)

func validIntroFlags(f uint8) bool {
	return f&^(IntroNoRelay|IntroRelayOnly|IntroRefresh) == 0 && f&(IntroNoRelay|IntroRelayOnly) != IntroNoRelay|IntroRelayOnly
}

// validRequestFlags: an introduce-request's flags are an introduction's, plus
// IntroRebound with IntroRefresh [FLAGS-1].
func validRequestFlags(f uint8) bool {
	if f&IntroRebound != 0 && f&IntroRefresh == 0 {
		return false
	}
	return validIntroFlags(f &^ IntroRebound)
}

// IntroduceRequest (client → server) asks to be introduced to PeerID. Rebound is
// present exactly when Flags has IntroRebound: the external address of the fresh
// socket the requester searches from next.
type IntroduceRequest struct {
	Session Session
	TxID    uint64
	PeerID  []byte
	Flags   uint8
	Rebound netip.AddrPort
}

func (m *IntroduceRequest) Append(b []byte) []byte {
	if !validRequestFlags(m.Flags) || (m.Flags&IntroRebound != 0) != m.Rebound.IsValid() {
		panic("proto: invalid IntroduceRequest flags")
	}
	b = AppendHeader(b, TypeIntroduceRequest)
	b = append(b, m.Session[:]...)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = appendVec8(b, "introduce peer ID", m.PeerID, 1, MaxPeerIDLen)
	b = append(b, m.Flags)
	if m.Flags&IntroRebound != 0 {
		b = appendAddr(b, m.Rebound)
	}
	return b
}

func (m *IntroduceRequest) Parse(p []byte) error {
	rest, err := body(p, TypeIntroduceRequest)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	r.array(m.Session[:])
	m.TxID = r.u64()
	m.PeerID = r.vec8(1, MaxPeerIDLen)
	m.Flags = r.u8()
	if r.err == nil && !validRequestFlags(m.Flags) {
		r.fail(ErrMalformed)
	}
	m.Rebound = netip.AddrPort{}
	if r.err == nil && m.Flags&IntroRebound != 0 {
		m.Rebound = r.addr()
	}
	return r.done()
}

// Candidate is one address a peer may be reached at.
type Candidate struct {
	Kind CandidateKind
	Addr netip.AddrPort
}

// Introduction (server → both peers) tells each side who the other is and how to
// reach it. The requester gets its request's TxID; the other side gets TxID 0.
// StartDelayMs is when, after receiving this message, both sides should begin
// punching, so that their first probes cross. PSK is the per-pair pre-shared key for
// the handshake; the zero key means none. PeerSuites are the cipher suites the other
// side registered with (PROTOCOL.md §5.8), as it sent them: the node hands them to
// its keyx endpoint (SetPeerSuites, which applies [SUITE-2]) before it initiates.
type Introduction struct {
	TxID         uint64
	PeerID       []byte
	PeerKey      [KeyLen]byte
	NAT          NATBehavior
	StartDelayMs uint16
	Candidates   []Candidate
	RelayToken   []byte
	PSK          [KeyLen]byte
	Flags        uint8
	PeerSuites   SuiteSet
}

func (m *Introduction) Append(b []byte) []byte {
	if !validIntroFlags(m.Flags) {
		panic("proto: invalid Introduction flags")
	}
	mustLen("introduction candidates", len(m.Candidates), 0, MaxCandidates)
	b = AppendHeader(b, TypeIntroduction)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = appendVec8(b, "introduction peer ID", m.PeerID, 1, MaxPeerIDLen)
	b = append(b, m.PeerKey[:]...)
	b = appendNATBehavior(b, m.NAT)
	b = binary.BigEndian.AppendUint16(b, m.StartDelayMs)
	b = append(b, byte(len(m.Candidates)))
	for _, c := range m.Candidates {
		if c.Kind < CandidateHost || c.Kind > CandidatePredicted || !c.Addr.IsValid() {
			panic("proto: invalid candidate")
		}
		b = append(b, byte(c.Kind))
		b = appendAddr(b, c.Addr)
	}
	b = appendVec16(b, "relay token", m.RelayToken, 0, MaxRelayTokenLen)
	b = append(b, m.PSK[:]...)
	return append(b, m.Flags, byte(m.PeerSuites))
}

func (m *Introduction) Parse(p []byte) error {
	rest, err := body(p, TypeIntroduction)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.TxID = r.u64()
	m.PeerID = r.vec8(1, MaxPeerIDLen)
	r.array(m.PeerKey[:])
	m.NAT = r.natBehavior()
	m.StartDelayMs = r.u16()
	n := int(r.u8())
	if n > MaxCandidates {
		r.fail(ErrTooLong)
	}
	m.Candidates = m.Candidates[:0]
	for i := 0; i < n && r.err == nil; i++ {
		c := Candidate{Kind: CandidateKind(r.u8())}
		if r.err == nil && (c.Kind < CandidateHost || c.Kind > CandidatePredicted) {
			r.fail(ErrMalformed)
		}
		c.Addr = r.addr()
		m.Candidates = append(m.Candidates, c)
	}
	m.RelayToken = r.vec16(0, MaxRelayTokenLen)
	r.array(m.PSK[:])
	m.Flags = r.u8()
	if r.err == nil && !validIntroFlags(m.Flags) {
		r.fail(ErrMalformed)
	}
	m.PeerSuites = SuiteSet(r.u8())
	return r.done()
}

// IntroductionAck (client → server) confirms an introduction about PeerID arrived.
// Until both sides confirm, the server repeats their copies (PROTOCOL.md §5.8): a
// lost copy would leave one side punching alone.
type IntroductionAck struct {
	Session Session
	PeerID  []byte
}

func (m *IntroductionAck) Append(b []byte) []byte {
	b = AppendHeader(b, TypeIntroductionAck)
	b = append(b, m.Session[:]...)
	return appendVec8(b, "introduction-ack peer ID", m.PeerID, 1, MaxPeerIDLen)
}

func (m *IntroductionAck) Parse(p []byte) error {
	rest, err := body(p, TypeIntroductionAck)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	r.array(m.Session[:])
	m.PeerID = r.vec8(1, MaxPeerIDLen)
	return r.done()
}

// ErrorCode says why the server refused a request.
type ErrorCode uint16

const (
	CodeMalformed     ErrorCode = 1 // the request did not parse
	CodeBadTicket     ErrorCode = 2 // ticket MAC, version or key did not verify
	CodeExpiredTicket ErrorCode = 3 // ticket past its expiry
	CodeUnknownPeer   ErrorCode = 4 // introduce: no such peer is registered
	CodeNoSession     ErrorCode = 5 // session cookie unknown or expired: register again
	CodeRateLimited   ErrorCode = 6 // too many requests from this address
	CodeServerFull    ErrorCode = 7 // presence table is full
	CodeRelayDenied   ErrorCode = 8 // relay not allowed for this pair
	CodePeerNotReady  ErrorCode = 9 // the peer has not reported its NAT yet: ask again shortly
	// CodeReplaced (unsolicited): another node registered this peer ID, on this server
	// or another of its cluster; the newest registration wins. Its TxID is the
	// session's SessionTag, so only the node holding the session believes it.
	CodeReplaced ErrorCode = 10
	// CodeMoving (unsolicited, or answering any request): the server is draining:
	// register with another server of the cluster now. TxID as for CodeReplaced when
	// unsolicited.
	CodeMoving ErrorCode = 11
)

// SessionTag is the TxID of the unsolicited errors a server sends a session
// (CodeReplaced, CodeMoving): the first 8 bytes of its cookie, big-endian. An
// off-path sender does not know it, so it cannot end or move a node's session.
func SessionTag(s *Session) uint64 { return binary.BigEndian.Uint64(s[:8]) }

// Error (server → client) refuses the request with TxID. The server cuts Text so the
// whole reply is never larger than the request it answers.
type Error struct {
	TxID uint64
	Code ErrorCode
	Text []byte
}

// ErrorLen is the encoded size of an Error with a text of n bytes.
func ErrorLen(n int) int { return HeaderLen + 8 + 2 + 1 + n }

func (m *Error) Append(b []byte) []byte {
	if m.Code == 0 {
		panic("proto: Error code 0")
	}
	b = AppendHeader(b, TypeError)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = binary.BigEndian.AppendUint16(b, uint16(m.Code))
	return appendVec8(b, "error text", m.Text, 0, MaxErrorTextLen)
}

func (m *Error) Parse(p []byte) error {
	rest, err := body(p, TypeError)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.TxID = r.u64()
	m.Code = ErrorCode(r.u16())
	if r.err == nil && m.Code == 0 {
		r.fail(ErrMalformed)
	}
	m.Text = r.vec8(0, MaxErrorTextLen)
	return r.done()
}

func appendAddrList(b []byte, field string, as []netip.AddrPort, max int) []byte {
	mustLen(field, len(as), 0, max)
	b = append(b, byte(len(as)))
	for _, a := range as {
		if !a.IsValid() {
			panic("proto: " + field + ": zero address")
		}
		b = appendAddr(b, a)
	}
	return b
}

func (r *reader) addrList(dst []netip.AddrPort, max int) []netip.AddrPort {
	n := int(r.u8())
	if n > max {
		r.fail(ErrTooLong)
	}
	for i := 0; i < n && r.err == nil; i++ {
		dst = append(dst, r.addr())
	}
	return dst
}
