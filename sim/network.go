package sim

import (
	"net/netip"

	"github.com/natpass/natpass/proto"
)

// Network is one addressing realm: the public core, or the inside of a NAT box or
// firewall. Hosts and boxes attach to a network through a Link, each with addresses
// in it.
//
// The core forwards like a router: it decrements the TTL (one hop) and drops packets
// to addresses nobody owns. The inside of a box is a LAN: packets between its members
// are switched without a TTL change; everything else goes to the box, which
// translates (NAT) or filters (firewall) it and sends it up its own link.
type Network struct {
	name   string
	box    *Box // owner of this inside network; nil for the core
	routes map[netip.Addr]*attachment
	prefix netip.Prefix // where automatic addresses come from
	next   netip.Addr   // next automatic address
	// hotAddr/hotRoute cache the last route looked up: a steady flow skips the hash.
	// Routes are only ever added, and adding one clears the cache.
	hotAddr  netip.Addr
	hotRoute *attachment
}

func (n *Network) lookup(a netip.Addr) *attachment {
	if n.hotRoute != nil && n.hotAddr == a {
		return n.hotRoute
	}
	r := n.routes[a]
	if r != nil {
		n.hotAddr, n.hotRoute = a, r
	}
	return r
}

func (s *Sim) newNetwork(name string, box *Box) *Network {
	n := &Network{name: name, box: box, routes: map[netip.Addr]*attachment{}}
	s.networks = append(s.networks, n)
	return n
}

// Name returns the network's name ("core", or the owning box's name).
func (n *Network) Name() string { return n.name }

// Box returns the NAT or firewall whose inside this network is, or nil for the core.
func (n *Network) Box() *Box { return n.box }

// Node is something attached to a network: a *Host or a *Box.
type Node interface {
	attach() *attachment
}

// attachment is what hosts and boxes share: a name, a network and the link to it.
type attachment struct {
	name  string
	net   *Network
	link  *Link
	addrs []netip.Addr // in net
	host  *Host        // exactly one of host and box is set
	box   *Box
}

func (a *attachment) attach() *attachment { return a }

// under reports whether a is x or sits somewhere inside x. A host's interfaces
// (Host.AddInterface) all count as the host.
func (a *attachment) under(x *attachment) bool {
	for a != nil {
		if a == x || a.host != nil && a.host == x.host {
			return true
		}
		if a.net.box == nil {
			return false
		}
		a = &a.net.box.attachment
	}
	return false
}

// addRoute makes addr reachable in n through a. Inside a firewall, addresses are
// routable from the outside, so the route is repeated in every network above that
// does not translate.
func (s *Sim) addRoute(n *Network, addr netip.Addr, a *attachment) {
	if old, ok := n.routes[addr]; ok && old != a {
		panic("sim: address " + addr.String() + " already used in network " + n.name)
	}
	n.routes[addr] = a
	n.hotRoute = nil
	for n.box != nil && n.box.cfg.NoTranslation {
		up := n.box.net
		if _, ok := up.routes[addr]; ok {
			panic("sim: address " + addr.String() + " already used in network " + up.name)
		}
		up.routes[addr] = &n.box.attachment
		up.hotRoute = nil
		n = up
	}
}

// autoAddr hands out the next address of n's prefix.
func (n *Network) autoAddr() netip.Addr {
	for {
		a := n.next
		if !n.prefix.Contains(a) {
			panic("sim: network " + n.name + " ran out of automatic addresses in " + n.prefix.String())
		}
		n.next = a.Next()
		if _, used := n.routes[a]; !used {
			return a
		}
	}
}

// Public automatic addresses come from the documentation ranges (RFC 5737): servers
// and public hosts from 203.0.113.0/24, NAT boxes from 198.51.100.0/24, then
// 192.0.2.0/24, and for worlds of thousands of hosts the reserved 240.0.0.0/4
// (RFC 1112 §4), which no real network routes either.
var (
	publicHostPrefix = netip.MustParsePrefix("203.0.113.0/24")
	publicBoxPrefix  = netip.MustParsePrefix("198.51.100.0/24")
	publicSpares     = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("240.0.0.0/4")}
)

func (s *Sim) corePublicAddr(forBox bool) netip.Addr {
	p := publicHostPrefix
	if forBox {
		p = publicBoxPrefix
	}
	// Start at .10 for hosts and .1 for boxes so traces tell them apart at a glance.
	a := p.Addr().Next()
	if !forBox {
		for range 9 {
			a = a.Next()
		}
	}
	for i, q := range append([]netip.Prefix{p}, publicSpares...) {
		if i > 0 {
			a = q.Addr().Next()
		}
		// Scanning from the start each time is quadratic in the hosts of one range,
		// which is at most 254 until the large spare, where the scan starts at the
		// first free address remembered below.
		if q == publicSpares[1] && s.spareNext.IsValid() {
			a = s.spareNext
		}
		for ; q.Contains(a); a = a.Next() {
			if _, used := s.core.routes[a]; !used {
				if q == publicSpares[1] {
					s.spareNext = a.Next()
				}
				return a
			}
		}
	}
	panic("sim: out of public addresses")
}

