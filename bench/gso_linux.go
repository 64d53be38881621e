//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoBlast is the loopback ceiling: one socket sends gsoSegments datagrams of
// segSize bytes per sendmsg (UDP_SEGMENT) to another that reads with UDP_GRO, as
// fast as the kernel takes them, for dur. It returns the MiB/s that arrived (UDP
// payload) and the share lost. No encryption, no protocol: what one sender and
// one receiver on this machine can move through the kernel at all.
func gsoBlast(segSize int, dur time.Duration) (mibps, loss float64, err error) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, 0, err
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(8 << 20)
	if err := setSockoptInt(rx, unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
		return 0, 0, err
	}
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		return 0, 0, err
	}
	defer tx.Close()
	_ = tx.SetWriteBuffer(8 << 20)
	var got atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, err := rx.Read(buf)
			if err != nil {
				return
			}
			got.Add(uint64(n))
		}
	}()
	sent, err := gsoSend(tx, segSize, dur)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(100 * time.Millisecond) // the last GRO batches
	rx.Close()
	<-done
	n := got.Load()
	return float64(n) / (1 << 20) / dur.Seconds(), 1 - float64(n)/float64(sent), nil
}

// gsoSend sends segment batches on tx for dur and returns the payload bytes sent.
func gsoSend(tx *net.UDPConn, segSize int, dur time.Duration) (uint64, error) {
	buf := make([]byte, segSize*gsoSegments(segSize))
	oob := gsoControl(segSize)
	var sent uint64
	for end := time.Now().Add(dur); time.Now().Before(end); {
		n, _, err := tx.WriteMsgUDP(buf, oob, nil)
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ECONNREFUSED) {
				continue // the receiver's buffer was full: counted as loss
			}
			return sent, err
		}
		sent += uint64(n)
	}
	return sent, nil
}

func setSockoptInt(c *net.UDPConn, level, opt, v int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		return err
	}
	return serr
}

// gsoControl is the UDP_SEGMENT control message for segments of segSize bytes.
func gsoControl(segSize int) []byte {
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(segSize))
	return oob
}
