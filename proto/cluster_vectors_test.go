package proto

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

// vecClusterPeer is the peer record of the cluster vectors: every field set, both
// address families.
var vecClusterPeer = ClusterPeer{
	PeerID: []byte("alice"), Key: vecKey,
	Tag:              [RegTagLen]byte{0: 0x7a, 1: 0x67, 15: 0x01},
	NAT:              NATBehavior{Mapping: AddressDependent, Filtering: AddressAndPortDependent, Allocation: AllocationSequential, PortDelta: 2},
	Addr:             vecV4,
	Predicted:        netip.MustParseAddrPort("203.0.113.7:40003"),
	Hosts:            []netip.AddrPort{vecLAN, vecV6},
	TicketExpiryUnix: 1798761600,
	Suites:           SuitesOf(SuiteChaChaPoly, SuiteAESGCM),
	OtherAddr:        netip.MustParseAddrPort("[2001:db8::7]:40001"),
}

func init() {
	add := func(name string, m message, fresh func() message) {
		vectorCases = append(vectorCases, vectorCase{File: "cluster", Name: name, Msg: m, New: fresh})
	}
	add("cluster-claim", &ClusterClaim{Server: 0x5e7e000000000001, RegisteredUnixMs: 1798761600123, Key: vecKey, PeerID: []byte("alice")},
		func() message { return new(ClusterClaim) })
	newAsk := func() message { return new(ClusterIntroAsk) }
	add("cluster-intro-ask", &ClusterIntroAsk{AskID: 7, Server: 0x5e7e000000000001, TxID: 0x1122334455667788, Flags: IntroNoRelay,
		Target: []byte("bob"), Requester: vecClusterPeer}, newAsk)
	add("cluster-intro-ask-bare", &ClusterIntroAsk{AskID: 8, Server: 2, TxID: 1, Target: []byte("bob"),
		Requester: ClusterPeer{PeerID: []byte("carol"), Key: vecKey, Addr: vecV4b, TicketExpiryUnix: 1}}, newAsk)
	add("cluster-intro-ask-suites-unknown-bits", &ClusterIntroAsk{AskID: 9, Server: 2, TxID: 2, Target: []byte("bob"),
		Requester: ClusterPeer{PeerID: []byte("dave"), Key: vecKey, Addr: vecV6, TicketExpiryUnix: 2, Suites: 0xfc}}, newAsk)
	add("cluster-intro-ask-v6-with-other-v4", &ClusterIntroAsk{AskID: 10, Server: 2, TxID: 3, Target: []byte("bob"),
		Requester: ClusterPeer{PeerID: []byte("erin"), Key: vecKey, Addr: vecV6, TicketExpiryUnix: 3, Suites: 1, OtherAddr: vecV4b}}, newAsk)
	newAnswer := func() message { return new(ClusterIntroAnswer) }
	add("cluster-intro-answer", &ClusterIntroAnswer{AskID: 7, Server: 0x5e7e000000000002, Target: vecClusterPeer}, newAnswer)
	add("cluster-intro-answer-not-ready", &ClusterIntroAnswer{AskID: 7, Server: 2, Status: ClusterNotReady}, newAnswer)
	add("cluster-relay-bind", &ClusterRelayBind{BindID: 9, Server: 1, PairID: 0xfeedface, Channel: 0x1234,
		RequesterKey: vecKey, TargetKey: vecPSK, Target: []byte("bob")}, func() message { return new(ClusterRelayBind) })
	newBound := func() message { return new(ClusterRelayBound) }
	add("cluster-relay-bound", &ClusterRelayBound{BindID: 9, Server: 2, Channel: 0x4321}, newBound)
	add("cluster-relay-bound-no-channel", &ClusterRelayBound{BindID: 9, Server: 2, Status: ClusterNoChannelYet}, newBound)
	// The frame takes the rest of relay-data: open-ended, like relay-send.
	clusterRelayDataVectorCases = append(clusterRelayDataVectorCases, vectorCase{File: "cluster-relay-data", Name: "cluster-relay-data", Msg: &ClusterRelayData{Server: 1, From: 0x1234, To: 0x4321,
		Frame: []byte{0xe1, byte(TypeRelaySend), 0x12, 0x34, 0xe1, 0x13}}, New: func() message { return new(ClusterRelayData) }})
}

// clusterRelayDataVectorCases: the relay-data vectors, checked like relay-send's.
var clusterRelayDataVectorCases []vectorCase

func TestClusterRelayDataVectors(t *testing.T) {
	checkOpenEndedVectors(t, "cluster-relay-data", "ClusterRelayData", clusterRelayDataVectorCases, ClusterRelayDataLen)
}

