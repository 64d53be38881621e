package rudp

import (
	"time"

	"github.com/natpass/natpass/proto"
)

// Stats are a connection's counters and estimates; Conn.Stats returns a copy.
type Stats struct {
	SRTT, RTTVar, MinRTT, LatestRTT time.Duration // RFC 9002 §5
	Cwnd, Ssthresh, BytesInFlight   int           // bytes; Ssthresh 0 while unset
	PacingRate                      uint64        // bytes per second
	DatagramSize                    int           // confirmed PMTU (UDP payload bytes)

	PacketsSent, PacketsReceived, PacketsAcked, PacketsLost uint64
	BytesSent, BytesReceived                                uint64 // rudp packet bytes
	AckOnlyPackets, AckOnlyBytes                            uint64 // packets carrying nothing but an ACK
	AckFrequencySent                                        uint64 // ACK-FREQUENCY frames sent (§7.9)
	AckFrequencyReceived, AckFrequencyStale                 uint64 // ... received and applied; ignored as older than one applied
	ImmediateAckPings                                       uint64 // PINGs added because the peer may delay its ACK: burst ends, lone packets, top-priority messages, probes
	Retransmits                                             uint64 // fragments sent again
	RedundantFrames                                         uint64 // unacknowledged messages repeated by Redundant lanes
	PTOs, CongestionEvents, PersistentCongestion            uint64
	LossesTolerated                                         uint64 // losses on a path without a queue, not taken as congestion
	SpuriousLosses                                          uint64 // packets declared lost that were acknowledged after all (reordering)
	PMTUBlackholes                                          uint64 // falls back to the base datagram size
	DuplicatePackets, InvalidDatagrams                      uint64
	UnreliableDropped                                       uint64 // received but over the queue bound
	SendBuffered                                            int    // bytes from Send not yet acknowledged or gone
}

// LaneStats are one lane's counters.
type LaneStats struct {
	MessagesQueued, MessagesSent, MessagesExpired uint64 // Send calls; first fragments sent; dropped at expiry
	MessagesDelivered                             uint64 // received messages handed to the event queue
	BytesSent, BytesDelivered                     uint64 // message bytes (first transmissions) and delivered
	Retransmits                                   uint64 // fragments of this lane sent again
	FragmentsLost                                 uint64 // fragments in packets declared lost
	// QueueDelay is the smoothed (1/8 gain) time from Send to the message's first
	// byte leaving in a packet; QueueDelayMax its maximum.
	QueueDelay, QueueDelayMax time.Duration
	Queued                    int // messages not yet fully sent once
	Unsent                    int // their bytes not yet sent once (Config.SendQueueBytes)
}

// Stats returns the connection's statistics.
func (c *Conn) Stats() Stats {
	s := c.stats
	s.SRTT, s.RTTVar, s.MinRTT, s.LatestRTT = c.rtt.smooth, c.rtt.vari, c.rtt.min, c.rtt.latest
	s.Cwnd, s.BytesInFlight = c.cc.cwnd, c.bytesInFlight
	if c.cc.ssthresh != int(^uint(0)>>1) {
		s.Ssthresh = c.cc.ssthresh
	}
	s.PacingRate = c.cc.pacingRate(c.rtt.smooth)
	s.DatagramSize = c.pmtu.current
	s.SendBuffered = c.sendBuffered
	return s
}

// InFlight returns the bytes in flight, since when some have been (the send time of
// the packet that ended the last quiet spell), and the smoothed RTT: what a caller
// watching for silence needs on every deadline computation, without copying Stats.
func (c *Conn) InFlight() (bytes int, since proto.Instant, srtt time.Duration) {
	return c.bytesInFlight, c.flightStart, c.rtt.smooth
}

// RTT returns the smoothed RTT and whether it was measured (before the first sample
// it is InitialRTT, RFC 9002 §5.3).
func (c *Conn) RTT() (srtt time.Duration, measured bool) { return c.rtt.smooth, c.rtt.sampled }

// LaneStats returns lane i's statistics.
func (c *Conn) LaneStats(i int) LaneStats {
	l := &c.lanes[i]
	s := l.stats
	s.Queued = l.pending.len()
	s.Unsent = l.unsent
	return s
}
