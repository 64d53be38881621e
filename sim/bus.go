package sim

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/natpass/natpass/proto"
)

// The cluster bus (DESIGN §12): the simulator's stand-in for the NATS cluster that
// carries cluster messages between natpass servers. It mirrors NATS core as far as the
// servers can tell:
//
//   - A message goes to every member subscribed to its Subject, the publisher itself
//     included (NATS echo). Subjects match exactly, or by a trailing full wildcard
//     ("srv.1.>" covers "srv.1.r.7"); the "*" token is not supported.
//   - A message with a Reply subject that no member subscribes to comes back as a
//     NoResponders notice, ClusterMessage{Subject: Reply, NoResponders: true}, to the
//     subscribers of Reply (the requester). Without a Reply it is dropped
//     (BusDropNoSubscriber), as NATS does silently.
//   - Interest propagates: a member's own subscriptions count for its own messages at
//     once, and for everyone else's after Latency. A message routed to a member that
//     unsubscribed while it was in flight is dropped there (BusDropUnsubscribed).
//   - Messages from one member to another arrive in the order they were published
//     (NATS's per-publisher order), after Latency plus up to Jitter.
//
// Faults: Partition cuts two members apart until Heal (messages between them are
// dropped, and neither sees the other's interest, so a request whose only subscriber
// is across the cut gets NoResponders); Kill is a server that died (it sends and
// receives nothing from then on, and its subscriptions vanish after Latency). Loss
// drops a message between two members with the configured probability; echoes and
// NoResponders notices, which never leave the publisher's server, are not lost.
//
// Time and order come from the Sim: every delivery and interest change is an event in
// the Sim's queue, members are visited in the order they joined, and the bus draws
// jitter and loss from its own seeded stream, so the same seed gives the same run.

// ClusterMessage is one message on the bus. It has the fields of
// rendezvous.ClusterMessage, in the same order (sim cannot import rendezvous, whose
// tests import sim; AdaptCluster converts). Delivered messages share one copy of Data
// among their recipients: a machine only reads it during HandleCluster.
type ClusterMessage struct {
	Subject      string
	Reply        string
	Data         []byte
	NoResponders bool
}

// ClusterInterest subscribes to Subject (Subscribe true) or unsubscribes from it. It
// has the fields of rendezvous.Interest.
type ClusterInterest struct {
	Subject   string
	Subscribe bool
}

// ClusterMachine is what joins a bus: the cluster side of a rendezvous server. The bus
// calls HandleCluster with each message for it, and after every call into the
// machine (through its host: HandleDatagram, HandleTimeout, HandleCluster, or a Drain
// after a command) drains PollInterest, then PollCluster, until false. Data returned
// by PollCluster is valid until the next call into the machine; the bus copies it.
type ClusterMachine interface {
	HandleCluster(now proto.Instant, m ClusterMessage) error
	PollCluster() (ClusterMessage, bool)
	PollInterest() (ClusterInterest, bool)
}

// BusConfig configures a Bus.
type BusConfig struct {
	// Latency is the one-way delay of a message between servers, and the time a
	// change of interest takes to reach the other servers.
	Latency time.Duration
	// Jitter adds a uniform delay in [0, Jitter) to each message; it never reorders
	// the messages from one member to another. Interest changes take exactly Latency.
	Jitter time.Duration
	// Loss is the probability that a message between two members is lost.
	Loss float64
	// MaxInFlight bounds the deliveries and interest changes in flight at once
	// (0 = 65,536); past it they are dropped (BusDropInFlight).
	MaxInFlight int
	// MaxPayload bounds Data (0 = 1 MiB, NATS's default max_payload); a longer
	// message is dropped (BusDropTooLarge).
	MaxPayload int
}

const (
	defaultBusInFlight = 1 << 16
	defaultBusPayload  = 1 << 20
	// maxClusterPolls bounds one drain of PollCluster or PollInterest: a machine that
	// never returns false panics instead of hanging the run.
	maxClusterPolls = 1 << 20
)

// BusDropReason says why the bus dropped a message.
type BusDropReason uint8

const (
	BusDropLoss         BusDropReason = iota // random loss (BusConfig.Loss)
	BusDropPartition                         // publisher and subscriber were partitioned
	BusDropKilled                            // from or to a killed member
	BusDropNoSubscriber                      // nobody subscribed and no Reply to tell
	BusDropUnsubscribed                      // the recipient unsubscribed while it was in flight
	BusDropInFlight                          // BusConfig.MaxInFlight reached
	BusDropTooLarge                          // Data longer than BusConfig.MaxPayload
	busDropReasonCount
)

