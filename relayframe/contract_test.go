package relayframe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

var (
	clientNode   = netip.MustParseAddrPort("192.0.2.7:40000")
	clientServer = netip.MustParseAddrPort("198.51.100.1:3478")
	errNotOurs   = errors.New("relayframe test: answer for another Client")
)

// clientMachine adapts a Client to the contract the way a node drives it: the
// server's relay-allocated and error answers are its datagrams, a due
// relay-allocate (AppendAllocate) is its transmit, PollEvent its events.
func clientMachine(c *Client) machinetest.Machine {
	var allocated proto.RelayAllocated
	var refusal proto.Error
	return machinetest.Machine{
		HandleDatagram: func(now proto.Instant, local, from netip.AddrPort, p []byte) error {
			h, _, err := proto.ParseHeader(p)
			if err != nil {
				return err
			}
			taken := false
			switch h.Type {
			case proto.TypeRelayAllocated:
				if err := allocated.Parse(p); err != nil {
					return err
				}
				taken = c.HandleAllocated(now, &allocated)
			case proto.TypeError:
				if err := refusal.Parse(p); err != nil {
					return err
				}
				taken = c.HandleError(now, &refusal)
			default:
				return proto.ErrWrongType
			}
			if !taken {
				return errNotOurs
			}
			return nil
		},
		HandleTimeout: c.HandleTimeout,
		PollTransmit: func(now proto.Instant, buf []byte) (proto.Transmit, bool) {
			b := c.AppendAllocate(now, buf[:0], clientCookie, []byte("bob"))
			if len(b) == 0 {
				return proto.Transmit{}, false
			}
			return proto.Transmit{From: clientNode, To: clientServer, Payload: b}, true
		},
		PollEvent: machinetest.Events(c.PollEvent),
		Deadline:  c.Deadline,
	}
}

// clientSubject is a Client whose channel is allocated and linked: its refresh is
// due at half the lifetime.
func clientSubject(t *testing.T) *machinetest.Subject {
	c := &Client{}
	m := clientMachine(c)
	now := proto.Instant(time.Second)
	c.Start(now, []byte("token-1"), 77)
	machinetest.Drain(t, m, now, make([]byte, 256))
	answer := (&proto.RelayAllocated{TxID: 77, Channel: 9, Flags: proto.RelayPeerReady, LifetimeS: 600,
		Token: []byte("token-2")}).Append(nil)
	if err := m.HandleDatagram(now, clientNode, clientServer, answer); err != nil || !c.Ready() {
		t.Fatalf("answer not taken: %v", err)
	}
	other := (&proto.RelayAllocated{TxID: 78, Channel: 10, LifetimeS: 600, Token: []byte("x")}).Append(nil)
	denied := (&proto.Error{TxID: 77, Code: proto.CodeRelayDenied}).Append(nil)
	buf := make([]byte, 256)
	return &machinetest.Subject{
		Machine: m,
		Now:     now,
		Local:   clientNode,
		From:    clientServer,
		// The clock moves with every call, spurious or not: everything else is state.
		Snapshot: func() any { s := *c; s.now = 0; return s },
		Rejected: [][]byte{nil, answer[:len(answer)-1], other,
			(&proto.Error{TxID: 78, Code: proto.CodeRelayDenied}).Append(nil)},
		Inputs: [][]byte{answer, other, denied, (&proto.Error{TxID: 77, Code: 5}).Append(nil)},
		Idle: func(now proto.Instant) proto.Instant {
			if err := m.HandleDatagram(now, clientNode, clientServer, denied); err != nil {
				t.Fatal(err)
			}
			return now
		},
		// The refresh at half the lifetime and the server's answer to it.
		Steady: func(now proto.Instant) proto.Instant {
			now = max(now, c.Deadline())
			c.HandleTimeout(now)
			if n, _ := machinetest.Discard(m, now, buf); n != 1 {
				t.Fatalf("%d relay-allocates at the refresh, want 1", n)
			}
			// The answer carries the refresh's txid (each request has its own).
			binary.BigEndian.PutUint64(answer[proto.HeaderLen:], c.txid)
			if err := m.HandleDatagram(now, clientNode, clientServer, answer); err != nil {
				t.Fatal(err)
			}
			return now
		},
	}
}

func TestClientContract(t *testing.T) {
	machinetest.Check(t, machinetest.Spec{New: clientSubject, BufLen: 256, Seed: 43})
}
