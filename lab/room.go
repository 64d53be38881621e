package lab

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rendezvous"
	"github.com/natpass/natpass/rudp"
	"github.com/natpass/natpass/sim"
)

// RoomConfig is one seeded run of a room on the simulator (natpass lab --room N):
// Size members behind NAT presets drawn from the preset list, joining one room one
// after another; once a member's links to everyone are up it broadcasts Broadcasts
// reliable messages (each sent to every other member).
type RoomConfig struct {
	Size       int
	Seed       uint64
	Loss       float64
	Broadcasts int // per member (0: 20)
	// Presets, when set, are the members' presets (Size of them); otherwise each is
	// drawn from the preset list by the seed.
	Presets []string
	Timeout time.Duration // after the last member joined (0: 30 s)
	// Servers is how many rendezvous servers run (0: 1); more than one form a
	// cluster on a simulated bus, member i registers on server i mod Servers (the
	// others follow in its list), and the room lives on one of them (PROTOCOL §13.1).
	Servers int
	// KillHomeAt, when set, kills the server holding the room (its home) this long
	// after the first member joined: it drops off the network and the bus for good.
	KillHomeAt time.Duration
	Log        func(line string)
}

// RoomResult is what one room run measured.
type RoomResult struct {
	Seed                                    uint64
	Presets                                 []string
	Links, LinksDirect, LinksRelay          int
	ExpectedDirect                          float64 // sum over links of Expected(presets): what the pair table predicts
	BroadcastsExpected, BroadcastsDelivered int
	Corrupt                                 int           // messages out of order, repeated or altered
	Mesh                                    time.Duration // last join → every link carried data both ways
	HomeKilled                              bool          // KillHomeAt came before the run ended
	Err                                     string
}

const roomName = "lab-room"

// member is one room member on its sim host.
type member struct {
	name   string
	host   *sim.Host
	node   *node.Node
	joined proto.Instant
	log    func(string)
	others []string
	links  map[string]*roomLink
	toSend int // broadcasts, sent on each link as it comes up
	closed string
}

// roomLink is what a member saw of its link to one other member.
type roomLink struct {
	connected bool
	firstRecv proto.Instant
	received  int // that member's broadcasts, in order and intact
	corrupt   int
	direct    bool // the path is direct now
	gaveUp    bool // punching ended without a direct path
}

func (m *member) afterStep(now proto.Instant) {
	var credit node.Credit
	for {
		e, ok := m.node.PollEvent()
		if !ok {
			break
		}
		if m.log != nil {
			m.log(fmt.Sprintf("%12v %s %T %+v", time.Duration(now), m.name, e, e))
		}
		switch e := e.(type) {
		case node.EventOpenSockets:
			m.node.HandleSockets(now, e.Tag, m.host.OpenSockets(e.N))
		case node.EventConnected:
			m.linkUp(now, e.Peer)
		case node.EventPathChanged:
			l := m.link(e.Peer)
			l.direct = e.Kind == proto.PathDirect
			l.gaveUp = l.gaveUp || strings.HasPrefix(e.Reason, "no direct path")
		case node.EventMessage:
			credit = credit.Add(e.Credit)
			l := m.link(e.Peer)
			if l.firstRecv == 0 {
				l.firstRecv = now
			}
			if string(e.Data) == string(message(e.Peer, l.received)) {
				l.received++
			} else {
				l.corrupt++
			}
		case node.EventRoomError:
			m.closed = fmt.Sprintf("room error %d: %s", e.Code, e.Text)
		case node.EventClosed:
			m.closed = e.Reason
		case node.EventPeerClosed:
			m.closed = "peer closed: " + e.Reason.String()
		}
	}
	if !credit.IsZero() {
		m.node.Consumed(now, credit)
	}
}

func (m *member) link(peer string) *roomLink {
	l := m.links[peer]
	if l == nil {
		l = &roomLink{}
		m.links[peer] = l
	}
	return l
}

