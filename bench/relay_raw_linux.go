//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natpass/natpass/node"
)

// Raw frames measure the servers alone: once the sessions are set up (natpass:
// Sans-IO nodes with the relay forced, connected over the relay; coturn: pion/turn
// with its channel bound), the bench writes the relay frames itself, relay-send
// `E1 22 channel` + payload from the natpass node's own socket (PROTOCOL.md §8.3;
// the payload is opaque to the server) and ChannelData `channel length` + payload
// from the TURN client's socket (RFC 8656 §12.4), and counts what arrives. No
// encryption, no rudp, no ACKs: the client costs almost nothing, and each frame
// is one datagram in and one out of the server, for both.

// setupNatpassRaw starts the natpass server child (relay budgets out of the way)
// and n relay-only sessions of Sans-IO nodes on 127.3.x.y addresses, then hands
// their sockets to raw senders and one counting goroutine.
func setupNatpassRaw(n int) (*relaySetup, error) {
	srv, err := startNatpassServer(1e5, 0)
	if err != nil {
		return nil, err
	}
	addrs := make([]netip.Addr, 2*n)
	for i := range addrs {
		a := loadAddr(i).As4()
		a[1]++ // 127.3.x.y: apart from the load generator's
		addrs[i] = netip.AddrFrom4(a)
	}
	g, err := newLoadGen(srv.addr, addrs, "r-", node.RelayForce)
	if err != nil {
		srv.stop()
		return nil, err
	}
	if err := connectRawPairs(g, n); err != nil {
		g.close()
		srv.stop()
		return nil, fmt.Errorf("natpass raw: %w", err)
	}
	flows := make([]*relayFlow, n)
	byReceiver := map[int]*relayFlow{}
	server := &unix.SockaddrInet4{Port: int(srv.addr.Port()), Addr: srv.addr.Addr().As4()}
	for i := range flows {
		fd, ch := g.nodes[2*i].fd, g.nodes[2*i].relayChannel
		f := &relayFlow{send: rawRelaySend(fd, ch, server), sendBurst: rawRelayBurst(fd, ch, server)}
		flows[i], byReceiver[2*i+1] = f, f
		// As the TURN peers' sockets (SetReadBuffer): the receiver must not be where
		// frames are lost.
		_ = unix.SetsockoptInt(g.nodes[2*i+1].fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		_ = enableGRO(g.nodes[2*i+1].fd)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var counting sync.WaitGroup
	counting.Go(func() { g.countRelayDelivers(ctx, byReceiver) })
	closeAll := func() {
		cancel()
		counting.Wait()
		g.close()
		srv.stop()
	}
	if err := warmUp(flows, 64); err != nil {
		closeAll()
		return nil, fmt.Errorf("natpass raw: %w", err)
	}
	return &relaySetup{server: srv, flows: flows, close: closeAll}, nil
}

// connectRawPairs registers the nodes, connects node 2i to node 2i+1 over the
// relay and waits until every node is connected and every sender's relay channel
// was seen in a relay-send.
func connectRawPairs(g *loadGen, n int) error {
	g.startAll()
	if err := g.run(time.Minute, func() bool { return g.registered == 2*n }); err != nil {
		return err
	}
	if g.registered < 2*n {
		return fmt.Errorf("%d of %d nodes registered in a minute", g.registered, 2*n)
	}
	for i := range n {
		now := g.now()
		g.nodes[2*i].m.Connect(now, fmt.Sprintf("r-%d", 2*i+1))
		g.service(2*i, now)
	}
	ready := func() bool {
		for i := range n {
			if g.nodes[2*i].relayChannel == 0 {
				return false
			}
		}
		return g.connected == 2*n
	}
	if err := g.run(time.Minute, ready); err != nil {
		return err
	}
	if !ready() {
		return fmt.Errorf("%d of %d nodes connected over the relay in a minute", g.connected, 2*n)
	}
	return nil
}

// rawRelaySend writes relay-send frames on channel from fd to the server.
func rawRelaySend(fd int, channel uint16, server *unix.SockaddrInet4) func([]byte) error {
	frame := make([]byte, 1472)
	frame[0], frame[1] = 0xE1, 0x22
	binary.BigEndian.PutUint16(frame[2:], channel)
	return func(p []byte) error {
		n := copy(frame[4:], p)
		return unix.Sendto(fd, frame[:4+n], 0, server)
	}
}

// countRelayDelivers counts the relay-delivers (`E1 23`) that reach the receiving
// nodes' sockets into their flows, payload bytes only, until ctx ends. The node
// machines are not run any more: the frames carry no keyx packets. The sockets
// read with UDP_GRO, as the TURN peers' do.
func (g *loadGen) countRelayDelivers(ctx context.Context, byReceiver map[int]*relayFlow) {
	events := make([]unix.EpollEvent, 256)
	buf, oob := make([]byte, 1<<16), make([]byte, unix.CmsgSpace(4))
	for ctx.Err() == nil {
		k, _ := unix.EpollWait(g.epfd, events, 50)
		for _, ev := range events[:max(k, 0)] {
			i := int(ev.Fd)
			f := byReceiver[i]
			for {
				n, oobn, _, _, err := unix.Recvmsg(g.nodes[i].fd, buf, oob, 0)
				if err != nil {
					break
				}
				if f != nil && n >= 4 && buf[0] == 0xE1 && buf[1] == 0x23 {
					countFrames(f, n, groSegment(oob[:oobn]), 4)
				}
			}
		}
	}
}

// groSegment is the segment size of a coalesced read (its UDP_GRO control
// message), 0 when the read holds one datagram.
func groSegment(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_GRO && len(m.Data) >= 4 {
			return int(binary.NativeEndian.Uint32(m.Data))
		}
	}
	return 0
}

// countFrames counts a read of n bytes holding datagrams of seg bytes (the last
// may be shorter; seg 0: one datagram), each with a header of header bytes.
func countFrames(f *relayFlow, n, seg, header int) {
	count := 1
	if seg > 0 {
		count = (n + seg - 1) / seg
	}
	f.received.Add(uint64(count))
	f.bytes.Add(uint64(n - count*header))
}

// enableGRO turns UDP_GRO on for a socket.
func enableGRO(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1) }

