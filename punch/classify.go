package punch

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/natpass/natpass/proto"
)

// ClassifierConfig names the sockets a NAT measurement uses.
type ClassifierConfig struct {
	Session proto.Session
	// Local is the node's main socket; Hosts are its interface addresses (an
	// observed address equal to one of them means no translation).
	Local netip.AddrPort
	Hosts []netip.AddrPort
	// Server is the server's primary socket; AltPort shares its IP, AltAddr has
	// another IP. Either alternate may be zero, which narrows what can be told apart.
	Server, AltPort, AltAddr netip.AddrPort
	// ExtraSockets is how many extra local sockets to ask for, for port-allocation
	// samples (DESIGN §6.2 wants at least 5 samples). 0 means 4.
	ExtraSockets int
	Seed         [32]byte
}

// Classifier measures the NAT in front of a node with nat-probe exchanges against the
// server's sockets, in the manner of RFC 5780 §4:
//
//  1. From the main socket, probe the primary three times at once: plain, answered
//     from the other port, answered from the other IP and port. The plain answer
//     gives the observed address; which changed answers get through tells the
//     filtering (RFC 4787 §5). These go first and only to the primary, so no other
//     destination has opened the filter yet.
//  2. Then, from a fresh extra socket, probe the primary, the alternate port and the
//     alternate address: whether the observed address changes tells the mapping
//     (RFC 4787 §4.1). The main socket cannot do this: the unsolicited answers of
//     step 1 leave Linux conntrack [UNREPLIED] entries (DESIGN §9) that would move a
//     new flow from it to those sockets onto another port, which looks symmetric.
//     More extra sockets each probe the primary; all these mappings are the samples
//     for the port allocation (RFC 4787 §4.2). A probe from the main socket to the
//     node's own observed address tests hairpinning (RFC 4787 §6).
//
// Call contract: Start once, then HandleDatagram for nat-probe-reply packets (and for
// the node's own nat-probe coming back through a hairpin), HandleSockets when the
// driver opened the sockets an EventNeedSockets asked for, HandleTimeout at Deadline.
// Drain rule: after any call, PollTransmit until false, then PollEvent until false,
// then read Deadline. The instants given to the methods that take now never
// decrease: an earlier one than any already given is caller misuse and panics. A
// lost probe is retransmitted; an answer that never comes is a negative answer after
// the last retransmit.
//
// Bounds: the probe table holds at most ExtraSockets+6 probes (three filtering
// probes, three mapping probes, the other extra sockets, the hairpin); what is due to
// be sent is a flag on each, so nothing queues beyond it. A measurement emits two
// events in its life, EventNeedSockets and EventClassified, so the event queue's bound
// of two is never reached.
type Classifier struct {
	clock clock // the latest instant given: time going backwards panics
	cfg   ClassifierConfig
	rng   *rand.Rand
	phase classifyPhase
	start proto.Instant
	rtt   time.Duration

	probes  []classifyProbe // at most ExtraSockets+6: HandleSockets takes no more sockets than asked
	due     int             // probes with due set: PollTransmit, called after every datagram, scans only when some are
	extras  []netip.AddrPort
	events  fifo[ClassifierEvent] // bound classifierEventsMax
	result  proto.NATBehavior
	next    netip.AddrPort
	drops   int
	pending bool // an EventNeedSockets is outstanding
}

type classifyPhase uint8

const (
	phaseIdle classifyPhase = iota
	phaseFiltering
	phaseMapping
	phaseDone
)

// probeRole says what a probe's answer measures.
type probeRole uint8

const (
	roleBase       probeRole = iota // main socket to the primary, plain: the observed address
	roleChangePort                  // main socket to the primary, answer from the other port
	roleChangeBoth                  // main socket to the primary, answer from the other IP and port
	roleMapPrimary                  // first extra socket to the primary
	roleAltPort                     // first extra socket to the alternate port
	roleAltAddr                     // first extra socket to the alternate address
	roleExtra                       // another extra socket to the primary
	roleHairpin                     // main socket to our own observed address
)

