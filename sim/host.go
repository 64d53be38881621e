package sim

import (
	"net/netip"

	"github.com/natpass/natpass/proto"
)

// Machine is what a Host runs: the DESIGN §2 state-machine contract without events.
// Events are the owner's business: the sim drains PollTransmit after every call into
// the machine and then calls Host.AfterStep, where a test drains the machine's
// PollEvent with the machine's own types.
//
// The sim calls HandleDatagram with p borrowed for the call only, local = the socket
// the datagram arrived on and from = the (translated) source; HandleTimeout at or
// after Deadline; PollTransmit with a buffer of MaxDatagram bytes. Transmit.From picks
// the sending socket (the zero AddrPort means the host's first socket) and
// Transmit.TTL the IP TTL (0 = DefaultTTL).
type Machine interface {
	HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error
	HandleTimeout(now proto.Instant)
	PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool)
	Deadline() proto.Instant
}

// DefaultTTL is the IP TTL of a Transmit that does not set one (Linux's default).
const DefaultTTL = 64

// Bounds that turn a misbehaving machine into a panic instead of a hang.
const (
	maxTransmitsPerCall = 1 << 20 // a PollTransmit that never returns false
	maxHookRounds       = 1 << 10 // AfterStep issuing commands that always send more
	firstEphemeralPort  = 49152   // IANA dynamic range (RFC 6335 §6)
)

// Host is an endpoint with one or more addresses and any number of UDP sockets, and at
// most one Machine that owns all of its sockets. A dual-stack host has a second
// interface (AddInterface) for its other address family, with its own link into its
// own network: its IPv4 packets go through its IPv4 NAT, its IPv6 packets through
// its IPv6 firewall, each on its own path.
//
//   - Getters: Name, Addr, Addrs, AddrOf, Network, Link, LinkOf, Machine, Socket,
//     SocketOf, Sockets, and the Errors/LastError fields (datagrams the machine
//     rejected).
//   - Setup and commands, at any time between steps or from AfterStep: Open, OpenPort,
//     OpenSockets (the extra sockets a node asks for), Close, AddAddr, AddAddrOf,
//     AddInterface, Attach.
//   - Drain after issuing a command to the machine from outside a step.
//   - AfterStep, the owner's hook, runs after every call the sim makes into the
//     machine, once its transmits are drained; then the host's cluster bus member,
//     if it joined one (Bus.Join), is drained.
type Host struct {
	attachment
	sim     *Sim
	machine Machine
	// AfterStep, when set, is called after every call into the machine and the drain of
	// its transmits, with the current time. Tests drain the machine's events here and
	// may issue commands; whatever those commands transmit is drained too.
	AfterStep func(now proto.Instant)

	deadline  proto.Instant // the machine's Deadline, cached after each call
	other     *attachment   // the interface for the other address family (AddInterface), or nil
	member    *BusMember    // the cluster bus member on this host (Bus.Join), drained after each call
	sockets   map[netip.AddrPort]struct{}
	order     []netip.AddrPort // sockets in the order they were opened
	ephemeral uint16

	// Errors counts datagrams the machine rejected; LastError is the latest such error.
	Errors    uint64
	LastError error
}

// AddHost attaches a new host to network n through a link with the given impairments.
// With no addrs, the host gets one automatic address of n. The host has no socket yet.
func (s *Sim) AddHost(name string, n *Network, link LinkConfig, addrs ...netip.Addr) *Host {
	h := &Host{sim: s, deadline: proto.Never, sockets: map[netip.AddrPort]struct{}{}, ephemeral: firstEphemeralPort}
	h.attachment = attachment{name: name, net: n, link: s.newLink(link), host: h}
	if len(addrs) == 0 {
		addrs = []netip.Addr{s.autoAddr(n)}
	}
	for _, a := range addrs {
		s.addRoute(n, a, &h.attachment)
	}
	h.addrs = append([]netip.Addr(nil), addrs...)
	s.hosts = append(s.hosts, h)
	return h
}

