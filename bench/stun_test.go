package main

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/natpass/natpass/driver"
)

// A plain STUN client (pion/stun) gets its own address back from natpass's server
// as XOR-MAPPED-ADDRESS (RFC 8489 §14.2), for a bare 20-byte request as for one with
// SOFTWARE and FINGERPRINT (PROTOCOL.md §10), and pion reads the server's 420 to a
// CHANGE-REQUEST ([STUN-4]).
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
	ask := func(req *stun.Message) *stun.Message {
		t.Helper()
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
		if res.TransactionID != req.TransactionID {
			t.Fatalf("response %v, want one for our transaction", res)
		}
		return res
	}
	bare := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	padded := stun.MustBuild(stun.TransactionID, stun.BindingRequest,
		stun.NewSoftware("natpass bench STUN interop test"), stun.Fingerprint)
	for _, req := range []*stun.Message{bare, padded} {
		res := ask(req)
		if res.Type != stun.BindingSuccess {
			t.Fatalf("%d-byte request: response %v, want a Binding success", len(req.Raw), res)
		}
		if err := stun.Fingerprint.Check(res); (err == nil) != (req == padded) {
			t.Fatalf("%d-byte request: response fingerprint: %v", len(req.Raw), err)
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
	change := stun.RawAttribute{Type: stun.AttrType(0x0003), Value: []byte{0, 0, 0, 6}}
	res := ask(stun.MustBuild(stun.TransactionID, stun.BindingRequest, change))
	var code stun.ErrorCodeAttribute
	var unknown stun.UnknownAttributes
	if err := code.GetFrom(res); err != nil || res.Type != stun.BindingError || code.Code != stun.CodeUnknownAttribute {
		t.Fatalf("CHANGE-REQUEST: response %v, error code %v (%v), want 420", res, code, err)
	}
	if err := unknown.GetFrom(res); err != nil || len(unknown) != 1 || unknown[0] != 0x0003 {
		t.Fatalf("CHANGE-REQUEST: UNKNOWN-ATTRIBUTES %v (%v)", unknown, err)
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
