package sim

import (
	"net/netip"
	"time"
)

// Site is a host behind a preset's chain of boxes.
type Site struct {
	Host *Host
	// Boxes from the host outward (empty for "open").
	Boxes []*Box
}

// Outer returns the box attached to the core, or nil for a host on the core.
func (st Site) Outer() *Box {
	if len(st.Boxes) == 0 {
		return nil
	}
	return st.Boxes[len(st.Boxes)-1]
}

// Inner returns the host's own box, or nil for a host on the core.
func (st Site) Inner() *Box {
	if len(st.Boxes) == 0 {
		return nil
	}
	return st.Boxes[0]
}

// DefaultHostPort is the port of the socket AddSite and NewPair open on each host.
const DefaultHostPort = 4000

// AddSite builds preset p toward the core: its boxes, outermost first, the outermost
// attached to the core through access, each other box to the one outside it through
// nested, then a host named name on the innermost network through an ideal link, with
// one socket open on DefaultHostPort. Boxes are named name+"-nat", name+"-nat2", ...
// from the host out.
func (s *Sim) AddSite(name string, p Preset, access, nested LinkConfig) Site {
	return s.AddSiteIn(name, p, s.core, access, nested)
}

// AddSiteIn is AddSite with the outermost box (or the host, for a preset without
// boxes) attached to network n instead of the core: a subscriber behind a carrier NAT
// that already exists.
func (s *Sim) AddSiteIn(name string, p Preset, n *Network, access, nested LinkConfig) Site {
	boxes := make([]*Box, len(p.Boxes))
	link := access
	for i := len(p.Boxes) - 1; i >= 0; i-- {
		boxName := name + "-nat"
		if i > 0 {
			boxName += string(rune('1' + i))
		}
		if p.Boxes[i].NoTranslation {
			boxName = name + "-fw"
		}
		boxes[i] = s.AddNAT(boxName, n, p.Boxes[i], link)
		n = boxes[i].Inside()
		link = nested
	}
	hostLink := LinkConfig{}
	if len(p.Boxes) == 0 {
		hostLink = access
	}
	h := s.AddHost(name, n, hostLink)
	h.OpenPort(DefaultHostPort)
	return Site{Host: h, Boxes: boxes}
}

// AddLANHost adds another host on the innermost network of st (behind the same boxes)
// with a socket on DefaultHostPort.
func (s *Sim) AddLANHost(name string, st Site) *Host {
	n := s.core
	if b := st.Inner(); b != nil {
		n = b.Inside()
	}
	h := s.AddHost(name, n, LinkConfig{})
	h.OpenPort(DefaultHostPort)
	return h
}

// ServerPort and ServerAltPort are the ports the server of a Pair listens on.
const (
	ServerPort    = 3478
	ServerAltPort = 3479
)

// Placement says where a Pair's B sits relative to A.
type Placement uint8

const (
	// Apart: A and B each behind their own boxes, both attached to the core.
	Apart Placement = iota
	// SameLAN: B on A's innermost network, behind A's boxes (B's preset is ignored).
	SameLAN
	// SameCarrier: B is another subscriber of A's carrier (A's outermost box; A's
	// preset needs at least two boxes, as cgnat has). B's home setup sits inside that
	// carrier: B's preset without its own carrier if it has one (two or more boxes),
	// else B's preset whole (a single home NAT, or no box at all).
	SameCarrier
)

var placementNames = [...]string{"apart", "same-lan", "same-carrier"}

func (p Placement) String() string {
	if int(p) < len(placementNames) {
		return placementNames[p]
	}
	return "invalid"
}

// PairConfig describes the usual test world: peers A and B behind presets, and a
// server on the core.
type PairConfig struct {
	Seed uint64
	A, B Preset
	// Placement says where B is relative to A (zero value: Apart).
	Placement Placement
	// Access is each side's link to the core (zero value: 10 ms latency), Nested the
	// link between nested boxes (zero value: 1 ms). The server's link is ServerLink
	// (zero value: 5 ms latency).
	Access, Nested, ServerLink LinkConfig
	MaxSteps                   uint64
}

