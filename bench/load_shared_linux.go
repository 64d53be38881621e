//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natpass/natpass/node"
)

// The shared-socket generator: one socket, bound to 0.0.0.0 on one port, serves
// every node; each node has an address of its own (127.x.y.z) at that port. A node
// sends with its address as the datagram's source (IP_PKTINFO), and a datagram
// received goes to the node its destination address names. So the server sees as
// many distinct sources as with one socket per node, and the generator needs one
// descriptor instead of one per node: more nodes than the descriptor limit (here
// 20,000, which root may not raise in this container) fit in one process.

// sharedRecvBuf is the shared socket's receive buffer: a registration storm of
// 100,000 nodes answers in bursts.
const sharedRecvBuf = 64 << 20

// newSharedLoadGen is newLoadGen with one shared socket; addrs must be distinct
// IPv4 addresses of this host.
func newSharedLoadGen(server netip.AddrPort, addrs []netip.Addr, prefix string, relay node.RelayPolicy) (*loadGen, error) {
	fd, port, err := bindSharedSocket()
	if err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	g := &loadGen{epfd: epfd, start: time.Now(), buf: make([]byte, 2048), rxBuf: make([]byte, 2048),
		shared: fd, byAddr: make(map[netip.Addr]int, len(addrs)), oob: make([]byte, 64)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}); err != nil {
		g.close()
		return nil, err
	}
	for i, a := range addrs {
		if _, dup := g.byAddr[a]; dup || !a.Is4() {
			g.close()
			return nil, fmt.Errorf("node %d: %v is not a distinct IPv4 address", i, a)
		}
		n, err := g.newNode(server, fd, netip.AddrPortFrom(a, port), fmt.Sprintf("%s%d", prefix, i), relay)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("node %d on %v: %w", i, a, err)
		}
		g.byAddr[a] = i
		g.nodes = append(g.nodes, n)
	}
	return g, nil
}

// bindSharedSocket binds a non-blocking UDP socket on 0.0.0.0 (port 0: the kernel
// picks) that reports each datagram's destination address.
func bindSharedSocket() (int, uint16, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sharedRecvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sharedRecvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, uint16(sa.(*unix.SockaddrInet4).Port), nil
}

// sourceCmsg is the control message that makes a datagram leave from src.
func sourceCmsg(src netip.Addr) []byte {
	return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: src.As4()})
}

// receiveShared hands every datagram waiting on the shared socket to the node at
// its destination address; one for no node is dropped.
func (g *loadGen) receiveShared() {
	for {
		k, oobn, _, from, err := unix.Recvmsg(g.shared, g.rxBuf, g.oob, 0)
		if err != nil {
			return // EAGAIN: drained
		}
		sa, ok := from.(*unix.SockaddrInet4)
		dst, found := pktinfoDst(g.oob[:oobn])
		i, known := g.byAddr[dst]
		if !ok || !found || !known {
			continue
		}
		now := g.now()
		n := g.nodes[i]
		_ = n.m.HandleDatagram(now, n.local, netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), g.rxBuf[:k])
		g.service(i, now)
	}
}

// pktinfoDst is the destination address an IP_PKTINFO control message names.
func pktinfoDst(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			// struct in_pktinfo: ifindex (4 bytes), spec_dst (4), addr (4): the
			// header's destination address.
			return netip.AddrFrom4([4]byte(m.Data[8:12])), true
		}
	}
	return netip.Addr{}, false
}
