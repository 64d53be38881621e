package main

/*
typedef const char np_cchar;
typedef const void np_cvoid;
#include "natpass.h"
*/
import "C"

import (
	"sync"
	"time"
	"unsafe"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rudp"
)

// connState is a driver-level connection behind a natpass_conn handle.
type connState struct {
	c     *driver.Conn
	owner *nodeState

	// recvMu serializes receivers, so that a message a too-small buffer left
	// in pending goes to the next natpass_recv and to no other.
	recvMu  sync.Mutex
	pending *driver.Message
}

func connOf(h C.natpass_conn) (*connState, error) {
	return lookup[*connState](int64(h), "connection")
}

//export natpass_conn_peer
func natpass_conn_peer(h C.natpass_conn, buf *C.char, size C.size_t) C.int64_t {
	cs, err := connOf(h)
	if err != nil {
		return C.int64_t(fail(err))
	}
	return copyString(cs.c.Peer(), buf, size)
}

//export natpass_send
func natpass_send(h C.natpass_conn, lane, mode C.int32_t, data *C.np_cvoid, n C.size_t, timeoutMS C.int64_t) C.int32_t {
	cs, err := connOf(h)
	if err != nil {
		return status(err)
	}
	if data == nil && n > 0 {
		return status(errCode(codeInvalid, "natpass_send: data is NULL"))
	}
	if mode < 0 || mode > C.NATPASS_UNRELIABLE || lane < 0 {
		return status(errCode(codeInvalid, "natpass_send: no lane %d or mode %d", lane, mode))
	}
	ctx, cancel := waitCtx(timeoutMS, true)
	defer cancel()
	// The bytes are read in place: Send copies them before it returns.
	msg := cBytes(unsafe.Pointer(data), n)
	return status(cs.c.SendContext(ctx, int(lane), rudp.Mode(mode), msg))
}

//export natpass_flush
func natpass_flush(h C.natpass_conn, timeoutMS C.int64_t) C.int32_t {
	cs, err := connOf(h)
	if err != nil {
		return status(err)
	}
	ctx, cancel := waitCtx(timeoutMS, true)
	defer cancel()
	return status(cs.c.Flush(ctx))
}

//export natpass_recv
func natpass_recv(h C.natpass_conn, buf unsafe.Pointer, size C.size_t, lane, mode *C.int32_t, need *C.uint64_t, timeoutMS C.int64_t) C.int64_t {
	cs, err := connOf(h)
	if err != nil {
		return C.int64_t(fail(err))
	}
	cs.recvMu.Lock()
	defer cs.recvMu.Unlock()
	if cs.pending == nil {
		ctx, cancel := waitCtx(timeoutMS, false)
		m, err := cs.c.Recv(ctx)
		cancel()
		if err != nil {
			return C.int64_t(fail(err))
		}
		cs.pending = &m
	}
	m := cs.pending
	if need != nil {
		*need = C.uint64_t(len(m.Data))
	}
	if len(m.Data) > int(size) || (buf == nil && len(m.Data) > 0) {
		return C.int64_t(fail(errCode(codeTooSmall, "natpass_recv: the message is %d bytes, the buffer %d", len(m.Data), size)))
	}
	copy(cBytes(buf, size), m.Data)
	if lane != nil {
		*lane = C.int32_t(m.Lane)
	}
	if mode != nil {
		*mode = C.int32_t(m.Mode)
	}
	cs.pending = nil
	return C.int64_t(len(m.Data))
}

//export natpass_path_event
func natpass_path_event(h C.natpass_conn, ev *C.natpass_event, timeoutMS C.int64_t) C.int32_t {
	cs, err := connOf(h)
	if err != nil {
		return status(err)
	}
	if ev == nil {
		return status(errCode(codeInvalid, "natpass_path_event: ev must not be NULL"))
	}
	var e driver.PathEvent
	select {
	case e = <-cs.c.PathEvents():
	default:
		if timeoutMS == 0 {
			return status(errCode(codeTimeout, "natpass_path_event: no path change waiting"))
		}
		ctx, cancel := waitCtx(timeoutMS, false)
		defer cancel()
		select {
		case e = <-cs.c.PathEvents():
		case <-ctx.Done():
			return status(ctx.Err())
		}
	}
	var c cEvent
	c.pathEvent(cs.c.Peer(), e)
	*ev = c.e
	return 1
}

//export natpass_path
func natpass_path(h C.natpass_conn, ev *C.natpass_event) C.int32_t {
	cs, err := connOf(h)
	if err != nil {
		return status(err)
	}
	if ev == nil {
		return status(errCode(codeInvalid, "natpass_path: ev must not be NULL"))
	}
	var c cEvent
	c.pathEvent(cs.c.Peer(), cs.c.Path())
	*ev = c.e
	return 0
}

// connStats converts rudp's statistics.
func connStats(st rudp.Stats) C.natpass_conn_stats {
	ns := func(d time.Duration) C.int64_t { return C.int64_t(d.Nanoseconds()) }
	return C.natpass_conn_stats{
		srtt_ns: ns(st.SRTT), min_rtt_ns: ns(st.MinRTT), latest_rtt_ns: ns(st.LatestRTT),
		cwnd_bytes: C.int64_t(st.Cwnd), bytes_in_flight: C.int64_t(st.BytesInFlight),
		send_buffered: C.int64_t(st.SendBuffered),
		packets_sent:  C.uint64_t(st.PacketsSent), packets_received: C.uint64_t(st.PacketsReceived),
		packets_lost: C.uint64_t(st.PacketsLost), retransmits: C.uint64_t(st.Retransmits),
		bytes_sent: C.uint64_t(st.BytesSent), bytes_received: C.uint64_t(st.BytesReceived),
	}
}

//export natpass_conn_stats_get
func natpass_conn_stats_get(h C.natpass_conn, out *C.natpass_conn_stats, size C.size_t) C.int32_t {
	cs, err := connOf(h)
	if err != nil {
		return status(err)
	}
	if out == nil {
		return status(errCode(codeInvalid, "natpass_conn_stats_get: out must not be NULL"))
	}
	st, err := cs.c.Stats()
	if err != nil {
		return status(err)
	}
	cst := connStats(st)
	copyStruct(unsafe.Pointer(out), size, &cst)
	return 0
}

//export natpass_conn_close
func natpass_conn_close(h C.natpass_conn) C.int32_t {
	cs, err := connOf(h)
	if err != nil {
		return status(err)
	}
	cs.owner.forget(cs.c)
	return status(cs.c.Close())
}
