package main

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/natpass/natpass/driver"
)

// A plain STUN client (pion/stun) gets its own address back from natpass's server
// as XOR-MAPPED-ADDRESS (RFC 8489 §14.2). The request carries a SOFTWARE attribute
// so it is no smaller than the response, as the server requires of unauthenticated
// senders (PROTOCOL.md §10).
func TestPionSTUNBinding(t *testing.T) {
	srv, err := driver.ListenServer(driver.ServerConfig{Listen: "127.0.0.1:0", InsecureDev: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest,
		stun.NewSoftware("natpass bench STUN interop test, padded"), stun.Fingerprint)
	if _, err := c.WriteToUDPAddrPort(req.Raw, srv.Addr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no STUN response: %v (server stats %+v)", err, srv.Stats().Stats)
	}
	res := &stun.Message{Raw: buf[:n]}
	if err := res.Decode(); err != nil {
		t.Fatalf("response does not decode as STUN: %v", err)
	}
	if res.Type != stun.BindingSuccess || res.TransactionID != req.TransactionID {
		t.Fatalf("response %v, want a Binding success for our transaction", res)
	}
	if err := stun.Fingerprint.Check(res); err != nil {
		t.Fatalf("response fingerprint: %v", err)
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(res); err != nil {
		t.Fatalf("no XOR-MAPPED-ADDRESS: %v", err)
	}
	local := c.LocalAddr().(*net.UDPAddr)
	if !xor.IP.Equal(local.IP) || xor.Port != local.Port {
		t.Fatalf("XOR-MAPPED-ADDRESS %v:%d, want our address %v", xor.IP, xor.Port, local)
	}
}

// Every transport of the comparison carries messages intact, with and without loss.
func TestTransportsCarryMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three transports")
	}
	for _, tr := range transports {
		for _, loss := range []float64{0, 0.05} {
			p, err := tr.dial(t.Context(), loss)
			if err != nil {
				t.Fatalf("%s loss %v: %v", tr.name, loss, err)
			}
			for i := range 50 {
				msg := make([]byte, 100+i*300)
				msg[0], msg[len(msg)-1] = byte(i), byte(i)
				if err := p.client.Send(msg); err != nil {
					t.Fatalf("%s: send: %v", tr.name, err)
				}
				m, err := p.server.Recv()
				if err != nil || len(m) != len(msg) || m[0] != byte(i) || m[len(m)-1] != byte(i) {
					t.Fatalf("%s loss %v: message %d came back as %d bytes, %v", tr.name, loss, i, len(m), err)
				}
			}
			p.close()
		}
	}
}
