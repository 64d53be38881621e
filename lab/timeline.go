package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
)

// MarkKind says what a timeline mark records.
type MarkKind uint8

const (
	MarkRegistered    MarkKind = iota + 1 // the server admitted the node (again after a move)
	MarkNATReport                         // the node measured the NAT in front of it
	MarkConnect                           // A called Connect (side "a" only)
	MarkIntroduced                        // the server introduced the peer; Detail names the strategy
	MarkPath                              // the peer's path changed; Path says to what ("relay ready", "direct confirmed", ...)
	MarkConnected                         // the encrypted session is up
	MarkFirstMessage                      // the first message from the peer arrived
	MarkServerChanged                     // the node moved to another server
	MarkPeerError                         // the server refused a request about the peer
	MarkClosed                            // the node or the connection closed
)

var markNames = [...]string{"", "registered", "nat-report", "connect", "introduced", "path",
	"connected", "first-message", "server-changed", "peer-error", "closed"}

func (k MarkKind) String() string {
	if int(k) < len(markNames) && k != 0 {
		return markNames[k]
	}
	return fmt.Sprintf("mark(%d)", uint8(k))
}

// Mark is one thing that happened to one side of a run, at a virtual time.
type Mark struct {
	At    proto.Instant // virtual time since the simulation began
	Side  string        // "a" or "b"
	Kind  MarkKind
	Path  proto.PathKind // for MarkPath: the new path
	Label string         // a few words for a picture ("relay ready", "registered")
	// Detail is the whole story for a reader (addresses, strategy, round trip, reason).
	Detail string
}

// Probe is one packet between the peers (not to or from a server) sent or received
// by a side after its introduction while it had no direct path: the hole-punching
// probes, and whatever else crossed before the side confirmed a path.
type Probe struct {
	At     proto.Instant
	Side   string // "a" or "b"
	Sent   bool   // sent by Side (false: delivered to Side)
	Remote netip.AddrPort
}

// MaxProbes bounds Timeline.Probes; the counts go on past it.
const MaxProbes = 4096

// Timeline is what RunTimeline recorded of one run: every node event that tells the
// connection's story, as structured marks, and the probes from the simulator's
// packet trace.
type Timeline struct {
	A, B    string // the cell
	Seed    uint64
	Connect proto.Instant // when A called Connect (0: the run ended before)
	End     proto.Instant // when the run stopped
	Marks   []Mark        // in time order
	Probes  []Probe       // in time order, the first MaxProbes
	// ProbesSent and ProbesReceived count every probe of side a ([0]) and b ([1]),
	// kept in Probes or not; ProbesNotKept is how many Probes left out.
	ProbesSent, ProbesReceived [2]int
	ProbesNotKept              int

	servers  map[netip.AddrPort]bool // every server socket: packets to them are no probes
	punching [2]bool                 // the side was introduced and has no direct path now
	gotFirst [2]bool                 // the side received a message already
}

// RunTimeline performs Run(cfg) and records its timeline. The result is Run's:
// recording reads the run, it does not change it.
func RunTimeline(cfg RunConfig) (Result, *Timeline) {
	t := &Timeline{A: cfg.A, B: cfg.B, Seed: cfg.Seed, servers: map[netip.AddrPort]bool{}}
	cfg.timeline = t
	w, err := newWorld(cfg)
	if err != nil {
		t.finish()
		return Result{Seed: cfg.Seed, Err: err.Error()}, t
	}
	w.connect()
	t.Connect, t.End = w.start, w.s.Now()
	t.Marks = append(t.Marks, Mark{At: w.start, Side: "a", Kind: MarkConnect, Label: "connect",
		Detail: "A calls Connect(\"b\")"})
	t.finish()
	return w.res, t
}

// finish puts the marks in time order (Connect was added last) and settles End.
func (t *Timeline) finish() {
	slices.SortStableFunc(t.Marks, func(x, y Mark) int { return int(x.At - y.At) })
	if n := len(t.Marks); n > 0 {
		t.End = max(t.End, t.Marks[n-1].At)
	}
}