// Pair is the world most protocol tests want: hosts A and B behind their presets and
// a server on the public core with two addresses.
type Pair struct {
	Sim    *Sim
	A, B   Site
	Server *Host
}

// NewPair builds a Pair. The server has sockets on ServerPort and ServerAltPort of
// its first address and ServerPort of its second (for NAT behaviour discovery); A and
// B each have one socket on DefaultHostPort.
func NewPair(cfg PairConfig) *Pair {
	if cfg.Access.isZero() {
		cfg.Access = LinkConfig{Latency: 10 * time.Millisecond}
	}
	if cfg.Nested.isZero() {
		cfg.Nested = LinkConfig{Latency: time.Millisecond}
	}
	if cfg.ServerLink.isZero() {
		cfg.ServerLink = LinkConfig{Latency: 5 * time.Millisecond}
	}
	s := New(Config{Seed: cfg.Seed, MaxSteps: cfg.MaxSteps})
	srv := s.AddHost("server", s.Core(), cfg.ServerLink)
	srv.AddAddr()
	srv.Open(srv.Addrs()[0], ServerPort)
	srv.Open(srv.Addrs()[0], ServerAltPort)
	srv.Open(srv.Addrs()[1], ServerPort)
	pr := &Pair{Sim: s, Server: srv}
	pr.A = s.AddSite("a", cfg.A, cfg.Access, cfg.Nested)
	switch cfg.Placement {
	case SameLAN:
		pr.B = Site{Host: s.AddLANHost("b", pr.A), Boxes: pr.A.Boxes}
	case SameCarrier:
		carrier := pr.A.Outer()
		if len(cfg.A.Boxes) < 2 {
			panic("sim: SameCarrier needs A's preset to have a carrier box outside another box")
		}
		b := s.AddSiteIn("b", homeOf(cfg.B), carrier.Inside(), cfg.Nested, cfg.Nested)
		b.Boxes = append(b.Boxes, carrier)
		pr.B = b
	default:
		pr.B = s.AddSite("b", cfg.B, cfg.Access, cfg.Nested)
	}
	return pr
}

// ServerAddr returns the server's main socket.
func (pr *Pair) ServerAddr() netip.AddrPort { return pr.Server.Sockets()[0] }

func (c *LinkConfig) isZero() bool {
	return c.Latency == 0 && c.Jitter == 0 && c.Loss == 0 && c.Duplicate == 0 && c.Reorder == 0 &&
		c.ReorderDelay == 0 && c.Bandwidth == 0 && c.QueueBytes == 0 && c.MTU == 0 && c.Routers == 0 &&
		len(c.Outages) == 0
}

// Describe returns the topology, one line per box and host in the order they were
// added, for logs and natpass lab:
//
//	box  a-nat      198.51.100.1 in core: a-nat mapping=endpoint-independent ...
//	host a          10.1.0.2 in a-nat, sockets 10.1.0.2:4000
func (s *Sim) Describe() string {
	var b []byte
	for _, x := range s.boxes {
		b = append(b, "box  "...)
		b = padRight(b, x.name, 10)
		b = x.Addr().AppendTo(b)
		b = append(b, " in "...)
		b = append(b, x.net.name...)
		b = append(b, ": "...)
		b = append(b, x.String()...)
		b = append(b, '\n')
	}
	for _, h := range s.hosts {
		b = append(b, "host "...)
		b = padRight(b, h.name, 10)
		for i, a := range h.addrs {
			if i > 0 {
				b = append(b, ',')
			}
			b = a.AppendTo(b)
		}
		b = append(b, " in "...)
		b = append(b, h.net.name...)
		b = append(b, ", sockets"...)
		for i, ap := range h.order {
			if i == 8 {
				b = append(b, " ..."...)
				break
			}
			b = append(b, ' ')
			b = ap.AppendTo(b)
		}
		b = append(b, '\n')
	}
	return string(b)
}

// homeOf returns p without its carrier: its boxes but the outermost when it has two
// or more, else all of them.
func homeOf(p Preset) Preset {
	if len(p.Boxes) >= 2 {
		p.Boxes = p.Boxes[:len(p.Boxes)-1]
	}
	return p
}
