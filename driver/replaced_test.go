package driver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// fakeServer admits every register with one session and answers nothing else: a
// test plays the server's unsolicited errors through it.
type fakeServer struct {
	conn    *net.UDPConn
	session proto.Session
	node    chan netip.AddrPort // the first register's source
}

func startFakeServer(t *testing.T) *fakeServer {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{conn: c, session: proto.Session{1, 2, 3, 4, 5, 6, 7, 8, 9}, node: make(chan netip.AddrPort, 1)}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var reg proto.Register
			if reg.Parse(buf[:n]) != nil {
				continue
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			select {
			case f.node <- from:
			default:
			}
			m := proto.Registered{TxID: reg.TxID, Session: f.session, Observed: from, Keepalive: 25}
			_, _ = c.WriteToUDPAddrPort(m.Append(nil), from)
		}
	}()
	return f
}

func (f *fakeServer) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(f.conn.LocalAddr().(*net.UDPAddr).Port))
}

// A node that another node replaced (error code 10, tagged with its session)
// stops for good: Accept and Connect return ErrReplaced, wrapped with ErrClosed.
// The same error with another TxID is a forgery and changes nothing.
func TestReplacedNodeStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := startFakeServer(t)
	n, err := Listen(ctx, Config{Server: f.addr().String(), ID: "twin", Secret: testSecret, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	to := <-f.node
	tag := proto.SessionTag(&f.session)
	spoofed := proto.Error{TxID: tag ^ 1, Code: proto.CodeReplaced, Text: []byte("forged")}
	if _, err := f.conn.WriteToUDPAddrPort(spoofed.Append(nil), to); err != nil {
		t.Fatal(err)
	}
	quick, cancelQuick := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelQuick()
	if _, err := n.Accept(quick); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept after a forged code 10: %v, want the node alive", err)
	}
	if st := n.Stats(); st.Node.StrayErrors != 1 {
		t.Errorf("%d stray errors counted, want the forgery", st.Node.StrayErrors)
	}
	replaced := proto.Error{TxID: tag, Code: proto.CodeReplaced, Text: []byte("newer registration")}
	if _, err := f.conn.WriteToUDPAddrPort(replaced.Append(nil), to); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Accept(ctx); !errors.Is(err, ErrReplaced) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept: %v, want ErrReplaced and ErrClosed", err)
	}
	if _, err := n.Connect(ctx, "someone"); !errors.Is(err, ErrReplaced) {
		t.Errorf("Connect: %v, want ErrReplaced", err)
	}
	t.Logf("the replaced node says: %v", n.stopErr())
}
