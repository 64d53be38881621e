package rendezvous

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/natpass/natpass/proto"
)

// modelSession is the oracle's idea of one registered peer.
type modelSession struct {
	cookie   proto.Session
	addr     netip.AddrPort
	lastSeen proto.Instant
	lastReg  []byte // the register that created it, for retransmissions
	// registeredAt: the model never reports a NAT, so introductions to this peer
	// wait (error code 9) until notReadyWindow after it.
	registeredAt proto.Instant
	// The other-family binding ([SRV-14]); addr2 zero when none.
	addr2, local2 netip.AddrPort
	lastSeen2     proto.Instant
}

// modelLocals are the server sockets requests reach: the IPv4 primary, where every
// session registers, and the IPv6 one.
var modelLocals = []netip.AddrPort{srvPrimary, srvV6}

// presenceModel is a deliberately naive oracle for the presence table: a map, a
// clock and the rules of PROTOCOL.md §5.10, with nothing bounded or indexed.
type presenceModel struct {
	h        *harness
	maxPeers int
	peers    map[string]*modelSession
	txid     uint64
}

const modelPeers = 5

var modelAddrs = []netip.AddrPort{aliceNAT, bobNAT, v6Node, strangerA,
	netip.MustParseAddrPort("203.0.113.10:40001"), netip.MustParseAddrPort("[2001:db8::43]:1")}

func modelPeerID(k int) string { return fmt.Sprintf("peer%d", k) }

// expire drops the sessions, and the bindings, the server must have timed out by now.
func (m *presenceModel) expire() {
	for id, s := range m.peers {
		if m.h.now >= s.lastSeen.Add(DefaultSessionTimeout) {
			delete(m.peers, id)
		} else if s.addr2.IsValid() && m.h.now >= s.lastSeen2.Add(DefaultSessionTimeout) {
			s.addr2, s.local2 = netip.AddrPort{}, netip.AddrPort{}
		}
	}
}

func (m *presenceModel) register(t *rapid.T) {
	k := rapid.IntRange(0, modelPeers-1).Draw(t, "peer")
	from := rapid.SampledFrom(modelAddrs).Draw(t, "from")
	m.txid++
	req := registerBytes(m.txid, ticketFor(modelPeerID(k), byte(k+1)))
	m.deliverRegister(t, k, from, req)
}

func (m *presenceModel) retransmit(t *rapid.T) {
	k := rapid.IntRange(0, modelPeers-1).Draw(t, "peer")
	s, ok := m.peers[modelPeerID(k)]
	if !ok {
		t.Skip("no session to retransmit for")
	}
	if m.h.now+proto.Instant(time.Millisecond) >= s.lastSeen.Add(DefaultSessionTimeout) {
		// deliverRegister moves time on by 1 ms first: the session expires before the
		// retransmit arrives, and a fresh cookie is then right.
		t.Skip("session expires before the retransmit arrives")
	}
	old := s.cookie
	r := m.deliverRegister(t, k, s.addr, s.lastReg)
	if r.Session != old {
		t.Fatalf("retransmitted register got a new cookie")
	}
}

func (m *presenceModel) deliverRegister(t *rapid.T, k int, from netip.AddrPort, req []byte) proto.Registered {
	m.h.now += proto.Instant(time.Millisecond)
	m.expire()
	id := modelPeerID(k)
	err, out, _ := m.h.deliver(srvPrimary, from, req)
	_, present := m.peers[id]
	if !present && len(m.peers) == m.maxPeers {
		if !errors.Is(err, ErrServerFull) || errorCode(t, out) != proto.CodeServerFull {
			t.Fatalf("register %s into a full table: %v", id, err)
		}
		return proto.Registered{}
	}
	var r proto.Registered
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	only(t, out, &r)
	if r.Observed != from {
		t.Fatalf("observed %v, sent from %v", r.Observed, from)
	}
	ns := &modelSession{cookie: r.Session, addr: from, lastSeen: m.h.now, lastReg: req, registeredAt: m.h.now}
	if old, ok := m.peers[id]; ok && old.cookie == r.Session {
		// A retransmit: the same session, its binding included.
		ns.registeredAt, ns.addr2, ns.local2, ns.lastSeen2 = old.registeredAt, old.addr2, old.local2, old.lastSeen2
	}
	m.peers[id] = ns
	return r
}

