//go:build !linux

package main

import (
	"errors"
	"net"
)

// setupNatpassRaw needs Linux (epoll, and 127.0.0.0/8 routed to lo).
func setupNatpassRaw(n int) (*relaySetup, error) {
	return nil, errors.New("raw relay frames need Linux")
}

// rawChannelDataBurst: no UDP_SEGMENT outside Linux.
func rawChannelDataBurst(c net.PacketConn, server *net.UDPAddr) func(p []byte, k int) error {
	return nil
}

// countDatagrams counts what arrives on c into f until c is closed.
func countDatagrams(c *net.UDPConn, f *relayFlow) {
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f.received.Add(1)
		f.bytes.Add(uint64(n))
	}
}
