package sim

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/natpass/natpass/proto"
)

// NATConfig describes a NAT box by its RFC 4787 behaviour, or a stateful firewall
// (NoTranslation) by its filtering.
type NATConfig struct {
	// Mapping is when the NAT reuses an external endpoint: for every remote
	// (endpoint-independent), per remote address, or per remote address and port
	// (RFC 4787 §4.1). Ignored by a firewall.
	Mapping proto.Dependence
	// Filtering is which inbound packets a mapping admits: from anyone
	// (endpoint-independent), from addresses the inside endpoint has sent to, or from
	// address-and-port pairs it has sent to (RFC 4787 §5).
	Filtering proto.Dependence
	// Allocation is how a new mapping's external port is chosen (RFC 4787 §4.2.1):
	// preserving (the internal port when free, else random), sequential (the previous
	// allocation plus PortDelta, skipping ports in use), or random.
	Allocation proto.Allocation
	// PortDelta is the step of sequential allocation (0 = 1).
	PortDelta int
	// PortMin and PortMax bound external ports (both 0 = 1024–65535). RFC 4787 §4.2.1.
	PortMin, PortMax uint16
	// MappingTimeout is how long a mapping and each of its filter entries live without
	// refresh (0 = 2 min, RFC 4787 REQ-5's floor). Outbound packets always refresh
	// (RFC 4787 REQ-6).
	MappingTimeout time.Duration
	// InboundRefresh: admitted inbound packets refresh the mapping too (RFC 4787 §4.3
	// leaves it to the NAT).
	InboundRefresh bool
	// Hairpin: packets from the inside to the box's own external address are
	// translated and turned back inside (RFC 4787 §6; REQ-9: with the sender's external
	// endpoint as source). Otherwise they are dropped (DropHairpin).
	Hairpin bool
	// PortClash models Linux netfilter (DESIGN §9): an unsolicited inbound packet from
	// remote R to external port p leaves an [UNREPLIED] entry for UnrepliedTimeout,
	// refreshed by every further such packet, and while it lives, a new outbound flow
	// from the inside to R cannot use p: it gets another port.
	PortClash bool
	// UnrepliedTimeout is the life of an [UNREPLIED] entry (0 = 30 s, Linux's
	// nf_conntrack_udp_timeout).
	UnrepliedTimeout time.Duration
	// NoTranslation makes the box a stateful firewall (IPv6-style): inside hosts have
	// routable addresses, outbound packets pass unchanged and open filter entries,
	// inbound ones pass only as Filtering admits. Mapping, Allocation and PortClash are
	// ignored.
	NoTranslation bool
	// Inside is the prefix inside hosts get automatic addresses from (zero = 10.N.0.0/16
	// for the N-th NAT; a firewall hands out public addresses).
	Inside netip.Prefix
	// Family is the box's address family (zero: IPv4). An IPv6 box must be a
	// firewall (NoTranslation: natpass meets no NAT66); its own address comes from
	// 2001:db8:ffff::/64 and its inside is a /64 of its own, 2001:db8:N::/64 for the
	// N-th IPv6 box, unless Inside says otherwise. It must sit on the core or inside
	// another IPv6 box. (A translating box is IPv4 and drops IPv6 with DropFamily; a
	// firewall translates nothing, so it never turns a packet into another family.)
	Family Family
}

const (
	defaultMappingTimeout   = 2 * time.Minute
	defaultUnrepliedTimeout = 30 * time.Second
	// maxPermitsPerMapping bounds one mapping's filter entries (a birthday attack sends
	// to thousands of remote ports through one mapping); beyond it, expired entries are
	// swept, and if none are expired no new entry is made.
	maxPermitsPerMapping = 1 << 16
	// maxUnreplied bounds the [UNREPLIED] table, as nf_conntrack_max bounds Linux's.
	maxUnreplied = 1 << 16
)

