// Package lab runs natpass end to end on the simulator: a rendezvous server on the
// public core and two nodes behind NAT presets, seeded so that any run replays
// exactly. `natpass lab` prints its matrix; tests hold each cell to its target.
package lab

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
	"github.com/natpass/natpass/sim"
)

// Same-NAT cells: both nodes behind one port-restricted NAT, with hairpinning on or off.
const (
	SameNATHairpin   = "same-nat-hairpin"
	SameNATNoHairpin = "same-nat-no-hairpin"
)

// RunConfig is one seeded run of one cell.
type RunConfig struct {
	A, B string // preset names, or a same-NAT cell name in A (B ignored)
	Seed uint64
	// Loss on every access link, each direction (the lab uses 1 %).
	Loss float64
	// Timeout bounds the run in virtual time after Connect (0 = 30 s).
	Timeout time.Duration
	// Log, when set, receives every node event with its virtual time, for replaying
	// a failed run (natpass lab --verbose).
	Log func(line string)
	// Messages is how many reliable messages each side sends once connected
	// (0 = 100).
	Messages int
	// MappingTimeout overrides every NAT's mapping timeout (0: the preset's).
	MappingTimeout time.Duration
	// Jitter on every access link (0: none).
	Jitter time.Duration
	// Duplicate is the share of packets every access link delivers twice.
	Duplicate float64
	// Relay is the connecting side's relay policy (the other follows the
	// introduction).
	Relay node.RelayPolicy
	// StartDelay overrides the server's introduction start delay (0: its default).
	StartDelay time.Duration
	// RUDP configures both nodes' connections (zero: rudp's defaults).
	RUDP rudp.Config
	// Servers is how many rendezvous servers run (0: 1), each on a host of its own
	// on the public core, sharing the ticket secret. They form a cluster on a
	// simulated bus and the run puts A and B on two different servers, chosen from
	// the seed (natpass lab --servers); each node lists the others after its own.
	Servers int
	// Independent makes the servers independent (no cluster, no bus): both nodes
	// register on the first and fail over down the list (the server-kill tests).
	Independent bool

	timeline *Timeline // set by RunTimeline: records the run's events (timeline.go)
}

// Result is what one run measured.
type Result struct {
	Seed     uint64
	Direct   bool           // both sides confirmed a direct path
	Strategy proto.Strategy // the punching strategy A chose
	ToDirect time.Duration  // Connect to the later side's confirmation
	// Delivered is true when every message of both sides arrived, in order, intact.
	Delivered bool
	// Relay: every message arrived, but not both sides reached a direct path.
	Relay bool
	// FirstMessage is Connect to the first message delivered (either side).
	FirstMessage time.Duration
	Err          string        // why the run failed, if it did
	PeerRTT      time.Duration // the drawn peer-to-peer round trip
	// Family is the IP family of A's direct path at the end of a direct run (IPv4
	// otherwise): a dual-stack pair should end on IPv6 when it can.
	Family sim.Family
}

// testSecret is the lab server's ticket secret; nothing leaves the simulator.
var testSecret = []byte("natpass lab secret, simulator only")

// wallStart is the Unix time at virtual time zero (2027-01-01).
const wallStart = 1798761600