// linkUp sends the member's broadcasts on a link as soon as it is up (a broadcast
// goes to every member; a link not up yet gets it when it is), numbered, so the
// receivers check order and count.
func (m *member) linkUp(now proto.Instant, peer string) {
	l := m.link(peer)
	if l.connected {
		return
	}
	l.connected = true
	for i := range m.toSend {
		if err := m.node.Send(now, peer, 0, rudp.ReliableOrdered, message(m.name, i)); err != nil {
			m.closed = "send: " + err.Error()
		}
	}
}

// roomWorld is one room run's simulator, servers and members.
type roomWorld struct {
	cfg     RoomConfig
	s       *sim.Sim
	members []*member
	presets []string
	res     RoomResult
	// The servers: their hosts, machines and (in a cluster) bus memberships.
	srvHosts []*sim.Host
	srvs     []*rendezvous.Server
	onBus    []*sim.BusMember
	bus      *sim.Bus
	killed   int           // the server killed, -1 for none
	killAt   proto.Instant // when KillHomeAt kills the home (Never: no kill)
}

// RunRoom performs one room run.
func RunRoom(cfg RoomConfig) RoomResult {
	if cfg.Broadcasts == 0 {
		cfg.Broadcasts = 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	w, err := newRoomWorld(cfg)
	if err != nil {
		return RoomResult{Seed: cfg.Seed, Err: err.Error()}
	}
	w.run()
	return w.res
}

// newRoomWorld builds the server and the members behind presets drawn from the seed,
// and runs until every member has measured its NAT.
func newRoomWorld(cfg RoomConfig) (*roomWorld, error) {
	if cfg.Size < 2 || cfg.Size > proto.MaxRoomMembers {
		return nil, fmt.Errorf("room size %d: want 2–%d", cfg.Size, proto.MaxRoomMembers)
	}
	w := &roomWorld{cfg: cfg, s: sim.New(sim.Config{Seed: cfg.Seed}), res: RoomResult{Seed: cfg.Seed}, killed: -1, killAt: proto.Never}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x200))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond }
	n := max(cfg.Servers, 1)
	if n > 1 {
		// Servers of one cluster sit in one region: a millisecond or two apart.
		w.bus = w.s.NewBus(sim.BusConfig{Latency: time.Millisecond, Jitter: time.Millisecond})
	}
	var srvs []netip.AddrPort
	for k := range n {
		srv, err := w.startServer(k, ms(2, 8))
		if err != nil {
			return nil, err
		}
		srvs = append(srvs, srv)
	}
	names := sim.PresetNames()
	for i := range cfg.Size {
		p := names[rng.IntN(len(names))]
		if cfg.Presets != nil {
			p = cfg.Presets[i]
		}
		w.presets = append(w.presets, p)
		site := w.s.AddSite(fmt.Sprintf("m%d", i), sim.MustPreset(p),
			sim.LinkConfig{Latency: ms(8, 37), Loss: cfg.Loss, Routers: 2}, sim.LinkConfig{Latency: time.Millisecond})
		w.members = append(w.members, w.newMember(fmt.Sprintf("m%02d", i), site.Host, rotate(srvs, i%n)))
	}
	w.res.Presets = w.presets
	reported := func() bool {
		for _, m := range w.members {
			if m.node.NAT().Mapping == proto.DependenceUnknown {
				return false
			}
		}
		return true
	}
	if err := w.s.RunUntil(w.s.Now().Add(20*time.Second), reported); err != nil {
		return nil, err
	}
	if !reported() {
		return nil, fmt.Errorf("NAT measurement unfinished")
	}
	return w, nil
}