var busDropNames = [...]string{"loss", "partition", "killed", "no-subscriber", "unsubscribed",
	"in-flight-full", "too-large"}

func (r BusDropReason) String() string {
	if int(r) < len(busDropNames) {
		return busDropNames[r]
	}
	return "bus-drop(" + strconv.Itoa(int(r)) + ")"
}

// BusStats counts what happened on a bus over a run.
type BusStats struct {
	Published    uint64 // messages taken from members (PollCluster)
	Delivered    uint64 // messages handed to HandleCluster, notices included
	NoResponders uint64 // NoResponders notices made
	Interest     uint64 // interest changes taken from members (PollInterest)
	// MachineErrors counts HandleCluster calls that returned an error.
	MachineErrors uint64
	Dropped       [busDropReasonCount]uint64 // by BusDropReason
}

// TotalDropped sums Dropped over every reason.
func (st BusStats) TotalDropped() uint64 {
	var n uint64
	for _, d := range st.Dropped {
		n += d
	}
	return n
}

// Bus is a deterministic in-memory cluster bus between ClusterMachines on a Sim's
// hosts. Build one with Sim.NewBus and add servers with Join.
//
//   - Getters: Members, Stats.
//   - Faults, at any time between steps or from AfterStep: Partition, Heal, Kill.
//
// Like the Sim, a Bus is not safe for concurrent use.
type Bus struct {
	sim        *Sim
	cfg        BusConfig
	rng        *rand.Rand
	members    []*BusMember
	partitions [][2]*BusMember
	inFlight   int
	stats      BusStats
	tap        func(to *BusMember, m ClusterMessage)
}

// Tap calls f with every message the bus delivers, just before the receiving
// machine gets it (m.Data is only valid during the call), to trace or inspect what
// crosses the bus. nil removes the tap.
func (b *Bus) Tap(f func(to *BusMember, m ClusterMessage)) { b.tap = f }

// BusMember is one server on a bus.
type BusMember struct {
	bus     *Bus
	name    string
	index   int
	host    *Host
	machine ClusterMachine
	dead    bool
	// local is the member's own subscriptions, current at once; visible is what the
	// other members see, Latency behind.
	local, visible map[string]bool
	// floor is, per recipient index, the latest arrival of a message from this member:
	// jitter never reorders one publisher's messages to one subscriber.
	floor []proto.Instant
}

// NewBus returns an empty bus on s. It takes its own random stream from the Sim's seed.
func (s *Sim) NewBus(cfg BusConfig) *Bus {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = defaultBusInFlight
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = defaultBusPayload
	}
	return &Bus{sim: s, cfg: cfg, rng: s.newRand()}
}

// Join adds m, running on h, to the bus and drains it (a server reports its own
// subject as its first interest). From now on the bus drains m after every call the
// sim makes into h's machine, after every Host.Drain of h, and after every
// HandleCluster; h need not have a Machine of its own. A host carries one live member:
// joining again panics, unless the old member was killed (a restarted server).
func (b *Bus) Join(name string, h *Host, m ClusterMachine) *BusMember {
	if h.member != nil && !h.member.dead {
		panic("sim: " + h.name + " already joined a bus as " + h.member.name)
	}
	bm := &BusMember{bus: b, name: name, index: len(b.members), host: h, machine: m,
		local: map[string]bool{}, visible: map[string]bool{}}
	b.members = append(b.members, bm)
	h.member = bm
	bm.drain()
	return bm
}

// Members returns the members in the order they joined.
func (b *Bus) Members() []*BusMember { return b.members }

// Stats returns the bus's counters.
func (b *Bus) Stats() BusStats { return b.stats }

// Name returns the name the member joined with.
func (m *BusMember) Name() string { return m.name }

// Host returns the member's host.
func (m *BusMember) Host() *Host { return m.host }

// Killed reports whether Kill was called on the member.
func (m *BusMember) Killed() bool { return m.dead }

// Subscribed reports whether the member subscribes to subject now (its own view; the
// others see a change Latency later).
func (m *BusMember) Subscribed(subject string) bool { return m.local[subject] }

// Partition cuts x and y apart until Heal: messages between them are dropped, and
// neither sees the other's interest. Messages already in flight are dropped on arrival.
func (b *Bus) Partition(x, y *BusMember) {
	if x == y || b.partitioned(x, y) {
		return
	}
	b.partitions = append(b.partitions, [2]*BusMember{x, y})
}