// Box is a NAT or a stateful firewall between an inside network and the network it is
// attached to. It has no inputs of its own: the Sim routes packets through it. Its
// getters (Name, Addr, Inside, Link, Config, Mappings, Lookup, String) are for tests
// and traces and change nothing, not even expiry.
type Box struct {
	attachment
	sim    *Sim
	cfg    NATConfig
	inside *Network
	rng    *rand.Rand // port allocation

	mappings  map[mapKey]*mapping
	byPort    portTable // external port → mapping (translating boxes only)
	permits   map[permitKey]*permit
	unreplied map[permitKey]proto.Instant // PortClash: (external port, remote) → expiry
	lastPort  int                         // sequential allocation
	nextID    uint64
	pool      []*mapping // reused mappings
	// hot caches the last mapping found from the inside: a steady flow finds its
	// mapping without hashing.
	hotKey mapKey
	hot    *mapping
}

// portTable maps external ports to mappings in 256-port pages made on first use: a
// box costs 2 KiB until it has mappings, not 512 KiB, and a lookup is two indexings.
type portTable struct {
	pages [256]*[256]*mapping
}

func (t *portTable) get(port uint16) *mapping {
	pg := t.pages[port>>8]
	if pg == nil {
		return nil
	}
	return pg[port&0xff]
}

func (t *portTable) set(port uint16, m *mapping) {
	pg := t.pages[port>>8]
	if pg == nil {
		if m == nil {
			return
		}
		pg = new([256]*mapping)
		t.pages[port>>8] = pg
	}
	pg[port&0xff] = m
}

// mapKey finds a mapping from the inside. remote is the destination masked by the
// Mapping behaviour; flow marks a per-flow mapping made by a port clash.
type mapKey struct {
	internal, remote netip.AddrPort
	flow             bool
}

type mapping struct {
	id       uint64 // distinguishes a reused mapping from its previous life; 0 once removed
	key      mapKey
	internal netip.AddrPort
	external netip.AddrPort
	expires  proto.Instant
	// replied: an inbound packet was admitted through it. A per-flow mapping made
	// by a port clash that never had one is itself an [UNREPLIED] conntrack entry on
	// Linux and lives UnrepliedTimeout, not MappingTimeout (DESIGN §9).
	replied bool
	permits []permitKey // for cleanup when the mapping goes
	// hotPermit caches the filter entry used last, for the same reason as Box.hot.
	hotRemote netip.AddrPort
	hotPermit *permit
}

// permitKey is one filter entry: external endpoint plus the remote masked by the
// Filtering behaviour.
type permitKey struct {
	external, remote netip.AddrPort
}

type permit struct {
	id      uint64 // the mapping that made it
	expires proto.Instant
}

// AddNAT attaches a NAT box (or, with cfg.NoTranslation, a firewall) to network n and
// returns it; hosts behind it attach to b.Inside(). Its external address is automatic.
func (s *Sim) AddNAT(name string, n *Network, cfg NATConfig, link LinkConfig) *Box {
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = proto.NATPortMin, proto.NATPortMax
	}
	if cfg.PortMin > cfg.PortMax || cfg.PortMin == 0 {
		panic("sim: NAT " + name + ": bad port range")
	}
	if cfg.MappingTimeout == 0 {
		cfg.MappingTimeout = defaultMappingTimeout
	}
	if cfg.UnrepliedTimeout == 0 {
		cfg.UnrepliedTimeout = defaultUnrepliedTimeout
	}
	if cfg.PortDelta == 0 {
		cfg.PortDelta = 1
	}
	if cfg.NoTranslation {
		cfg.PortClash = false
		cfg.Hairpin = false
	}
	if cfg.Family == IPv6 && !cfg.NoTranslation {
		panic("sim: NAT " + name + ": an IPv6 box must be a firewall (NoTranslation)")
	}
	if nf, ok := networkFamily(n); ok && nf != cfg.Family {
		panic("sim: NAT " + name + ": an " + cfg.Family.String() + " box inside an " + nf.String() + " network")
	}
	b := &Box{
		sim:       s,
		cfg:       cfg,
		rng:       s.newRand(),
		mappings:  map[mapKey]*mapping{},
		permits:   map[permitKey]*permit{},
		unreplied: map[permitKey]proto.Instant{},
	}
	b.attachment = attachment{name: name, net: n, link: s.newLink(link), box: b}
	var ext netip.Addr
	switch {
	case n == s.core && cfg.Family == IPv6:
		ext = s.corePublicAddr6(true)
	case n == s.core:
		ext = s.corePublicAddr(!cfg.NoTranslation)
	default:
		ext = s.autoAddr(n)
	}
	b.addrs = []netip.Addr{ext}
	s.addRoute(n, ext, &b.attachment)
	b.inside = s.newNetwork(name, b)
	if cfg.Family == IPv6 {
		b.inside.prefix = s.nextInside6(cfg.Inside)
		b.inside.next = b.inside.prefix.Addr().Next().Next() // ::1 is the box
	}
	if !cfg.NoTranslation {
		nats := 0
		for _, x := range s.boxes {
			if !x.cfg.NoTranslation {
				nats++
			}
		}
		p := cfg.Inside
		if !p.IsValid() {
			// 10.1/16, 10.2/16, ...: unique for the first 255 NATs, which keeps traces
			// readable; beyond that they repeat, which is legal in separate networks.
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(nats%255 + 1), 0, 0}), 16)
		}
		b.inside.prefix = p.Masked()
		b.inside.next = b.inside.prefix.Addr().Next().Next() // .1 is the gateway
	}
	s.boxes = append(s.boxes, b)
	return b
}

