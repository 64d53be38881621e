package punch

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

var (
	srvPrimary = netip.MustParseAddrPort("203.0.113.1:3478")
	srvAltPort = netip.MustParseAddrPort("203.0.113.1:3479")
	srvAltAddr = netip.MustParseAddrPort("203.0.113.2:3479")
)

// serveOpen answers every probe as a server would for a host with a public address:
// observed = source, from the socket the change flags name.
func serveOpen(t *testing.T, c *Classifier, now proto.Instant, extra *int) {
	t.Helper()
	var buf [128]byte
	for {
		tx, ok := c.PollTransmit(now, buf[:])
		if !ok {
			break
		}
		var m proto.NATProbe
		if err := m.Parse(tx.Payload); err != nil {
			t.Fatal(err)
		}
		if tx.To.Addr() != srvPrimary.Addr() && tx.To.Addr() != srvAltAddr.Addr() {
			continue // the hairpin probe: not expected for a public host
		}
		from := tx.To
		if m.Change&proto.ChangePort != 0 {
			from = srvAltPort
		}
		if m.Change&proto.ChangeAddress != 0 {
			from = srvAltAddr
		}
		reply := (&proto.NATProbeReply{TxID: m.TxID, Observed: tx.From}).Append(nil)
		if err := c.HandleDatagram(now, tx.From, from, reply); err != nil {
			t.Fatal(err)
		}
	}
	for {
		e, ok := c.PollEvent()
		if !ok {
			break
		}
		if n, ok := e.(EventNeedSockets); ok {
			var socks []netip.AddrPort
			for i := 0; i < n.N; i++ {
				socks = append(socks, netip.AddrPortFrom(addrA.Addr(), uint16(6000+i)))
			}
			*extra = n.N
			c.HandleSockets(now, socks)
			serveOpen(t, c, now, extra)
		}
	}
}

func TestClassifierPublicHost(t *testing.T) {
	c := NewClassifier(ClassifierConfig{Local: addrA, Hosts: []netip.AddrPort{addrA},
		Server: srvPrimary, AltPort: srvAltPort, AltAddr: srvAltAddr})
	c.Start(0)
	var extra int
	serveOpen(t, c, 0, &extra)
	if !c.Done() {
		t.Fatalf("not done after every probe was answered")
	}
	want := proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.EndpointIndependent,
		Allocation: proto.AllocationPreserving, NoTranslation: true}
	if got := c.Result(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if extra == 0 {
		t.Error("no extra sockets requested for allocation samples")
	}
}

func TestClassifierSilentServerGivesUnknown(t *testing.T) {
	c := NewClassifier(ClassifierConfig{Local: addrA, Server: srvPrimary, AltPort: srvAltPort, AltAddr: srvAltAddr})
	c.Start(0)
	sent := 0
	var buf [128]byte
	now := proto.Instant(0)
	for i := 0; i < 100 && !c.Done(); i++ {
		for {
			if _, ok := c.PollTransmit(now, buf[:]); !ok {
				break
			}
			sent++
		}
		now = c.Deadline()
		if now == proto.Never {
			break
		}
		c.HandleTimeout(now)
	}
	if !c.Done() || c.Result() != (proto.NATBehavior{}) {
		t.Fatalf("done=%v result=%+v, want unknown behaviour", c.Done(), c.Result())
	}
	if want := 3 * classifyMaxTries; sent != want {
		t.Errorf("sent %d probes, want %d (3 probes × %d tries)", sent, want, classifyMaxTries)
	}
	if now > proto.Instant(5*time.Second) {
		t.Errorf("gave up only at %v", time.Duration(now))
	}
}

func TestClassifierIgnoresStrangers(t *testing.T) {
	c := NewClassifier(ClassifierConfig{Local: addrA, Server: srvPrimary})
	c.Start(0)
	reply := (&proto.NATProbeReply{TxID: 12345, Observed: addrA}).Append(nil)
	if err := c.HandleDatagram(0, addrA, srvPrimary, reply); err != ErrUnexpected {
		t.Errorf("err %v, want ErrUnexpected", err)
	}
	if c.Drops() != 1 || c.Done() {
		t.Errorf("drops %d done %v", c.Drops(), c.Done())
	}
}

// A sequential NAT whose ports cross the top of the range while the classifier
// watches continues at 1024 (RFC 4787 §4.2.1 REQ-3): the classifier still reads the
// delta and predicts the next port across the wrap, in either direction.
func TestClassifierSequentialAcrossRangeEnd(t *testing.T) {
	for _, tc := range []struct {
		observed []uint16
		delta    int16
		next     uint16
	}{
		{[]uint16{65534, 65535, 1024, 1025}, 1, 1026},
		{[]uint16{65532, 65534, 1024, 1026}, 2, 1028},
		{[]uint16{1025, 1024, 65535, 65534}, -1, 65533},
		{[]uint16{65533, 65534, 65535}, 1, 1024},
	} {
		c := NewClassifier(ClassifierConfig{})
		ip := netip.MustParseAddr("198.51.100.1")
		for i, port := range tc.observed {
			c.probes = append(c.probes, classifyProbe{role: roleExtra, answered: true,
				from:     netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(4000+i)),
				observed: netip.AddrPortFrom(ip, port)})
		}
		alloc, delta := c.allocation(&c.probes[0])
		if alloc != proto.AllocationSequential || delta != tc.delta || c.Next() != netip.AddrPortFrom(ip, tc.next) {
			t.Errorf("%v: %s delta %d next %v; want sequential delta %d next %d", tc.observed, alloc, delta, c.Next(), tc.delta, tc.next)
		}
	}
}