// rawRelayBurst writes k relay-send frames of payload p on channel in one
// UDP_SEGMENT sendmsg.
func rawRelayBurst(fd int, channel uint16, server *unix.SockaddrInet4) func(p []byte, k int) error {
	var buf []byte
	return func(p []byte, k int) error {
		buf = burstFrames(buf, k, p, func(f []byte) {
			f[0], f[1] = 0xE1, 0x22
			binary.BigEndian.PutUint16(f[2:], channel)
		})
		_, err := unix.SendmsgN(fd, buf, gsoControl(4+len(p)), server, 0)
		return err
	}
}

// rawChannelDataBurst writes k ChannelData frames of payload p on the first
// channel from c to server in one UDP_SEGMENT write.
func rawChannelDataBurst(c net.PacketConn, server *net.UDPAddr) func(p []byte, k int) error {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	var buf []byte
	return func(p []byte, k int) error {
		buf = burstFrames(buf, k, p, func(f []byte) {
			binary.BigEndian.PutUint16(f, turnFirstChannel)
			binary.BigEndian.PutUint16(f[2:], uint16(len(p)))
		})
		_, _, err := uc.WriteMsgUDP(buf, gsoControl(4+len(p)), server)
		return err
	}
}

// burstFrames lays k frames of a 4-byte header (filled by header) and p end to
// end, reusing buf.
func burstFrames(buf []byte, k int, p []byte, header func([]byte)) []byte {
	size := 4 + len(p)
	if cap(buf) < k*size {
		buf = make([]byte, k*size)
	}
	buf = buf[:k*size]
	for i := range k {
		f := buf[i*size : (i+1)*size]
		header(f)
		copy(f[4:], p)
	}
	return buf
}

// countDatagrams counts what arrives on c into f until c is closed, reading with
// UDP_GRO where the kernel has it.
func countDatagrams(c *net.UDPConn, f *relayFlow) {
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = enableGRO(int(fd)) })
	}
	buf, oob := make([]byte, 1<<16), make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		countFrames(f, n, groSegment(oob[:oobn]), 0)
	}
}
