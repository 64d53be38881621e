package main

/*
typedef const char np_cchar;
typedef const void np_cvoid;
#include "natpass.h"
*/
import "C"

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/proto"
)

// sioState is a Sans-IO node behind a natpass_sio handle: node.Node plus what
// the C calling convention needs around it: a lock (the machine is not safe for
// concurrent use, and C callers may not know), the outputs a too-small buffer
// left behind, and the credit of messages polled but not yet given back.
type sioState struct {
	mu     sync.Mutex
	nm     *node.Node
	last   proto.Instant // the latest now: the machine panics on a decrease, we refuse it
	broken error         // a panic poisoned the node

	txBuf   []byte
	tx      proto.Transmit // polled, not yet copied out (when hasTx)
	hasTx   bool
	ev      node.Event // polled, not yet copied out (when non-nil)
	credits map[string]node.Credit
}

// devSecret mints tickets for an --insecure-dev server, which checks a ticket's
// layout and expiry but not its MAC.
var devSecret = []byte("natpass capi insecure-dev ticket")

// defaultTicketTTL is the lifetime of tickets minted from a secret (as the driver's).
const defaultTicketTTL = 24 * time.Hour

// nodeConfig builds the machine's configuration from the gathered options.
func nodeConfig(cfg driver.Config, local netip.AddrPort, now proto.Instant) (node.Config, error) {
	nc := node.Config{ID: []byte(cfg.ID), Local: local, PrivateKey: cfg.PrivateKey, Rand: rand.Reader,
		RegisterTimeout: cfg.RegisterTimeout, Relay: cfg.Relay, RUDP: cfg.RUDP,
		Wall: proto.WallClock{At: now, Time: time.Now()}}
	if len(cfg.ID) == 0 || len(cfg.ID) > proto.MaxPeerIDLen {
		return nc, fmt.Errorf("%w: id must be 1–%d bytes", driver.ErrBadConfig, proto.MaxPeerIDLen)
	}
	if len(cfg.Servers) == 0 || len(cfg.Servers) > 64 {
		return nc, fmt.Errorf("%w: give 1–64 servers", driver.ErrBadConfig)
	}
	for _, s := range cfg.Servers {
		a, err := net.ResolveUDPAddr("udp", s)
		if err != nil {
			return nc, fmt.Errorf("%w: server %s: %v", driver.ErrBadConfig, s, err)
		}
		ap := a.AddrPort() // a 16-byte IPv4 in net.UDPAddr reads as ::ffff:a.b.c.d: unmap it
		nc.Servers = append(nc.Servers, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	if _, err := rand.Read(nc.Seed[:]); err != nil {
		return nc, err
	}
	var err error
	nc.Ticket, nc.PrivateKey, err = sioTicket(cfg)
	return nc, err
}

// sioTicket is the ticket the node registers with and its key: the configured
// one, or one minted from the secret (or for an --insecure-dev server).
func sioTicket(cfg driver.Config) ([]byte, [32]byte, error) {
	ways := 0
	for _, set := range []bool{len(cfg.Ticket) > 0, len(cfg.Secret) > 0, cfg.InsecureDev} {
		if set {
			ways++
		}
	}
	if ways != 1 {
		return nil, cfg.PrivateKey, fmt.Errorf("%w: set exactly one of ticket, secret-file, insecure-dev", driver.ErrBadConfig)
	}
	if len(cfg.Ticket) > 0 {
		return cfg.Ticket, cfg.PrivateKey, nil
	}
	priv := cfg.PrivateKey
	if priv == ([32]byte{}) {
		var err error
		if priv, _, err = driver.NewKey(); err != nil {
			return nil, priv, err
		}
	}
	pub, err := driver.PublicKey(priv)
	if err != nil {
		return nil, priv, fmt.Errorf("%w: key: %v", driver.ErrBadConfig, err)
	}
	secret := cfg.Secret
	if cfg.InsecureDev {
		secret = devSecret
	}
	t, err := driver.MintTicket(secret, cfg.ID, pub, defaultTicketTTL)
	return t, priv, err
}

//export natpass_sio_new
func natpass_sio_new(h C.natpass_config, local *C.np_cchar, nowNS C.int64_t) (handle C.natpass_sio) {
	cfg, err := configOf(h)
	if err != nil {
		return C.natpass_sio(fail(err))
	}
	la, err := addrPort("local", local)
	if err != nil {
		return C.natpass_sio(fail(err))
	}
	if !la.Addr().IsValid() || la.Addr().IsUnspecified() || la.Port() == 0 {
		return C.natpass_sio(fail(errCode(codeInvalid, "natpass_sio_new: local %v is not a bound socket's address", la)))
	}
	now := proto.Instant(nowNS)
	nc, err := nodeConfig(cfg, la, now)
	if err != nil {
		return C.natpass_sio(fail(err))
	}
	s := &sioState{txBuf: make([]byte, C.NATPASS_MAX_DATAGRAM), credits: map[string]node.Credit{}, last: now}
	err = s.call(nil, func() error {
		s.nm = node.New(nc)
		s.nm.Start(now)
		return nil
	})
	if err != nil {
		return C.natpass_sio(fail(err))
	}
	return C.natpass_sio(newHandle(s))
}

// call runs f with the node locked: it refuses a clock that went back (when now
// is given), gives back the credit of messages polled since the last call, and
// turns a panic into ERR_INTERNAL, poisoning the node.
func (s *sioState) call(now *C.int64_t, f func() error) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return errCode(codeInternal, "natpass: this node failed earlier: %v", s.broken)
	}
	defer func() {
		if r := recover(); r != nil {
			s.broken = fmt.Errorf("panic: %v", r)
			err = errCode(codeInternal, "natpass: internal error (a bug; please report): %v", r)
		}
	}()
	if now != nil {
		t := proto.Instant(*now)
		if t < s.last {
			return errCode(codeInvalid, "natpass: now_ns went back from %d to %d", s.last, t)
		}
		s.last = t
		s.giveCredit(t)
	}
	return f()
}

