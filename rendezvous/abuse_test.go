package rendezvous

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// paddedSTUN returns a Binding request of exactly n bytes (n ≥ 24, n%4 == 0): a
// PADDING attribute (RFC 5780 §7.6) fills it, then FINGERPRINT if asked.
func paddedSTUN(txid byte, n int, fingerprint bool) []byte {
	pad := n - stunHeaderLen - stunAttrHeader
	if fingerprint {
		pad -= 8
	}
	if pad < 0 {
		return stunRequestBytes(txid, fingerprint)
	}
	return stunRequestBytes(txid, fingerprint, stunAttr(stunAttrPadding, make([]byte, pad)))
}

// RFC 8489 §14.2, checked with the RFC 5769 §2.1 request: the response's
// XOR-MAPPED-ADDRESS is the sender's address, from the socket the request reached.
func TestSTUNBindingAnswered(t *testing.T) {
	h := newHarness(t, nil)
	rfcClient := netip.MustParseAddrPort("192.0.2.1:32853") // the address of RFC 5769 §2.2
	err, out, _ := h.deliver(srvAltPort, rfcClient, unhex(t, rfc5769Request))
	if err != nil || len(out) != 1 {
		t.Fatalf("RFC 5769 request: %v, %d replies", err, len(out))
	}
	if out[0].From != srvAltPort || out[0].To != rfcClient {
		t.Fatalf("response %v → %v", out[0].From, out[0].To)
	}
	// RFC 5769 §2.2's XOR-MAPPED-ADDRESS attribute, byte for byte.
	if got, want := out[0].Payload[stunHeaderLen:stunHeaderLen+12], unhex(t, rfc5769ResponseV4)[36:48]; string(got) != string(want) {
		t.Fatalf("XOR-MAPPED-ADDRESS %x, RFC 5769 has %x", got, want)
	}
	if txid, mapped, fp := decodeSTUNResponse(t, out[0].Payload); txid != rfc5769TxID || mapped != rfcClient || !fp {
		t.Fatalf("decoded %x %v fingerprint=%v", txid, mapped, fp)
	}

	for _, from := range []netip.AddrPort{aliceNAT, v6Node} {
		req := paddedSTUN(7, 64, true)
		err, out, _ := h.deliver(srvPrimary, from, req)
		if err != nil || len(out) != 1 {
			t.Fatalf("%v: %v, %d replies", from, err, len(out))
		}
		if _, mapped, fp := decodeSTUNResponse(t, out[0].Payload); mapped != from || !fp || out[0].From != srvPrimary {
			t.Fatalf("%v: mapped %v fingerprint=%v from %v", from, mapped, fp, out[0].From)
		}
	}
	if st := h.s.Stats(); st.STUNBindings != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// PROTOCOL.md [STUN-3]: every standard request is answered, the bare 20-byte one
// included, and no reply is more than 24 bytes (stunMaxGrowth) larger than its
// request: at worst 2.2 times a bare request from IPv6.
func TestSTUNReplyBound(t *testing.T) {
	change := stunAttr(stunAttrChangeRequest, []byte{0, 0, 0, 6})
	many := [][]byte{stunAttr(0x7001, nil), stunAttr(0x7002, nil), stunAttr(0x7003, nil), stunAttr(0x7004, nil), stunAttr(0x7005, nil)}
	cases := []struct {
		name     string
		from     netip.AddrPort
		req      []byte
		wantType uint16
		wantLen  int
	}{
		{"bare v4", aliceNAT, stunRequestBytes(1, false), stunBindingSuccess, 32},
		{"bare v6", v6Node, stunRequestBytes(1, false), stunBindingSuccess, 44},
		{"bare+FINGERPRINT v4", aliceNAT, stunRequestBytes(1, true), stunBindingSuccess, 40},
		{"bare+FINGERPRINT v6", v6Node, stunRequestBytes(1, true), stunBindingSuccess, 52},
		{"padded 64 v6", v6Node, paddedSTUN(1, 64, true), stunBindingSuccess, 52},
		{"classic bare v4", aliceNAT, classicRequestBytes(1), stunBindingSuccess, 32},
		{"classic bare v6", v6Node, classicRequestBytes(1), stunBindingSuccess, 44},
		{"CHANGE-REQUEST v4", aliceNAT, stunRequestBytes(1, false, change), stunBindingError, 36},
		{"CHANGE-REQUEST+FINGERPRINT v6", v6Node, stunRequestBytes(1, true, change), stunBindingError, 44},
		{"five unknown v4", aliceNAT, stunRequestBytes(1, true, many...), stunBindingError, 48},
		{"classic RESPONSE-ADDRESS v4", aliceNAT, classicRequestBytes(1, stunAttr(0x0002, make([]byte, 8))), stunBindingError, 36},
	}
	worst := 0.0
	for _, c := range cases {
		h := newHarness(t, nil)
		err, out, _ := h.deliver(srvPrimary, c.from, c.req)
		if err != nil || len(out) != 1 || out[0].To != c.from {
			t.Errorf("%s: %v, %d replies", c.name, err, len(out))
			continue
		}
		r := decodeSTUNReply(t, out[0].Payload)
		if r.Type != c.wantType || len(out[0].Payload) != c.wantLen || len(out[0].Payload) > len(c.req)+stunMaxGrowth {
			t.Errorf("%s: %d-byte request, reply type %#04x of %d bytes; want %#04x of %d",
				c.name, len(c.req), r.Type, len(out[0].Payload), c.wantType, c.wantLen)
		}
		if r.Type == stunBindingSuccess && r.Mapped != c.from {
			t.Errorf("%s: mapped %v", c.name, r.Mapped)
		}
		worst = max(worst, float64(len(out[0].Payload))/float64(len(c.req)))
	}
	if worst != 2.2 {
		t.Errorf("worst reply/request ratio %.3f, PROTOCOL.md [STUN-3] says 2.2", worst)
	}
	// An RFC 3489 client would take any reply to a change request for the change
	// having happened: dropped, counted.
	h := newHarness(t, nil)
	if err, out, _ := h.deliver(srvPrimary, aliceNAT, classicRequestBytes(1, change)); !errors.Is(err, ErrSTUNChangeRequest) ||
		len(out) != 0 || h.s.Stats().DropSTUNChangeRequest != 1 {
		t.Errorf("classic CHANGE-REQUEST: %v, %d replies, stats %+v", err, len(out), h.s.Stats())
	}
}

// The per-source bucket charges STUN like every unauthenticated request: with the
// default SourceRate a source gets 20 answers in a row, then one per 100 ms; bare
// requests from a spoofed source cannot buy more.
func TestSTUNRateLimitedPerSource(t *testing.T) {
	h := newHarness(t, nil)
	answered, bytesOut := 0, 0
	for i := range 50 {
		err, out, _ := h.deliver(srvPrimary, v6Node, stunRequestBytes(byte(i), false))
		if err == nil && len(out) == 1 {
			answered++
			bytesOut += len(out[0].Payload)
		} else if !errors.Is(err, ErrRateLimited) || len(out) != 0 {
			t.Fatalf("request %d: %v, %d replies", i, err, len(out))
		}
	}
	if answered != DefaultSourceRate.Burst || bytesOut != 44*DefaultSourceRate.Burst || h.s.Stats().DropRateLimited != 30 {
		t.Fatalf("answered %d (%d bytes), stats %+v", answered, bytesOut, h.s.Stats())
	}
	// Another address in the same /64 shares the bucket; a second later ten more.
	other := netip.MustParseAddrPort("[2001:db8::99]:5000")
	if sourceKey(other) != sourceKey(v6Node) {
		t.Fatalf("test addresses %v and %v are in different /64s", other, v6Node)
	}
	if err, out, _ := h.deliver(srvPrimary, other, stunRequestBytes(1, false)); !errors.Is(err, ErrRateLimited) || len(out) != 0 {
		t.Fatalf("same /64: %v, %d replies", err, len(out))
	}
	h.wait(time.Second)
	answered = 0
	for i := range 50 {
		if err, out, _ := h.deliver(srvPrimary, v6Node, stunRequestBytes(byte(i), false)); err == nil && len(out) == 1 {
			answered++
		}
	}
	if want := int(time.Second / DefaultSourceRate.Interval); answered != want {
		t.Fatalf("after a second: %d answered, want %d", answered, want)
	}
}

// dropCount sums every counter of a datagram the server refused without a reply.
func dropCount(st Stats) uint64 {
	return st.DropNotNatpass + st.DropUnknownVersion + st.DropMalformed + st.DropNotForServer + st.DropRelay +
		st.DropUnknownSocket + st.DropBadSource + st.DropRateLimited + st.DropBusy + st.DropAmplification +
		st.DropQueueFull + st.DropSTUNMalformed + st.DropSTUNNotRequest + st.DropSTUNBadFingerprint +
		st.DropSTUNChangeRequest +
		st.Relay.DropMalformed + st.Relay.DropNoChannel + st.Relay.DropWrongSource + st.Relay.DropPeerNotReady +
		st.Relay.DropSessionRate + st.Relay.DropServerRate + st.Relay.DropQueueFull
}

// Garbage gets no reply and is counted exactly once.
func TestGarbageIsCountedAndUnanswered(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.register("alice", 1, aliceNAT)
	reg := registerBytes(1, ticketFor("bob", 2))
	garbage := map[string][]byte{
		"empty":              {},
		"one byte":           {0x42},
		"natpass prefix":     {0xE1},
		"natpass v2":         {0xE2, 0x01, 0, 0},
		"registered type":    (&proto.Registered{TxID: 1, Observed: aliceNAT, Keepalive: 25}).Append(nil),
		"unassigned type":    {0xE1, 0x0F, 1, 2, 3},
		"keyx type":          {0xE1, 0x10, 1, 2, 3},
		"relay-send short":   {0xE1, 0x22, 0, 1},
		"relay-send ch 0":    {0xE1, 0x22, 0, 0, 1},
		"relay-send no chan": {0xE1, 0x22, 0x12, 0x34, 1},
		"relay-deliver":      {0xE1, 0x23, 0x12, 0x34, 1},
		"relay reserved":     {0xE1, 0x2A, 0x12, 0x34, 1},
		"relay-alloc short":  allocateBytes(alice.Session, 1, "bob", []byte{1})[:30],
		"truncated register": reg[:len(reg)-1],
		"register + 1":       append(append([]byte(nil), reg...), 0),
		"keepalive short":    keepaliveBytes(alice.Session, 1)[:21],
		"probe bad flags":    append(probeBytes(alice.Session, 1, 0)[:26], 0x04),
		"introduce bad flag": append(introduceBytes(alice.Session, 1, "bob", 0)[:30], 0x03),
		"stun response":      unhex(t, rfc5769ResponseV4),
		"stun top bits set":  func() []byte { p := paddedSTUN(1, 64, false); p[0] |= 0x80; return p }(),
		"stun bad length":    func() []byte { p := paddedSTUN(1, 64, false); p[3] -= 4; return p }(),
		"stun short":         {0x00, 0x01, 0x00},
		"tls-like":           {0x16, 0x03, 0x01, 0x00, 0x10},
		"rtp-like":           {0x80, 0x00, 0x12, 0x34},
	}
	for name, p := range garbage {
		before := dropCount(h.s.Stats())
		err, out, evs := h.deliver(srvPrimary, strangerA, p)
		if err == nil || len(out) != 0 || len(evs) != 0 {
			t.Errorf("%s: err %v, %d replies, %d events", name, err, len(out), len(evs))
		}
		if got := dropCount(h.s.Stats()) - before; got != 1 {
			t.Errorf("%s: counted %d times", name, got)
		}
	}
	if st := h.s.Stats(); st.Sessions != 1 || st.Registered != 1 {
		t.Fatalf("garbage changed the presence table: %+v", st)
	}
}

// testSeed returns the seed of a randomised test: NATPASS_SEED when set, else a
// fixed default, and logs how to replay it.
func testSeed(t *testing.T) uint64 {
	seed := uint64(1)
	if v := os.Getenv("NATPASS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("NATPASS_SEED: %v", err)
		}
	}
	t.Logf("seed %d; replay: NATPASS_SEED=%d go test ./rendezvous -run '^%s$'", seed, seed, t.Name())
	return seed
}

