package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/internal/vectorfile"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
	"github.com/natpass/natpass/relayframe"
	"github.com/natpass/natpass/rendezvous"
)

// message is what every layout type of package proto implements.
type message interface {
	Append(b []byte) []byte
	Parse(p []byte) error
}

// layoutTypes maps the vector files' type names to fresh values to parse into.
var layoutTypes = map[string]func() message{
	"Ticket":           func() message { return new(proto.Ticket) },
	"Register":         func() message { return new(proto.Register) },
	"Registered":       func() message { return new(proto.Registered) },
	"RegisterFamily":   func() message { return new(proto.RegisterFamily) },
	"Retry":            func() message { return new(proto.Retry) },
	"Keepalive":        func() message { return new(proto.Keepalive) },
	"KeepaliveAck":     func() message { return new(proto.KeepaliveAck) },
	"NATProbe":         func() message { return new(proto.NATProbe) },
	"NATProbeReply":    func() message { return new(proto.NATProbeReply) },
	"IntroduceRequest": func() message { return new(proto.IntroduceRequest) },
	"Introduction":     func() message { return new(proto.Introduction) },
	"IntroductionAck":  func() message { return new(proto.IntroductionAck) },
	"Error":            func() message { return new(proto.Error) },
	"Initiation":       func() message { return new(proto.Initiation) },
	"Response":         func() message { return new(proto.Response) },
	"CookieReply":      func() message { return new(proto.CookieReply) },
	"TransportData":    func() message { return new(proto.TransportData) },
	"RelayAllocate":    func() message { return new(proto.RelayAllocate) },
	"RelayAllocated":   func() message { return new(proto.RelayAllocated) },
	"RelayData":        func() message { return new(proto.RelayData) },
	"Probe":            func() message { return new(proto.Probe) },
	"ProbeReply":       func() message { return new(proto.ProbeReply) },
	"RUDPHeader":       func() message { return new(proto.RUDPHeader) },
	"RUDPAck":          func() message { return new(proto.RUDPAck) },
	"RUDPMaxData":      func() message { return new(proto.RUDPMaxData) },
	"RUDPClose":        func() message { return new(proto.RUDPClose) },
	"RUDPData":         func() message { return new(proto.RUDPData) },
	"RUDPAckFrequency": func() message { return new(proto.RUDPAckFrequency) },
	"RUDPPacket":       func() message { return new(proto.RUDPPacket) },

	"RoomJoin":  func() message { return new(proto.RoomJoin) },
	"RoomLeave": func() message { return new(proto.RoomLeave) },
	"RoomState": func() message { return new(proto.RoomState) },

	"ClusterClaim":       func() message { return new(proto.ClusterClaim) },
	"ClusterIntroAsk":    func() message { return new(proto.ClusterIntroAsk) },
	"ClusterIntroAnswer": func() message { return new(proto.ClusterIntroAnswer) },
	"ClusterRelayBind":   func() message { return new(proto.ClusterRelayBind) },
	"ClusterRelayBound":  func() message { return new(proto.ClusterRelayBound) },
	"ClusterRelayData":   func() message { return new(proto.ClusterRelayData) },
	"ClusterRoomJoin":    func() message { return new(proto.ClusterRoomJoin) },
	"ClusterRoomLeave":   func() message { return new(proto.ClusterRoomLeave) },
	"ClusterRoomState":   func() message { return new(proto.ClusterRoomState) },
	"ClusterRoomClaim":   func() message { return new(proto.ClusterRoomClaim) },
}

// errorClasses are PROTOCOL.md [WIRE-2]'s names for the parsers' sentinel errors.
var errorClasses = []struct {
	name string
	err  error
}{
	{"short", proto.ErrShort}, {"trailing", proto.ErrTrailing}, {"malformed", proto.ErrMalformed},
	{"too-long", proto.ErrTooLong}, {"not-natpass", proto.ErrNotNatpass},
	{"unknown-version", proto.ErrUnknownVersion}, {"unknown-type", proto.ErrUnknownType},
}

