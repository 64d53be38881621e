package proto

import (
	"encoding/binary"
	"net/netip"
)

// Cluster messages (PROTOCOL.md §12) travel between the servers of a cluster on the
// cluster bus (NATS), never on a UDP socket: a server drops them there like any type
// it does not serve. They use the natpass header so that a version bump covers them
// too.
const (
	TypeClusterClaim       MsgType = 0x40
	TypeClusterIntroAsk    MsgType = 0x41
	TypeClusterIntroAnswer MsgType = 0x42
	TypeClusterRelayBind   MsgType = 0x43
	TypeClusterRelayBound  MsgType = 0x44
	TypeClusterRelayData   MsgType = 0x45

	TypeClusterFirst MsgType = 0x40
	TypeClusterLast  MsgType = 0x4F
)

// RegTagLen is the size of a registration tag: 16 random bytes a server draws for every
// registration. Unlike the cookie it is not a secret; pair IDs and PSKs derive from
// the tags of a pair's two registrations, so two servers of a cluster derive the same.
const RegTagLen = 16

// ClusterPeer is what a server tells another about a peer registered on it, for an
// introduction: everything the introduction to the other side needs, the cipher
// suites it registered with included (PROTOCOL.md §12.2). OtherAddr is the address
// the peer bound over the other IP family (register-family, §5.12), passed to peers as
// a server-reflexive candidate; zero when it has none. It is never of Addr's family.
type ClusterPeer struct {
	PeerID           []byte
	Key              [KeyLen]byte
	Tag              [RegTagLen]byte
	NAT              NATBehavior
	Addr             netip.AddrPort // server-reflexive address; required
	Predicted        netip.AddrPort // optional
	Hosts            []netip.AddrPort
	TicketExpiryUnix uint64
	Suites           SuiteSet
	OtherAddr        netip.AddrPort // optional
}

func (m *ClusterPeer) append(b []byte) []byte {
	b = appendVec8(b, "peer id", m.PeerID, 1, MaxPeerIDLen)
	b = append(b, m.Key[:]...)
	b = append(b, m.Tag[:]...)
	b = appendNATBehavior(b, m.NAT)
	if !m.Addr.IsValid() {
		panic("proto: ClusterPeer without an address")
	}
	b = appendAddr(b, m.Addr)
	b = appendAddr(b, m.Predicted)
	b = appendAddrList(b, "cluster hosts", m.Hosts, MaxHostCandidates)
	b = binary.BigEndian.AppendUint64(b, m.TicketExpiryUnix)
	b = append(b, byte(m.Suites))
	if m.OtherAddr.IsValid() && sameFamily(m.OtherAddr, m.Addr) {
		panic("proto: ClusterPeer other-family address of the address's family")
	}
	return appendAddr(b, m.OtherAddr)
}

// sameFamily reports whether a and b are both IPv4 or both IPv6 (mapped IPv4 counts
// as IPv4, as on the wire).
func sameFamily(a, b netip.AddrPort) bool {
	return a.Addr().Unmap().Is4() == b.Addr().Unmap().Is4()
}

func (r *reader) clusterPeer(m *ClusterPeer) {
	m.PeerID = r.vec8(1, MaxPeerIDLen)
	r.array(m.Key[:])
	r.array(m.Tag[:])
	m.NAT = r.natBehavior()
	m.Addr = r.addr()
	m.Predicted = r.addrOpt()
	m.Hosts = r.addrList(m.Hosts[:0], MaxHostCandidates)
	m.TicketExpiryUnix = r.u64()
	m.Suites = SuiteSet(r.u8())
	m.OtherAddr = r.addrOpt()
	if r.err == nil && m.OtherAddr.IsValid() && sameFamily(m.OtherAddr, m.Addr) {
		r.fail(ErrMalformed)
	}
}

// ClusterClaim (to the peer's subject, no reply) announces that Server registered
// PeerID with Key at RegisteredUnixMs. A server holding an older registration of
// the ID ends it (PROTOCOL.md §12.3); one holding a newer one claims back.
type ClusterClaim struct {
	Server           uint64
	RegisteredUnixMs uint64
	Key              [KeyLen]byte
	PeerID           []byte
}