// No reply to a sender without a valid cookie is larger than its request, STUN's
// stated bound aside (at most stunMaxGrowth bytes more, PROTOCOL.md [STUN-3]): every
// reply type the server can send an unauthenticated sender is exercised here, with
// valid-but-unauthenticated requests of every kind and with random bytes.
func TestNoReplyLargerThanUnauthenticatedRequest(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	h := newHarness(t, func(c *Config) { c.MaxPeers = 2 })
	h.register("alice", 1, aliceNAT)
	h.register("bob", 2, bobNAT) // table now full: the server-full error is exercised
	var randomCookie proto.Session
	inputs := [][]byte{
		registerBytes(1, ticketFor("carol", 3)),                                                    // server full
		registerBytes(2, ticketFor("alice", 1)),                                                    // replaces: registered
		registerBytes(3, append(ticketFor("x", 4)[:74], 0)),                                        // bad ticket, shortest
		registerBytes(4, MintTicket(testSecret, proto.Ticket{PeerID: []byte("e"), ExpiryUnix: 1})), // expired
		keepaliveBytes(randomCookie, 1),                                                            // no session
		probeBytes(randomCookie, 1, proto.ChangeAddress|proto.ChangePort),                          // no session
		introduceBytes(randomCookie, 1, "b", 0),                                                    // no session
		stunRequestBytes(1, false),                                                                 // STUN, bare
		stunRequestBytes(1, true),                                                                  // bare with FINGERPRINT
		classicRequestBytes(1),                                                                     // RFC 3489
		stunRequestBytes(1, false, stunAttr(stunAttrChangeRequest, []byte{0, 0, 0, 6})),            // STUN 420
		paddedSTUN(1, 40, true),
		unhex(t, rfc5769Request),
	}
	replies := 0
	check := func(from netip.AddrPort, p []byte) {
		_, out, _ := h.deliver(srvPrimary, from, p)
		limit := len(p)
		if proto.Classify(p) == proto.ClassSTUN {
			limit += stunMaxGrowth
		}
		for _, d := range out {
			replies++
			if len(d.Payload) > limit {
				t.Fatalf("seed %d: %d-byte reply %x to a %d-byte unauthenticated request %x",
					seed, len(d.Payload), d.Payload, len(p), p)
			}
		}
	}
	// Every input from fresh IPv4, IPv6 and v4-mapped sources, so no rate limit hides
	// a reply.
	for k, p := range inputs {
		check(netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(k + 1)}), 7), p)
		check(netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 5: byte(k + 1), 15: 1}), 7), p)
		check(netip.AddrPortFrom(netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 198, 51, 100, byte(k + 1)}), 7), p)
	}
	// One source flooding each kind: its registers are challenged, its unknown
	// cookies each answered with error 5.
	for _, p := range inputs {
		for range 30 {
			check(strangerA, p)
		}
	}
	sources := []netip.AddrPort{strangerA, v6Node, bobNAT}
	for range 3000 {
		p := make([]byte, rng.IntN(200))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if len(p) > 0 && rng.IntN(2) == 0 {
			p[0] = 0xE1 // natpass v1 header, so the fuzz reaches the parsers
			if len(p) > 1 {
				p[1] = byte(rng.IntN(10))
			}
		}
		check(sources[rng.IntN(len(sources))], p)
	}
	st := h.s.Stats()
	if replies == 0 || st.ServerFull == 0 || st.NoSession == 0 || st.BadTicket == 0 || st.ExpiredTicket == 0 ||
		st.Admission.Retries == 0 || st.STUNBindings < 6 || st.STUNUnknownAttr == 0 || st.Replaced == 0 {
		t.Fatalf("not every reply type was exercised: %+v", st)
	}
}

