//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The floor relay's sessions (floor_child_linux.go): each a sending and a
// receiving socket on 127.0.0.1, bound to one channel, the sender writing
// `F1 02 channel` + payload with one sendto per datagram, as the -raw senders
// do; one goroutine reads every receiving socket through epoll. Each payload's
// first 8 bytes carry the time it was sent (ns since the setup began), so the
// receiver measures the one-way latency through the relay.

// startFloorServer starts this binary as a floor relay of style with env added.
func startFloorServer(style string, env []string) (*childServer, error) {
	c, err := startChild(style, env)
	if err != nil {
		return nil, err
	}
	stdin, out := c.stdin, c.out
	var mu sync.Mutex
	ask := func(q string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := io.WriteString(stdin, q+"\n"); err != nil {
			return "", err
		}
		line, err := out.ReadString('\n')
		return strings.TrimSpace(line), err
	}
	counters := func() (serverCounters, error) {
		var c serverCounters
		line, err := ask("stats")
		if err == nil {
			_, err = fmt.Sscan(line, &c.datagramsIn, &c.relayForwarded)
		}
		return c, err
	}
	return &childServer{name: style, cmd: c.cmd, addr: c.addr, stop: c.stop, counters: counters, ask: ask}, nil
}

// floorLatency collects the one-way latencies the receiver measured.
type floorLatency struct {
	mu      sync.Mutex
	samples []time.Duration
}

func (l *floorLatency) reset() { l.mu.Lock(); l.samples = l.samples[:0]; l.mu.Unlock() }

// quantiles returns the p50 and p99 of the samples so far.
func (l *floorLatency) quantiles() (p50, p99 time.Duration) {
	l.mu.Lock()
	s := slices.Clone(l.samples)
	l.mu.Unlock()
	if len(s) == 0 {
		return 0, 0
	}
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100]
}

// setupFloor starts a floor relay of style and n sessions through it, bound
// and warmed up.
func setupFloor(style string, env []string, n int) (*relaySetup, *floorLatency, error) {
	srv, err := startFloorServer(style, env)
	if err != nil {
		return nil, nil, err
	}
	sess, err := openFloorSessions(n)
	if err != nil {
		srv.stop()
		return nil, nil, err
	}
	to := &unix.SockaddrInet4{Port: int(srv.addr.Port()), Addr: srv.addr.Addr().As4()}
	base := time.Now()
	lat := &floorLatency{}
	flows := make([]*relayFlow, n)
	for i := range flows {
		flows[i] = &relayFlow{send: floorSender(sess.senders[i], uint16(i+1), to, base)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var reading sync.WaitGroup
	reading.Go(func() { sess.receive(ctx, flows, base, lat) })
	closeAll := func() {
		cancel()
		reading.Wait()
		sess.close()
		srv.stop()
	}
	if err := sess.bind(flows, to); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("%s: %w", style, err)
	}
	return &relaySetup{server: srv, flows: flows, close: closeAll}, lat, nil
}

// floorSessions are the sessions' sockets and the receivers' epoll.
type floorSessions struct {
	senders, receivers []int
	epfd               int
}

func openFloorSessions(n int) (*floorSessions, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	s := &floorSessions{epfd: epfd}
	for i := range n {
		snd, err1 := floorRawSocket()
		rcv, err2 := floorRawSocket()
		if err1 != nil || err2 != nil {
			s.close()
			return nil, fmt.Errorf("floor session %d: %v %v", i, err1, err2)
		}
		s.senders, s.receivers = append(s.senders, snd), append(s.receivers, rcv)
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, rcv, &ev); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *floorSessions) close() {
	for _, fd := range append(s.senders, s.receivers...) {
		unix.Close(fd)
	}
	unix.Close(s.epfd)
}

// floorSender writes data frames on channel from fd to the relay, each
// payload's first 8 bytes the time since base.
func floorSender(fd int, channel uint16, to *unix.SockaddrInet4, base time.Time) func([]byte) error {
	frame := make([]byte, 4+1472)
	frame[0], frame[1] = floorMagic, floorData
	binary.BigEndian.PutUint16(frame[2:], channel)
	return func(p []byte) error {
		n := copy(frame[4:], p)
		if n >= 8 {
			binary.BigEndian.PutUint64(frame[4:], uint64(time.Since(base)))
		}
		return unix.Sendto(fd, frame[:4+n], 0, to)
	}
}

// bind binds every session's channel at both ends, again each 100 ms for
// those that have not carried a datagram yet, for up to 20 s (a bind can be
// lost in a full socket buffer).
func (s *floorSessions) bind(flows []*relayFlow, to *unix.SockaddrInet4) error {
	probe := make([]byte, 16)
	deadline := time.Now().Add(20 * time.Second)
	for {
		waiting := 0
		for i, f := range flows {
			if f.received.Load() > 0 {
				continue
			}
			waiting++
			ch := uint16(i + 1)
			_ = unix.Sendto(s.receivers[i], []byte{floorMagic, floorBind, byte(ch >> 8), byte(ch)}, 0, to)
			_ = unix.Sendto(s.senders[i], []byte{floorMagic, floorBindSrc, byte(ch >> 8), byte(ch)}, 0, to)
			time.Sleep(time.Microsecond) // let the relay keep up
			_ = f.send(probe)
		}
		if waiting == 0 {
			time.Sleep(200 * time.Millisecond)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d floor sessions carried nothing after 20 s", waiting, len(flows))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// receive counts what reaches the receiving sockets into their flows (payload
// bytes only) and the latency of each, until ctx ends.
func (s *floorSessions) receive(ctx context.Context, flows []*relayFlow, base time.Time, lat *floorLatency) {
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		k, _ := unix.EpollWait(s.epfd, events, 50)
		for _, ev := range events[:max(k, 0)] {
			i := int(ev.Fd)
			for {
				n, _, err := unix.Recvfrom(s.receivers[i], buf, 0)
				if err != nil {
					break
				}
				if n < 4 || buf[0] != floorMagic || buf[1] != floorDeliver {
					continue // a bind's answer
				}
				flows[i].received.Add(1)
				flows[i].bytes.Add(uint64(n - 4))
				if n >= 12 {
					sent := time.Duration(binary.BigEndian.Uint64(buf[4:]))
					lat.mu.Lock()
					lat.samples = append(lat.samples, time.Since(base)-sent)
					lat.mu.Unlock()
				}
			}
		}
	}
}