func (m *ClusterClaim) Append(b []byte) []byte {
	b = AppendHeader(b, TypeClusterClaim)
	b = binary.BigEndian.AppendUint64(b, m.Server)
	b = binary.BigEndian.AppendUint64(b, m.RegisteredUnixMs)
	b = append(b, m.Key[:]...)
	return appendVec8(b, "peer id", m.PeerID, 1, MaxPeerIDLen)
}

func (m *ClusterClaim) Parse(p []byte) error {
	rest, err := body(p, TypeClusterClaim)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Server = r.u64()
	m.RegisteredUnixMs = r.u64()
	r.array(m.Key[:])
	m.PeerID = r.vec8(1, MaxPeerIDLen)
	return r.done()
}

// ClusterIntroAsk (to the target's subject, with a reply subject) asks the server
// holding Target to introduce it to Requester, which sent an introduce-request with
// TxID and Flags to server Server.
type ClusterIntroAsk struct {
	AskID     uint64
	Server    uint64
	TxID      uint64
	Flags     uint8
	Target    []byte
	Requester ClusterPeer
}

func (m *ClusterIntroAsk) Append(b []byte) []byte {
	b = AppendHeader(b, TypeClusterIntroAsk)
	b = binary.BigEndian.AppendUint64(b, m.AskID)
	b = binary.BigEndian.AppendUint64(b, m.Server)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Flags)
	b = appendVec8(b, "target", m.Target, 1, MaxPeerIDLen)
	return m.Requester.append(b)
}

func (m *ClusterIntroAsk) Parse(p []byte) error {
	rest, err := body(p, TypeClusterIntroAsk)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.AskID = r.u64()
	m.Server = r.u64()
	m.TxID = r.u64()
	m.Flags = r.u8()
	m.Target = r.vec8(1, MaxPeerIDLen)
	r.clusterPeer(&m.Requester)
	return r.done()
}

// ClusterStatus is a cluster answer's outcome.
type ClusterStatus uint8

const (
	ClusterOK           ClusterStatus = 0
	ClusterNotReady     ClusterStatus = 1 // the target has not reported its NAT yet (code 9)
	ClusterUnknownPeer  ClusterStatus = 2 // the target's session ended or its ticket expired (code 4)
	ClusterRelayDenied  ClusterStatus = 3 // relay off, or the token's keys do not match (code 8)
	ClusterNoChannelYet ClusterStatus = 4 // relay-bound: the target holds no channel of the pair yet
	clusterStatusMax                  = ClusterNoChannelYet
)

// ClusterIntroAnswer (to the ask's reply subject) answers AskID. With ClusterOK,
// Target describes the target and Server holds it; otherwise Target is absent.
type ClusterIntroAnswer struct {
	AskID  uint64
	Server uint64
	Status ClusterStatus
	Target ClusterPeer
}

func (m *ClusterIntroAnswer) Append(b []byte) []byte {
	b = AppendHeader(b, TypeClusterIntroAnswer)
	b = binary.BigEndian.AppendUint64(b, m.AskID)
	b = binary.BigEndian.AppendUint64(b, m.Server)
	b = append(b, byte(m.Status))
	if m.Status == ClusterOK {
		b = m.Target.append(b)
	}
	return b
}

func (m *ClusterIntroAnswer) Parse(p []byte) error {
	rest, err := body(p, TypeClusterIntroAnswer)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.AskID = r.u64()
	m.Server = r.u64()
	m.Status = ClusterStatus(r.u8())
	if r.err == nil && m.Status > clusterStatusMax {
		r.fail(ErrMalformed)
	}
	if r.err == nil && m.Status == ClusterOK {
		r.clusterPeer(&m.Target)
	}
	return r.done()
}

// ClusterRelayBind (to the target's subject, with a reply subject) tells the server
// holding Target that the requester (RequesterKey) holds Channel of pair PairID on
// Server; TargetKey is the token's other key, which the target's server checks.
type ClusterRelayBind struct {
	BindID       uint64
	Server       uint64
	PairID       uint64
	Channel      uint16
	RequesterKey [KeyLen]byte
	TargetKey    [KeyLen]byte
	Target       []byte
}

