package rudp

import (
	"math"
	"time"

	"github.com/natpass/natpass/proto"
)

// CUBIC (RFC 9438) with HyStart++ (RFC 9406) in bytes. CUBIC reacts to loss; HyStart++
// leaves slow start when the round's minimum RTT rises, so the first flight does not
// fill a bottleneck buffer to the brim. The pacer spreads each window over an RTT.
const (
	cubicC    = 0.4 // RFC 9438 §5.1 C
	cubicBeta = 0.7 // RFC 9438 §4.6 β_cubic
	// RFC 9438 §4.3 α_cubic = 3(1-β)/(1+β): the Reno-friendly region's growth per RTT.
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)

	initialWindowPackets = 10 // RFC 9002 §7.2 kInitialWindow (10 packets)
	minWindowPackets     = 2  // RFC 9002 §7.2 kMinimumWindow
	// maxWindowPackets caps cwnd so the sent-packet ring has a bound: 20,000 packets is
	// 10 Gbit/s at 20 ms.
	maxWindowPackets = 20000

	// HyStart++ constants, RFC 9406 §4.3.
	hystartMinRTTThresh  = 4 * time.Millisecond
	hystartMaxRTTThresh  = 16 * time.Millisecond
	hystartMinRTTDivisor = 8
	hystartNRTTSample    = 8
	hystartCSSGrowthDiv  = 4
	hystartCSSRounds     = 5
)

type cubic struct {
	mss      int // bytes of one full packet; the unit of the window
	cwnd     int // bytes; RFC 9002 §7 congestion_window
	ssthresh int // bytes; RFC 9002 §7.3.2

	// RFC 9002 §7.3.2 congestion_recovery_start_time: losses of packets sent before it
	// belong to the congestion event already answered.
	recoveryStart proto.Instant

	wMax       float64       // RFC 9438 §4.1 W_max, in packets
	k          float64       // RFC 9438 §4.2 K, seconds
	epochStart proto.Instant // RFC 9438 §4.2 t=0; Never outside congestion avoidance
	wEst       float64       // RFC 9438 §4.3 W_est, packets (Reno-friendly estimate)
	cwndCarry  float64       // fractional bytes of growth not yet applied

	// HyStart++ (RFC 9406 §4.2): per-round minimum RTTs and the conservative slow
	// start (CSS) state.
	roundEnd        uint64 // packet number whose acknowledgement ends the round
	lastRoundMinRTT time.Duration
	curRoundMinRTT  time.Duration
	rttSamples      int
	cssBaseline     time.Duration // 0 when not in CSS
	cssRounds       int

	// The last pacingRate and what it was computed from: rudp asks for every packet
	// and the window and RTT change far less often (a float division saved).
	rateCwnd      int
	rateSRTT      time.Duration
	rateSlowStart bool
	rate          uint64
}

func newCubic(mss int) cubic {
	return cubic{
		mss:             mss,
		cwnd:            initialWindowPackets * mss,
		ssthresh:        math.MaxInt,
		recoveryStart:   -1 << 62,
		epochStart:      proto.Never,
		curRoundMinRTT:  math.MaxInt64,
		lastRoundMinRTT: math.MaxInt64,
	}
}

func (c *cubic) inSlowStart() bool { return c.cwnd < c.ssthresh }

// setMSS follows a PMTU increase: the window keeps its size in packets.
func (c *cubic) setMSS(mss int) {
	c.cwnd = c.cwnd / c.mss * mss
	c.mss = mss
}

// onRoundStart is called when a packet number at or above roundEnd is acknowledged:
// a round trip of sending has passed (RFC 9406 §4.2).
func (c *cubic) onRoundStart(nextPN uint64) {
	c.roundEnd = nextPN
	c.lastRoundMinRTT = c.curRoundMinRTT
	c.curRoundMinRTT = math.MaxInt64
	c.rttSamples = 0
	if c.cssBaseline != 0 {
		c.cssRounds++
		if c.cssRounds >= hystartCSSRounds {
			// RFC 9406 §4.2: after CSS_ROUNDS rounds in CSS, enter congestion avoidance.
			c.ssthresh = c.cwnd
			c.cssBaseline = 0
		}
	}
}

