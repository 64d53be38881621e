package rudp

import "github.com/natpass/natpass/proto"

// timer names one entry of a Conn's timer table. Deadline is the minimum of the table;
// HandleTimeout fires every entry that is due (quinn-proto's connection/timer.rs).
type timer uint8

const (
	timerLoss      timer = iota // RACK time threshold (RFC 8985 §6.2) or PTO (RFC 9002 §6.2)
	timerAck                    // delayed acknowledgement (RFC 9000 §13.2.1 max_ack_delay)
	timerPacing                 // the pacer lets the next queued packet go
	timerKeepalive              // send a PING so the peer's idle timer and NAT mappings stay fresh
	timerIdle                   // nothing received for IdleTimeout: close
	timerPMTU                   // next PMTU probe (DPLPMTUD, RFC 8899 §5.2)
	timerClose                  // end of the closing period: report EventClosed
	timerCount
)

var timerNames = [timerCount]string{"loss", "ack", "pacing", "keepalive", "idle", "pmtu", "close"}

func (t timer) String() string { return timerNames[t] }

// timerTable holds one Instant per timer; proto.Never means unarmed.
type timerTable [timerCount]proto.Instant

func newTimerTable() timerTable {
	var t timerTable
	for i := range t {
		t[i] = proto.Never
	}
	return t
}

// next returns the earliest armed timer and its deadline.
func (t *timerTable) next() (timer, proto.Instant) {
	best, at := timerCount, proto.Never
	for i, d := range t {
		if d < at {
			best, at = timer(i), d
		}
	}
	return best, at
}
