package node

import (
	"io"
	"net/netip"
	"time"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
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
	// OtherLocal is the node's socket in the other IP family than Local (a
	// dual-stack host); zero means single stack. The node binds it to its session
	// (register-family), measures that family's NAT through it, and probes the
	// peers' candidates of its family from it (DESIGN §14). Hosts may hold
	// addresses of both families; empty Hosts means Local and OtherLocal.
	OtherLocal netip.AddrPort
	// OtherServers are the servers' addresses in OtherLocal's family, index for
	// index with the server list (Server or Servers); a zero entry: that server
	// has none. Longer than the server list panics in New.
	OtherServers []netip.AddrPort
	// Server is the rendezvous server's primary socket: the same as a Servers list
	// of one.
	Server netip.AddrPort
	// Servers are the primary sockets of the servers of a cluster (DESIGN §12), in
	// the order the node tries them: it registers with the first and, when its
	// server is lost (keepalives unanswered, a register unanswered for
	// registerMoveAfter, error code 11 "moving"), with the next, round robin. Set
	// Server or Servers, not both: New panics on both, since which one was meant
	// cannot be told.
	Servers []netip.AddrPort
	// Seed seeds every random choice the node makes (txids, probe ports).
	Seed [32]byte
	// RegisterTimeout: give up registering (EventClosed) after this long. 0 = 30 s.
	RegisterTimeout time.Duration
	// Rand supplies handshake key material (ephemeral keys, session indexes):
	// crypto/rand in a driver, a seeded stream in the simulator. Required.
	Rand io.Reader
	// Wall anchors wall-clock time, which handshake timestamps carry: at instant
	// Wall.At the time was Wall.Time. The node reads no clock.
	Wall proto.WallClock
	// RUDP configures every peer connection (lanes, sizes, timeouts).
	RUDP rudp.Config
	// Relay is the relay policy for connections this node starts (the peer that
	// accepts follows the introduction's flags).
	Relay RelayPolicy
	// Suites are the cipher suites the node accepts and advertises in its register
	// (PROTOCOL.md §6.1); 0 means keyx.DefaultSuites(AESHardware()): AES-GCM only
	// where the CPU has AES hardware. AESHardware reports that when Suites is 0;
	// nil means keyx.HasAESHardware. The simulator and tests pin one or the other,
	// so that a run does not depend on the machine.
	Suites      keyx.SuiteSet
	AESHardware func() bool
}

// servers is the server list, Server as a list of one.
func (c *Config) servers() []netip.AddrPort {
	if len(c.Servers) == 0 {
		return []netip.AddrPort{c.Server}
	}
	return c.Servers
}

func (c *Config) hosts() []netip.AddrPort {
	switch {
	case len(c.Hosts) > 0:
		return c.Hosts
	case c.OtherLocal.IsValid():
		return []netip.AddrPort{c.Local, c.OtherLocal}
	}
	return []netip.AddrPort{c.Local}
}
