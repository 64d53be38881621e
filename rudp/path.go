package rudp

import "github.com/natpass/natpass/proto"

// PathChanged tells the connection that its packets now travel another path (relay
// to direct, a new direct path after a NAT reboot or a move). What was in flight on
// the old path is probably gone, so the probe-timeout backoff starts over and a probe
// is due at once: data queued or unacknowledged during the outage resumes on the new
// path without waiting out a timer backed off against the dead one (RFC 9000 §9.4
// resets recovery on migration for the same reason). The RTT estimate and the
// congestion window adapt from the new path's first acknowledgements.
func (c *Conn) PathChanged(now proto.Instant) {
	c.advance(now)
	if c.state == stateClosed {
		return
	}
	c.ptoCount = 0
	if c.ackElicitingInFlight > 0 {
		c.timers[timerLoss] = now
	}
}