// side is one node on its sim host, with what the lab watches.
type side struct {
	name     string
	host     *sim.Host
	node     *node.Node
	reported bool
	nat      node.EventNATReport // the latest NAT report
	direct   proto.Instant
	closed   string
	strategy proto.Strategy
	log      func(string)

	connected bool
	toSend    int           // messages to send once connected
	received  int           // messages received in order and intact
	corrupt   int           // messages out of order or altered
	firstMsg  proto.Instant // first message received
	peer      string
	sent      int // messages sent so far
	// lastDirect and lastDown are the latest direct-path and path-lost events;
	// directRemote is where the latest direct path went, directOn when the first
	// direct path of each family came.
	lastDirect, lastDown proto.Instant
	directRemote         netip.AddrPort
	directOn             [2]proto.Instant
	// moves are the node's server changes; relayMoved is when the relay was last
	// ready again after one (path event "server changed"), relayAt the server it
	// named.
	moves      []node.EventServerChanged
	relayMoved proto.Instant
	relayAt    netip.AddrPort
	// gaveUp: punching ended without a direct path (the node says why).
	gaveUp bool
	// flaps counts moves away from a direct path; deaths counts the ones where the
	// path was declared dead (not merely suspect).
	flaps, deaths int
	// credit is what the messages read so far hold; stalled keeps it (a reader that
	// stopped taking messages), otherwise it goes back at the end of each step.
	credit  node.Credit
	stalled bool
	// pending counts the events one drain of the node returned; maxPending is its
	// largest value so far (how much the node queued between two drains).
	pending, maxPending int

	// Hooks of scenario runs (scenario.go): onMessage takes every message instead
	// of the numbered-message check; while reading reports false the application
	// reads no event at all and so takes no message (a stopped reader).
	onMessage func(now proto.Instant, e node.EventMessage)
	reading   func(now proto.Instant) bool
	stalledBy int // stop-taking faults in force (stalled while > 0)

	timeline *Timeline // RunTimeline's recorder (nil: none)
}

// sendMore sends n more numbered messages to the peer.
func (s *side) sendMore(now proto.Instant, n int) error {
	for i := 0; i < n; i++ {
		if err := s.node.Send(now, s.peer, 0, rudp.ReliableOrdered, message(s.name, s.sent)); err != nil {
			return err
		}
		s.sent++
	}
	s.host.Drain()
	return nil
}

// message is the i-th lab message from side name: recognisable, checkable bytes.
func message(name string, i int) []byte {
	return fmt.Appendf(nil, "%s message %04d %s", name, i, strings.Repeat("*", i%97))
}

func (s *side) afterStep(now proto.Instant) {
	if s.reading != nil && !s.reading(now) {
		return
	}
	for {
		e, ok := s.node.PollEvent()
		if !ok {
			break
		}
		s.pending++
		s.maxPending = max(s.maxPending, s.pending)
		if s.log != nil {
			s.log(fmt.Sprintf("%12v %s %T %+v", time.Duration(now), s.name, e, e))
		}
		s.timeline.event(now, s.name, e)
		switch e := e.(type) {
		case node.EventOpenSockets:
			s.node.HandleSockets(now, e.Tag, s.host.OpenSockets(e.N))
		case node.EventNATReport:
			s.reported, s.nat = true, e
		case node.EventIntroduced:
			s.strategy = e.Strategy
		case node.EventPathChanged:
			s.onPath(now, e)
		case node.EventServerChanged:
			s.moves = append(s.moves, e)
		case node.EventClosed:
			s.closed = e.Reason
		case node.EventPeerClosed:
			s.closed = "peer closed: " + e.Reason.String()
		case node.EventConnected:
			s.connected = true
			for ; s.sent < s.toSend; s.sent++ {
				if err := s.node.Send(now, e.Peer, 0, rudp.ReliableOrdered, message(s.name, s.sent)); err != nil {
					s.closed = "send: " + err.Error()
				}
			}
		case node.EventMessage:
			s.onMessageEvent(now, e)
		}
	}
	s.pending = 0
	if !s.stalled && !s.credit.IsZero() {
		// The application took the messages: their credit goes back to the peer.
		s.node.Consumed(now, s.credit)
		s.credit = node.Credit{}
	}
}

// onPath records a path change: when direct came, flaps, deaths, giving up.
func (s *side) onPath(now proto.Instant, e node.EventPathChanged) {
	if e.Kind == proto.PathDirect && s.direct == 0 {
		s.direct = now
	}
	if e.Kind == proto.PathDirect {
		s.lastDirect, s.directRemote = now, e.Remote
		if f := sim.FamilyOf(e.Remote.Addr()); s.directOn[f] == 0 {
			s.directOn[f] = now
		}
		return
	}
	if e.Kind == proto.PathRelay {
		if e.Reason == "server changed" {
			s.relayMoved, s.relayAt = now, e.Remote
		}
		return
	}
	if s.lastDirect != 0 && s.lastDirect >= s.lastDown {
		s.flaps++
	}
	if strings.HasPrefix(e.Reason, "direct timed out") {
		s.deaths++
	}
	s.lastDown = now
	s.gaveUp = s.gaveUp || strings.HasPrefix(e.Reason, "no direct path")
}

