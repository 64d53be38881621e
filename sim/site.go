package sim

import (
	"net/netip"
	"time"
)

// Site is a host behind a preset's chains of boxes.
type Site struct {
	Host *Host
	// Boxes from the host outward in front of its IPv4 address (empty for "open" and
	// for a host without IPv4).
	Boxes []*Box
	// Boxes6 from the host outward in front of its IPv6 address (empty when the
	// host has none, or its IPv6 address is on the core).
	Boxes6 []*Box
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

// AddSite builds preset p toward the core: for each family the preset's host has
// (IPv4 first), its boxes, outermost first, the outermost attached to the core
// through access, each other box to the one outside it through nested, then a host
// named name on the innermost network through an ideal link, with one socket open on
// DefaultHostPort of that family's address. A dual-stack host gets one address per
// family and reaches each chain through its own interface (Host.AddInterface).
// Boxes are named name+"-nat", name+"-nat2", ... from the host out (a firewall
// name+"-fw"), IPv6 boxes name+"-fw6", name+"-fw62", ...
func (s *Sim) AddSite(name string, p Preset, access, nested LinkConfig) Site {
	return s.addSite(name, p, s.core, access, access, nested)
}

// AddSiteIn is AddSite with the outermost IPv4 box (or the host, for a preset
// without IPv4 boxes) attached to network n instead of the core: a subscriber behind
// a carrier NAT that already exists. The IPv6 chain is attached to the core.
func (s *Sim) AddSiteIn(name string, p Preset, n *Network, access, nested LinkConfig) Site {
	return s.addSite(name, p, n, access, access, nested)
}

// addSite is AddSiteIn with the IPv6 chain's own access link.
func (s *Sim) addSite(name string, p Preset, n *Network, access, access6, nested LinkConfig) Site {
	var st Site
	var h *Host
	if p.Stack.Has(IPv4) {
		var inner *Network
		var hostLink LinkConfig
		st.Boxes, inner, hostLink = s.addChain(name, "-nat", p.Boxes, n, access, nested)
		h = s.AddHost(name, inner, hostLink)
		h.OpenPort(DefaultHostPort)
	}
	if p.Stack.Has(IPv6) {
		boxes6, inner, hostLink := s.addChain(name, "-fw6", p.Boxes6, s.core, access6, nested)
		st.Boxes6 = boxes6
		var a netip.Addr
		if h == nil {
			a = s.autoAddrOf(inner, IPv6)
			h = s.AddHost(name, inner, hostLink, a)
		} else {
			a = h.AddInterface(inner, IPv6, hostLink)
		}
		h.Open(a, DefaultHostPort)
	}
	st.Host = h
	return st
}

// addChain builds boxes toward network n, outermost first, and returns them from
// the host outward, the innermost network, and the link the host needs there
// (access when there is no box).
func (s *Sim) addChain(name, suffix string, cfgs []NATConfig, n *Network, access, nested LinkConfig) ([]*Box, *Network, LinkConfig) {
	boxes := make([]*Box, len(cfgs))
	link := access
	for i := len(cfgs) - 1; i >= 0; i-- {
		boxName := name + suffix
		if i > 0 {
			boxName += string(rune('1' + i))
		}
		if cfgs[i].NoTranslation && cfgs[i].Family == IPv4 {
			boxName = name + "-fw"
		}
		boxes[i] = s.AddNAT(boxName, n, cfgs[i], link)
		n = boxes[i].Inside()
		link = nested
	}
	if len(cfgs) == 0 {
		return boxes, n, access
	}
	return boxes, n, LinkConfig{}
}

// AddLANHost adds another host on the innermost networks of st (behind the same
// boxes, with the same families as st's host) with a socket on DefaultHostPort of
// each of its addresses.
func (s *Sim) AddLANHost(name string, st Site) *Host {
	var h *Host
	if _, ok := st.Host.AddrOf(IPv4); ok {
		n := s.core
		if b := st.Inner(); b != nil {
			n = b.Inside()
		}
		h = s.AddHost(name, n, LinkConfig{})
		h.OpenPort(DefaultHostPort)
	}
	if _, ok := st.Host.AddrOf(IPv6); ok {
		n := s.core
		if len(st.Boxes6) > 0 {
			n = st.Boxes6[0].Inside()
		}
		var a netip.Addr
		if h == nil {
			a = s.autoAddrOf(n, IPv6)
			h = s.AddHost(name, n, LinkConfig{}, a)
		} else {
			a = h.AddInterface(n, IPv6, LinkConfig{})
		}
		h.Open(a, DefaultHostPort)
	}
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
// a server on the public core with two addresses (two per family when a side has
// IPv6).
type Pair struct {
	Sim    *Sim
	A, B   Site
	Server *Host
}

// NewPair builds a Pair. The server has sockets on ServerPort and ServerAltPort of
// its first address and ServerPort of its second (for NAT behaviour discovery); A and
// B each have one socket on DefaultHostPort of each of their addresses. When A or B
// has IPv6, the server has two IPv6 addresses too, with the same three sockets after
// the IPv4 ones (ServerSocketsOf). With SameCarrier, only the IPv4 side shares A's
// carrier: B's IPv6 chain is its own, on the core.
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
	if cfg.A.Stack.Has(IPv6) || cfg.B.Stack.Has(IPv6) {
		first, second := srv.AddAddrOf(IPv6), srv.AddAddrOf(IPv6)
		srv.Open(first, ServerPort)
		srv.Open(first, ServerAltPort)
		srv.Open(second, ServerPort)
	}
	pr := &Pair{Sim: s, Server: srv}
	pr.A = s.AddSite("a", cfg.A, cfg.Access, cfg.Nested)
	switch cfg.Placement {
	case SameLAN:
		pr.B = Site{Host: s.AddLANHost("b", pr.A), Boxes: pr.A.Boxes, Boxes6: pr.A.Boxes6}
	case SameCarrier:
		carrier := pr.A.Outer()
		if len(cfg.A.Boxes) < 2 {
			panic("sim: SameCarrier needs A's preset to have a carrier box outside another box")
		}
		b := s.addSite("b", homeOf(cfg.B), carrier.Inside(), cfg.Nested, cfg.Access, cfg.Nested)
		if cfg.B.Stack.Has(IPv4) {
			b.Boxes = append(b.Boxes, carrier)
		}
		pr.B = b
	default:
		pr.B = s.AddSite("b", cfg.B, cfg.Access, cfg.Nested)
	}
	return pr
}

// ServerAddr returns the server's main socket (IPv4).
func (pr *Pair) ServerAddr() netip.AddrPort { return pr.Server.Sockets()[0] }

// ServerSocketsOf returns the server's three sockets of family f, in the order
// NewPair opens them: ServerPort and ServerAltPort of its first address of f, then
// ServerPort of its second; nil when the server has no address of f.
func (pr *Pair) ServerSocketsOf(f Family) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ap := range pr.Server.Sockets() {
		if FamilyOf(ap.Addr()) == f {
			out = append(out, ap)
		}
	}
	return out
}

// ServerAddrOf returns the server's main socket of family f.
func (pr *Pair) ServerAddrOf(f Family) (netip.AddrPort, bool) {
	if ss := pr.ServerSocketsOf(f); len(ss) > 0 {
		return ss[0], true
	}
	return netip.AddrPort{}, false
}

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
		for i, a := range h.Addrs() {
			if i > 0 {
				b = append(b, ',')
			}
			b = a.AppendTo(b)
		}
		b = append(b, " in "...)
		b = append(b, h.net.name...)
		if h.other != nil {
			b = append(b, '+')
			b = append(b, h.other.net.name...)
		}
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