// autoAddr returns a fresh address for a new member of n. Behind an IPv4 firewall
// addresses are public, so they come from the nearest translating network above (or
// the core); an IPv6 box hands out its own prefix.
func (s *Sim) autoAddr(n *Network) netip.Addr {
	if n.box != nil && n.box.cfg.Family == IPv6 {
		return n.autoAddr()
	}
	for n.box != nil && n.box.cfg.NoTranslation {
		n = n.box.net
	}
	if n == s.core {
		return s.corePublicAddr(false)
	}
	return n.autoAddr()
}

// Name returns the box's name.
func (b *Box) Name() string { return b.name }

// Addr returns the box's external address (in the network it is attached to).
func (b *Box) Addr() netip.Addr { return b.addrs[0] }

// Inside returns the network behind the box.
func (b *Box) Inside() *Network { return b.inside }

// Link returns the box's link to its network.
func (b *Box) Link() *Link { return b.link }

// Config returns the box's configuration with defaults filled in.
func (b *Box) Config() NATConfig { return b.cfg }

// Mappings returns the number of live mappings (expired ones are not counted).
func (b *Box) Mappings() int {
	n := 0
	for _, m := range b.mappings {
		if m.expires > b.sim.now {
			n++
		}
	}
	return n
}

// Lookup returns the external endpoint the box currently uses for packets from
// internal to remote, without changing anything.
func (b *Box) Lookup(internal, remote netip.AddrPort) (netip.AddrPort, bool) {
	if b.cfg.PortClash {
		if m := b.peek(mapKey{internal: internal, remote: remote, flow: true}); m != nil {
			return m.external, true
		}
	}
	if m := b.peek(b.outKey(internal, remote)); m != nil {
		return m.external, true
	}
	return netip.AddrPort{}, false
}

func (b *Box) peek(k mapKey) *mapping {
	if m := b.mappings[k]; m != nil && m.expires > b.sim.now {
		return m
	}
	return nil
}

// mask reduces a remote endpoint to what a behaviour depends on.
func mask(d proto.Dependence, r netip.AddrPort) netip.AddrPort {
	switch d {
	case proto.AddressDependent:
		return netip.AddrPortFrom(r.Addr(), 0)
	case proto.AddressAndPortDependent:
		return r
	}
	return netip.AddrPort{}
}

func (b *Box) outKey(internal, remote netip.AddrPort) mapKey {
	if b.cfg.NoTranslation {
		return mapKey{internal: internal}
	}
	return mapKey{internal: internal, remote: mask(b.cfg.Mapping, remote)}
}

// live returns the mapping for k, removing it if it expired.
func (b *Box) live(k mapKey) *mapping {
	m := b.hot
	if m == nil || m.id == 0 || b.hotKey != k {
		if m = b.mappings[k]; m == nil {
			return nil
		}
		b.hot, b.hotKey = m, k
	}
	if m.expires <= b.sim.now {
		b.remove(m)
		return nil
	}
	return m
}

