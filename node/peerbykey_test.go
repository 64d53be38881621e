package node

import (
	"testing"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
)

// peerByKey remembers its last hit; every change to byKey must make it forget, or
// a peer forgotten and introduced again (same key, new connection) would have its
// packets handed to the connection that ended.
func TestPeerByKeyFollowsPeersReplaced(t *testing.T) {
	n := newTestNode()
	n.Start(0)
	intro := &proto.Introduction{PeerID: []byte("bob"), PeerKey: [32]byte{9}}
	first, err := n.newPeer(0, intro, punch.Key{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second look-up is the remembered one
		if p, ok := n.peerByKey(intro.PeerKey); !ok || p != first {
			t.Fatalf("peerByKey = %p, %v; want the peer added (%p)", p, ok, first)
		}
	}
	n.forget(first)
	if p, ok := n.peerByKey(intro.PeerKey); ok {
		t.Fatalf("peerByKey after forget = %p, want none", p)
	}
	again, err := n.newPeer(0, intro, punch.Key{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := n.peerByKey(intro.PeerKey); !ok || p != again || again == first {
		t.Fatalf("peerByKey after the peer came back = %p, %v; want the new peer (%p, first %p)", p, ok, again, first)
	}
}