type classifyProbe struct {
	role     probeRole
	from, to netip.AddrPort
	change   uint8
	txid     uint64
	sentAt   proto.Instant
	tries    int
	due      bool // to be (re)sent at the next PollTransmit
	answered bool
	expired  bool // out of tries and past the last timeout: a negative answer
	observed netip.AddrPort
}

// Classifier timing. The first answer gives an RTT; until then the initial RTO is
// used. maxTries bounds each probe: 1 % loss makes four misses in a row 1e-8.
const (
	classifyRTOInitial  = 400 * time.Millisecond
	classifyRTOMin      = 100 * time.Millisecond
	classifyMaxTries    = 4
	defaultExtraSockets = 4
	// classifierEventsMax: EventNeedSockets once, EventClassified once.
	classifierEventsMax = 2
)

// ClassifierEvent is EventNeedSockets or EventClassified.
type ClassifierEvent interface{ classifierEvent() }

// EventNeedSockets asks the owner to open N more local sockets and report their
// addresses with HandleSockets.
type EventNeedSockets struct{ N int }

// EventClassified reports the measured NAT behaviour and the observed address. Next
// is the external address a sequential NAT will give the next new mapping (zero for
// other allocations): peers aim their predicted probes there.
type EventClassified struct {
	Behavior proto.NATBehavior
	Observed netip.AddrPort
	Next     netip.AddrPort
}

func (EventNeedSockets) classifierEvent() {}
func (EventClassified) classifierEvent()  {}

// Errors from HandleDatagram; the owner counts them.
var (
	ErrUnexpected = errors.New("punch: no probe is waiting for this answer")
	ErrNotProbe   = errors.New("punch: not a nat-probe answer")
)

// NewClassifier returns a classifier that has not started.
func NewClassifier(cfg ClassifierConfig) *Classifier {
	if cfg.ExtraSockets == 0 {
		cfg.ExtraSockets = defaultExtraSockets
	}
	return &Classifier{clock: newClock(), cfg: cfg, rng: rand.New(rand.NewChaCha8(cfg.Seed)),
		events: newFIFO[ClassifierEvent](classifierEventsMax)}
}

// Start sends the first round of probes.
func (c *Classifier) Start(now proto.Instant) {
	c.clock.advance(now)
	if c.phase != phaseIdle {
		panic("punch: Classifier started twice")
	}
	c.phase = phaseFiltering
	c.start = now
	c.add(now, roleBase, c.cfg.Local, c.cfg.Server, 0)
	if c.cfg.AltPort.IsValid() {
		c.add(now, roleChangePort, c.cfg.Local, c.cfg.Server, proto.ChangePort)
	}
	if c.cfg.AltAddr.IsValid() {
		c.add(now, roleChangeBoth, c.cfg.Local, c.cfg.Server, proto.ChangePort|proto.ChangeAddress)
	}
}

func (c *Classifier) add(now proto.Instant, role probeRole, from, to netip.AddrPort, change uint8) {
	c.probes = append(c.probes, classifyProbe{role: role, from: from, to: to, change: change,
		txid: c.rng.Uint64(), due: true})
	c.due++
}

// Done reports whether the measurement finished.
func (c *Classifier) Done() bool { return c.phase == phaseDone }

// Result is the measured behaviour, valid once Done.
func (c *Classifier) Result() proto.NATBehavior { return c.result }

// Drops counts answers that matched no waiting probe.
func (c *Classifier) Drops() int { return c.drops }

