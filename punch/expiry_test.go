package punch

import (
	"errors"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// soloAgent is A searching alone toward addrB: nothing answers, so every probe it sent
// stays outstanding until it expires.
func soloAgent() *Agent {
	a, _ := newPair(testKey, []proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}}, nil)
	return a
}

// runTo calls HandleTimeout at each deadline up to end, drains by the rule, and
// returns the txid of the first probe (not a priming one) and when it left.
func runTo(t *testing.T, a *Agent, end proto.Instant) (txid uint64, sentAt proto.Instant) {
	t.Helper()
	var buf [256]byte
	for now := a.Deadline(); now <= end; now = a.Deadline() {
		a.HandleTimeout(now)
		for tx, ok := a.PollTransmit(now, buf[:]); ok; tx, ok = a.PollTransmit(now, buf[:]) {
			var m proto.Probe
			if err := m.Parse(tx.Payload); err != nil {
				t.Fatal(err)
			}
			if txid == 0 && tx.TTL == 0 {
				txid, sentAt = m.TxID, now
			}
		}
		for _, ok := a.PollEvent(); ok; _, ok = a.PollEvent() {
		}
	}
	return txid, sentAt
}

// A probe's answer is awaited for pathDeadAfter. Whether a late answer is taken must
// not depend on whether the owner called HandleTimeout in between (DESIGN §2:
// "spurious calls are no-ops"): two identical agents, one of them given a spurious
// HandleTimeout once the probe is older than that, must treat the answer alike.
func TestProbeExpiryIgnoresSpuriousTimeouts(t *testing.T) {
	a1, a2 := soloAgent(), soloAgent()
	txid, sentAt := runTo(t, a1, proto.Instant(time.Second))
	runTo(t, a2, proto.Instant(time.Second))
	late := sentAt.Add(pathDeadAfter) + 1
	runTo(t, a1, late-1)
	runTo(t, a2, late-1)
	if d := a2.Deadline(); d <= late {
		t.Fatalf("deadline %d is not after %d: the call below would not be spurious", d, late)
	}
	a2.HandleTimeout(late) // spurious: before the deadline

	_, b := newPair(testKey, nil, nil)
	reply := (&proto.ProbeReply{Pair: a1.Pair(), TxID: txid, Observed: addrA}).Append(nil)
	b.mac.seal(reply)
	err1 := a1.HandleDatagram(late, addrA, addrB, reply)
	err2 := a2.HandleDatagram(late, addrA, addrB, reply)
	if !errors.Is(err1, ErrUnexpected) || !errors.Is(err2, ErrUnexpected) {
		t.Errorf("an answer %v after its probe: err %v without a spurious HandleTimeout, %v with one; want ErrUnexpected both times",
			late.Sub(sentAt), err1, err2)
	}
	_, up1 := a1.Active()
	_, up2 := a2.Active()
	if up1 || up2 {
		t.Errorf("a path confirmed by an expired probe: without %v, with %v", up1, up2)
	}
}

// A relay-only introduction names no address of the peer: the easy side of a
// birthday pair has nothing to spray at, so it must not keep a timer at now (its
// owner would spin; found by FuzzWorld with RelayForce).
func TestBirthdayWithoutPeerAddressDoesNotSpin(t *testing.T) {
	easy := proto.NATBehavior{Mapping: proto.EndpointIndependent, Filtering: proto.AddressAndPortDependent,
		Allocation: proto.AllocationPreserving}
	hard := proto.NATBehavior{Mapping: proto.AddressAndPortDependent, Filtering: proto.AddressAndPortDependent,
		Allocation: proto.AllocationRandom}
	a := NewAgent(AgentConfig{Key: testKey, Local: addrA, LocalNAT: easy, RemoteNAT: hard, StartAt: 0})
	if a.Plan().Strategy != proto.StrategyBirthday || a.Plan().LocalHard {
		t.Fatalf("plan %+v, want the easy side of birthday", a.Plan())
	}
	buf := make([]byte, 2048)
	now := proto.Instant(0)
	for i := 0; i < 1000; i++ {
		d := a.Deadline()
		if d == proto.Never {
			return
		}
		if d < now {
			t.Fatalf("deadline %v in the past at %v", d, now)
		}
		now = d
		a.HandleTimeout(now)
		for _, ok := a.PollTransmit(now, buf); ok; _, ok = a.PollTransmit(now, buf) {
		}
		for _, ok := a.PollEvent(); ok; _, ok = a.PollEvent() {
		}
		if a.Deadline() <= now {
			t.Fatalf("after HandleTimeout(%v) the deadline is %v (%s): the owner would spin", now, a.Deadline(), "spray")
		}
	}
	t.Fatal("the agent never went idle")
}