func (m *presenceModel) keepalive(t *rapid.T) {
	k := rapid.IntRange(0, modelPeers-1).Draw(t, "peer")
	from := rapid.SampledFrom(modelAddrs).Draw(t, "from")
	local := rapid.SampledFrom(modelLocals).Draw(t, "local")
	m.h.now += proto.Instant(time.Millisecond)
	m.expire()
	s, ok := m.peers[modelPeerID(k)]
	var cookie proto.Session
	if ok {
		cookie = s.cookie
	}
	cookie[0] ^= byte(rapid.IntRange(0, 1).Draw(t, "stale")) // sometimes a wrong cookie
	err, out, _ := m.h.deliver(local, from, keepaliveBytes(cookie, 1))
	if !ok || cookie != s.cookie {
		if !errors.Is(err, ErrNoSession) || errorCode(t, out) != proto.CodeNoSession {
			t.Fatalf("keepalive without a session: %v", err)
		}
		return
	}
	var ack proto.KeepaliveAck
	if err != nil {
		t.Fatalf("keepalive: %v", err)
	}
	only(t, out, &ack)
	if ack.Observed != from {
		t.Fatalf("ack observed %v, sent from %v", ack.Observed, from)
	}
	switch {
	case s.addr2.IsValid() && isIPv4(from) != isIPv4(s.addr):
		if local == s.local2 {
			s.addr2, s.lastSeen2 = from, m.h.now
		}
	case local == srvPrimary:
		s.addr, s.lastSeen = from, m.h.now
	}
}

// registerFamily binds (or tries to) an address of the other family ([SRV-14]).
func (m *presenceModel) registerFamily(t *rapid.T) {
	k := rapid.IntRange(0, modelPeers-1).Draw(t, "peer")
	from := rapid.SampledFrom(modelAddrs).Draw(t, "from")
	local := rapid.SampledFrom(modelLocals).Draw(t, "local")
	m.h.now += proto.Instant(time.Millisecond)
	m.expire()
	s, ok := m.peers[modelPeerID(k)]
	var cookie proto.Session
	if ok {
		cookie = s.cookie
	}
	m.txid++
	err, out, _ := m.h.deliver(local, from, regFamilyBytes(cookie, m.txid))
	switch {
	case !ok:
		if !errors.Is(err, ErrNoSession) || errorCode(t, out) != proto.CodeNoSession {
			t.Fatalf("register-family without a session: %v", err)
		}
	case isIPv4(from) == isIPv4(s.addr):
		if !errors.Is(err, ErrSameFamily) || errorCode(t, out) != proto.CodeMalformed {
			t.Fatalf("register-family of the registered family: %v", err)
		}
	default:
		var r proto.Registered
		if err != nil {
			t.Fatalf("register-family: %v", err)
		}
		if d := only(t, out, &r); r.Observed != from || r.Session != s.cookie || d.From != local {
			t.Fatalf("register-family answered %+v from %v", r, d.From)
		}
		s.addr2, s.local2, s.lastSeen2 = from, local, m.h.now
	}
}

func (m *presenceModel) introduce(t *rapid.T) {
	a := rapid.IntRange(0, modelPeers-1).Draw(t, "requester")
	b := rapid.IntRange(0, modelPeers-1).Draw(t, "target")
	m.h.now += proto.Instant(time.Millisecond)
	m.expire()
	req, ok := m.peers[modelPeerID(a)]
	if !ok {
		t.Skip("requester not registered")
	}
	err, out, _ := m.h.deliver(srvPrimary, req.addr, introduceBytes(req.cookie, 1, modelPeerID(b), 0))
	tgt, present := m.peers[modelPeerID(b)]
	switch {
	case !present:
		if !errors.Is(err, ErrUnknownPeer) {
			t.Fatalf("introduce to absent %d: %v", b, err)
		}
	case a == b:
		if !errors.Is(err, ErrSelfIntroduction) {
			t.Fatalf("self introduction: %v", err)
		}
	case m.h.now < tgt.registeredAt.Add(notReadyWindow) || m.h.now < req.registeredAt.Add(notReadyWindow):
		if !errors.Is(err, ErrPeerNotReady) || errorCode(t, out) != proto.CodePeerNotReady {
			t.Fatalf("introduce %d→%d before its NAT report: %v", a, b, err)
		}
	default:
		if err != nil || len(out) != 2 || out[0].To != req.addr || out[1].To != tgt.addr {
			t.Fatalf("introduce %d→%d: %v, %d datagrams", a, b, err, len(out))
		}
	}
}