// A flooding source is held to its rate: registers beyond it are challenged with a
// retry each ([SRV-15]); other unauthenticated requests get one notice per second.
// Neither affects another source.
func TestSourceRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SourceRate = Rate{Interval: 100 * time.Millisecond, Burst: 5} })
	req := registerBytes(1, ticketFor("alice", 1))
	answered, retries := 0, 0
	for i := 0; i < 50; i++ { // 50 registers in one instant
		err, out, _ := h.deliver(srvPrimary, aliceNAT, req)
		switch {
		case err == nil:
			answered++
		case errors.Is(err, ErrChallenged):
			if len(out) != 1 || len(out[0].Payload) != proto.RetryLen || out[0].To != aliceNAT {
				t.Fatalf("challenged register got %d replies: %v", len(out), out)
			}
			var r proto.Retry
			if err := r.Parse(out[0].Payload); err != nil || r.TxID != 1 {
				t.Fatalf("retry %x: %v, txid %d", out[0].Payload, err, r.TxID)
			}
			retries++
		default:
			t.Fatal(err)
		}
	}
	if answered != 5 || retries != 45 || h.s.Stats().Admission.ChallengedSource != 45 {
		t.Fatalf("answered %d (want the burst, 5), retries %d (want 45), stats %+v", answered, retries, h.s.Stats().Admission)
	}
	// Another port of the same IPv4 address is the same source.
	if err, _, _ := h.deliver(srvPrimary, netip.AddrPortFrom(aliceNAT.Addr(), 1), req); !errors.Is(err, ErrChallenged) {
		t.Fatalf("same IP, other port: %v", err)
	}
	// Requests with an unknown cookie from the spent source are not charged to it
	// ([SRV-9]): each one hears error 5, as after a restart every node behind a
	// shared address must.
	for i := range 10 {
		err, out, _ := h.deliver(srvPrimary, aliceNAT, keepaliveBytes(proto.Session{9}, uint32(i)))
		if !errors.Is(err, ErrNoSession) || errorCode(t, out) != proto.CodeNoSession {
			t.Fatalf("unknown cookie from a spent source: %v, %d replies", err, len(out))
		}
	}
	// Another source is unaffected.
	if err, _, _ := h.deliver(srvPrimary, bobNAT, registerBytes(2, ticketFor("bob", 2))); err != nil {
		t.Fatalf("other source: %v", err)
	}
	// After one interval one more request passes.
	h.wait(100 * time.Millisecond)
	if err, _, _ := h.deliver(srvPrimary, aliceNAT, req); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