// HandleSockets receives the addresses of the extra sockets an EventNeedSockets asked
// for; each probes the primary.
func (c *Classifier) HandleSockets(now proto.Instant, addrs []netip.AddrPort) {
	c.clock.advance(now)
	if c.phase != phaseMapping || !c.pending {
		return
	}
	c.pending = false
	// The sockets asked for and no more: they bound the probe table.
	addrs = addrs[:min(len(addrs), c.cfg.ExtraSockets)]
	c.extras = append(c.extras, addrs...)
	// Without extra sockets the main socket measures the mapping, which is right
	// everywhere but behind a NAT with Linux's port clash.
	mapFrom := c.cfg.Local
	if len(addrs) > 0 {
		mapFrom = addrs[0]
		c.add(now, roleMapPrimary, mapFrom, c.cfg.Server, 0)
	}
	if c.cfg.AltPort.IsValid() {
		c.add(now, roleAltPort, mapFrom, c.cfg.AltPort, 0)
	}
	if c.cfg.AltAddr.IsValid() {
		c.add(now, roleAltAddr, mapFrom, c.cfg.AltAddr, 0)
	}
	for _, a := range addrs[min(1, len(addrs)):] {
		c.add(now, roleExtra, a, c.cfg.Server, 0)
	}
	// No socket and no alternate leaves nothing to ask: the measurement ends here.
	c.advance(now)
}

// HandleDatagram takes a nat-probe-reply from a server socket, or the node's own
// hairpin probe. local is the socket it arrived on.
func (c *Classifier) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	c.clock.advance(now)
	h, _, err := proto.ParseHeader(p)
	if err != nil {
		return err
	}
	switch h.Type {
	case proto.TypeNATProbeReply:
		var m proto.NATProbeReply
		if err := m.Parse(p); err != nil {
			return err
		}
		i := c.find(m.TxID)
		if i < 0 || c.probes[i].role == roleHairpin || c.probes[i].from != local {
			c.drops++
			return ErrUnexpected
		}
		c.answer(now, i, m.Observed)
	case proto.TypeNATProbe:
		var m proto.NATProbe
		if err := m.Parse(p); err != nil {
			return err
		}
		i := c.find(m.TxID)
		if i < 0 || c.probes[i].role != roleHairpin || m.Session != c.cfg.Session {
			c.drops++
			return ErrUnexpected
		}
		c.answer(now, i, from)
	default:
		return ErrNotProbe
	}
	c.advance(now)
	return nil
}

func (c *Classifier) find(txid uint64) int {
	for i := range c.probes {
		if c.probes[i].txid == txid && !c.probes[i].answered {
			return i
		}
	}
	return -1
}

func (c *Classifier) answer(now proto.Instant, i int, observed netip.AddrPort) {
	pr := &c.probes[i]
	pr.answered = true
	pr.observed = observed
	if pr.tries == 1 {
		// Only unambiguous samples (no retransmit) feed the RTT (Karn's rule).
		s := now.Sub(pr.sentAt)
		if c.rtt == 0 || s < c.rtt {
			c.rtt = s
		}
	}
}

func (c *Classifier) rto() time.Duration {
	if c.rtt == 0 {
		return classifyRTOInitial
	}
	return max(2*c.rtt, classifyRTOMin)
}

// settled reports whether every probe of a role set is answered or out of tries.
func (c *Classifier) settled(now proto.Instant, roles ...probeRole) bool {
	for i := range c.probes {
		pr := &c.probes[i]
		if !slices.Contains(roles, pr.role) || pr.answered || pr.expired {
			continue
		}
		if pr.tries < classifyMaxTries || now < pr.sentAt.Add(c.rto()) {
			return false
		}
		pr.expired = true
	}
	return true
}

func (c *Classifier) probe(role probeRole) *classifyProbe {
	for i := range c.probes {
		if c.probes[i].role == role {
			return &c.probes[i]
		}
	}
	return nil
}

// advance moves to the next phase when the current one has settled.
func (c *Classifier) advance(now proto.Instant) {
	if c.phase == phaseFiltering && c.settled(now, roleBase, roleChangePort, roleChangeBoth) {
		base := c.probe(roleBase)
		if !base.answered {
			// The server never answered: report what cannot be measured as unknown
			// rather than guess.
			c.finish(proto.NATBehavior{}, netip.AddrPort{})
			return
		}
		c.phase = phaseMapping
		if !c.noTranslation(base.observed) {
			c.add(now, roleHairpin, c.cfg.Local, base.observed, 0)
		}
		c.pending = true
		c.events.push(EventNeedSockets{N: c.cfg.ExtraSockets})
	}
	if c.phase == phaseMapping && !c.pending &&
		c.settled(now, roleMapPrimary, roleAltPort, roleAltAddr, roleExtra, roleHairpin) {
		c.finish(c.classify(), c.probe(roleBase).observed)
	}
}