func (b *Box) remove(m *mapping) {
	delete(b.mappings, m.key)
	if !b.cfg.NoTranslation && b.byPort.get(m.external.Port()) == m {
		b.byPort.set(m.external.Port(), nil)
	}
	for _, k := range m.permits {
		if pm, ok := b.permits[k]; ok && pm.id == m.id {
			delete(b.permits, k)
		}
	}
	m.permits = m.permits[:0]
	m.id, m.hotPermit = 0, nil
	if b.hot == m {
		// The object goes back to the pool and may come out again as another
		// mapping: a hot entry still naming the old key would then find it.
		b.hot = nil
	}
	b.pool = append(b.pool, m)
}

// outbound translates p, which arrived from the inside member from and is not for
// the inside network, and sends it up.
func (b *Box) outbound(p *packet, from *attachment) {
	s := b.sim
	if !b.cfg.NoTranslation && FamilyOf(p.dst.Addr()) != IPv4 {
		// An IPv4 NAT has no address to give an IPv6 packet (only a host given an
		// IPv6 address by hand behind it gets here). A firewall translates nothing,
		// so whatever it passes keeps its family.
		s.drop(p, b.name, DropFamily)
		return
	}
	if !s.hop(p, b.name) {
		return
	}
	if !b.cfg.NoTranslation && p.dst.Addr() == b.Addr() {
		b.hairpin(p)
		return
	}
	if b.translateOut(p) {
		s.sendUp(&b.attachment, p)
	}
}

// translateOut rewrites p's source through its mapping; on false p was dropped.
func (b *Box) translateOut(p *packet) bool {
	s := b.sim
	m := b.outboundMapping(p.src, p.dst)
	if m == nil {
		s.drop(p, b.name, DropPortsExhausted)
		return false
	}
	old := p.src
	p.src = m.external
	if s.tracer != nil && old != p.src {
		s.trace(TraceTranslate, b.name, p, old, p.dst, 0)
	}
	return true
}

// outboundMapping finds or makes the mapping for a packet from internal to remote,
// refreshes it and opens the filter for remote.
func (b *Box) outboundMapping(internal, remote netip.AddrPort) *mapping {
	now := b.sim.now
	var m *mapping
	if b.cfg.PortClash {
		m = b.live(mapKey{internal: internal, remote: remote, flow: true})
	}
	if m == nil {
		k := b.outKey(internal, remote)
		m = b.live(k)
		switch {
		case b.cfg.PortClash && m != nil && !b.permitted(m, remote) && b.clashes(m.external.Port(), remote):
			// Linux gives this flow the existing port only if the reply tuple
			// (remote → external) is free; an [UNREPLIED] entry holds it, so the flow
			// gets a port of its own (DESIGN §9).
			m = b.newMapping(mapKey{internal: internal, remote: remote, flow: true}, internal, remote)
		case m == nil && b.cfg.PortClash && b.cfg.Allocation == proto.AllocationPreserving &&
			b.clashes(internal.Port(), remote):
			// The same clash on a first flow: this flow gets another port, and the
			// next flow to anyone else still gets the preserved one, as on Linux.
			// (Other allocations just avoid clashing ports in allocate.)
			m = b.newMapping(mapKey{internal: internal, remote: remote, flow: true}, internal, remote)
		case m == nil:
			m = b.newMapping(k, internal, remote)
		}
		if m == nil {
			return nil
		}
	}
	m.expires = now.Add(b.cfg.MappingTimeout)
	if m.key.flow && !m.replied {
		// Measured on Linux (conntrack -L): a clashed flow with no reply goes 30 s
		// after its last packet, and the preserved port is then free again for the
		// same remote. With the 2-minute life a side that keeps probing through a
		// clashed port after a NAT reboot never got its port back.
		m.expires = now.Add(min(b.cfg.MappingTimeout, b.cfg.UnrepliedTimeout))
	}
	b.allow(m, remote)
	return m
}

// allow opens (or refreshes) m's filter for remote.
func (b *Box) allow(m *mapping, remote netip.AddrPort) {
	exp := b.sim.now.Add(b.cfg.MappingTimeout)
	if pm := b.findPermit(m, remote); pm != nil {
		pm.expires = exp
		return
	}
	if len(m.permits) >= maxPermitsPerMapping {
		b.sweepPermits(m)
		if len(m.permits) >= maxPermitsPerMapping {
			return
		}
	}
	k := permitKey{external: m.external, remote: mask(b.cfg.Filtering, remote)}
	pm := b.permits[k]
	if pm == nil {
		pm = &permit{}
		b.permits[k] = pm
	}
	*pm = permit{id: m.id, expires: exp}
	m.permits = append(m.permits, k)
	m.hotRemote, m.hotPermit = remote, pm
}

