package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pion/turn/v4"
)

// turnSession is one TURN allocation (pion/turn client) and its peer, a plain UDP
// socket the allocation writes to through a bound channel.
type turnSession struct {
	clientConn net.PacketConn
	client     *turn.Client
	relayed    net.PacketConn
	peer       *net.UDPConn
}

func (t *turnSession) close() {
	if t.relayed != nil {
		t.relayed.Close()
	}
	if t.client != nil {
		t.client.Close()
	}
	if t.clientConn != nil {
		t.clientConn.Close()
	}
	if t.peer != nil {
		t.peer.Close()
	}
}

// setupCoturn starts coturn and n sessions through it, each warmed up until a
// datagram went through after its channel was bound. With raw, sending then
// bypasses pion/turn: ChannelData frames written straight to the client's socket
// (relay_raw_linux.go).
func setupCoturn(n int, raw bool) (*relaySetup, error) {
	srv, err := startCoturn()
	if err != nil {
		return nil, err
	}
	sessions := make([]*turnSession, n)
	flows := make([]*relayFlow, n)
	var readers sync.WaitGroup
	closeAll := func() {
		for _, s := range sessions {
			if s != nil {
				s.close()
			}
		}
		readers.Wait()
		srv.stop()
	}
	err = parallel(n, 16, func(i int) error {
		s, err := dialTurnSession(srv)
		sessions[i] = s
		if err != nil {
			return err
		}
		f := &relayFlow{}
		peerAddr := s.peer.LocalAddr()
		f.send = func(p []byte) error { _, err := s.relayed.WriteTo(p, peerAddr); return err }
		flows[i] = f
		readers.Go(func() { countDatagrams(s.peer, f) })
		return nil
	})
	if err == nil {
		err = warmUp(flows, 64)
	}
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("coturn: %w", err)
	}
	if raw {
		to := net.UDPAddrFromAddrPort(srv.addr)
		for i, f := range flows {
			f.send = rawChannelData(sessions[i].clientConn, to)
			f.sendBurst = rawChannelDataBurst(sessions[i].clientConn, to)
		}
	}
	return &relaySetup{server: srv, flows: flows, close: closeAll}, nil
}

// dialTurnSession allocates a relayed address on srv for a new client socket and
// opens the peer socket.
func dialTurnSession(srv *childServer) (*turnSession, error) {
	s := &turnSession{}
	var err error
	if s.clientConn, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
		return s, err
	}
	if s.peer, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return s, err
	}
	_ = s.peer.SetReadBuffer(4 << 20)
	s.client, err = turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: srv.addr.String(), TURNServerAddr: srv.addr.String(), Conn: s.clientConn,
		Username: turnUser, Password: turnPass, Realm: turnRealm, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		return s, err
	}
	if err = s.client.Listen(); err != nil {
		return s, err
	}
	s.relayed, err = s.client.Allocate()
	return s, err
}

// warmUp sends a size-byte datagram on every flow every 100 ms until each has had
// two arrive (the first may travel as a Send indication before pion/turn bound the
// channel), then waits a little more so every channel is bound.
func warmUp(flows []*relayFlow, size int) error {
	msg := make([]byte, size)
	deadline := time.Now().Add(20 * time.Second)
	for {
		done := 0
		for _, f := range flows {
			if f.received.Load() >= 2 {
				done++
				continue
			}
			_ = f.send(msg)
		}
		if done == len(flows) {
			time.Sleep(200 * time.Millisecond)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: %d of %d sessions carried nothing after 20 s", len(flows)-done, len(flows))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// turnFirstChannel is the channel number pion/turn binds first (its binding
// manager counts from the bottom of RFC 8656's range): each session's only peer.
const turnFirstChannel = 0x4000

// rawChannelData writes ChannelData frames (RFC 8656 §12.4: channel, length,
// payload; no padding over UDP) on the first channel from c to the server.
func rawChannelData(c net.PacketConn, server net.Addr) func([]byte) error {
	frame := make([]byte, 4+65535)
	binary.BigEndian.PutUint16(frame, turnFirstChannel)
	return func(p []byte) error {
		n := copy(frame[4:], p)
		binary.BigEndian.PutUint16(frame[2:], uint16(n))
		_, err := c.WriteTo(frame[:4+n], server)
		return err
	}
}
