package node

import (
	"net/netip"
	"time"
)

// Config is what a node needs to start.
type Config struct {
	// ID is this node's peer ID; Ticket the encoded ticket the app backend minted.
	ID     []byte
	Ticket []byte
	// PrivateKey is the node's static X25519 private key.
	PrivateKey [32]byte
	// Local is the node's main socket; Hosts its interface addresses (host
	// candidates). Empty Hosts means just Local.
	Local netip.AddrPort
	Hosts []netip.AddrPort
	// Server is the rendezvous server's primary socket.
	Server netip.AddrPort
	// Seed seeds every random choice the node makes (txids, probe ports).
	Seed [32]byte
	// RegisterTimeout: give up registering (EventClosed) after this long. 0 = 30 s.
	RegisterTimeout time.Duration
}

func (c *Config) hosts() []netip.AddrPort {
	if len(c.Hosts) == 0 {
		return []netip.AddrPort{c.Local}
	}
	return c.Hosts
}