// findPermit returns m's filter entry admitting remote (live or expired), or nil.
func (b *Box) findPermit(m *mapping, remote netip.AddrPort) *permit {
	if pm := m.hotPermit; pm != nil && m.hotRemote == remote && pm.id == m.id {
		return pm
	}
	pm := b.permits[permitKey{external: m.external, remote: mask(b.cfg.Filtering, remote)}]
	if pm == nil || pm.id != m.id {
		return nil
	}
	m.hotRemote, m.hotPermit = remote, pm
	return pm
}

func (b *Box) sweepPermits(m *mapping) {
	kept := m.permits[:0]
	for _, k := range m.permits {
		if pm, ok := b.permits[k]; ok && pm.id == m.id && pm.expires > b.sim.now {
			kept = append(kept, k)
		} else if ok && pm.id == m.id {
			delete(b.permits, k)
		}
	}
	m.permits = kept
	m.hotPermit = nil
}

func (b *Box) permitted(m *mapping, remote netip.AddrPort) bool {
	pm := b.findPermit(m, remote)
	return pm != nil && pm.expires > b.sim.now
}

func (b *Box) clashes(port uint16, remote netip.AddrPort) bool {
	exp, ok := b.unreplied[permitKey{external: netip.AddrPortFrom(b.Addr(), port), remote: remote}]
	return ok && exp > b.sim.now
}

// noteUnreplied records an unsolicited inbound packet (PortClash only).
func (b *Box) noteUnreplied(p *packet) {
	if !b.cfg.PortClash {
		return
	}
	if len(b.unreplied) >= maxUnreplied {
		b.sweepUnreplied()
		if len(b.unreplied) >= maxUnreplied {
			return
		}
	}
	b.unreplied[permitKey{external: p.dst, remote: p.src}] = b.sim.now.Add(b.cfg.UnrepliedTimeout)
}

func (b *Box) sweepUnreplied() {
	for k, exp := range b.unreplied { // deletion only: order does not matter
		if exp <= b.sim.now {
			delete(b.unreplied, k)
		}
	}
}

// newMapping allocates an external port and registers a mapping, or returns nil when
// the port range is exhausted. Mappings are reused from a pool and each gets a fresh
// id, so filter entries and caches that still name an old life of it never match.
func (b *Box) newMapping(k mapKey, internal, remote netip.AddrPort) *mapping {
	ext := internal
	if !b.cfg.NoTranslation {
		port, ok := b.allocate(internal.Port(), remote)
		if !ok {
			return nil
		}
		ext = netip.AddrPortFrom(b.Addr(), port)
	}
	var m *mapping
	if n := len(b.pool); n > 0 {
		m = b.pool[n-1]
		b.pool = b.pool[:n-1]
	} else {
		m = &mapping{}
	}
	b.nextID++
	m.id, m.key, m.internal, m.external, m.replied = b.nextID, k, internal, ext, false
	b.mappings[k] = m
	if !b.cfg.NoTranslation {
		b.byPort.set(ext.Port(), m)
	}
	return m
}

// free reports whether port can take a new mapping toward remote, reclaiming an
// expired mapping that still holds it.
func (b *Box) free(port int, remote netip.AddrPort) bool {
	if m := b.byPort.get(uint16(port)); m != nil {
		if m.expires > b.sim.now {
			return false
		}
		b.remove(m)
	}
	return !(b.cfg.PortClash && b.clashes(uint16(port), remote))
}

