package sim

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// datagram is what a recorder machine saw.
type datagram struct {
	at          proto.Instant
	local, from netip.AddrPort
	data        string
}

// recorder is the test machine: it sends what it is told (now or at a time), records
// every datagram, and optionally echoes datagrams back from the socket they hit.
type recorder struct {
	echo      bool
	maxEchoes int // 0 = no limit
	echoes    int
	out       []proto.Transmit
	later     []scheduled
	got       []datagram
	timeouts  int
}

type scheduled struct {
	at proto.Instant
	tx proto.Transmit
}

func (r *recorder) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	r.got = append(r.got, datagram{now, local, from, string(p)})
	if r.echo && (r.maxEchoes == 0 || r.echoes < r.maxEchoes) {
		r.echoes++
		r.out = append(r.out, proto.Transmit{From: local, To: from, Payload: append([]byte(nil), p...)})
	}
	return nil
}

func (r *recorder) HandleTimeout(now proto.Instant) {
	r.timeouts++
	kept := r.later[:0]
	for _, s := range r.later {
		if s.at <= now {
			r.out = append(r.out, s.tx)
		} else {
			kept = append(kept, s)
		}
	}
	r.later = kept
}

func (r *recorder) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	return pollQueue(&r.out, buf)
}

// pollQueue is the PollTransmit of the test machines: the first queued datagram,
// its payload copied into buf.
func pollQueue(out *[]proto.Transmit, buf []byte) (proto.Transmit, bool) {
	if len(*out) == 0 {
		return proto.Transmit{}, false
	}
	t := (*out)[0]
	*out = (*out)[1:]
	t.Payload = buf[:copy(buf, t.Payload)]
	return t, true
}

func (r *recorder) Deadline() proto.Instant {
	d := proto.Never
	for _, s := range r.later {
		d = proto.Min(d, s.at)
	}
	return d
}

// last returns the latest datagram, or the zero one.
func (r *recorder) last() datagram {
	if len(r.got) == 0 {
		return datagram{}
	}
	return r.got[len(r.got)-1]
}

// sendNow makes h's recorder send one datagram at once and runs the sim until
// everything sent at this instant has landed.
func sendNow(t fataler, s *Sim, h *Host, from, to netip.AddrPort, data string, ttl uint8) {
	t.Helper()
	r := h.Machine().(*recorder)
	r.out = append(r.out, proto.Transmit{From: from, To: to, TTL: ttl, Payload: []byte(data)})
	h.Drain()
	if err := s.Run(s.Now()); err != nil {
		t.Fatal(err)
	}
}

// fataler is what testing.TB and *rapid.T share.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

func attachRecorder(h *Host) *recorder {
	r := &recorder{}
	h.Attach(r)
	return r
}

func TestEchoThroughNAT(t *testing.T) {
	pr := NewPair(PairConfig{Seed: 1, A: MustPreset("port-restricted-cone"), B: MustPreset("open")})
	s := pr.Sim
	var trace []byte
	s.SetTracer(func(r *TraceRecord) { trace = append(r.AppendText(trace), '\n') })
	a := attachRecorder(pr.A.Host)
	srv := attachRecorder(pr.Server)
	srv.echo = true
	a.out = append(a.out, proto.Transmit{To: pr.ServerAddr(), Payload: []byte("hello")})
	pr.A.Host.Drain()
	if err := s.RunFor(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(srv.got) != 1 || len(a.got) != 1 {
		t.Fatalf("server got %d, a got %d; trace:\n%s", len(srv.got), len(a.got), trace)
	}
	if got, want := srv.got[0].from.Addr(), pr.A.Outer().Addr(); got != want {
		t.Errorf("server saw source %v, want the NAT's address %v", got, want)
	}
	if srv.got[0].from.Port() != DefaultHostPort {
		t.Errorf("port-preserving NAT used port %d", srv.got[0].from.Port())
	}
	// a: 10 ms access + 5 ms server link, each way.
	if got, want := a.got[0].at, proto.Instant(30*time.Millisecond); got != want {
		t.Errorf("echo arrived at %v, want %v", time.Duration(got), time.Duration(want))
	}
	if a.got[0].from != pr.ServerAddr() || a.got[0].data != "hello" {
		t.Errorf("a got %+v", a.got[0])
	}
	t.Logf("trace:\n%s", trace)
}
