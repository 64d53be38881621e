package main

/*
typedef const char np_cchar;
typedef const void np_cvoid;
#include "natpass.h"
*/
import "C"

import (
	"unsafe"

	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

//export natpass_sio_poll_transmit
func natpass_sio_poll_transmit(h C.natpass_sio, nowNS C.int64_t, buf unsafe.Pointer, size C.size_t,
	to *C.char, toSize C.size_t, from *C.char, fromSize C.size_t, ttl *C.int32_t) C.int64_t {
	s, err := sioOf(h)
	if err != nil {
		return C.int64_t(fail(err))
	}
	if buf == nil || to == nil || from == nil {
		return C.int64_t(fail(errCode(codeInvalid, "natpass_sio_poll_transmit: buf, to and from must not be NULL")))
	}
	var n C.int64_t
	err = s.call(&nowNS, func() error {
		if !s.hasTx {
			s.tx, s.hasTx = s.nm.PollTransmit(proto.Instant(nowNS), s.txBuf)
			if !s.hasTx {
				return nil
			}
		}
		t := s.tx
		if len(t.Payload) > int(size) {
			return errCode(codeTooSmall, "natpass_sio_poll_transmit: the datagram is %d bytes, the buffer %d", len(t.Payload), size)
		}
		copy(cBytes(buf, size), t.Payload)
		copyString(t.To.String(), to, toSize)
		copyString(t.From.String(), from, fromSize)
		if ttl != nil {
			*ttl = C.int32_t(t.TTL)
		}
		s.tx, s.hasTx = proto.Transmit{}, false
		n = C.int64_t(len(t.Payload))
		return nil
	})
	if err != nil {
		return C.int64_t(fail(err))
	}
	return n
}

//export natpass_sio_poll_event
func natpass_sio_poll_event(h C.natpass_sio, ev *C.natpass_event, data unsafe.Pointer, size C.size_t) C.int32_t {
	s, err := sioOf(h)
	if err != nil {
		return status(err)
	}
	if ev == nil {
		return status(errCode(codeInvalid, "natpass_sio_poll_event: ev must not be NULL"))
	}
	var got C.int32_t
	err = s.call(nil, func() error {
		if s.ev == nil {
			e, ok := s.nm.PollEvent()
			if !ok {
				return nil
			}
			s.ev = e
		}
		var c cEvent
		c.nodeEvent(s.ev)
		if m, ok := s.ev.(node.EventMessage); ok {
			if len(m.Data) > int(size) || (data == nil && len(m.Data) > 0) {
				ev.data_len = C.uint64_t(len(m.Data))
				return errCode(codeTooSmall, "natpass_sio_poll_event: the message is %d bytes, the buffer %d", len(m.Data), size)
			}
			copy(cBytes(data, size), m.Data)
			s.credits[m.Peer] = s.credits[m.Peer].Add(m.Credit)
		}
		*ev = c.e
		s.ev, got = nil, 1
		return nil
	})
	if err != nil {
		return status(err)
	}
	return got
}

//export natpass_sio_deadline
func natpass_sio_deadline(h C.natpass_sio) C.int64_t {
	s, err := sioOf(h)
	if err != nil {
		return C.int64_t(fail(err))
	}
	d := proto.Never
	err = s.call(nil, func() error {
		d = s.nm.Deadline()
		if len(s.credits) > 0 {
			d = s.last // credit waits: come back now
		}
		return nil
	})
	if err != nil {
		return C.int64_t(fail(err))
	}
	return C.int64_t(d)
}

// peerArg checks a peer id argument.
func peerArg(fn string, peer *C.np_cchar) (string, error) {
	if peer == nil {
		return "", errCode(codeInvalid, "%s: peer must not be NULL", fn)
	}
	id := C.GoString((*C.char)(peer))
	if id == "" || len(id) > proto.MaxPeerIDLen {
		return "", errCode(codeInvalid, "%s: a peer id is 1–%d bytes", fn, proto.MaxPeerIDLen)
	}
	return id, nil
}

//export natpass_sio_connect
func natpass_sio_connect(h C.natpass_sio, nowNS C.int64_t, peer *C.np_cchar) C.int32_t {
	s, err := sioOf(h)
	if err != nil {
		return status(err)
	}
	id, err := peerArg("natpass_sio_connect", peer)
	if err != nil {
		return status(err)
	}
	return status(s.call(&nowNS, func() error {
		s.nm.Connect(proto.Instant(nowNS), id)
		return nil
	}))
}

//export natpass_sio_send
func natpass_sio_send(h C.natpass_sio, nowNS C.int64_t, peer *C.np_cchar, lane, mode C.int32_t, data *C.np_cvoid, n C.size_t) C.int32_t {
	s, err := sioOf(h)
	if err != nil {
		return status(err)
	}
	id, err := peerArg("natpass_sio_send", peer)
	if err != nil {
		return status(err)
	}
	if (data == nil && n > 0) || lane < 0 || mode < 0 || mode > C.NATPASS_UNRELIABLE {
		return status(errCode(codeInvalid, "natpass_sio_send: NULL data, or no lane %d or mode %d", lane, mode))
	}
	msg := cBytes(unsafePointer(data), n) // the machine copies it
	return status(s.call(&nowNS, func() error {
		return s.nm.Send(proto.Instant(nowNS), id, int(lane), rudp.Mode(mode), msg)
	}))
}

//export natpass_sio_close_peer
func natpass_sio_close_peer(h C.natpass_sio, nowNS C.int64_t, peer *C.np_cchar, code C.int32_t, reason *C.np_cchar) C.int32_t {
	s, err := sioOf(h)
	if err != nil {
		return status(err)
	}
	id, err := peerArg("natpass_sio_close_peer", peer)
	if err != nil {
		return status(err)
	}
	if code < 0 || code > 0xffff {
		return status(errCode(codeInvalid, "natpass_sio_close_peer: code %d is not 0–65535", code))
	}
	text := ""
	if reason != nil {
		text = C.GoString((*C.char)(reason))
	}
	return status(s.call(&nowNS, func() error {
		return s.nm.ClosePeer(proto.Instant(nowNS), id, uint16(code), text)
	}))
}

//export natpass_sio_conn_stats_get
func natpass_sio_conn_stats_get(h C.natpass_sio, peer *C.np_cchar, out *C.natpass_conn_stats, size C.size_t) C.int32_t {
	s, err := sioOf(h)
	if err != nil {
		return status(err)
	}
	id, err := peerArg("natpass_sio_conn_stats_get", peer)
	if err != nil {
		return status(err)
	}
	if out == nil {
		return status(errCode(codeInvalid, "natpass_sio_conn_stats_get: out must not be NULL"))
	}
	var st rudp.Stats
	var ok bool
	if err := s.call(nil, func() error { st, ok = s.nm.ConnStats(id); return nil }); err != nil {
		return status(err)
	}
	if !ok {
		return status(errCode(codeUnknownPeer, "natpass_sio_conn_stats_get: no peer %q", id))
	}
	cst := connStats(st)
	copyStruct(unsafe.Pointer(out), size, &cst)
	return 0
}
