package rendezvous

import (
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// Server sockets and node addresses of the tests (RFC 5737 documentation ranges).
var (
	srvPrimary = netip.MustParseAddrPort("192.0.2.1:3478")
	srvAltPort = netip.MustParseAddrPort("192.0.2.1:3479")
	srvAltAddr = netip.MustParseAddrPort("198.51.100.1:3478")

	aliceNAT  = netip.MustParseAddrPort("203.0.113.10:40000")
	aliceLAN  = netip.MustParseAddrPort("10.0.0.2:51820")
	bobNAT    = netip.MustParseAddrPort("203.0.113.20:50000")
	bobLAN    = netip.MustParseAddrPort("10.1.0.3:51820")
	strangerA = netip.MustParseAddrPort("203.0.113.99:1234")
	v6Node    = netip.MustParseAddrPort("[2001:db8::42]:40000")
)

// wallStart is the Unix time at virtual time 0 of every test: a year before the
// tickets' expiry.
const wallStart = testExpiryUnix - 365*24*3600

// tb is the part of testing.TB the helpers use; *rapid.T has it too.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// harness drives one Server on virtual time and collects what it sends.
type harness struct {
	t   tb
	s   *Server
	now proto.Instant
	buf []byte
}

func testConfig() Config {
	return Config{
		Secret:    testSecret,
		Seed:      [32]byte{1, 2, 3},
		Primary:   srvPrimary,
		AltPort:   srvAltPort,
		AltAddr:   srvAltAddr,
		WallClock: proto.WallClock{At: 0, Time: time.Unix(wallStart, 0)},
	}
}

func newHarness(t tb, mutate func(*Config)) *harness {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, s: s, now: 1, buf: make([]byte, MaxDatagramLen)}
}

// sent is one datagram the server sent, copied out of the poll buffer.
type sent struct {
	From, To netip.AddrPort
	Payload  []byte
}

// deliver hands p to the server on socket local from from, drains it by the rule,
// and returns the error, the datagrams and the events.
//
//lint:ignore ST1008 the error leads because most tests check it first and ignore the rest
func (h *harness) deliver(local, from netip.AddrPort, p []byte) (error, []sent, []Event) {
	h.t.Helper()
	err := h.s.HandleDatagram(h.now, local, from, p)
	out, evs := h.drain()
	return err, out, evs
}

func (h *harness) drain() ([]sent, []Event) {
	var out []sent
	for {
		tx, ok := h.s.PollTransmit(h.now, h.buf)
		if !ok {
			break
		}
		out = append(out, sent{From: tx.From, To: tx.To, Payload: append([]byte(nil), tx.Payload...)})
	}
	var evs []Event
	for {
		e, ok := h.s.PollEvent()
		if !ok {
			break
		}
		evs = append(evs, e)
	}
	return out, evs
}

// wait moves virtual time forward by d, firing the server's timer whenever its
// deadline falls inside, as a driver would.
func (h *harness) wait(d time.Duration) []Event {
	h.t.Helper()
	// A deadline already behind now (deliver moves time without firing timers)
	// makes d negative: fire what is due, but never move time backwards.
	end := h.now.Add(max(d, 0))
	var evs []Event
	for {
		dl := h.s.Deadline()
		if dl > end {
			break
		}
		h.now = max(h.now, dl)
		h.s.HandleTimeout(h.now)
		_, e := h.drain()
		evs = append(evs, e...)
	}
	h.now = end
	return evs
}

func ticketFor(id string, key byte) []byte { return MintTicket(testSecret, testTicket(id, key)) }

func registerBytes(txid uint64, ticket []byte, hosts ...netip.AddrPort) []byte {
	m := proto.Register{TxID: txid, Ticket: ticket, Hosts: hosts}
	return m.Append(nil)
}

// register registers id from addr and returns the Registered reply.
func (h *harness) register(id string, key byte, from netip.AddrPort, hosts ...netip.AddrPort) proto.Registered {
	h.t.Helper()
	err, out, _ := h.deliver(srvPrimary, from, registerBytes(uint64(key)<<8|1, ticketFor(id, key), hosts...))
	if err != nil || len(out) != 1 {
		h.t.Fatalf("register %s: err %v, %d replies", id, err, len(out))
	}
	var r proto.Registered
	if err := r.Parse(out[0].Payload); err != nil {
		h.t.Fatalf("register %s: reply %x: %v", id, out[0].Payload, err)
	}
	return r
}

// only returns the single datagram of out, parsed as m.
func only(t tb, out []sent, m interface{ Parse([]byte) error }) sent {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("%d datagrams, want 1", len(out))
	}
	if err := m.Parse(out[0].Payload); err != nil {
		t.Fatalf("reply %x: %v", out[0].Payload, err)
	}
	return out[0]
}

// errorCode parses the single datagram of out as an Error and returns its code.
func errorCode(t tb, out []sent) proto.ErrorCode {
	t.Helper()
	var e proto.Error
	only(t, out, &e)
	return e.Code
}

func keepaliveBytes(c proto.Session, seq uint32) []byte {
	m := proto.Keepalive{Session: c, Seq: seq}
	return m.Append(nil)
}

func probeBytes(c proto.Session, txid uint64, change uint8) []byte {
	m := proto.NATProbe{Session: c, TxID: txid, Change: change}
	return m.Append(nil)
}

func introduceBytes(c proto.Session, txid uint64, peer string, flags uint8) []byte {
	m := proto.IntroduceRequest{Session: c, TxID: txid, PeerID: []byte(peer), Flags: flags}
	return m.Append(nil)
}