func (m *ClusterRelayBind) Append(b []byte) []byte {
	b = AppendHeader(b, TypeClusterRelayBind)
	b = binary.BigEndian.AppendUint64(b, m.BindID)
	b = binary.BigEndian.AppendUint64(b, m.Server)
	b = binary.BigEndian.AppendUint64(b, m.PairID)
	if m.Channel == 0 {
		panic("proto: ClusterRelayBind channel 0")
	}
	b = binary.BigEndian.AppendUint16(b, m.Channel)
	b = append(b, m.RequesterKey[:]...)
	b = append(b, m.TargetKey[:]...)
	return appendVec8(b, "target", m.Target, 1, MaxPeerIDLen)
}

func (m *ClusterRelayBind) Parse(p []byte) error {
	rest, err := body(p, TypeClusterRelayBind)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.BindID = r.u64()
	m.Server = r.u64()
	m.PairID = r.u64()
	m.Channel = r.u16()
	if r.err == nil && m.Channel == 0 {
		r.fail(ErrMalformed)
	}
	r.array(m.RequesterKey[:])
	r.array(m.TargetKey[:])
	m.Target = r.vec8(1, MaxPeerIDLen)
	return r.done()
}

// ClusterRelayBound (to the bind's reply subject) answers BindID: with ClusterOK the
// target holds Channel of the pair on Server, now linked to the requester's.
type ClusterRelayBound struct {
	BindID  uint64
	Server  uint64
	Status  ClusterStatus
	Channel uint16 // 0 unless Status is ClusterOK
}

func (m *ClusterRelayBound) Append(b []byte) []byte {
	b = AppendHeader(b, TypeClusterRelayBound)
	b = binary.BigEndian.AppendUint64(b, m.BindID)
	b = binary.BigEndian.AppendUint64(b, m.Server)
	b = append(b, byte(m.Status))
	return binary.BigEndian.AppendUint16(b, m.Channel)
}

func (m *ClusterRelayBound) Parse(p []byte) error {
	rest, err := body(p, TypeClusterRelayBound)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.BindID = r.u64()
	m.Server = r.u64()
	m.Status = ClusterStatus(r.u8())
	m.Channel = r.u16()
	if r.err == nil && (m.Status > clusterStatusMax || (m.Status == ClusterOK) != (m.Channel != 0)) {
		r.fail(ErrMalformed)
	}
	return r.done()
}

// ClusterRelayDataLen is the size of a relay-data message's fields before its frame.
const ClusterRelayDataLen = HeaderLen + 8 + 2 + 2

// AppendClusterRelayData appends the header of a relay-data message (to the
// receiving server's subject): a relay-send frame that arrived on channel from of
// server, for channel to on the receiving server. The frame follows unchanged.
func AppendClusterRelayData(b []byte, server uint64, from, to uint16) []byte {
	b = AppendHeader(b, TypeClusterRelayData)
	b = binary.BigEndian.AppendUint64(b, server)
	b = binary.BigEndian.AppendUint16(b, from)
	return binary.BigEndian.AppendUint16(b, to)
}

// ParseClusterRelayData splits a relay-data message into its fields and the frame.
func ParseClusterRelayData(p []byte) (server uint64, from, to uint16, frame []byte, err error) {
	rest, err := body(p, TypeClusterRelayData)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	if len(rest) <= ClusterRelayDataLen-HeaderLen { // the frame is never empty
		return 0, 0, 0, nil, ErrShort
	}
	server = binary.BigEndian.Uint64(rest)
	from = binary.BigEndian.Uint16(rest[8:])
	to = binary.BigEndian.Uint16(rest[10:])
	if from == 0 || to == 0 {
		return 0, 0, 0, nil, ErrMalformed
	}
	return server, from, to, rest[12:], nil
}

// ClusterRelayData is the relay-data message as a value, for tests and tools; the
// server's hot path uses AppendClusterRelayData and ParseClusterRelayData, which
// copy nothing.
type ClusterRelayData struct {
	Server   uint64
	From, To uint16
	Frame    []byte
}

func (m *ClusterRelayData) Append(b []byte) []byte {
	if m.From == 0 || m.To == 0 {
		panic("proto: ClusterRelayData channel 0")
	}
	return append(AppendClusterRelayData(b, m.Server, m.From, m.To), m.Frame...)
}

func (m *ClusterRelayData) Parse(p []byte) error {
	var err error
	m.Server, m.From, m.To, m.Frame, err = ParseClusterRelayData(p)
	return err
}
