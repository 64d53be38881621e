package machinetest

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
)

// pinger is a toy machine that keeps the contract: every interval it pings its peer,
// it answers a ping with a pong, and a pong becomes an event carrying the RTT.
type pinger struct {
	local, peer netip.AddrPort
	interval    time.Duration
	now         proto.Instant
	next        proto.Instant // next ping; Never once closed
	sentAt      proto.Instant
	out         [4]struct {
		to  netip.AddrPort
		msg byte
	}
	outLen int
	events []any
	got    int // datagrams accepted
}

type pongEvent struct{ RTT time.Duration }

type gotEvent struct {
	Msg  byte
	From netip.AddrPort
}

const (
	msgPing byte = 'P'
	msgPong byte = 'O'
	msgNote byte = 'N' // a datagram the toy accepts and reports, for ordering tests
)

var errToy = errors.New("toy: not a ping")

// newPinger returns a toy at time 0 whose first ping is due at first (Never: it only
// answers).
func newPinger(local, peer netip.AddrPort, first proto.Instant, interval time.Duration) *pinger {
	return &pinger{local: local, peer: peer, interval: interval, next: first}
}

func (p *pinger) advance(now proto.Instant) {
	if now < p.now {
		panic("toy: time went backwards")
	}
	p.now = now
}

func (p *pinger) queue(to netip.AddrPort, msg byte) {
	if p.outLen < len(p.out) {
		p.out[p.outLen].to, p.out[p.outLen].msg = to, msg
		p.outLen++
	}
}

func (p *pinger) HandleDatagram(now proto.Instant, local, from netip.AddrPort, b []byte) error {
	p.advance(now)
	if len(b) != 1 {
		return errToy
	}
	switch b[0] {
	case msgPing:
		p.queue(from, msgPong)
	case msgPong:
		p.events = append(p.events, pongEvent{RTT: now.Sub(p.sentAt)})
	case msgNote:
		p.events = append(p.events, gotEvent{Msg: b[0], From: from})
	default:
		return errToy
	}
	p.got++
	return nil
}

func (p *pinger) HandleTimeout(now proto.Instant) {
	p.advance(now)
	if now >= p.next {
		p.queue(p.peer, msgPing)
		p.sentAt = now
		p.next = now.Add(p.interval)
	}
}

func (p *pinger) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	if p.outLen == 0 {
		return proto.Transmit{}, false
	}
	o := p.out[0]
	copy(p.out[:], p.out[1:p.outLen])
	p.outLen--
	buf[0] = o.msg
	return proto.Transmit{From: p.local, To: o.to, Payload: buf[:1]}, true
}

func (p *pinger) PollEvent() (any, bool) {
	if len(p.events) == 0 {
		p.events = p.events[:0]
		return nil, false
	}
	e := p.events[0]
	p.events = p.events[1:]
	return e, true
}

func (p *pinger) Deadline() proto.Instant { return p.next }

func (p *pinger) Close() { p.next = proto.Never }

// fatalTB records the first Fatalf and stops the caller by panicking, so a test can
// assert that the kit reports a broken machine.
type fatalTB struct{ msg string }

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// failure runs fn against a fatalTB and returns what it reported ("" for nothing).
func failure(fn func(t TB)) (msg string) {
	f := &fatalTB{}
	defer func() {
		if r := recover(); r != nil && r != any(f) {
			panic(r)
		}
		msg = f.msg
	}()
	fn(f)
	return ""
}