// AddAddr gives the host one more automatic address and returns it (a server with a
// second IP for NAT behaviour discovery).
func (h *Host) AddAddr() netip.Addr {
	a := h.sim.autoAddr(h.net)
	h.sim.addRoute(h.net, a, &h.attachment)
	h.addrs = append(h.addrs, a)
	return a
}

// AddAddrOf gives the host one more automatic address of family f and returns it:
// on the interface of that family, or on the first interface when that one's
// network is the core (a dual-stack server on the core, one interface, both
// families). It panics when the host has no network that carries f.
func (h *Host) AddAddrOf(f Family) netip.Addr {
	att := h.interfaceOf(f)
	if att == nil {
		panic("sim: " + h.name + " has no network carrying " + f.String())
	}
	a := h.sim.autoAddrOf(att.net, f)
	h.sim.addRoute(att.net, a, att)
	att.addrs = append(att.addrs, a)
	return a
}

// AddInterface attaches the host to a second network n, through its own link, for
// the family its first interface lacks (a dual-stack host: the first interface
// inside an IPv4 NAT, this one inside an IPv6 firewall), with one automatic address
// of family f, which it returns. A host has at most two interfaces, one per family.
func (h *Host) AddInterface(n *Network, f Family, link LinkConfig) netip.Addr {
	if h.other != nil || FamilyOf(h.Addr()) == f {
		panic("sim: " + h.name + " already has an " + f.String() + " interface")
	}
	a := h.sim.autoAddrOf(n, f)
	h.other = &attachment{name: h.name, net: n, link: h.sim.newLink(link), host: h, addrs: []netip.Addr{a}}
	h.sim.addRoute(n, a, h.other)
	return a
}