// onRTTSample feeds HyStart++ one RTT sample while in slow start.
func (c *cubic) onRTTSample(rtt time.Duration) {
	if !c.inSlowStart() {
		return
	}
	c.curRoundMinRTT = min(c.curRoundMinRTT, rtt)
	c.rttSamples++
	if c.cssBaseline == 0 {
		if c.rttSamples >= hystartNRTTSample && c.lastRoundMinRTT != math.MaxInt64 && c.curRoundMinRTT != math.MaxInt64 {
			eta := min(max(c.lastRoundMinRTT/hystartMinRTTDivisor, hystartMinRTTThresh), hystartMaxRTTThresh)
			if c.curRoundMinRTT >= c.lastRoundMinRTT+eta {
				c.cssBaseline = c.curRoundMinRTT // RFC 9406 §4.2: enter CSS
				c.cssRounds = 0
			}
		}
	} else if c.curRoundMinRTT < c.cssBaseline && c.rttSamples >= hystartNRTTSample {
		c.cssBaseline = 0 // the RTT rise was spurious: back to slow start
	}
}

// onAck grows the window for bytes newly acknowledged from a packet sent at sentTime.
// cwndLimited says whether the sender used the window recently; an application-
// limited sender must not grow it (RFC 9002 §7.8).
func (c *cubic) onAck(bytes int, sentTime, now proto.Instant, srtt time.Duration, cwndLimited bool) {
	if sentTime <= c.recoveryStart || !cwndLimited {
		return
	}
	if c.inSlowStart() {
		if c.cssBaseline != 0 {
			c.cwnd += bytes / hystartCSSGrowthDiv
		} else {
			c.cwnd += bytes
		}
		c.cwnd = min(c.cwnd, maxWindowPackets*c.mss)
		return
	}
	mss := float64(c.mss)
	cwndPkts := float64(c.cwnd) / mss
	if c.epochStart == proto.Never {
		c.epochStart = now
		if c.wMax < cwndPkts {
			c.wMax = cwndPkts // RFC 9438 §4.8: no recent loss to measure from
		}
		c.k = math.Cbrt((c.wMax - cwndPkts) / cubicC)
		c.wEst = cwndPkts
	}
	// RFC 9438 §4.2: the target is W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd].
	t := (now.Sub(c.epochStart) + srtt).Seconds()
	target := cubicC*math.Pow(t-c.k, 3) + c.wMax
	target = min(max(target, cwndPkts), 1.5*cwndPkts)
	// RFC 9438 §4.3: the Reno-friendly estimate grows α per window of acks.
	c.wEst += cubicAlpha * float64(bytes) / float64(c.cwnd)
	if c.wEst > target {
		target = c.wEst
	}
	c.cwndCarry += (target - cwndPkts) / cwndPkts * float64(bytes)
	if c.cwndCarry >= 1 {
		grow := int(c.cwndCarry)
		c.cwndCarry -= float64(grow)
		c.cwnd = min(c.cwnd+grow, maxWindowPackets*c.mss)
	}
}

// onCongestion answers a loss of a packet sent at sentTime (RFC 9002 §7.3.2, RFC 9438
// §4.6-4.7): one reduction per round trip.
func (c *cubic) onCongestion(sentTime, now proto.Instant) bool {
	if sentTime <= c.recoveryStart {
		return false
	}
	c.recoveryStart = now
	cwndPkts := float64(c.cwnd) / float64(c.mss)
	if cwndPkts < c.wMax {
		c.wMax = cwndPkts * (1 + cubicBeta) / 2 // RFC 9438 §4.7 fast convergence
	} else {
		c.wMax = cwndPkts
	}
	c.cwnd = max(int(float64(c.cwnd)*cubicBeta), minWindowPackets*c.mss)
	c.ssthresh = c.cwnd
	c.epochStart = proto.Never
	c.cwndCarry = 0
	c.cssBaseline = 0
	return true
}

// onPersistentCongestion collapses the window (RFC 9002 §7.6.2).
func (c *cubic) onPersistentCongestion(now proto.Instant) {
	c.cwnd = minWindowPackets * c.mss
	c.recoveryStart = now
	c.epochStart = proto.Never
	c.cwndCarry = 0
}

// pacingRate is bytes per second: the window spread over the smoothed RTT, with
// headroom so pacing itself never limits the window (RFC 9002 §7.7: N = 1.25; Linux
// uses 2 in slow start so the window can still double each round).
func (c *cubic) pacingRate(srtt time.Duration) uint64 {
	slowStart := c.inSlowStart()
	if c.cwnd == c.rateCwnd && srtt == c.rateSRTT && slowStart == c.rateSlowStart {
		return c.rate
	}
	gain := 1.25
	if slowStart {
		gain = 2
	}
	rate := uint64(gain * float64(c.cwnd) / max(srtt, time.Microsecond).Seconds())
	c.rateCwnd, c.rateSRTT, c.rateSlowStart, c.rate = c.cwnd, srtt, slowStart, rate
	return rate
}