// A session flooding keepalives is held to SessionRate.
func TestSessionRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SessionRate = Rate{Interval: time.Second, Burst: 10} })
	r := h.register("alice", 1, aliceNAT)
	ok := 0
	for i := range 100 {
		if err, _, _ := h.deliver(srvPrimary, aliceNAT, keepaliveBytes(r.Session, uint32(i))); err == nil {
			ok++
		}
	}
	if ok != 10 || h.s.Stats().DropRateLimited != 90 {
		t.Fatalf("%d keepalives answered, stats %+v", ok, h.s.Stats())
	}
}

func TestSourceTableIsBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSources = 4 })
	for i := range 10 {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), 4000)
		h.deliver(srvPrimary, from, paddedSTUN(byte(i), 40, false))
	}
	// IPv6 sources count per /64.
	for i := range 3 {
		from := netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", i+1)), 4000)
		h.deliver(srvPrimary, from, paddedSTUN(byte(i), 64, false))
	}
	if st := h.s.Stats(); st.Sources != 4 || st.SourceEvictions != 7 || st.STUNBindings != 13 {
		t.Fatalf("stats %+v", st)
	}
}

// The server-wide budget caps replies to unauthenticated senders from any number of
// sources.
func TestUnauthenticatedBudget(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.UnauthRate = Rate{Interval: time.Second, Burst: 3} })
	answered := 0
	for i := range 20 {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), 4000)
		if err, out, _ := h.deliver(srvPrimary, from, paddedSTUN(1, 40, false)); err == nil && len(out) == 1 {
			answered++
		}
	}
	if answered != 3 || h.s.Stats().DropBusy != 17 {
		t.Fatalf("answered %d, stats %+v", answered, h.s.Stats())
	}
}

