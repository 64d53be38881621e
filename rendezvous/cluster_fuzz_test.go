package rendezvous

import (
	"testing"

	"github.com/natpass/natpass/proto"
)

// FuzzHandleCluster feeds a clustered server (two registered peers, one pending
// request of each kind) any sequence of cluster messages. Records are
//
//	ctrl u8 ‖ len u8 ‖ data (len bytes, cut short at the end of the input)
//
// with ctrl bits 0–2 picking the subject (a peer's, the server's relay subject, a
// reply subject of a pending or unknown request, a NoResponders notice) and bit 3
// adding a reply subject. Nothing may panic, every output stays within the machine's
// bounds, and a message that does not parse changes no session.
func FuzzHandleCluster(f *testing.F) {
	f.Add([]byte{0, 3, 0xe1, 0x40, 0})
	for _, c := range []interface{ Append([]byte) []byte }{
		&proto.ClusterClaim{Server: 9, RegisteredUnixMs: 1 << 62, Key: [proto.KeyLen]byte{7}, PeerID: []byte("alice")},
		&proto.ClusterIntroAsk{AskID: 1, Server: 9, TxID: 1, Target: []byte("bob"),
			Requester: proto.ClusterPeer{PeerID: []byte("carol"), Addr: strangerA, TicketExpiryUnix: 1 << 40}},
		&proto.ClusterIntroAnswer{AskID: 1, Server: 9, Status: proto.ClusterNotReady},
		&proto.ClusterRelayBind{BindID: 1, Server: 9, PairID: 1, Channel: 5, Target: []byte("bob")},
		&proto.ClusterRelayBound{BindID: 2, Server: 9, Channel: 5},
		&proto.ClusterRelayData{Server: 9, From: 5, To: 6, Frame: []byte{0xe1, 0x22, 0, 5, 0xe1, 0x13}},
	} {
		b := c.Append(nil)
		for ctrl := byte(0); ctrl < 8; ctrl++ {
			f.Add(append([]byte{ctrl, byte(len(b))}, b...))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := newTestCluster(t, 1)
		c.join(0, "alice", 1, aliceNAT)
		bob := c.join(0, "bob", 2, bobNAT)
		c.send(0, bobNAT, introduceBytes(bob, 5, "carol", 0)) // a pending ask (no responders answer it)
		h := c.hs[0]
		subjects := []string{peerSubject([]byte("alice")), peerSubject([]byte("bob")), h.s.ownSubject + ".relay",
			h.s.replySubject(1), h.s.replySubject(h.s.asks.next + 1), h.s.ownSubject + ".r.x", "peer.zz"}
		for len(in) >= 2 {
			ctrl, n := in[0], int(in[1])
			in = in[2:]
			n = min(n, len(in))
			data := in[:n]
			in = in[n:]
			m := ClusterMessage{Data: data}
			if k := int(ctrl & 7); k < len(subjects) {
				m.Subject = subjects[k]
			} else {
				m.Subject, m.NoResponders, m.Data = h.s.replySubject(h.s.asks.next), true, nil
			}
			if ctrl&8 != 0 {
				m.Reply = h.s.replySubject(77)
			}
			before := h.s.Stats().Sessions
			_, _, parseErr := proto.ParseHeader(m.Data)
			_ = h.s.HandleCluster(h.now, m)
			if h.s.cluster.size > 2 || h.s.tx.size > 2 {
				t.Fatalf("one message queued %d cluster messages and %d datagrams", h.s.cluster.size, h.s.tx.size)
			}
			c.pump(0)
			if parseErr != nil && !m.NoResponders && h.s.Stats().Sessions != before {
				t.Fatalf("an unparsable message changed the sessions: %d → %d", before, h.s.Stats().Sessions)
			}
		}
	})
}
