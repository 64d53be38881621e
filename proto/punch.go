package proto

import (
	"encoding/binary"
	"net/netip"
)

// Path probe messages (punch), 0x30–0x3F.
const (
	TypeProbe      MsgType = 0x30
	TypeProbeReply MsgType = 0x31
)

// ProbeMACLen is the size of the tag that ends every probe message. The tag is
// HMAC-SHA256 under the pair's probe key, truncated, over every byte before it; punch
// computes and checks it, proto only carries it.
const ProbeMACLen = 16

// Probe flags.
const (
	// ProbeControlling: sent by the side whose static key sorts lower (ICE's
	// "controlling" role). A side that receives a probe carrying its own role drops
	// it: that is its own probe reflected back (a hairpinning NAT, a loop).
	ProbeControlling = 0x01
	// ProbeNominate: the controlling side has chosen the path this probe travels.
	ProbeNominate = 0x02
)

func validProbeFlags(f uint8) bool { return f&^(ProbeControlling|ProbeNominate) == 0 }

// Probe (peer → peer) tests one candidate path. Pair names the introduction it
// belongs to (both sides derive it from their shared probe key), so a probe finds its
// agent whatever address it arrives from.
type Probe struct {
	Pair  uint64
	TxID  uint64
	Flags uint8
	MAC   [ProbeMACLen]byte
}

// ProbeLen is the encoded size of a Probe.
const ProbeLen = HeaderLen + 8 + 8 + 1 + ProbeMACLen

func (m *Probe) Append(b []byte) []byte {
	if !validProbeFlags(m.Flags) {
		panic("proto: invalid Probe flags")
	}
	b = AppendHeader(b, TypeProbe)
	b = binary.BigEndian.AppendUint64(b, m.Pair)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Flags)
	return append(b, m.MAC[:]...)
}

func (m *Probe) Parse(p []byte) error {
	rest, err := body(p, TypeProbe)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Pair = r.u64()
	m.TxID = r.u64()
	m.Flags = r.u8()
	if r.err == nil && !validProbeFlags(m.Flags) {
		r.fail(ErrMalformed)
	}
	r.array(m.MAC[:])
	return r.done()
}

// ProbeReply (peer → peer) confirms a probe. Observed is the probe's source as the
// replier saw it: the sender learns its peer-reflexive address on this path.
type ProbeReply struct {
	Pair     uint64
	TxID     uint64
	Flags    uint8
	Observed netip.AddrPort
	MAC      [ProbeMACLen]byte
}

func (m *ProbeReply) Append(b []byte) []byte {
	if !validProbeFlags(m.Flags) || !m.Observed.IsValid() {
		panic("proto: invalid ProbeReply")
	}
	b = AppendHeader(b, TypeProbeReply)
	b = binary.BigEndian.AppendUint64(b, m.Pair)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Flags)
	b = appendAddr(b, m.Observed)
	return append(b, m.MAC[:]...)
}

func (m *ProbeReply) Parse(p []byte) error {
	rest, err := body(p, TypeProbeReply)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Pair = r.u64()
	m.TxID = r.u64()
	m.Flags = r.u8()
	if r.err == nil && !validProbeFlags(m.Flags) {
		r.fail(ErrMalformed)
	}
	m.Observed = r.addr()
	r.array(m.MAC[:])
	return r.done()
}
