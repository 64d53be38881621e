package punch

import (
	"testing"
	"time"

	"github.com/natpass/natpass/internal/machinetest"
	"github.com/natpass/natpass/proto"
)

// TransmitPending and ActiveRoute are the cheap questions node asks per datagram:
// they must agree with PollTransmit and Active at every drain of a search, from the
// first probes to the confirmed path and its keepalives.
func TestTransmitPendingAndActiveRouteAgree(t *testing.T) {
	a, b := newPair(testKey,
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrB}},
		[]proto.Candidate{{Kind: proto.CandidateServerReflexive, Addr: addrA}})
	sent := 0
	checked := func(ag *Agent) machinetest.Machine {
		m := machinetest.Of(ag)
		m.PollTransmit = func(now proto.Instant, buf []byte) (proto.Transmit, bool) {
			pending := ag.TransmitPending()
			tx, ok := ag.PollTransmit(now, buf)
			if ok != pending {
				t.Fatalf("at %v: TransmitPending %v, PollTransmit sent %v", now, pending, ok)
			}
			if ok {
				sent++
			}
			p, active := ag.Active()
			local, remote, rok := ag.ActiveRoute()
			if active != rok || active && (p.Local != local || p.Remote != remote) {
				t.Fatalf("at %v: Active %+v %v, ActiveRoute %v %v %v", now, p, active, local, remote, rok)
			}
			return tx, ok
		}
		return m
	}
	w := machinetest.NewNet(t, 0, 20*time.Millisecond)
	w.Add("a", checked(a), addrA)
	w.Add("b", checked(b), addrB)
	w.RunUntil(proto.Instant(30 * time.Second)) // past a keepalive or two
	if _, ok := a.Active(); !ok || sent == 0 {
		t.Fatalf("the pair found no path (active %v) or sent nothing (%d): the check saw nothing", ok, sent)
	}
}