// giveCredit hands the machine the credit of the messages polled so far.
func (s *sioState) giveCredit(now proto.Instant) {
	for peer, cr := range s.credits {
		s.nm.Consumed(now, cr)
		delete(s.credits, peer)
	}
}

func sioOf(h C.natpass_sio) (*sioState, error) { return lookup[*sioState](int64(h), "Sans-IO node") }

//export natpass_sio_free
func natpass_sio_free(h C.natpass_sio) C.int32_t {
	if _, err := sioOf(h); err != nil {
		return status(err)
	}
	freeHandle(int64(h))
	return 0
}

//export natpass_sio_handle_datagram
func natpass_sio_handle_datagram(h C.natpass_sio, nowNS C.int64_t, local, from *C.np_cchar, data *C.np_cvoid, n C.size_t) C.int32_t {
	s, err := sioOf(h)
	if err != nil {
		return status(err)
	}
	la, err := addrPort("local", local)
	if err != nil {
		return status(err)
	}
	fa, err := addrPort("from", from)
	if err != nil {
		return status(err)
	}
	p := cBytes(unsafePointer(data), n)
	return status(s.call(&nowNS, func() error {
		if err := s.nm.HandleDatagram(proto.Instant(nowNS), la, fa, p); err != nil {
			return errCode(codeRejected, "natpass: datagram from %v refused: %v", fa, err)
		}
		return nil
	}))
}

//export natpass_sio_handle_timeout
func natpass_sio_handle_timeout(h C.natpass_sio, nowNS C.int64_t) C.int32_t {
	s, err := sioOf(h)
	if err != nil {
		return status(err)
	}
	return status(s.call(&nowNS, func() error {
		s.nm.HandleTimeout(proto.Instant(nowNS))
		return nil
	}))
}

//export natpass_sio_handle_sockets
func natpass_sio_handle_sockets(h C.natpass_sio, nowNS C.int64_t, tag C.uint64_t, addrs *C.np_cchar) C.int32_t {
	s, err := sioOf(h)
	if err != nil {
		return status(err)
	}
	if addrs == nil {
		return status(errCode(codeInvalid, "natpass_sio_handle_sockets: addrs must not be NULL"))
	}
	var list []netip.AddrPort
	for _, f := range strings.Split(C.GoString((*C.char)(addrs)), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := netip.ParseAddrPort(f)
		if err != nil {
			return status(errCode(codeInvalid, "natpass_sio_handle_sockets: %v", err))
		}
		list = append(list, a)
	}
	return status(s.call(&nowNS, func() error {
		s.nm.HandleSockets(proto.Instant(nowNS), uint64(tag), list)
		return nil
	}))
}