func (c *Classifier) finish(b proto.NATBehavior, observed netip.AddrPort) {
	c.phase = phaseDone
	c.result = b
	for i := range c.probes {
		c.probes[i].due = false // the answers no longer matter
	}
	c.due = 0
	c.events.push(EventClassified{Behavior: b, Observed: observed, Next: c.next})
}

func (c *Classifier) noTranslation(observed netip.AddrPort) bool {
	return observed == c.cfg.Local || slices.Contains(c.cfg.Hosts, observed)
}

// classify turns the answers into a NATBehavior.
func (c *Classifier) classify() proto.NATBehavior {
	base := c.probe(roleBase)
	var b proto.NATBehavior
	b.NoTranslation = c.noTranslation(base.observed)

	// Filtering (RFC 4787 §5): which answers from sockets we never sent to got in.
	changePort, changeBoth := c.probe(roleChangePort), c.probe(roleChangeBoth)
	switch {
	case changeBoth != nil && changeBoth.answered:
		b.Filtering = proto.EndpointIndependent
	case changePort != nil && changePort.answered:
		b.Filtering = proto.AddressDependent
	case changePort != nil || changeBoth != nil:
		b.Filtering = proto.AddressAndPortDependent
	}

	// Mapping (RFC 4787 §4.1): does the observed address of one socket change with
	// the destination?
	ref := base
	if m := c.probe(roleMapPrimary); m != nil {
		ref = m
	}
	altPort, altAddr := c.probe(roleAltPort), c.probe(roleAltAddr)
	switch {
	case b.NoTranslation:
		b.Mapping = proto.EndpointIndependent
	case !ref.answered:
		// The reference answer was lost four times: nothing to compare against.
	case altPort != nil && altPort.answered && altPort.observed != ref.observed:
		b.Mapping = proto.AddressAndPortDependent
	case altAddr != nil && altAddr.answered && altAddr.observed != ref.observed:
		b.Mapping = proto.AddressDependent
	case altPort != nil && altPort.answered || altAddr != nil && altAddr.answered:
		b.Mapping = proto.EndpointIndependent
	}

	if h := c.probe(roleHairpin); h != nil {
		b.Hairpin = proto.HairpinNo
		if h.answered {
			b.Hairpin = proto.HairpinYes
		}
	}
	if b.NoTranslation {
		b.Allocation = proto.AllocationPreserving
		return b
	}
	b.Allocation, b.PortDelta = c.allocation(base)
	return b
}

// Next returns the predicted external address of the next new mapping, valid once
// Done and only for sequential allocation.
func (c *Classifier) Next() netip.AddrPort { return c.next }