// When the caller breaks the drain rule the queue stays bounded and inputs are
// refused, counted.
func TestTransmitQueueBounded(t *testing.T) {
	h := newHarness(t, nil)
	r := h.register("alice", 1, aliceNAT)
	refused := 0
	for i := range 3 * txQueueLen {
		if err := h.s.HandleDatagram(h.now, srvPrimary, aliceNAT, keepaliveBytes(r.Session, uint32(i))); errors.Is(err, ErrQueueFull) {
			refused++
		}
	}
	out, _ := h.drain()
	if len(out) != txQueueLen || refused != 2*txQueueLen || h.s.Stats().DropQueueFull != uint64(refused) {
		t.Fatalf("%d queued, %d refused", len(out), refused)
	}
}

// The largest introduction the wire allows fits MaxDatagramLen.
func TestMaxIntroductionFits(t *testing.T) {
	m := proto.Introduction{PeerID: make([]byte, proto.MaxPeerIDLen), RelayToken: make([]byte, proto.MaxRelayTokenLen)}
	for range proto.MaxCandidates {
		m.Candidates = append(m.Candidates, proto.Candidate{Kind: proto.CandidateHost, Addr: v6Node})
	}
	if n := len(m.Append(nil)); n > MaxDatagramLen {
		t.Fatalf("largest introduction is %d bytes > MaxDatagramLen %d", n, MaxDatagramLen)
	}
}