// onMessageEvent checks a message (or hands it to the scenario's hook) and keeps its
// credit for the end of the step.
func (s *side) onMessageEvent(now proto.Instant, e node.EventMessage) {
	s.credit = s.credit.Add(e.Credit)
	if s.onMessage != nil {
		s.onMessage(now, e)
		return
	}
	if s.firstMsg == 0 {
		s.firstMsg = now
	}
	if string(e.Data) == string(message(s.peer, s.received)) {
		s.received++
	} else {
		s.corrupt++
	}
}

// cellPresets turns a cell into the two presets and the same-LAN flag.
func cellPresets(a, b string) (pa, pb sim.Preset, sameLAN bool, err error) {
	switch a {
	case SameNATHairpin, SameNATNoHairpin:
		p := sim.MustPreset("port-restricted-cone")
		p.Boxes[0].Hairpin = a == SameNATHairpin
		return p, p, true, nil
	}
	var ok bool
	if pa, ok = sim.PresetByName(a); !ok {
		return pa, pb, false, fmt.Errorf("unknown preset %q", a)
	}
	if pb, ok = sim.PresetByName(b); !ok {
		return pa, pb, false, fmt.Errorf("unknown preset %q", b)
	}
	return pa, pb, false, nil
}

// world is one simulated setup: the server, the two nodes and their NATs.
type world struct {
	cfg   RunConfig
	pr    *sim.Pair
	s     *sim.Sim
	a, b  *side
	start proto.Instant // when A called Connect
	res   Result
	srv   *rendezvous.Server // server 0, the one running now (startServer replaces it)
	// hosts are the servers' hosts (pr.Server first), srvs the servers running on
	// them (srvs[0] is srv); in a cluster, members are their bus memberships.
	hosts   []*sim.Host
	srvs    []*rendezvous.Server
	members []*sim.BusMember
	bus     *sim.Bus
}

// newWorld builds the setup of cfg and runs it until both nodes measured their NATs.
func newWorld(cfg RunConfig) (*world, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Messages == 0 {
		cfg.Messages = 100
	}
	w := &world{cfg: cfg, res: Result{Seed: cfg.Seed}}
	pa, pb, sameLAN, err := cellPresets(cfg.A, cfg.B)
	if err != nil {
		return nil, err
	}
	if cfg.MappingTimeout != 0 {
		for _, p := range []*sim.Preset{&pa, &pb} {
			for i := range p.Boxes {
				p.Boxes[i].MappingTimeout = cfg.MappingTimeout
			}
		}
	}
	// RTTs drawn as the issue asks: node↔server and peer↔peer within 20–150 ms.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x1ab))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond }
	latA, latB, latS := ms(8, 37), ms(8, 37), ms(2, 8)
	w.res.PeerRTT = 2 * (latA + latB)
	pr := sim.NewPair(sim.PairConfig{
		Seed: cfg.Seed, A: pa, B: pb, Placement: placement(sameLAN),
		Access:     sim.LinkConfig{Latency: latA, Loss: cfg.Loss, Routers: 2, Jitter: cfg.Jitter, Duplicate: cfg.Duplicate},
		ServerLink: sim.LinkConfig{Latency: latS},
	})
	if !sameLAN {
		// B's access links get their own latency (NewPair gave both sides A's).
		for _, link := range accessLinks(pr.B) {
			link.Set(sim.LinkConfig{Latency: latB, Loss: cfg.Loss, Routers: 2, Jitter: cfg.Jitter, Duplicate: cfg.Duplicate})
		}
	}
	w.pr, w.s = pr, pr.Sim
	s := pr.Sim
	if err := w.startServers(max(cfg.Servers, 1), latS); err != nil {
		return nil, err
	}
	ia, ib := w.serverOf(cfg.Seed)
	cfg.timeline.watch(w)
	w.a = newSide(s, "a", pr.A.Host, w.serverLists(pr.A.Host, ia), cfg.Log, cfg.Relay, cfg.RUDP)
	w.b = newSide(s, "b", pr.B.Host, w.serverLists(pr.B.Host, ib), cfg.Log, node.RelayAuto, cfg.RUDP)
	w.a.timeline, w.b.timeline = cfg.timeline, cfg.timeline
	w.a.peer, w.b.peer = "b", "a"
	w.a.toSend, w.b.toSend = cfg.Messages, cfg.Messages
	if err := s.RunUntil(s.Now().Add(20*time.Second), func() bool { return w.a.reported && w.b.reported }); err != nil {
		return nil, err
	}
	if !w.a.reported || !w.b.reported {
		return nil, fmt.Errorf("NAT measurement unfinished (a=%v b=%v)", w.a.reported, w.b.reported)
	}
	return w, nil
}