func classOf(err error) string {
	for _, c := range errorClasses {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other: " + err.Error()
}

// parseDatagram applies the checks every natpass datagram shares (PROTOCOL.md §1-§3).
func parseDatagram(p []byte) error {
	h, _, err := proto.ParseHeader(p)
	if err != nil {
		return err
	}
	if strings.HasPrefix(h.Type.String(), "type-0x") {
		return proto.ErrUnknownType
	}
	return nil
}

// goImpl answers conformance requests with this repository's Go code.
type goImpl struct{}

func (goImpl) do(req request) (response, error) {
	switch req.Kind {
	case "layout", "reject":
		return parseRequest(req), nil
	}
	in := req.Inputs
	out, err := derive(req.Kind, in)
	if err != nil {
		return response{Error: err.Error()}, nil
	}
	if out == nil {
		return response{Skip: "kind " + req.Kind + " is not implemented by the Go runner"}, nil
	}
	return response{Outputs: out}, nil
}

func parseRequest(req request) response {
	if req.Hex == nil {
		return response{Error: "no hex"}
	}
	p, err := hex.DecodeString(*req.Hex)
	if err != nil {
		return response{Error: "bad hex"}
	}
	if req.Type == "Datagram" {
		if err := parseDatagram(p); err != nil {
			return response{Error: classOf(err)}
		}
		return response{Hex: req.Hex}
	}
	fresh, ok := layoutTypes[req.Type]
	if !ok {
		return response{Skip: "unknown type " + req.Type}
	}
	m := fresh()
	if err := m.Parse(p); err != nil {
		return response{Error: classOf(err)}
	}
	enc := hex.EncodeToString(m.Append(nil))
	fields, _ := json.Marshal(fieldsOf(m))
	return response{Hex: &enc, Fields: fields}
}

func unhex(in map[string]string, key string) []byte {
	b, err := hex.DecodeString(in[key])
	if err != nil {
		panic(fmt.Sprintf("input %s: %v", key, err))
	}
	return b
}

func key32(in map[string]string, key string) (k [32]byte) {
	copy(k[:], unhex(in, key))
	return k
}

func u64(in map[string]string, key string) uint64 {
	v, err := strconv.ParseUint(in[key], 10, 64)
	if err != nil {
		panic(fmt.Sprintf("input %s: %v", key, err))
	}
	return v
}

// derive computes one derivation vector's outputs; nil, nil for an unknown kind.
func derive(kind string, in map[string]string) (out map[string]string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	switch kind {
	case "ticket-mint":
		t := rendezvous.MintTicket(unhex(in, "secret"), proto.Ticket{PeerID: unhex(in, "peer_id"),
			PublicKey: key32(in, "public_key"), ExpiryUnix: u64(in, "expiry")})
		return map[string]string{"ticket": hex.EncodeToString(t), "mac": hex.EncodeToString(t[len(t)-proto.KeyLen:])}, nil
	case "ticket-verify":
		_, err := rendezvous.VerifyTicket(unhex(in, "secret"), unhex(in, "ticket"), u64(in, "now"))
		v := "ok"
		switch {
		case errors.Is(err, rendezvous.ErrBadTicket):
			v = "bad"
		case errors.Is(err, rendezvous.ErrTicketExpired):
			v = "expired"
		case err != nil:
			return nil, err
		}
		return map[string]string{"verdict": v}, nil
	case "token-key":
		k := relayframe.DeriveTokenKey(unhex(in, "secret"))
		return map[string]string{"token_key": hex.EncodeToString(k[:])}, nil
	case "token-mint":
		s := relayframe.NewTokenSigner(relayframe.DeriveTokenKey(unhex(in, "secret")))
		t := s.AppendToken(nil, relayframe.Token{PairID: u64(in, "pair_id"), ExpiryUnix: u64(in, "expiry"),
			KeyA: key32(in, "key_1"), KeyB: key32(in, "key_2")})
		return map[string]string{"token": hex.EncodeToString(t)}, nil
	case "token-verify":
		s := relayframe.NewTokenSigner(relayframe.DeriveTokenKey(unhex(in, "secret")))
		_, err := s.VerifyToken(unhex(in, "token"), u64(in, "now"))
		v := "ok"
		switch {
		case errors.Is(err, relayframe.ErrTokenMalformed):
			v = "malformed"
		case errors.Is(err, relayframe.ErrTokenBadMAC):
			v = "bad-mac"
		case errors.Is(err, relayframe.ErrTokenExpired):
			v = "expired"
		case err != nil:
			return nil, err
		}
		return map[string]string{"verdict": v}, nil
	case "probe-key":
		return probeKey(in), nil
	case "probe-seal":
		tag := probeTag(unhex(in, "probe_key"), unhex(in, "unsigned"))
		return map[string]string{"tag": hex.EncodeToString(tag),
			"packet": hex.EncodeToString(append(unhex(in, "unsigned"), tag...))}, nil
	case "probe-verify":
		p := unhex(in, "packet")
		v := "bad-tag"
		if len(p) >= proto.ProbeMACLen && hmac.Equal(probeTag(unhex(in, "probe_key"), p[:len(p)-proto.ProbeMACLen]), p[len(p)-proto.ProbeMACLen:]) {
			v = "ok"
		}
		return map[string]string{"verdict": v}, nil
	case "stun-binding":
		return stunBinding(unhex(in, "request"), netip.MustParseAddrPort(in["source"]))
	}
	return nil, nil
}

// probeKey is PROTOCOL.md [PROBE-1], [PROBE-2], [PROBE-4]. The node's own derivation
// (node/route.go probeKey) is unexported; the pair ID is punch's.
func probeKey(in map[string]string) map[string]string {
	ss, err := curve25519.X25519(unhex(in, "private_key"), unhex(in, "peer_public_key"))
	if err != nil {
		return map[string]string{"verdict": "low-order"}
	}
	h := hmac.New(sha256.New, ss)
	h.Write([]byte("natpass probe key"))
	h.Write(unhex(in, "psk"))
	var k punch.Key
	copy(k[:], h.Sum(nil))
	id := punch.PairID(&k)
	return map[string]string{"verdict": "ok", "shared_secret": hex.EncodeToString(ss),
		"probe_key": hex.EncodeToString(k[:]), "pair_id": strconv.FormatUint(id, 10),
		"pair_id_hex": fmt.Sprintf("%016x", id),
		"controlling": strconv.FormatBool(bytes.Compare(unhex(in, "public_key"), unhex(in, "peer_public_key")) < 0)}
}

// probeTag is PROTOCOL.md [PROBE-3].
func probeTag(key, unsigned []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(unsigned)
	return h.Sum(nil)[:proto.ProbeMACLen]
}

// stunBinding hands one STUN request to a fresh server's primary socket and reports
// what it sends back, or why it dropped the request.
func stunBinding(req []byte, from netip.AddrPort) (map[string]string, error) {
	primary := netip.MustParseAddrPort("192.0.2.1:3478")
	s, err := rendezvous.NewServer(rendezvous.Config{Secret: []byte("conformance runner secret, 32 b."),
		Primary: primary, WallClock: proto.WallClock{At: 0, Time: time.Unix(1_700_000_000, 0)}})
	if err != nil {
		return nil, err
	}
	reasons := []struct {
		err  error
		name string
	}{{rendezvous.ErrSTUNMalformed, "malformed"}, {rendezvous.ErrSTUNNotBindingRequest, "not-binding-request"},
		{rendezvous.ErrSTUNBadFingerprint, "bad-fingerprint"}, {rendezvous.ErrSTUNUnknownAttribute, "unknown-attribute"},
		{rendezvous.ErrSTUNChangeRequest, "change-request"}}
	if err := s.HandleDatagram(1, primary, from, req); err != nil {
		for _, r := range reasons {
			if errors.Is(err, r.err) {
				return map[string]string{"verdict": r.name}, nil
			}
		}
		return nil, err
	}
	buf := make([]byte, rendezvous.MaxDatagramLen)
	tx, ok := s.PollTransmit(1, buf)
	if !ok {
		return map[string]string{"verdict": "dropped silently"}, nil
	}
	return map[string]string{"verdict": "answer", "response": hex.EncodeToString(tx.Payload)}, nil
}

// fieldsOf renders m's fields as the vector files do (internal/vectorfile).
func fieldsOf(m any) map[string]any { return vectorfile.Fields(m) }