// clusterRejectVectors are the must-reject inputs of the cluster messages (§11).
func clusterRejectVectors() []rejectVector {
	var out []rejectVector
	add := func(typ, name, rule, class string, p []byte) {
		out = append(out, rejectVector{Name: kebab(typ) + "-" + name, Type: typ, Hex: hex.EncodeToString(p), Rule: rule, Error: class})
	}
	claim := (&ClusterClaim{Server: 1, RegisteredUnixMs: 2, Key: vecKey, PeerID: bob}).Append(nil)
	add("ClusterClaim", "cut-short", "WIRE-2", "short", minusByte(claim))
	add("ClusterClaim", "byte-after-id", "WIRE-1", "trailing", plusByte(claim))
	add("ClusterClaim", "peer-id-empty", "CLUSTER-1", "malformed", cat(hdr(TypeClusterClaim), be64(1), be64(2), key32, vec8(nil)))

	ask := (&ClusterIntroAsk{AskID: 1, Server: 1, TxID: 1, Target: bob, Requester: ClusterPeer{PeerID: bob, Addr: vecV4}}).Append(nil)
	add("ClusterIntroAsk", "cut-short", "WIRE-2", "short", minusByte(minusByte(minusByte(ask))))
	add("ClusterIntroAsk", "suites-missing", "WIRE-2", "short", minusByte(minusByte(ask)))
	add("ClusterIntroAsk", "other-address-missing", "WIRE-2", "short", minusByte(ask))
	add("ClusterIntroAsk", "byte-after-other-address", "WIRE-1", "trailing", plusByte(ask))
	bare := cat(hdr(TypeClusterIntroAsk), be64(1), be64(1), be64(1), []byte{0}, vec8(bob),
		vec8(bob), key32, make([]byte, RegTagLen), make([]byte, NATBehaviorLen), []byte{0, 0, 0}, be64(1), []byte{1}, noAddr)
	add("ClusterIntroAsk", "requester-without-address", "CLUSTER-1", "malformed", bare)
	withOther := func(other []byte) []byte { return cat(ask[:len(ask)-1], other) }
	add("ClusterIntroAsk", "other-address-same-family", "CLUSTER-1", "malformed", withOther(addrBytes("198.51.100.20:3478")))
	add("ClusterIntroAsk", "other-address-family-5", "ADDR-1", "malformed", withOther(badFamily))
	add("ClusterIntroAsk", "other-address-v4-mapped", "ADDR-2", "malformed", withOther(mapped))
	add("ClusterIntroAsk", "other-address-port-0", "ADDR-3", "malformed", withOther(cat([]byte{6}, make([]byte, 16), be16(0))))

	okAnswer := (&ClusterIntroAnswer{AskID: 1, Server: 2, Target: ClusterPeer{PeerID: bob, Addr: vecV4, Suites: 3}}).Append(nil)
	add("ClusterIntroAnswer", "target-suites-missing", "WIRE-2", "short", minusByte(minusByte(okAnswer)))
	add("ClusterIntroAnswer", "target-other-address-missing", "WIRE-2", "short", minusByte(okAnswer))
	add("ClusterIntroAnswer", "byte-after-target-other-address", "WIRE-1", "trailing", plusByte(okAnswer))
	answer := (&ClusterIntroAnswer{AskID: 1, Server: 2, Status: ClusterNotReady}).Append(nil)
	add("ClusterIntroAnswer", "byte-after-status", "WIRE-1", "trailing", plusByte(answer))
	add("ClusterIntroAnswer", "status-5", "CLUSTER-2", "malformed", cat(hdr(TypeClusterIntroAnswer), be64(1), be64(2), []byte{5}))
	add("ClusterIntroAnswer", "ok-without-target", "WIRE-2", "short", cat(hdr(TypeClusterIntroAnswer), be64(1), be64(2), []byte{0}))

	bind := (&ClusterRelayBind{BindID: 1, Server: 1, PairID: 1, Channel: 1, Target: bob}).Append(nil)
	add("ClusterRelayBind", "cut-short", "WIRE-2", "short", minusByte(bind))
	add("ClusterRelayBind", "channel-0", "CLUSTER-1", "malformed", cat(hdr(TypeClusterRelayBind), be64(1), be64(1), be64(1), be16(0), key32, key32, vec8(bob)))

	add("ClusterRelayBound", "ok-channel-0", "CLUSTER-2", "malformed", cat(hdr(TypeClusterRelayBound), be64(1), be64(2), []byte{0}, be16(0)))
	add("ClusterRelayBound", "no-channel-yet-with-channel", "CLUSTER-2", "malformed", cat(hdr(TypeClusterRelayBound), be64(1), be64(2), []byte{4}, be16(7)))
	add("ClusterRelayBound", "byte-after-channel", "WIRE-1", "trailing", cat(hdr(TypeClusterRelayBound), be64(1), be64(2), []byte{0}, be16(7), []byte{0}))

	add("ClusterRelayData", "cut-short", "WIRE-2", "short", cat(hdr(TypeClusterRelayData), be64(1), be16(1), []byte{0}))
	add("ClusterRelayData", "frame-empty", "WIRE-2", "short", cat(hdr(TypeClusterRelayData), be64(1), be16(1), be16(1)))
	add("ClusterRelayData", "to-channel-0", "CLUSTER-1", "malformed", cat(hdr(TypeClusterRelayData), be64(1), be16(1), be16(0), []byte{0xe1}))
	return out
}