// interfaceOf returns the interface that carries family f: the one whose addresses
// are of f, or the first when it is on the core (which carries both); nil if none.
func (h *Host) interfaceOf(f Family) *attachment {
	switch {
	case FamilyOf(h.addrs[0]) == f:
		return &h.attachment
	case h.other != nil && FamilyOf(h.other.addrs[0]) == f:
		return h.other
	case h.other == nil && h.net == h.sim.core:
		return &h.attachment
	}
	return nil
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// Addrs returns the host's addresses: the first interface's (the first of them is
// the primary address), then the second interface's.
func (h *Host) Addrs() []netip.Addr {
	if h.other == nil {
		return h.addrs
	}
	return append(append([]netip.Addr(nil), h.addrs...), h.other.addrs...)
}

// AddrOf returns the host's first address of family f.
func (h *Host) AddrOf(f Family) (netip.Addr, bool) {
	for _, att := range [2]*attachment{&h.attachment, h.other} {
		if att == nil {
			continue
		}
		for _, a := range att.addrs {
			if FamilyOf(a) == f {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// LinkOf returns the link of the interface that carries family f, or nil.
func (h *Host) LinkOf(f Family) *Link {
	if att := h.interfaceOf(f); att != nil {
		return att.link
	}
	return nil
}

// Addr returns the primary address.
func (h *Host) Addr() netip.Addr { return h.addrs[0] }

// Link returns the host's link to its network.
func (h *Host) Link() *Link { return h.link }

// Network returns the network the host is attached to.
func (h *Host) Network() *Network { return h.net }

// Machine returns the attached machine, or nil.
func (h *Host) Machine() Machine { return h.machine }

// Open opens a socket on one of the host's addresses. Port 0 picks the next free
// ephemeral port. Opening an open socket panics: it is a bug in the test.
func (h *Host) Open(addr netip.Addr, port uint16) netip.AddrPort {
	if !h.hasAddr(addr) {
		panic("sim: " + h.name + " has no address " + addr.String())
	}
	if port == 0 {
		for n := 0; ; n++ {
			if n > 65536-firstEphemeralPort {
				panic("sim: " + h.name + " ran out of ephemeral ports")
			}
			p := h.ephemeral
			h.ephemeral++
			if h.ephemeral == 0 {
				h.ephemeral = firstEphemeralPort
			}
			if _, used := h.sockets[netip.AddrPortFrom(addr, p)]; !used {
				port = p
				break
			}
		}
	}
	ap := netip.AddrPortFrom(addr, port)
	if _, used := h.sockets[ap]; used {
		panic("sim: socket " + ap.String() + " already open on " + h.name)
	}
	h.sockets[ap] = struct{}{}
	h.order = append(h.order, ap)
	return ap
}

// OpenPort opens a socket on the primary address.
func (h *Host) OpenPort(port uint16) netip.AddrPort { return h.Open(h.Addr(), port) }

// OpenSockets opens n extra sockets on ephemeral ports of the primary address, as a
// node asks for birthday probing, and returns their addresses in order.
func (h *Host) OpenSockets(n int) []netip.AddrPort {
	out := make([]netip.AddrPort, n)
	for i := range out {
		out[i] = h.Open(h.Addr(), 0)
	}
	return out
}

// Close closes a socket; datagrams to it are dropped from now on (DropNoSocket).
func (h *Host) Close(ap netip.AddrPort) {
	if _, ok := h.sockets[ap]; !ok {
		return
	}
	delete(h.sockets, ap)
	for i, o := range h.order {
		if o == ap {
			h.order = append(h.order[:i], h.order[i+1:]...)
			break
		}
	}
}

// Sockets returns the open sockets in the order they were opened.
func (h *Host) Sockets() []netip.AddrPort { return h.order }

// Socket returns the first open socket, the default source of Transmits to its
// family.
func (h *Host) Socket() netip.AddrPort {
	if len(h.order) == 0 {
		return netip.AddrPort{}
	}
	return h.order[0]
}

// SocketOf returns the first open socket of family f, the default source of
// Transmits to addresses of f.
func (h *Host) SocketOf(f Family) (netip.AddrPort, bool) {
	for _, ap := range h.order {
		if FamilyOf(ap.Addr()) == f {
			return ap, true
		}
	}
	return netip.AddrPort{}, false
}

// defaultSource is the source of a Transmit without From: the first socket of the
// destination's family, else the first socket (whose family then mismatches and
// is dropped as such).
func (h *Host) defaultSource(dst netip.AddrPort) netip.AddrPort {
	if len(h.order) > 0 && FamilyOf(h.order[0].Addr()) == FamilyOf(dst.Addr()) {
		return h.order[0]
	}
	if ap, ok := h.SocketOf(FamilyOf(dst.Addr())); ok {
		return ap
	}
	return h.Socket()
}

func (h *Host) hasAddr(a netip.Addr) bool {
	for _, x := range h.addrs {
		if x == a {
			return true
		}
	}
	if h.other != nil {
		for _, x := range h.other.addrs {
			if x == a {
				return true
			}
		}
	}
	return false
}

// sourceInterface returns the interface a packet from address a leaves by.
func (h *Host) sourceInterface(a netip.Addr) *attachment {
	if h.other != nil {
		for _, x := range h.other.addrs {
			if x == a {
				return h.other
			}
		}
	}
	return &h.attachment
}

// Attach makes m the host's machine, replacing any previous one, and drains it (a
// machine may have datagrams ready from its constructor).
func (h *Host) Attach(m Machine) {
	h.machine = m
	h.afterCall()
}

// Drain must be called after the owner issued a command to the machine from outside
// a step (Connect, Send, ...): it drains the machine's transmits, calls AfterStep and
// reads the deadline, exactly as after a call made by the sim. A host without a
// Machine that joined a cluster bus drains only its bus member.
func (h *Host) Drain() {
	switch {
	case h.machine != nil:
		h.afterCall()
	case h.member != nil:
		h.member.drain()
	}
}

// deliver hands p, which arrived by interface att, to the machine and frees it.
func (h *Host) deliver(att *attachment, p *packet) {
	s := h.sim
	switch {
	case h.machine == nil:
		s.drop(p, h.name, DropNoMachine)
		return
	case !h.hasSocket(p.dst):
		s.drop(p, h.name, DropNoSocket)
		return
	case len(s.partitions) > 0 && s.partitioned(p.origin, att):
		s.drop(p, h.name, DropPartition)
		return
	}
	s.stats.Delivered++
	if s.tracer != nil {
		s.trace(TraceDeliver, h.name, p, netip.AddrPort{}, netip.AddrPort{}, 0)
	}
	// p.data is lent for the call only (DESIGN §2): the buffer goes back to the free
	// list right after, so a machine that keeps it would see it overwritten, as it
	// would with the driver's receive buffer.
	if err := h.machine.HandleDatagram(s.now, p.dst, p.src, p.data); err != nil {
		s.stats.MachineErrors++
		h.Errors++
		h.LastError = err
	}
	s.release(p)
	h.afterCall()
}

func (h *Host) hasSocket(ap netip.AddrPort) bool {
	if len(h.order) <= 8 { // a scan beats hashing for the usual one or two sockets
		for _, o := range h.order {
			if o == ap {
				return true
			}
		}
		return false
	}
	_, ok := h.sockets[ap]
	return ok
}

// afterCall is the drain rule: PollTransmit until false, then the owner's hook (which
// drains events and may issue commands, whose transmits are drained in turn), then
// the cluster bus member's interest and messages (Bus.Join), then Deadline. The bus
// only queues what it drains, so it sends no datagrams and needs no second round.
func (h *Host) afterCall() {
	h.drainTransmits()
	for round := 0; h.AfterStep != nil; round++ {
		if round == maxHookRounds {
			panic("sim: " + h.name + ": AfterStep keeps producing transmits")
		}
		h.AfterStep(h.sim.now)
		if !h.drainTransmits() {
			break
		}
	}
	if h.member != nil {
		h.member.drain()
	}
	h.deadline = h.machine.Deadline()
}

// drainTransmits sends everything the machine has queued and reports whether there
// was anything.
func (h *Host) drainTransmits() bool {
	s := h.sim
	sent := false
	for n := 0; ; n++ {
		if n == maxTransmitsPerCall {
			panic("sim: " + h.name + ": PollTransmit never returns false")
		}
		t, ok := h.machine.PollTransmit(s.now, s.txBuf)
		if !ok {
			return sent
		}
		sent = true
		h.send(t)
	}
}

func (h *Host) send(t proto.Transmit) {
	s := h.sim
	s.stats.Sent++
	// The payload is copied: t.Payload aliases the sim's transmit buffer, which the
	// next PollTransmit reuses.
	p := s.newPacket()
	p.src, p.dst, p.ttl = t.From, t.To, t.TTL
	if !p.src.IsValid() {
		p.src = h.defaultSource(p.dst)
	}
	if p.ttl == 0 {
		p.ttl = DefaultTTL
	}
	payload := t.Payload
	if len(payload) > MaxDatagram {
		s.stats.Truncated++
		payload = payload[:MaxDatagram]
	}
	p.data = append(p.data, payload...)
	if s.tracer != nil {
		s.trace(TraceSend, h.name, p, netip.AddrPort{}, netip.AddrPort{}, 0)
	}
	// A machine sending from a socket its host does not have is a bug in the
	// machine or its test; the drop has its own reason so the trace shows it.
	if !h.hasSocket(p.src) {
		s.drop(p, h.name, DropBadSource)
		return
	}
	if !p.dst.IsValid() || p.dst.Port() == 0 {
		s.drop(p, h.name, DropNoRoute) // before any NAT makes a mapping for it
		return
	}
	// A socket bound to an address of one family cannot reach the other; the
	// kernel refuses such a send (EAFNOSUPPORT, ENETUNREACH), so the packet never
	// leaves the host.
	if FamilyOf(p.src.Addr()) != FamilyOf(p.dst.Addr()) {
		s.drop(p, h.name, DropFamily)
		return
	}
	p.origin = h.sourceInterface(p.src.Addr())
	s.sendUp(p.origin, p)
}