// accessLinks returns a site's links to the core, one per family its host has: the
// outermost box's of that family's chain, or the host's own interface when no box
// is in front.
func accessLinks(st sim.Site) []*sim.Link {
	var out []*sim.Link
	if _, ok := st.Host.AddrOf(sim.IPv4); ok {
		link := st.Host.LinkOf(sim.IPv4)
		if outer := st.Outer(); outer != nil {
			link = outer.Link()
		}
		out = append(out, link)
	}
	if _, ok := st.Host.AddrOf(sim.IPv6); ok {
		link := st.Host.LinkOf(sim.IPv6)
		if n := len(st.Boxes6); n > 0 {
			link = st.Boxes6[n-1].Link()
		}
		out = append(out, link)
	}
	return out
}

// startServers starts n servers: the Pair's, and n-1 more on hosts of their own on
// the core with latency latS and the same sockets (two addresses, ports ServerPort
// and ServerAltPort, per family the Pair's server has). More than one form a
// cluster (unless cfg.Independent), joined by a bus.
func (w *world) startServers(n int, latS time.Duration) error {
	w.hosts = []*sim.Host{w.pr.Server}
	if n > 1 && !w.cfg.Independent {
		// Servers of one cluster sit in one region: a millisecond or two apart.
		w.bus = w.s.NewBus(sim.BusConfig{Latency: time.Millisecond, Jitter: time.Millisecond})
	}
	for k := 1; k < n; k++ {
		h := w.s.AddHost(fmt.Sprintf("server%d", k+1), w.s.Core(), sim.LinkConfig{Latency: latS})
		h.AddAddr()
		h.Open(h.Addrs()[0], sim.ServerPort)
		h.Open(h.Addrs()[0], sim.ServerAltPort)
		h.Open(h.Addrs()[1], sim.ServerPort)
		if len(serverSocketsOf(w.pr.Server, sim.IPv6)) > 0 {
			first, second := h.AddAddrOf(sim.IPv6), h.AddAddrOf(sim.IPv6)
			h.Open(first, sim.ServerPort)
			h.Open(first, sim.ServerAltPort)
			h.Open(second, sim.ServerPort)
		}
		w.hosts = append(w.hosts, h)
	}
	w.srvs, w.members = make([]*rendezvous.Server, n), make([]*sim.BusMember, n)
	for k := range w.hosts {
		if err := w.startServerAt(k); err != nil {
			return err
		}
	}
	return nil
}

// serverSocketsOf returns a server host's sockets of family f, in the order they
// were opened (primary, alt port, alt address), as sim.Pair.ServerSocketsOf.
func serverSocketsOf(h *sim.Host, f sim.Family) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ap := range h.Sockets() {
		if sim.FamilyOf(ap.Addr()) == f {
			out = append(out, ap)
		}
	}
	return out
}

// serverList is what a node on host is configured with: its server list in the
// family of its main socket (the host's first), starting at server k, and, on a
// dual-stack host, the same servers' sockets of the other family, index for index
// (zero where a server has none).
type serverList struct {
	servers, other []netip.AddrPort
	otherLocal     netip.AddrPort
}