// watch starts recording w: its server sockets are known, its nodes not yet made.
// Nil-safe, like event: runs without a timeline record nothing.
func (t *Timeline) watch(w *world) {
	if t == nil {
		return
	}
	for _, h := range w.hosts {
		for _, s := range h.Sockets() {
			t.servers[s] = true
		}
	}
	w.s.SetTracer(t.packet)
}

// sideIndex is 0 for a, 1 for b, -1 for every other host or box.
func sideIndex(name string) int {
	switch name {
	case "a":
		return 0
	case "b":
		return 1
	}
	return -1
}

// packet takes one record of the simulator's trace and keeps the probes.
func (t *Timeline) packet(r *sim.TraceRecord) {
	i := sideIndex(r.Where)
	if i < 0 || !t.punching[i] {
		return // before the introduction a side sends only to servers and itself (the hairpin test)
	}
	sent := r.Kind == sim.TraceSend
	remote := r.Dst
	switch {
	case r.Kind == sim.TraceDeliver:
		remote = r.Src
	case !sent:
		return // translations and drops happen in boxes and links, not on a side
	}
	if t.servers[remote] {
		return
	}
	if sent {
		t.ProbesSent[i]++
	} else {
		t.ProbesReceived[i]++
	}
	if len(t.Probes) == MaxProbes {
		t.ProbesNotKept++
		return
	}
	t.Probes = append(t.Probes, Probe{At: r.At, Side: r.Where, Sent: sent, Remote: remote})
}

// event turns one node event of side into a mark (messages after the first, and
// socket requests, tell no story and are left out).
func (t *Timeline) event(now proto.Instant, side string, e node.Event) {
	if t == nil {
		return
	}
	m := Mark{At: now, Side: side}
	switch e := e.(type) {
	case node.EventRegistered:
		m.Kind, m.Label = MarkRegistered, "registered"
		m.Detail = fmt.Sprintf("registered with %v, seen as %v", e.Server, e.Observed)
	case node.EventNATReport:
		b := e.Behavior
		m.Kind, m.Label = MarkNATReport, "NAT measured"
		m.Detail = fmt.Sprintf("NAT: mapping %v, filtering %v, allocation %v, hairpin %v; seen as %v",
			b.Mapping, b.Filtering, b.Allocation, b.Hairpin, e.Observed)
	case node.EventIntroduced:
		t.punching[sideIndex(side)] = true
		m.Kind, m.Label = MarkIntroduced, "introduced"
		m.Detail = fmt.Sprintf("introduced to %s, strategy %v", e.Peer, e.Strategy)
	case node.EventPathChanged:
		t.punching[sideIndex(side)] = e.Kind != proto.PathDirect
		m.Kind, m.Path, m.Label = MarkPath, e.Kind, e.Reason
		m.Detail = fmt.Sprintf("path %v (%s): %v → %v", e.Kind, e.Reason, e.Local, e.Remote)
		if e.RTT > 0 {
			m.Detail += fmt.Sprintf(", rtt %v", e.RTT.Round(time.Millisecond))
		}
	case node.EventConnected:
		m.Kind, m.Label, m.Detail = MarkConnected, "session up", "encrypted session with "+e.Peer+" up"
	case node.EventMessage:
		if i := sideIndex(side); i < 0 || t.gotFirst[i] {
			return
		}
		t.gotFirst[sideIndex(side)] = true
		m.Kind, m.Label, m.Detail = MarkFirstMessage, "1st message", "first message from "+e.Peer
	case node.EventServerChanged:
		m.Kind, m.Label = MarkServerChanged, "server changed"
		m.Detail = fmt.Sprintf("server %v → %v: %s", e.From, e.To, e.Reason)
	case node.EventPeerError:
		m.Kind, m.Label = MarkPeerError, "peer error"
		m.Detail = fmt.Sprintf("server refused (%s): code %v %s", e.Peer, e.Code, e.Text)
	case node.EventClosed:
		m.Kind, m.Label, m.Detail = MarkClosed, "closed", "node closed: "+e.Reason
	case node.EventPeerClosed:
		m.Kind, m.Label, m.Detail = MarkClosed, "peer closed", "connection closed: "+e.Reason.String()
	default:
		return
	}
	t.Marks = append(t.Marks, m)
}
