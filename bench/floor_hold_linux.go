//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The hold: how long a datagram waited between its arrival in the relay's
// socket (the kernel's SO_TIMESTAMPNS stamp, CLOCK_REALTIME) and the moment
// the relay's loop woke up to forward it (one clock read per wake-up). Only
// with floorStampEnv set: stamping costs a control message per datagram, so
// the CPU rows are measured without it.

// floorStampEnv, set to 1, turns the hold measurement on.
const floorStampEnv = "NATPASS_BENCH_FLOOR_STAMP"

// floorStampRoom is the control room one datagram's stamp needs.
var floorStampRoom = unix.CmsgSpace(16)

// floorHoldBucketNs is the histogram's resolution; holds past the last
// bucket count in it.
const floorHoldBucketNs, floorHoldBuckets = 5_000, 4000

// floorHolds is the hold histogram (written by the loop, read and reset by
// floorAnswer).
type floorHolds struct {
	on      bool
	buckets [floorHoldBuckets]atomic.Uint64
}

// enableStamps asks the kernel to stamp fd's arrivals.
func (h *floorHolds) enableStamps(fd int) error {
	h.on = true
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
}

// wokeAt is the loop's clock at a wake-up, ns of CLOCK_REALTIME (0 when off).
func (h *floorHolds) wokeAt() int64 {
	if !h.on {
		return 0
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	return ts.Nano()
}

// add counts one datagram whose control messages are control, handled by a
// loop that woke at now.
func (h *floorHolds) add(control []byte, now int64) {
	if !h.on {
		return
	}
	for len(control) >= unix.SizeofCmsghdr {
		n := int(binary.NativeEndian.Uint64(control))
		level := int32(binary.NativeEndian.Uint32(control[8:]))
		typ := int32(binary.NativeEndian.Uint32(control[12:]))
		if n < unix.SizeofCmsghdr || n > len(control) {
			return
		}
		if level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && n >= unix.SizeofCmsghdr+16 {
			d := control[unix.SizeofCmsghdr:]
			at := int64(binary.NativeEndian.Uint64(d))*1e9 + int64(binary.NativeEndian.Uint64(d[8:]))
			i := min(max(now-at, 0)/floorHoldBucketNs, floorHoldBuckets-1)
			h.buckets[i].Add(1)
			return
		}
		control = control[min(unix.CmsgSpace(n-unix.SizeofCmsghdr), len(control)):]
	}
}

// report is "count p50-µs p99-µs max-bucket-µs" of the histogram; reset zeroes it.
func (h *floorHolds) report() string {
	var total uint64
	for i := range h.buckets {
		total += h.buckets[i].Load()
	}
	q := func(f float64) float64 {
		var seen uint64
		for i := range h.buckets {
			if seen += h.buckets[i].Load(); float64(seen) >= f*float64(total) {
				return float64((i+1)*floorHoldBucketNs) / 1e3
			}
		}
		return 0
	}
	return fmt.Sprintf("%d %.0f %.0f", total, q(0.5), q(0.99))
}

func (h *floorHolds) reset() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
}