func (w *world) serverLists(host *sim.Host, k int) serverList {
	fam := sim.FamilyOf(host.Socket().Addr())
	otherFam := sim.IPv4
	if fam == sim.IPv4 {
		otherFam = sim.IPv6
	}
	var l serverList
	otherLocal, dual := host.SocketOf(otherFam)
	for _, h := range w.hosts {
		primary := serverSocketsOf(h, fam)[0]
		var other netip.AddrPort
		if ss := serverSocketsOf(h, otherFam); len(ss) > 0 {
			other = ss[0]
		}
		l.servers, l.other = append(l.servers, primary), append(l.other, other)
	}
	l.servers = rotate(l.servers, k)
	if dual {
		l.otherLocal, l.other = otherLocal, rotate(l.other, k)
	} else {
		l.other = nil
	}
	return l
}

// serverOf picks the servers of A and B for a run: the first for both without a
// cluster, two different ones, drawn from the seed, with.
func (w *world) serverOf(seed uint64) (a, b int) {
	n := len(w.hosts)
	if w.bus == nil {
		return 0, 0
	}
	a = int(seed % uint64(n))
	return a, (a + 1 + int(seed/uint64(n))%(n-1)) % n
}

// rotate returns list starting at index k, wrapping: a node's own server first,
// then the others in order, for failover.
func rotate(list []netip.AddrPort, k int) []netip.AddrPort {
	return append(append([]netip.AddrPort(nil), list[k:]...), list[:k]...)
}

// startServer restarts server 0 with no sessions (a restart that lost them all).
func (w *world) startServer() error { return w.startServerAt(0) }

// startServerAt attaches a fresh rendezvous server to server host k: at the start,
// and again to model a restart that lost every session.
func (w *world) startServerAt(k int) error {
	s, host := w.s, w.hosts[k]
	socks := host.Sockets()
	cfg := rendezvous.Config{
		Secret: testSecret, Seed: s.NewSeed32(), StartDelay: w.cfg.StartDelay,
		Primary: socks[0], AltPort: socks[1], AltAddr: socks[2], Cluster: w.bus != nil,
		WallClock: proto.WallClock{At: s.Now(), Time: time.Unix(wallStart+int64(s.Now()/proto.Instant(time.Second)), 0)},
	}
	if six := serverSocketsOf(host, sim.IPv6); len(six) == 3 {
		// A server listening on both families (dual-stack cells): IPv6 is its
		// other family, with alternates of its own.
		cfg.OtherPrimary, cfg.OtherAltPort, cfg.OtherAltAddr = six[0], six[1], six[2]
	}
	srv, err := rendezvous.NewServer(cfg)
	if err != nil {
		return err
	}
	host.Attach(srv)
	w.srvs[k] = srv
	if k == 0 {
		w.srv = srv
	}
	if w.bus != nil {
		if old := w.members[k]; old != nil && !old.Killed() {
			w.bus.Kill(old)
		}
		w.members[k] = w.bus.Join(host.Name(), host, sim.AdaptCluster(srv))
	}
	host.AfterStep = func(proto.Instant) {
		for {
			if _, ok := srv.PollEvent(); !ok {
				return
			}
		}
	}
	return nil
}