func (m *presenceModel) wait(t *rapid.T) {
	d := time.Duration(rapid.IntRange(1, 60).Draw(t, "seconds")) * time.Second
	m.h.wait(d)
	m.expire()
}

// waitDeadline lands exactly on the server's deadline, where off-by-one expiry
// bugs live.
func (m *presenceModel) waitDeadline(t *rapid.T) {
	dl := m.h.s.Deadline()
	if dl == proto.Never {
		t.Skip("no deadline")
	}
	m.h.wait(dl.Sub(m.h.now))
	m.expire()
}

// check compares the server with the model after every step.
func (m *presenceModel) check(t *rapid.T) {
	if got := m.h.s.Stats().Sessions; got != len(m.peers) {
		t.Fatalf("server has %d sessions, model %d", got, len(m.peers))
	}
	want, wantBinding, bound := proto.Never, proto.Never, 0
	for k := range modelPeers {
		id := modelPeerID(k)
		info, ok := m.h.s.Peer([]byte(id))
		s, inModel := m.peers[id]
		if ok != inModel {
			t.Fatalf("%s: server has it %v, model %v", id, ok, inModel)
		}
		if ok {
			if info.Addr != s.addr || info.LastSeen != s.lastSeen {
				t.Fatalf("%s: server %v seen %v, model %v seen %v", id, info.Addr, info.LastSeen, s.addr, s.lastSeen)
			}
			if info.OtherAddr != s.addr2 || info.OtherLocal != s.local2 || s.addr2.IsValid() && info.OtherLastSeen != s.lastSeen2 {
				t.Fatalf("%s: server binding %v on %v seen %v, model %v on %v seen %v", id,
					info.OtherAddr, info.OtherLocal, info.OtherLastSeen, s.addr2, s.local2, s.lastSeen2)
			}
			want = proto.Min(want, s.lastSeen.Add(DefaultSessionTimeout))
			if s.addr2.IsValid() {
				wantBinding = proto.Min(wantBinding, s.lastSeen2.Add(DefaultSessionTimeout))
				bound++
			}
		}
	}
	if got := m.h.s.timers[timerBindingExpiry]; got != wantBinding {
		t.Fatalf("binding expiry %v, model %v", got, wantBinding)
	}
	if got := m.h.s.Stats().FamilyBindings; got != bound {
		t.Fatalf("server has %d bindings, model %d", got, bound)
	}
	// The session-expiry timer must match the model exactly; the server's Deadline
	// may be earlier only for repeating introduction copies.
	if got := m.h.s.timers[timerSessionExpiry]; got != want {
		t.Fatalf("session expiry %v, model %v", got, want)
	}
	if got := m.h.s.Deadline(); got != proto.Min(proto.Min(want, wantBinding), m.h.s.pending.deadline()) {
		t.Fatalf("deadline %v, model %v", got, want)
	}
}

// TestPresenceAgainstModel runs random register / retransmit / keepalive /
// introduce / wait sequences against the naive model. rapid prints the failing
// sequence and how to replay it (-rapid.seed).
func TestPresenceAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxPeers := rapid.IntRange(1, modelPeers).Draw(t, "maxPeers")
		m := &presenceModel{
			h: newHarness(t, func(c *Config) {
				dualStack(c)
				c.MaxPeers = maxPeers
				c.SourceRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
				c.SessionRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
			}),
			maxPeers: maxPeers,
			peers:    map[string]*modelSession{},
		}
		t.Repeat(map[string]func(*rapid.T){
			"register":   m.register,
			"retransmit": m.retransmit,
			"keepalive":  m.keepalive,
			"family":     m.registerFamily,
			"introduce":  m.introduce,
			"wait":       m.wait,
			"deadline":   m.waitDeadline,
			"":           m.check,
		})
	})
}
