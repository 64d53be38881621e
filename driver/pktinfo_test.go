package driver

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/relayframe"
	"github.com/natpass/natpass/rendezvous"
)

// startAnyAddrServer runs a server bound to 0.0.0.0 (no alternate port), which
// receives on every loopback address; it skips off Linux, where only 127.0.0.1 is
// loopback and the driver does not learn destination addresses.
func startAnyAddrServer(t *testing.T, tune rendezvous.Config) *Server {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("answering from the address asked (IP_PKTINFO) is built on Linux only")
	}
	s, err := ListenServer(ServerConfig{Listen: "0.0.0.0:0", AltPort: "off", Secret: testSecret, Tune: tune})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A server on 0.0.0.0 asked on 127.0.0.2 answers from 127.0.0.2, and asked on
// 127.0.0.1 from 127.0.0.1, by turns on one client socket. Without the
// destination address the kernel answers both from 127.0.0.1 (its route's source).
func TestUnspecifiedServerAnswersFromAddressAsked(t *testing.T) {
	s := startAnyAddrServer(t, rendezvous.Config{})
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for i := range 6 {
		asked := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 - i%2)}), s.Addr().Port())
		req := make([]byte, 20) // a plain RFC 8489 Binding request, no attributes
		binary.BigEndian.PutUint16(req[0:], 0x0001)
		binary.BigEndian.PutUint32(req[4:], 0x2112A442)
		rand.Read(req[8:])
		if _, err := c.WriteToUDPAddrPort(req, asked); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("request %d to %v: no answer: %v", i, asked, err)
		}
		if from != asked || n < 20 || string(buf[8:20]) != string(req[8:20]) {
			t.Fatalf("request %d to %v: %d-byte answer from %v; want the answer to it from %v", i, asked, n, from, asked)
		}
	}
}

// Nodes that know the server on 0.0.0.0 as 127.0.0.2 register (the answers must
// come from the address they sent to, or the node drops them as strays) and move
// 4 MiB through the relay: the batched and GSO sends of the relay carry the source
// address too.
func TestUnspecifiedServerRelaysFromAddressAsked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlimited := relayframe.ByteRate{BytesPerSecond: 1 << 30, Burst: 64 << 20}
	s := startAnyAddrServer(t, rendezvous.Config{RelaySessionRate: unlimited, RelayServerRate: unlimited})
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), s.Addr().Port())
	var nodes [2]*Node
	for i, id := range []string{"pktinfo-a", "pktinfo-b"} {
		n, err := Listen(ctx, Config{Server: server.String(), ID: id, Secret: testSecret, Listen: "127.0.0.1:0", Relay: node.RelayForce})
		if err != nil {
			t.Fatalf("Listen through %v: %v", server, err)
		}
		defer n.Close()
		nodes[i] = n
	}
	ca, cb := connectPair(t, ctx, nodes[0], nodes[1])
	bulk(t, ctx, ca, cb, 4<<20)
	if st := s.Stats(); st.SourcesForgotten != 0 {
		t.Fatalf("%d sources forgotten with two nodes", st.SourcesForgotten)
	}
}

// sourceFor's remembered entry never disagrees with the table, through updates,
// new remotes and a full table forgetting entries (the remembered one among them).
func TestSourceForCacheFollowsTable(t *testing.T) {
	s := &socket{pktinfo: true}
	remote := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4000)
	}
	local := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%3)}) }
	check := func(step int, to netip.AddrPort) {
		t.Helper()
		if got, want := s.sourceFor(to), s.sources[to]; got != want {
			t.Fatalf("step %d: sourceFor(%v) = %v, table has %v", step, to, got, want)
		}
	}
	var seed [8]byte
	rand.Read(seed[:])
	x := binary.LittleEndian.Uint64(seed[:]) | 1
	t.Logf("seed %#x", x)
	next := func(n int) int { // xorshift: the seed above replays a failure
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return int(x % uint64(n))
	}
	for step := range 20000 {
		r := remote(next(6))
		if next(2) == 0 {
			s.noteSource(r, local(next(3)))
		}
		check(step, r)
		check(step, remote(next(6)))
	}
	// Fill the table; then every new remote makes it forget an entry, until it
	// forgot the remembered one, which sourceFor must then not answer from memory.
	for i := 6; len(s.sources) < maxSourcePeers; i++ {
		s.noteSource(remote(i), local(i))
	}
	kept := remote(0)
	s.noteSource(kept, local(0))
	check(0, kept)
	for step := 0; ; step++ {
		if step == 1<<20 {
			t.Fatal("the full table never forgot the remembered entry")
		}
		if !s.noteSource(remote(1<<16+step), local(step)) {
			t.Fatalf("step %d: a full table forgot nothing", step)
		}
		if _, ok := s.sources[kept]; !ok {
			check(step, kept)
			return
		}
	}
}