// connect has A connect to B and runs until both have a direct path and every
// message arrived, a side closed, or the timeout passed; it fills w.res.
func (w *world) connect() {
	a, b, s, n := w.a, w.b, w.s, w.cfg.Messages
	w.start = s.Now()
	a.node.Connect(w.start, "b")
	a.host.Drain()
	// A pair that both have IPv6 is done direct only on it: an IPv4 path that
	// confirmed first gives way to it (punch prefers IPv6).
	want := sim.IPv4
	if _, a6 := a.host.AddrOf(sim.IPv6); a6 {
		if _, b6 := b.host.AddrOf(sim.IPv6); b6 {
			want = sim.IPv6
		}
	}
	done := func() bool {
		delivered := a.received == n && b.received == n
		_, direct := w.bothOn(want)
		return delivered && (direct || a.gaveUp && b.gaveUp) || a.closed != "" || b.closed != ""
	}
	if err := s.RunUntil(w.start.Add(w.cfg.Timeout), done); err != nil {
		w.res.Err = err.Error()
		return
	}
	res := &w.res
	res.Strategy = a.strategy
	switch {
	case a.closed != "" || b.closed != "":
		res.Err = "closed: " + a.closed + b.closed
	case a.direct != 0 && b.direct != 0:
		res.Direct = true
		res.ToDirect = max(a.direct, b.direct).Sub(w.start)
		res.Family = sim.FamilyOf(a.directRemote.Addr())
		if on, ok := w.bothOn(res.Family); ok {
			res.ToDirect = on.Sub(w.start) // to the path the pair ended on
		}
	}
	res.Delivered = a.received == n && b.received == n && a.corrupt+b.corrupt == 0
	res.Relay = res.Delivered && !res.Direct
	if first := min(nonZero(a.firstMsg), nonZero(b.firstMsg)); first != proto.Never {
		res.FirstMessage = first.Sub(w.start)
	}
	if res.Err == "" && !res.Delivered && res.Direct {
		res.Err = fmt.Sprintf("messages: a got %d, b got %d of %d (%d corrupt)", a.received, b.received, n, a.corrupt+b.corrupt)
	}
}

// Run performs one run: both nodes register and measure their NATs, A connects to
// B, each side sends cfg.Messages reliable messages, and the run ends when both have
// a direct path and every message arrived, or the timeout passes.
func Run(cfg RunConfig) Result {
	w, err := newWorld(cfg)
	if err != nil {
		return Result{Seed: cfg.Seed, Err: err.Error()}
	}
	w.connect()
	return w.res
}

// bothOn reports whether both sides' latest direct path is of family f, and when
// the later of them first had a direct path of f.
func (w *world) bothOn(f sim.Family) (proto.Instant, bool) {
	a, b := w.a, w.b
	if a.direct == 0 || b.direct == 0 || sim.FamilyOf(a.directRemote.Addr()) != f || sim.FamilyOf(b.directRemote.Addr()) != f {
		return 0, false
	}
	return max(a.directOn[f], b.directOn[f]), true
}

func nonZero(t proto.Instant) proto.Instant {
	if t == 0 {
		return proto.Never
	}
	return t
}

func newSide(s *sim.Sim, name string, host *sim.Host, servers serverList, log func(string), relay node.RelayPolicy, conn rudp.Config) *side {
	sd := &side{name: name, host: host, log: log}
	cfg := nodeConfig(s, name, host, servers.servers)
	cfg.Relay, cfg.RUDP = relay, conn
	cfg.OtherLocal, cfg.OtherServers = servers.otherLocal, servers.other
	sd.node = node.New(cfg)
	host.Attach(sd.node)
	host.AfterStep = sd.afterStep
	sd.node.Start(s.Now())
	host.Drain()
	return sd
}

// nodeConfig is the configuration of a lab node called name on host, listing
// servers: a fresh key pair and a ticket for it, seeds and wall clock from the
// simulator (drawn in a fixed order, so a seed replays the same run).
func nodeConfig(s *sim.Sim, name string, host *sim.Host, servers []netip.AddrPort) node.Config {
	priv := s.NewSeed32()
	pub, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
	t := proto.Ticket{PeerID: []byte(name), ExpiryUnix: wallStart + 24*3600}
	copy(t.PublicKey[:], pub)
	return node.Config{
		ID: []byte(name), Ticket: rendezvous.MintTicket(testSecret, t), PrivateKey: priv,
		Local: host.Socket(), Servers: servers, Seed: s.NewSeed32(),
		Rand: s.Reader(), Wall: proto.WallClock{At: s.Now(), Time: time.Unix(wallStart, 0)},
		AESHardware: noAESHardware, // a run must not depend on the CPU it runs on
	}
}

func noAESHardware() bool { return false }

func placement(sameLAN bool) sim.Placement {
	if sameLAN {
		return sim.SameLAN
	}
	return sim.Apart
}
