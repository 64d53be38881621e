package rudp

import (
	"testing"
	"time"
)

func TestRTTEstimator(t *testing.T) {
	r := newRTTEstimator(333 * time.Millisecond)
	// RFC 9002 §6.2.2: "When no previous RTT is available, the initial RTT SHOULD be
	// set to 333 milliseconds", and §5.3 rttvar = kInitialRtt / 2 before a sample.
	if r.smooth != 333*time.Millisecond || r.vari != 333*time.Millisecond/2 {
		t.Fatalf("initial %v/%v", r.smooth, r.vari)
	}
	// RFC 9002 §5.3: on the first sample "smoothed_rtt = latest_rtt; rttvar =
	// latest_rtt / 2", and the ack delay is ignored.
	r.update(100*time.Millisecond, 20*time.Millisecond)
	if r.smooth != 100*time.Millisecond || r.vari != 50*time.Millisecond || r.min != 100*time.Millisecond {
		t.Fatalf("after first sample %+v", r)
	}
	// RFC 9002 §5.3: adjusted_rtt = latest_rtt - ack_delay when that stays >= min_rtt;
	// rttvar = 3/4 rttvar + 1/4 |smoothed_rtt - adjusted_rtt|; smoothed = 7/8 + 1/8.
	r.update(130*time.Millisecond, 10*time.Millisecond) // adjusted 120
	if want := (7*100*time.Millisecond + 120*time.Millisecond) / 8; r.smooth != want {
		t.Errorf("smoothed %v, want %v", r.smooth, want)
	}
	if want := (3*50*time.Millisecond + 20*time.Millisecond) / 4; r.vari != want {
		t.Errorf("rttvar %v, want %v", r.vari, want)
	}
	// "... MUST NOT subtract the acknowledgment delay ... if the resulting value is
	// smaller than the min_rtt": 105 - 10 < 100, so 105 is used as is.
	s := r.smooth
	r.update(105*time.Millisecond, 10*time.Millisecond)
	if want := (7*s + 105*time.Millisecond) / 8; r.smooth != want {
		t.Errorf("smoothed %v, want %v (ack delay must not be subtracted)", r.smooth, want)
	}
	// RFC 9002 §6.2.1: PTO = smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay.
	if want := r.smooth + 4*r.vari + 10*time.Millisecond; r.pto(10*time.Millisecond) != want {
		t.Errorf("pto %v, want %v", r.pto(10*time.Millisecond), want)
	}
	// RFC 9002 §6.1.2: the time threshold is 9/8 max(smoothed_rtt, latest_rtt).
	ro := reorderState{mult: 1}
	if base := max(r.smooth, r.latest); ro.window(&r) != base+base/8 {
		t.Errorf("loss delay %v, want %v", ro.window(&r), base+base/8)
	}
	// The floor: a LAN with 100 µs RTT still waits ptoMin.
	lan := newRTTEstimator(time.Millisecond)
	lan.update(100*time.Microsecond, 0)
	for range 20 {
		lan.update(100*time.Microsecond, 0)
	}
	if lan.pto(0) != ptoMin {
		t.Errorf("LAN pto %v, want the %v floor", lan.pto(0), ptoMin)
	}
}

func TestPTOBackoffCapped(t *testing.T) {
	c := New(Config{PTOMax: time.Second}, 0)
	c.rtt.update(100*time.Millisecond, 0)
	base := c.ptoPeriod()
	c.ptoCount = 1
	if c.ptoPeriod() != 2*base {
		t.Errorf("one PTO: %v, want %v (RFC 9002 §6.2.1 doubles it)", c.ptoPeriod(), 2*base)
	}
	c.ptoCount = 30
	if c.ptoPeriod() != time.Second {
		t.Errorf("30 PTOs: %v, want the 1 s cap", c.ptoPeriod())
	}
}