// allocate picks an external port by the configured Allocation (RFC 4787 §4.2.1).
func (b *Box) allocate(internalPort uint16, remote netip.AddrPort) (uint16, bool) {
	lo, hi := int(b.cfg.PortMin), int(b.cfg.PortMax)
	size := hi - lo + 1
	switch b.cfg.Allocation {
	case proto.AllocationPreserving:
		if p := int(internalPort); p >= lo && p <= hi && b.free(p, remote) {
			return uint16(p), true
		}
	case proto.AllocationSequential:
		if b.lastPort == 0 {
			b.lastPort = lo + b.rng.IntN(size)
			if b.free(b.lastPort, remote) {
				return uint16(b.lastPort), true
			}
		}
		// Each try steps by the delta, so a skipped (busy) port shifts the pattern the
		// way it does on real sequential NATs. Bounded by the range size.
		for range size {
			b.lastPort = lo + ((b.lastPort-lo+b.cfg.PortDelta)%size+size)%size
			if b.free(b.lastPort, remote) {
				return uint16(b.lastPort), true
			}
		}
		// A delta sharing a factor with the range size cycles through a subset:
		// fall back to the scan below.
	}
	// Random, and the fallback of the others: a few random tries, then a scan from a
	// random start, so a nearly full range still allocates in bounded time.
	for range 32 {
		if p := lo + b.rng.IntN(size); b.free(p, remote) {
			return uint16(p), true
		}
	}
	start := b.rng.IntN(size)
	for i := range size {
		if p := lo + (start+i)%size; b.free(p, remote) {
			return uint16(p), true
		}
	}
	return 0, false
}

// inbound handles p arriving from outside the box. The TTL check comes first: a
// packet that dies here makes no state, neither a mapping refresh nor an [UNREPLIED]
// entry (Linux drops the unconfirmed conntrack entry with the packet).
func (b *Box) inbound(p *packet) {
	if !b.sim.hop(p, b.name) {
		return
	}
	b.admit(p)
}

// admit filters p, which is addressed to the box's outside, translates its
// destination and forwards it inside.
func (b *Box) admit(p *packet) {
	s := b.sim
	var m *mapping
	if b.cfg.NoTranslation {
		m = b.live(mapKey{internal: p.dst})
	} else if p.dst.Addr() == b.Addr() {
		if m = b.byPort.get(p.dst.Port()); m != nil && m.expires <= s.now {
			b.remove(m)
			m = nil
		}
	}
	if m == nil {
		b.noteUnreplied(p)
		s.drop(p, b.name, DropNoMapping)
		return
	}
	// RFC 4787 §5: the filter judges the source against what the inside endpoint has
	// sent to through this mapping, masked by the Filtering behaviour.
	if !b.permitted(m, p.src) {
		b.noteUnreplied(p)
		s.drop(p, b.name, DropFiltered)
		return
	}
	m.replied = true
	if b.cfg.InboundRefresh {
		m.expires = s.now.Add(b.cfg.MappingTimeout)
		b.allow(m, p.src)
	}
	old := p.dst
	p.dst = m.internal
	if s.tracer != nil && old != p.dst {
		s.trace(TraceTranslate, b.name, p, p.src, old, 0)
	}
	to := b.inside.lookup(p.dst.Addr())
	if to == nil {
		s.drop(p, b.name, DropNoRoute)
		return
	}
	s.sendDown(to, p)
}

// hairpin turns a packet from the inside to the box's own external address back in
// (RFC 4787 §6): the source is translated as for any outbound packet (REQ-9), then
// the packet is filtered and translated as if it had come from outside.
func (b *Box) hairpin(p *packet) {
	s := b.sim
	if !b.cfg.Hairpin {
		s.drop(p, b.name, DropHairpin)
		return
	}
	if b.translateOut(p) {
		b.admit(p)
	}
}

// String describes the box for traces and failure messages.
func (b *Box) String() string {
	c := b.cfg
	if c.NoTranslation && c.Family == IPv6 {
		return b.name + " ipv6 firewall filtering=" + c.Filtering.String()
	}
	if c.NoTranslation {
		return b.name + " firewall filtering=" + c.Filtering.String()
	}
	s := b.name + " mapping=" + c.Mapping.String() + " filtering=" + c.Filtering.String() +
		" allocation=" + c.Allocation.String()
	if c.Allocation == proto.AllocationSequential {
		s += " delta=" + strconv.Itoa(c.PortDelta)
	}
	if c.Hairpin {
		s += " hairpin"
	}
	if c.PortClash {
		s += " port-clash"
	}
	return s
}