// Heal undoes Partition(x, y) at once: messages published from now on cross, and each
// sees the other's current interest.
func (b *Bus) Heal(x, y *BusMember) {
	for i, p := range b.partitions {
		if p[0] == x && p[1] == y || p[0] == y && p[1] == x {
			b.partitions = append(b.partitions[:i], b.partitions[i+1:]...)
			return
		}
	}
}

func (b *Bus) partitioned(x, y *BusMember) bool {
	for _, p := range b.partitions {
		if p[0] == x && p[1] == y || p[0] == y && p[1] == x {
			return true
		}
	}
	return false
}

// Kill is the member's server dying: from now on it sends and receives nothing (what
// its machine still publishes is dropped), and its subscriptions vanish from the
// others' view after Latency, until which messages routed to it are dropped on
// arrival. The host and its machine are the caller's to stop.
func (b *Bus) Kill(m *BusMember) {
	if m.dead {
		return
	}
	m.dead = true
	clear(m.local)
	b.schedule(proto.Instant(b.cfg.Latency), &busEvent{kind: busKill, to: m})
}

// busEvent is one thing the bus has in the Sim's event queue.
type busEvent struct {
	bus      *Bus
	kind     busEventKind
	from, to *BusMember
	msg      ClusterMessage // busDeliver; Subject and Subscribe below for busInterest
	sub      bool
}

type busEventKind uint8

const (
	busDeliver  busEventKind = iota // msg reaches to
	busInterest                     // to's change of interest reaches the others
	busKill                         // to's death reaches the others: its interest vanishes
)

// schedule puts ev in the Sim's queue after d. Deliveries and interest changes count
// against MaxInFlight (their callers check it); a Kill does not, so it always lands.
func (b *Bus) schedule(d proto.Instant, ev *busEvent) {
	s := b.sim
	if ev.kind != busKill {
		b.inFlight++
	}
	ev.bus = b
	s.queue.push(event{at: s.now + d, bus: ev})
}

// full reports, and counts, a drop for the MaxInFlight bound.
func (b *Bus) full() bool {
	if b.inFlight < b.cfg.MaxInFlight {
		return false
	}
	b.stats.Dropped[BusDropInFlight]++
	return true
}

// drain takes the member's interest changes, then its messages. It runs after every
// call into the machine (Host.afterCall, Host.Drain) and never calls into a machine,
// so delivery is always a later event.
func (m *BusMember) drain() {
	b := m.bus
	for n := 0; ; n++ {
		if n == maxClusterPolls {
			panic("sim: " + m.name + ": PollInterest never returns false")
		}
		in, ok := m.machine.PollInterest()
		if !ok {
			break
		}
		b.stats.Interest++
		if m.dead {
			continue
		}
		m.local[in.Subject] = in.Subscribe
		if !in.Subscribe {
			delete(m.local, in.Subject)
		}
		if !b.full() {
			b.schedule(proto.Instant(b.cfg.Latency),
				&busEvent{kind: busInterest, to: m, msg: ClusterMessage{Subject: in.Subject}, sub: in.Subscribe})
		}
	}
	for n := 0; ; n++ {
		if n == maxClusterPolls {
			panic("sim: " + m.name + ": PollCluster never returns false")
		}
		msg, ok := m.machine.PollCluster()
		if !ok {
			return
		}
		b.stats.Published++
		b.publish(m, msg)
	}
}

// publish routes msg from p to every member p sees subscribed to its Subject, and
// answers a request nobody takes with a NoResponders notice.
func (b *Bus) publish(p *BusMember, msg ClusterMessage) {
	switch {
	case p.dead:
		b.stats.Dropped[BusDropKilled]++
		return
	case len(msg.Data) > b.cfg.MaxPayload:
		b.stats.Dropped[BusDropTooLarge]++
		return
	}
	// One copy for every recipient: Data is the machine's until its next call.
	msg.Data = append([]byte(nil), msg.Data...)
	msg.NoResponders = false
	if b.route(p, msg, true) {
		return
	}
	if msg.Reply == "" {
		b.stats.Dropped[BusDropNoSubscriber]++
		return
	}
	b.stats.NoResponders++
	// The notice comes from the requester's own server: no loss, but the same hop.
	if !b.route(p, ClusterMessage{Subject: msg.Reply, NoResponders: true}, false) {
		b.stats.Dropped[BusDropNoSubscriber]++
	}
}

// subjectIn reports whether set holds subject or a full wildcard covering it: "a.>"
// matches "a.b" and "a.b.c" (NATS's '>' token; the '*' token is not supported).
func subjectIn(set map[string]bool, subject string) bool {
	if set[subject] {
		return true
	}
	for i := 0; i < len(subject); i++ {
		if subject[i] == '.' && set[subject[:i+1]+">"] {
			return true
		}
	}
	return false
}

