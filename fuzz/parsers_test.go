package fuzz

import (
	"bytes"
	"testing"

	"github.com/natpass/natpass/proto"
)

// message is what every proto packet type implements.
type message interface {
	Append([]byte) []byte
	Parse([]byte) error
}

// parser is one natpass packet type: the header types it claims and a fresh value.
type parser struct {
	name  string
	types []proto.MsgType
	fresh func() message
}

// parsers lists every packet the first byte can lead to (PROTOCOL.md, "Message
// types"). STUN (first byte 0–3) is parsed inside rendezvous only; the server
// harness covers it.
var parsers = []parser{
	{"register", []proto.MsgType{proto.TypeRegister}, func() message { return new(proto.Register) }},
	{"registered", []proto.MsgType{proto.TypeRegistered}, func() message { return new(proto.Registered) }},
	{"register-family", []proto.MsgType{proto.TypeRegisterFamily}, func() message { return new(proto.RegisterFamily) }},
	{"retry", []proto.MsgType{proto.TypeRetry}, func() message { return new(proto.Retry) }},
	{"keepalive", []proto.MsgType{proto.TypeKeepalive}, func() message { return new(proto.Keepalive) }},
	{"keepalive-ack", []proto.MsgType{proto.TypeKeepaliveAck}, func() message { return new(proto.KeepaliveAck) }},
	{"nat-probe", []proto.MsgType{proto.TypeNATProbe}, func() message { return new(proto.NATProbe) }},
	{"nat-probe-reply", []proto.MsgType{proto.TypeNATProbeReply}, func() message { return new(proto.NATProbeReply) }},
	{"introduce-request", []proto.MsgType{proto.TypeIntroduceRequest}, func() message { return new(proto.IntroduceRequest) }},
	{"introduction", []proto.MsgType{proto.TypeIntroduction}, func() message { return new(proto.Introduction) }},
	{"error", []proto.MsgType{proto.TypeError}, func() message { return new(proto.Error) }},
	{"introduction-ack", []proto.MsgType{proto.TypeIntroductionAck}, func() message { return new(proto.IntroductionAck) }},
	{"initiation", []proto.MsgType{proto.TypeInitiation, proto.TypeInitiationAESGCM}, func() message { return new(proto.Initiation) }},
	{"response", []proto.MsgType{proto.TypeResponse}, func() message { return new(proto.Response) }},
	{"cookie-reply", []proto.MsgType{proto.TypeCookieReply}, func() message { return new(proto.CookieReply) }},
	{"transport-data", []proto.MsgType{proto.TypeTransportData}, func() message { return new(proto.TransportData) }},
	{"relay-allocate", []proto.MsgType{proto.TypeRelayAllocate}, func() message { return new(proto.RelayAllocate) }},
	{"relay-allocated", []proto.MsgType{proto.TypeRelayAllocated}, func() message { return new(proto.RelayAllocated) }},
	{"relay-data", []proto.MsgType{proto.TypeRelaySend, proto.TypeRelayDeliver}, func() message { return new(proto.RelayData) }},
	{"probe", []proto.MsgType{proto.TypeProbe}, func() message { return new(proto.Probe) }},
	{"probe-reply", []proto.MsgType{proto.TypeProbeReply}, func() message { return new(proto.ProbeReply) }},
}

// checkParsers runs p through the demultiplexer and every parser. What one parser
// accepts re-encodes to exactly p (twice: into a fresh value and a reused one), no
// other parser accepts it, and the header's type is one the accepting parser
// claims: the first two bytes alone decide what a datagram is. A relayed packet is
// checked the same way, one level down (the relay carries keyx packets).
func checkParsers(t *testing.T, p []byte, depth int) {
	h, _, herr := proto.ParseHeader(p)
	accepted := ""
	for _, ps := range parsers {
		m := ps.fresh()
		if m.Parse(p) != nil {
			continue
		}
		if accepted != "" {
			t.Fatalf("%x parses as %s and as %s", p, accepted, ps.name)
		}
		accepted = ps.name
		if herr != nil || !claims(ps, h.Type) {
			t.Fatalf("%s parsed %x, whose header says %v (%v)", ps.name, p, h.Type, herr)
		}
		if out := m.Append(nil); !bytes.Equal(out, p) {
			t.Fatalf("%s: Append(Parse(b)) != b\n   b %x\n out %x", ps.name, p, out)
		}
		if err := m.Parse(p); err != nil || !bytes.Equal(m.Append(nil), p) {
			t.Fatalf("%s: a second parse into the same value differs (%v)", ps.name, err)
		}
		if r, ok := m.(*proto.RelayData); ok && depth == 0 {
			checkParsers(t, bytes.Clone(r.Packet), 1)
		}
	}
}

func claims(ps parser, t proto.MsgType) bool {
	for _, x := range ps.types {
		if x == t {
			return true
		}
	}
	return false
}