// Steady state allocates nothing: a keepalive and its ack, a nat-probe, a STUN
// binding. An introduction allocates once: its event, boxed in the Event interface.
func TestSteadyStateNoAllocs(t *testing.T) {
	h := newHarness(t, nil)
	alice, _ := introducedPair(t, h)
	run := func(name string, p []byte, from netip.AddrPort, want float64) {
		n := testing.AllocsPerRun(100, func() {
			h.now += proto.Instant(110 * time.Millisecond) // inside every rate
			if err := h.s.HandleDatagram(h.now, srvPrimary, from, p); err != nil {
				t.Fatal(err)
			}
			for {
				if _, ok := h.s.PollTransmit(h.now, h.buf); !ok {
					break
				}
			}
			for {
				if _, ok := h.s.PollEvent(); !ok {
					break
				}
			}
		})
		if n != want {
			t.Errorf("%s: %v allocations per datagram, want %v", name, n, want)
		}
	}
	run("keepalive", keepaliveBytes(alice.Session, 1), aliceNAT, 0)
	run("nat-probe", probeBytes(alice.Session, 1, proto.ChangePort), aliceNAT, 0)
	run("stun", paddedSTUN(1, 64, true), strangerA, 0)
	// A repeated request for a pair being introduced reuses its entry: no new
	// EventIntroduced, so nothing is allocated at all.
	run("introduce", introduceBytes(alice.Session, 1, "bob", 0), aliceNAT, 0)
}
