package node

import "github.com/natpass/natpass/punch"

// peer is everything the node keeps about one introduced peer.
type peer struct {
	id         string
	key        [32]byte // the peer's static public key, from the server's introduction
	psk        [32]byte
	relayToken []byte
	flags      uint8
	agent      *punch.Agent
	path       PathKind
}