// send puts a packet on the link of att going up, toward att's network.
func (s *Sim) sendUp(att *attachment, p *packet) {
	s.transit(att, false, p)
}

// sendDown puts a packet on the link of att coming down from att's network.
func (s *Sim) sendDown(att *attachment, p *packet) {
	s.transit(att, true, p)
}

// transit carries p across att's link. A zero-delay hop continues at once, except
// that handing a packet to a machine always goes through the queue: a machine is never
// called from inside another machine's call, and two machines answering each other
// without delay cannot recurse.
func (s *Sim) transit(att *attachment, down bool, p *packet) {
	at, inOrder, ok := s.crossLink(att, down, p)
	if !ok {
		return
	}
	dup, dupAt, dupInOrder := s.duplicate(att.link, down, p)
	d := att.link.direction(down)
	if at == s.now && dup == nil && d.inFlight.n == 0 && !(down && att.host != nil) {
		s.arrive(event{at: at, pkt: p, att: att, down: down})
		return
	}
	s.enqueue(att, down, p, at, inOrder)
	if dup != nil {
		s.enqueue(att, down, dup, dupAt, dupInOrder)
	}
}

// enqueue puts p in its link direction's line, or straight in the event queue when it
// is out of line (reordered).
func (s *Sim) enqueue(att *attachment, down bool, p *packet, at proto.Instant, inOrder bool) {
	if !inOrder {
		s.queue.push(event{at: at, pkt: p, att: att, down: down})
		return
	}
	d := att.link.direction(down)
	if d.inFlight.n == 0 {
		// The link direction becomes busy: its head goes in the queue.
		s.queue.push(event{at: at, att: att, down: down})
	}
	d.inFlight.push(flight{at, p})
}

// arrive handles a packet at the far end of a link. An event without a packet stands
// for the head of the link direction's in-flight line.
func (s *Sim) arrive(ev event) {
	if ev.bus != nil {
		ev.bus.bus.arrive(ev.bus)
		return
	}
	att, p := ev.att, ev.pkt
	if p == nil {
		d := att.link.direction(ev.down)
		p = d.inFlight.pop().pkt
		if d.inFlight.n > 0 {
			s.queue.push(event{at: d.inFlight.front().at, att: att, down: ev.down})
		}
	}
	switch {
	case ev.down && att.host != nil:
		att.host.deliver(att, p)
	case ev.down:
		att.box.inbound(p)
	default:
		s.route(att.net, att, p)
	}
}

// route forwards p inside network n, where it arrived from the member from.
func (s *Sim) route(n *Network, from *attachment, p *packet) {
	dst := p.dst.Addr()
	if to := n.lookup(dst); to != nil {
		if n.box == nil && !s.hop(p, "core") {
			return
		}
		s.sendDown(to, p)
		return
	}
	if n.box == nil {
		s.drop(p, "core", DropNoRoute)
		return
	}
	n.box.outbound(p, from)
}

// hop is one router decrementing the TTL: a packet that arrives with TTL 1 expires
// here (RFC 791 §3.2 "Time to Live"; RFC 1812 §5.3.1). It reports whether p goes on.
func (s *Sim) hop(p *packet, where string) bool {
	if p.ttl <= 1 {
		s.drop(p, where, DropTTL)
		return false
	}
	p.ttl--
	return true
}

// drop counts, traces and frees p.
func (s *Sim) drop(p *packet, where string, why DropReason) {
	s.stats.Dropped[why]++
	if s.tracer != nil {
		s.trace(TraceDrop, where, p, netip.AddrPort{}, netip.AddrPort{}, why)
	}
	s.release(p)
}

// Window is a half-open interval of virtual time [From, Until).
type Window struct {
	From, Until proto.Instant
}

// Contains reports whether t is in the window.
func (w Window) Contains(t proto.Instant) bool { return w.From <= t && t < w.Until }

type partition struct {
	a, b *attachment
	w    Window
}

// Partition drops, during w, every packet between a host at or under a and a host at
// or under b (both directions), as if the path between them were cut. It is decided
// when the packet would be delivered, so NATs on the way still see it.
func (s *Sim) Partition(a, b Node, w Window) {
	s.partitions = append(s.partitions, partition{a.attach(), b.attach(), w})
}

// partitioned reports whether a packet that left by interface from and arrived by
// interface to is cut by a live partition. Each family's path is judged on its own:
// a partition naming an IPv4 NAT does not cut the host's IPv6 traffic.
func (s *Sim) partitioned(from, to *attachment) bool {
	if from == nil {
		return false
	}
	for _, pt := range s.partitions {
		if !pt.w.Contains(s.now) {
			continue
		}
		f, t := from, to
		if f.under(pt.a) && t.under(pt.b) || f.under(pt.b) && t.under(pt.a) {
			return true
		}
	}
	return false
}