// allocation reads the port-allocation pattern (RFC 4787 §4.2) from every distinct
// mapping the probes created, in the order they were sent.
func (c *Classifier) allocation(base *classifyProbe) (proto.Allocation, int16) {
	type sample struct{ local, external uint16 }
	var samples []sample
	seen := map[netip.AddrPort]bool{}
	preserving, firsts := true, 0
	firstOf := map[netip.AddrPort]bool{}
	for i := range c.probes {
		pr := &c.probes[i]
		if !pr.answered || pr.role == roleHairpin || pr.role == roleChangePort || pr.role == roleChangeBoth {
			continue
		}
		if !firstOf[pr.from] {
			firstOf[pr.from] = true
			firsts++
			if pr.observed.Port() != pr.from.Port() {
				preserving = false
			}
		}
		if seen[pr.observed] {
			continue
		}
		seen[pr.observed] = true
		samples = append(samples, sample{pr.from.Port(), pr.observed.Port()})
	}
	if firsts >= 2 && preserving {
		return proto.AllocationPreserving, 0
	}
	if len(samples) < 3 {
		return proto.AllocationUnknown, 0
	}
	ports := make([]int, len(samples))
	for i, s := range samples {
		ports[i] = int(s.external)
	}
	unwrapPorts(ports)
	sorted := slices.Clone(ports)
	slices.Sort(sorted)
	// The most common gap between neighbouring ports is the delta candidate; other
	// traffic through the NAT may take a port in between now and then, so allow one
	// gap to differ.
	gaps := map[int]int{}
	best, bestN := 0, 0
	for i := 1; i < len(sorted); i++ {
		g := sorted[i] - sorted[i-1]
		gaps[g]++
		if gaps[g] > bestN || gaps[g] == bestN && g < best {
			best, bestN = g, gaps[g]
		}
	}
	const maxDelta = 64
	if best == 0 || best > maxDelta || bestN < len(sorted)-2 {
		return proto.AllocationRandom, 0
	}
	delta := best
	last := sorted[len(sorted)-1]
	if ports[len(ports)-1] < ports[0] {
		delta = -delta
		last = sorted[0]
	}
	// The mappings were made in order, so the newest is the extreme port and the
	// next one follows it by the delta, wrapping at the range's end as the NAT does.
	if last > proto.NATPortMax {
		last -= natPortRange
	}
	if next, ok := proto.StepPort(uint16(last), delta); ok {
		c.next = netip.AddrPortFrom(base.observed.Addr(), next)
	}
	return proto.AllocationSequential, int16(delta)
}

// natPortRange is the size of the range a sequential NAT wraps in (proto.StepPort).
const natPortRange = proto.NATPortMax - proto.NATPortMin + 1

// unwrapPorts undoes a sequential NAT's wrap from 65535 to 1024 in a run of its
// ports, so that their gaps are its delta: when the ports are spread over more than
// half the range, those in its lower half are taken to follow 65535.
func unwrapPorts(ports []int) {
	if len(ports) == 0 || slices.Min(ports) < proto.NATPortMin ||
		slices.Max(ports)-slices.Min(ports) <= natPortRange/2 {
		return
	}
	for i, p := range ports {
		if p < proto.NATPortMin+natPortRange/2 {
			ports[i] = p + natPortRange
		}
	}
}

// HandleTimeout retransmits probes whose answer is late and ends phases whose
// answers will not come.
func (c *Classifier) HandleTimeout(now proto.Instant) {
	c.clock.advance(now)
	if c.phase == phaseIdle || c.phase == phaseDone {
		return
	}
	for i := range c.probes {
		pr := &c.probes[i]
		if pr.answered || pr.expired || pr.tries == 0 || now < pr.sentAt.Add(c.rto()) {
			continue
		}
		if pr.tries >= classifyMaxTries {
			pr.expired = true
			continue
		}
		if !pr.due {
			pr.due = true
			c.due++
		}
	}
	c.advance(now)
}

// PollTransmit returns the next probe to send.
func (c *Classifier) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	c.clock.advance(now)
	// In table order, which is the order the probes were added: the filtering probes
	// go first and alone (see the type doc). The table is a handful of probes.
	if c.due == 0 {
		return proto.Transmit{}, false
	}
	i := slices.IndexFunc(c.probes, func(pr classifyProbe) bool { return pr.due })
	pr := &c.probes[i]
	pr.due = false
	c.due--
	pr.tries++
	pr.sentAt = now
	m := proto.NATProbe{Session: c.cfg.Session, TxID: pr.txid, Change: pr.change}
	return proto.Transmit{From: pr.from, To: pr.to, Payload: m.Append(buf[:0])}, true
}

// PollEvent returns the next event.
func (c *Classifier) PollEvent() (ClassifierEvent, bool) {
	return c.events.pop()
}

// Deadline is when HandleTimeout must next be called.
func (c *Classifier) Deadline() proto.Instant {
	if c.phase == phaseIdle || c.phase == phaseDone {
		return proto.Never
	}
	d := proto.Never
	for i := range c.probes {
		pr := &c.probes[i]
		if pr.answered || pr.expired || pr.tries == 0 {
			continue
		}
		d = proto.Min(d, pr.sentAt.Add(c.rto()))
	}
	return d
}
