package proto

import "net/netip"

// Fixed inputs for the signaling vectors: recognisable bytes, documentation addresses
// (RFC 5737, RFC 3849), both address families, and every optional field both present
// and absent somewhere.
var (
	vecSession = Session{0x5e, 0x55, 0x10, 0x4e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	vecKey     = [KeyLen]byte{0: 0x9a, 1: 0xbc, 31: 0x01}
	vecPSK     = [KeyLen]byte{0: 0x50, 1: 0x53, 2: 0x4b, 31: 0xff}
	vecV4      = netip.MustParseAddrPort("203.0.113.7:40001")
	vecV4b     = netip.MustParseAddrPort("198.51.100.20:3478")
	vecV6      = netip.MustParseAddrPort("[2001:db8::1]:51820")
	vecLAN     = netip.MustParseAddrPort("10.0.0.2:51820")
	vecTicket  = (&Ticket{
		PeerID:     []byte("alice"),
		PublicKey:  vecKey,
		ExpiryUnix: 1798761600, // 2027-01-01T00:00:00Z
		MAC:        [KeyLen]byte{0: 0xaa, 31: 0x55},
	}).Append(nil)
)

func init() {
	add := func(file, name string, m message, fresh func() message) {
		vectorCases = append(vectorCases, vectorCase{File: file, Name: name, Msg: m, New: fresh})
	}
	add("ticket", "ticket", &Ticket{PeerID: []byte("alice"), PublicKey: vecKey, ExpiryUnix: 1798761600,
		MAC: [KeyLen]byte{0: 0xaa, 31: 0x55}}, func() message { return new(Ticket) })

	newRegister := func() message { return new(Register) }
	add("register", "register-no-hosts", &Register{TxID: 1, Ticket: vecTicket, Suites: SuitesOf(SuiteChaChaPoly)}, newRegister)
	add("register", "register-two-hosts", &Register{TxID: 0x0102030405060708, Ticket: vecTicket,
		Hosts: []netip.AddrPort{vecLAN, vecV6}, Suites: SuitesOf(SuiteChaChaPoly, SuiteAESGCM)}, newRegister)
	// [SUITE-2]: no suites byte is malformed. 0 (what a node that does not advertise
	// sends) and unknown bits travel as they are; the receiver of the set reads both as
	// "ChaChaPoly" plus the known bits.
	add("register", "register-suites-zero", &Register{TxID: 2, Ticket: vecTicket, Hosts: []netip.AddrPort{vecLAN}}, newRegister)
	add("register", "register-suites-unknown-bits", &Register{TxID: 3, Ticket: vecTicket, Suites: 0xfe}, newRegister)

	newRegistered := func() message { return new(Registered) }
	add("registered", "registered-v4-no-alt", &Registered{TxID: 1, Session: vecSession, Observed: vecV4,
		Keepalive: 25}, newRegistered)
	add("registered", "registered-v6-alt", &Registered{TxID: 2, Session: vecSession, Observed: vecV6,
		Keepalive: 25, AltPort: vecV4b, AltAddr: netip.MustParseAddrPort("192.0.2.9:3479")}, newRegistered)

	add("keepalive", "keepalive-unmeasured", &Keepalive{Session: vecSession, Seq: 7}, func() message { return new(Keepalive) })
	add("keepalive", "keepalive-port-restricted", &Keepalive{Session: vecSession, Seq: 8, NAT: NATBehavior{
		Mapping: EndpointIndependent, Filtering: AddressAndPortDependent, Allocation: AllocationPreserving,
		Hairpin: HairpinYes}}, func() message { return new(Keepalive) })
	add("keepalive", "keepalive-sequential-predicted", &Keepalive{Session: vecSession, Seq: 9, NAT: NATBehavior{
		Mapping: AddressAndPortDependent, Filtering: AddressAndPortDependent, Allocation: AllocationSequential,
		PortDelta: 1, Hairpin: HairpinNo}, Predicted: netip.MustParseAddrPort("203.0.113.7:40009")},
		func() message { return new(Keepalive) })
	add("keepalive-ack", "keepalive-ack", &KeepaliveAck{Seq: 7, Observed: vecV4},
		func() message { return new(KeepaliveAck) })
	add("keepalive-ack", "keepalive-ack-v6", &KeepaliveAck{Seq: 8, Observed: vecV6},
		func() message { return new(KeepaliveAck) })

	newProbe := func() message { return new(NATProbe) }
	add("nat-probe", "nat-probe-same-socket", &NATProbe{Session: vecSession, TxID: 9}, newProbe)
	add("nat-probe", "nat-probe-change-both", &NATProbe{Session: vecSession, TxID: 10,
		Change: ChangePort | ChangeAddress}, newProbe)
	add("nat-probe-reply", "nat-probe-reply", &NATProbeReply{TxID: 10, Observed: vecV4},
		func() message { return new(NATProbeReply) })
	add("nat-probe-reply", "nat-probe-reply-v6", &NATProbeReply{TxID: 11, Observed: vecV6},
		func() message { return new(NATProbeReply) })

	add("introduce-request", "introduce-request-relay-only", &IntroduceRequest{Session: vecSession, TxID: 11,
		PeerID: []byte("bob"), Flags: IntroRelayOnly}, func() message { return new(IntroduceRequest) })
	add("introduce-request", "introduce-request-refresh", &IntroduceRequest{Session: vecSession, TxID: 12,
		PeerID: []byte("bob"), Flags: IntroRefresh}, func() message { return new(IntroduceRequest) })
	add("introduce-request", "introduce-request-rebound-v4", &IntroduceRequest{Session: vecSession, TxID: 13,
		PeerID: []byte("bob"), Flags: IntroRefresh | IntroRebound, Rebound: vecV4}, func() message { return new(IntroduceRequest) })
	add("introduce-request", "introduce-request-rebound-v6", &IntroduceRequest{Session: vecSession, TxID: 14,
		PeerID: []byte("bob"), Flags: IntroNoRelay | IntroRefresh | IntroRebound, Rebound: vecV6},
		func() message { return new(IntroduceRequest) })

	newIntro := func() message { return new(Introduction) }
	add("introduction", "introduction-full", &Introduction{
		TxID:    11,
		PeerID:  []byte("bob"),
		PeerKey: vecKey,
		NAT: NATBehavior{Mapping: AddressAndPortDependent, Filtering: AddressAndPortDependent,
			Allocation: AllocationSequential, PortDelta: -2, Hairpin: HairpinNo},
		StartDelayMs: 150,
		Candidates: []Candidate{
			{Kind: CandidateHost, Addr: vecLAN},
			{Kind: CandidateServerReflexive, Addr: vecV4},
			{Kind: CandidatePredicted, Addr: netip.MustParseAddrPort("203.0.113.7:39999")},
			{Kind: CandidateHost, Addr: vecV6},
		},
		RelayToken: []byte{0x72, 0x74, 0x6b, 0x6e, 1, 2, 3, 4},
		PSK:        vecPSK,
		PeerSuites: SuitesOf(SuiteChaChaPoly, SuiteAESGCM),
	}, newIntro)
	add("introduction", "introduction-relay-only", &Introduction{
		TxID: 0, PeerID: []byte("alice"), PeerKey: vecKey,
		NAT:        NATBehavior{Mapping: EndpointIndependent, Filtering: EndpointIndependent, NoTranslation: true},
		RelayToken: []byte{0xee},
		Flags:      IntroRelayOnly,
		PeerSuites: SuitesOf(SuiteChaChaPoly),
	}, newIntro)
	add("introduction", "introduction-peer-suites-unknown-bits", &Introduction{
		TxID: 12, PeerID: []byte("carol"), PeerKey: vecKey,
		Candidates: []Candidate{{Kind: CandidateServerReflexive, Addr: vecV4b}},
		Flags:      IntroNoRelay,
		PeerSuites: 0x82,
	}, newIntro)

	add("introduction-ack", "introduction-ack", &IntroductionAck{Session: vecSession, PeerID: []byte("bob")},
		func() message { return new(IntroductionAck) })

	newError := func() message { return new(Error) }
	add("error", "error-unknown-peer", &Error{TxID: 11, Code: CodeUnknownPeer, Text: []byte("no peer bob")}, newError)
	add("error", "error-empty-text", &Error{TxID: 1, Code: CodeRateLimited}, newError)
}