// route sends msg from p to each member p sees subscribed to msg.Subject, in join
// order, and reports whether there was one (a partitioned one does not count: NATS
// would not see its interest).
func (b *Bus) route(p *BusMember, msg ClusterMessage, lossy bool) bool {
	found := false
	for _, to := range b.members {
		if to == p && !subjectIn(p.local, msg.Subject) || to != p && !subjectIn(to.visible, msg.Subject) {
			continue
		}
		if to != p && b.partitioned(p, to) {
			b.stats.Dropped[BusDropPartition]++
			continue
		}
		found = true
		b.send(p, to, msg, lossy && to != p)
	}
	return found
}

// send puts one delivery of msg from p to to in flight.
func (b *Bus) send(p, to *BusMember, msg ClusterMessage, lossy bool) {
	if b.full() {
		return
	}
	if lossy && b.cfg.Loss > 0 && b.rng.Float64() < b.cfg.Loss {
		b.stats.Dropped[BusDropLoss]++
		return
	}
	at := b.sim.now + proto.Instant(b.cfg.Latency)
	if b.cfg.Jitter > 0 {
		at += proto.Instant(b.rng.Int64N(int64(b.cfg.Jitter)))
	}
	for len(p.floor) <= to.index {
		p.floor = append(p.floor, 0)
	}
	at = max(at, p.floor[to.index])
	p.floor[to.index] = at
	b.schedule(at-b.sim.now, &busEvent{kind: busDeliver, from: p, to: to, msg: msg})
}

// arrive handles one bus event popped from the Sim's queue.
func (b *Bus) arrive(ev *busEvent) {
	to := ev.to
	switch ev.kind {
	case busKill:
		clear(to.visible)
		return
	case busInterest:
		// A change made before a Kill lands before the Kill's own event (same delay,
		// queued earlier), so the Kill still has the last word.
		b.inFlight--
		if ev.sub {
			to.visible[ev.msg.Subject] = true
		} else {
			delete(to.visible, ev.msg.Subject)
		}
		return
	}
	b.inFlight--
	switch {
	case to.dead: // what the member sent before it died still arrives
		b.stats.Dropped[BusDropKilled]++
		return
	case ev.from != to && b.partitioned(ev.from, to):
		b.stats.Dropped[BusDropPartition]++
		return
	case !subjectIn(to.local, ev.msg.Subject):
		b.stats.Dropped[BusDropUnsubscribed]++
		return
	}
	b.stats.Delivered++
	if b.tap != nil {
		b.tap(to, ev.msg)
	}
	if err := to.machine.HandleCluster(b.sim.now, ev.msg); err != nil {
		b.stats.MachineErrors++
	}
	to.host.Drain()
}

// clusterMessageShape and clusterInterestShape are the types with the fields of
// ClusterMessage and ClusterInterest: rendezvous's, which sim cannot name.
type clusterMessageShape interface {
	~struct {
		Subject      string
		Reply        string
		Data         []byte
		NoResponders bool
	}
}

type clusterInterestShape interface {
	~struct {
		Subject   string
		Subscribe bool
	}
}

// clusterMachineOf is a ClusterMachine with its own message and interest types:
// rendezvous.Server.
type clusterMachineOf[M clusterMessageShape, I clusterInterestShape] interface {
	HandleCluster(now proto.Instant, m M) error
	PollCluster() (M, bool)
	PollInterest() (I, bool)
}

// AdaptCluster makes a ClusterMachine of a machine whose cluster methods take and
// return its own types with the fields of ClusterMessage and ClusterInterest, in the
// same order: bus.Join("s1", h, sim.AdaptCluster(server)) for a *rendezvous.Server
// (the type arguments are inferred). A field added to either side breaks the build
// here, not the run.
func AdaptCluster[M clusterMessageShape, I clusterInterestShape](m clusterMachineOf[M, I]) ClusterMachine {
	return clusterAdapter[M, I]{m}
}

type clusterAdapter[M clusterMessageShape, I clusterInterestShape] struct {
	m clusterMachineOf[M, I]
}

func (a clusterAdapter[M, I]) HandleCluster(now proto.Instant, m ClusterMessage) error {
	return a.m.HandleCluster(now, M(m))
}

func (a clusterAdapter[M, I]) PollCluster() (ClusterMessage, bool) {
	m, ok := a.m.PollCluster()
	return ClusterMessage(m), ok
}

func (a clusterAdapter[M, I]) PollInterest() (ClusterInterest, bool) {
	in, ok := a.m.PollInterest()
	return ClusterInterest(in), ok
}
