package main

/*
typedef const char np_cchar;
typedef const void np_cvoid;
#include "natpass.h"
*/
import "C"

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
)

// cEvent is a natpass_event being filled (Go memory; copied out whole).
type cEvent struct{ e C.natpass_event }

func (c *cEvent) peer(s string) { putString(field(&c.e.peer[0], len(c.e.peer)), s) }
func (c *cEvent) text(s string) { putString(field(&c.e.text[0], len(c.e.text)), s) }
func (c *cEvent) addr(a netip.AddrPort) {
	putString(field(&c.e.addr[0], len(c.e.addr)), addrText(a))
}
func (c *cEvent) addr2(a netip.AddrPort) {
	putString(field(&c.e.addr2[0], len(c.e.addr2)), addrText(a))
}

// addrText is "" for the zero address (a relayed path has no local socket).
func addrText(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// pathEvent fills a NATPASS_EVENT_PATH_CHANGED.
func (c *cEvent) pathEvent(peer string, e driver.PathEvent) {
	c.e._type = C.NATPASS_EVENT_PATH_CHANGED
	c.peer(peer)
	c.e.kind = C.int32_t(e.Kind)
	c.addr(e.Local)
	c.addr2(e.Remote)
	c.e.rtt_ns = C.int64_t(e.RTT / time.Nanosecond)
	c.text(e.Reason)
}

// serverEvent fills the events about the server session; false when e is not one.
func (c *cEvent) serverEvent(e node.Event) bool {
	switch e := e.(type) {
	case node.EventRegistered:
		c.e._type = C.NATPASS_EVENT_REGISTERED
		c.addr(e.Observed)
		c.addr2(e.Server)
	case node.EventServerChanged:
		c.e._type = C.NATPASS_EVENT_SERVER_CHANGED
		c.addr(e.From)
		c.addr2(e.To)
		c.text(e.Reason)
	case node.EventNATReport:
		c.e._type = C.NATPASS_EVENT_NAT_REPORT
		c.addr(e.Observed)
		c.text(fmt.Sprint(e.Behavior))
	case node.EventOpenSockets:
		c.e._type = C.NATPASS_EVENT_OPEN_SOCKETS
		c.e.tag, c.e.count = C.uint64_t(e.Tag), C.int32_t(e.N)
	case node.EventClosed:
		c.e._type = C.NATPASS_EVENT_CLOSED
		c.e.code = C.int32_t(e.Code)
		c.text(e.Reason)
	default:
		return false
	}
	return true
}

// nodeEvent fills c from a node event; a message's bytes are the caller's
// business (data_len is set here).
func (c *cEvent) nodeEvent(e node.Event) {
	if c.serverEvent(e) {
		return
	}
	switch e := e.(type) {
	case node.EventIntroduced:
		c.e._type = C.NATPASS_EVENT_INTRODUCED
		c.peer(e.Peer)
		c.text(e.Strategy.String())
	case node.EventPathChanged:
		c.pathEvent(e.Peer, driver.PathEvent{Kind: e.Kind, Local: e.Local, Remote: e.Remote, RTT: e.RTT, Reason: e.Reason})
	case node.EventPeerError:
		c.e._type = C.NATPASS_EVENT_PEER_ERROR
		c.peer(e.Peer)
		c.e.code = C.int32_t(e.Code)
		c.text(e.Text)
	case node.EventConnected:
		c.e._type = C.NATPASS_EVENT_CONNECTED
		c.peer(e.Peer)
	case node.EventMessage:
		c.e._type = C.NATPASS_EVENT_MESSAGE
		c.peer(e.Peer)
		c.e.lane, c.e.mode = C.int32_t(e.Lane), C.int32_t(e.Mode)
		c.e.data_len = C.uint64_t(len(e.Data))
	case node.EventPeerClosed:
		c.e._type = C.NATPASS_EVENT_PEER_CLOSED
		c.peer(e.Peer)
		c.e.code = C.int32_t(e.Reason.Code)
		if e.Reason.Local {
			c.e.local = 1
		}
		c.text(e.Reason.Text)
	default:
		c.e._type = C.NATPASS_EVENT_OTHER
		c.text(fmt.Sprintf("%T %+v", e, e))
	}
}