// startServer puts rendezvous server k on a host of the core, on the bus when
// there is one.
func (w *roomWorld) startServer(k int, lat time.Duration) (netip.AddrPort, error) {
	h := w.s.AddHost(fmt.Sprintf("server%d", k+1), w.s.Core(), sim.LinkConfig{Latency: lat})
	h.AddAddr()
	h.Open(h.Addrs()[0], sim.ServerPort)
	h.Open(h.Addrs()[0], sim.ServerAltPort)
	h.Open(h.Addrs()[1], sim.ServerPort)
	socks := h.Sockets()
	srv, err := rendezvous.NewServer(rendezvous.Config{
		Secret: testSecret, Seed: w.s.NewSeed32(), Primary: socks[0], AltPort: socks[1], AltAddr: socks[2],
		WallClock: proto.WallClock{At: w.s.Now(), Time: time.Unix(wallStart, 0)}, Cluster: w.bus != nil,
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	h.Attach(srv)
	w.srvHosts, w.srvs = append(w.srvHosts, h), append(w.srvs, srv)
	if w.bus != nil {
		w.onBus = append(w.onBus, w.bus.Join(h.Name(), h, sim.AdaptCluster(srv)))
	}
	h.AfterStep = func(proto.Instant) {
		for {
			if _, ok := srv.PollEvent(); !ok {
				return
			}
		}
	}
	return socks[0], nil
}

func (w *roomWorld) newMember(name string, host *sim.Host, servers []netip.AddrPort) *member {
	s := w.s
	cfg := nodeConfig(s, name, host, servers)
	m := &member{name: name, host: host, log: w.cfg.Log, links: map[string]*roomLink{}, toSend: w.cfg.Broadcasts}
	for i := range w.cfg.Size {
		if o := fmt.Sprintf("m%02d", i); o != name {
			m.others = append(m.others, o)
		}
	}
	m.node = node.New(cfg)
	host.Attach(m.node)
	host.AfterStep = m.afterStep
	m.node.Start(s.Now())
	host.Drain()
	return m
}

// roomJoinGap is the time between two members joining.
const roomJoinGap = 200 * time.Millisecond

// run has the members join one after another and runs until every broadcast arrived
// or the timeout passed; it fills w.res.
func (w *roomWorld) run() {
	s := w.s
	w.scheduleKill()
	for i, m := range w.members {
		if err := w.runUntil(s.Now().Add(roomJoinGap*time.Duration(min(i, 1))), nil); err != nil {
			w.res.Err = err.Error()
			return
		}
		m.joined = s.Now()
		if err := m.node.JoinRoom(s.Now(), roomName); err != nil {
			w.res.Err = m.name + ": join: " + err.Error()
			return
		}
		m.host.Drain()
	}
	last := s.Now()
	n, b := w.cfg.Size, w.cfg.Broadcasts
	w.res.BroadcastsExpected = n * (n - 1) * b
	done := func() bool { return w.delivered() == w.res.BroadcastsExpected && w.settled() }
	if err := w.runUntil(last.Add(w.cfg.Timeout), done); err != nil {
		w.res.Err = err.Error()
	}
	w.measure(last)
}

// scheduleKill arranges the KillHomeAt fault, if configured, from now: runUntil
// performs it when its time comes.
func (w *roomWorld) scheduleKill() {
	w.killAt = proto.Never
	if w.cfg.KillHomeAt != 0 && w.bus != nil {
		w.killAt = w.s.Now().Add(w.cfg.KillHomeAt)
	}
}

// runUntil runs the simulator until end or until done (nil: never) holds, killing
// the home on the way when KillHomeAt's time comes.
func (w *roomWorld) runUntil(end proto.Instant, done func() bool) error {
	if done == nil {
		done = func() bool { return false }
	}
	if w.killed < 0 && w.killAt <= end {
		if err := w.s.RunUntil(w.killAt, done); err != nil || done() {
			return err
		}
		w.killHome()
	}
	return w.s.RunUntil(end, done)
}

// killHome kills the server holding the room: cut off from every member for good
// and dead on the bus. With no home (nobody joined yet) it kills server 0.
func (w *roomWorld) killHome() {
	k := 0
	subject := "room." + hex.EncodeToString([]byte(roomName))
	for i, bm := range w.onBus {
		if bm.Subscribed(subject) {
			k = i
		}
	}
	forever := sim.Window{From: w.s.Now(), Until: proto.Never}
	for _, m := range w.members {
		w.s.Partition(w.srvHosts[k], m.host, forever)
	}
	w.bus.Kill(w.onBus[k])
	w.killed = k
}

// settled reports whether every link has found its path: direct on both sides, or
// punching given up on both (the relay carries it).
func (w *roomWorld) settled() bool {
	for _, a := range w.members {
		for _, o := range a.others {
			if l := a.link(o); !l.direct && !l.gaveUp {
				return false
			}
		}
	}
	return true
}

// delivered counts the broadcasts delivered in order, over every member.
func (w *roomWorld) delivered() int {
	d := 0
	for _, m := range w.members {
		for _, l := range m.links {
			d += l.received
		}
	}
	return d
}

// measure fills the result: links and their paths, broadcasts, the mesh time.
func (w *roomWorld) measure(last proto.Instant) {
	r := &w.res
	r.BroadcastsDelivered = w.delivered()
	r.HomeKilled = w.killed >= 0
	var meshAt proto.Instant
	for i, a := range w.members {
		for j, b := range w.members {
			l := a.link(b.name)
			if i == j {
				continue
			}
			r.Corrupt += l.corrupt
			if l.firstRecv == 0 {
				meshAt = proto.Never
			} else if meshAt != proto.Never {
				meshAt = max(meshAt, l.firstRecv)
			}
			if j < i {
				continue
			}
			r.Links++
			r.ExpectedDirect += Expected(w.presets[i], w.presets[j])
			ka, _ := a.node.Peer(b.name)
			kb, _ := b.node.Peer(a.name)
			switch {
			case ka == proto.PathDirect && kb == proto.PathDirect:
				r.LinksDirect++
			case a.link(b.name).connected && b.link(a.name).connected:
				r.LinksRelay++
			}
		}
		if a.closed != "" && r.Err == "" {
			r.Err = a.name + ": " + a.closed
		}
	}
	switch {
	case meshAt == proto.Never:
		r.Mesh = w.cfg.Timeout // a link never carried data: the worst the run allowed
	case meshAt > last:
		r.Mesh = meshAt.Sub(last)
	}
	if r.Err == "" && r.BroadcastsDelivered != r.BroadcastsExpected {
		r.Err = fmt.Sprintf("broadcasts: %d of %d delivered (%d corrupt)", r.BroadcastsDelivered, r.BroadcastsExpected, r.Corrupt)
	}
}

// RoomSummary sums a set of room runs (natpass lab --room N --json).
type RoomSummary struct {
	RoomSize            int      `json:"room_size"`
	Servers             int      `json:"servers"`
	Runs                int      `json:"runs"`
	Links               int      `json:"links"`
	LinksDirect         int      `json:"links_direct"`
	LinksRelay          int      `json:"links_relay"`
	LinksDirectExpected float64  `json:"links_direct_expected"`
	BroadcastsExpected  int      `json:"broadcasts_expected"`
	BroadcastsDelivered int      `json:"broadcasts_delivered"`
	MeshMsP95           float64  `json:"mesh_ms_p95"`
	HomesKilled         int      `json:"homes_killed,omitempty"` // runs whose home died mid-run (KillHomeAt)
	Failed              []uint64 `json:"failed_seeds,omitempty"`
}

// RunRooms performs runs room runs of size members on one server, seeds derived
// from seed.
func RunRooms(size, runs int, seed uint64, loss float64) RoomSummary {
	return RunRoomsOn(RoomConfig{Size: size, Loss: loss}, runs, seed)
}

// RunRoomsOn performs runs room runs of cfg (natpass lab --room N --servers S), each
// with its own seed derived from seed.
func RunRoomsOn(cfg RoomConfig, runs int, seed uint64) RoomSummary {
	size := cfg.Size
	sum := RoomSummary{RoomSize: size, Runs: runs, Servers: max(cfg.Servers, 1)}
	var mesh []time.Duration
	for i := range runs {
		s := seed*1_000_003 + uint64(i)
		cfg.Seed = s
		r := RunRoom(cfg)
		sum.Links += r.Links
		sum.LinksDirect += r.LinksDirect
		sum.LinksRelay += r.LinksRelay
		sum.LinksDirectExpected += r.ExpectedDirect
		sum.BroadcastsExpected += r.BroadcastsExpected
		sum.BroadcastsDelivered += r.BroadcastsDelivered
		if r.Err != "" {
			sum.Failed = append(sum.Failed, s)
		}
		if r.HomeKilled {
			sum.HomesKilled++
		}
		mesh = append(mesh, r.Mesh)
	}
	slices.Sort(mesh)
	sum.MeshMsP95 = float64(quantile(mesh, 0.95)) / float64(time.Millisecond)
	return sum
}
