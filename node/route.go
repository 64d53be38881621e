package node

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/natpass/natpass/keyx"
	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/punch"
	"github.com/natpass/natpass/relayframe"
	"github.com/natpass/natpass/rudp"
)

// onServerEvent acts on what the server session reports.
func (n *Node) onServerEvent(now proto.Instant, e srvEvent) {
	switch e := e.(type) {
	case srvRegistered:
		n.emit(EventRegistered{Observed: e.observed, Server: e.server})
		if e.again {
			// The server lost our session (a restart, or it expired), or we moved
			// to another: relay channels died with the old session. A peer still on
			// the relay hears so, then its channel is allocated again with the
			// token it holds, which every server of the cluster honours.
			for _, p := range n.peers {
				if p.established || p.closed || p.relay.everReady {
					p.restartRelay(now, e.changed)
					continue
				}
				// No session, and the server never linked our relay channel to
				// the peer's: the peer may hold no channel of the pair because
				// its copy of the introduction died with the old server, and
				// knows nothing of us. A new introduction reaches both sides,
				// for the pair our new registration makes (a new PSK and token,
				// PROTOCOL §5.10: rebase); the relay waits for its token rather
				// than take a channel of the session's 16 with the old one.
				p.dropRelay(now)
				n.reintroduce(now, p)
			}
		}
	case srvNATReport:
		n.emit(e.e)
	case srvNeedSockets:
		n.requestSockets(n.srv, e.n)
	case srvPeerError:
		n.emit(e.e)
		if n.srv.relinking(e.e.Peer) {
			n.srv.linkEnded(now, e.e.Peer) // the new introduction failed: later
		}
	case srvRelinkDue:
		n.relinkDue(now, e.peer)
	case srvClosed:
		n.emit(EventClosed{Reason: e.reason, Code: e.code})
	case srvRoomState:
		n.onRoomState(now, e)
	case srvRoomError:
		n.emit(e.e)
	case srvChanged:
		n.emit(EventServerChanged{From: e.from, To: e.to, Reason: e.reason})
	case srvMoved:
		for _, p := range n.peers {
			n.reintroduce(now, p)
		}
	case srvLost:
		for _, p := range n.peers {
			p.serverLost(now, e.reason)
		}
	case srvAnswered:
		for _, p := range n.peers {
			p.serverAnswered()
		}
	case srvError:
		for _, p := range n.peers {
			if p.relayError(now, &e.m) {
				if e.m.Code == proto.CodeMoving {
					n.srv.moving(now) // it answered a relay-allocate
				}
				return
			}
		}
		if !e.known {
			n.stats.StrayErrors++
		}
	}
}

// onPeerEvent passes a peer's node Event on, or does what it asks.
func (n *Node) onPeerEvent(now proto.Instant, p *peerConn, e any) {
	switch e := e.(type) {
	case Event:
		n.emit(e)
		n.peerLinkEvent(now, e)
	case peerWantsIntroduction:
		if !p.closed {
			n.reintroduce(now, p)
		}
	case peerWantsSockets:
		n.requestSockets(p, e.n)
	case peerWantsRebindSocket:
		n.requestSockets(rebindOwner{p}, 1)
	case peerRebinds:
		if !p.closed {
			n.srv.introduceRebound(now, p.id, e.sock)
		}
	case peerChecksServer:
		n.srv.checkNow(now, relayCheckWait)
	case peerRelayChannel:
		if e.old != 0 && n.byChannel[e.old] == p {
			delete(n.byChannel, e.old)
		}
		if e.channel != 0 {
			n.byChannel[e.channel] = p
		}
	}
}

func (n *Node) requestSockets(owner any, count int) {
	n.nextTag++
	n.sockTags[n.nextTag] = owner
	n.emit(EventOpenSockets{Tag: n.nextTag, N: count})
}

// keyxPeer names the peer a keyx event is about.
func keyxPeer(e keyx.Event) keyx.PublicKey {
	switch e := e.(type) {
	case keyx.EventEstablished:
		return e.Peer
	case keyx.EventRekey:
		return e.Peer
	case keyx.EventHandshakeTimeout:
		return e.Peer
	}
	return keyx.PublicKey{}
}

// probeKey derives the pair's probe key from the static-static DH (which only the two
// peers can compute) and the server's per-pair PSK.
func probeKey(priv, peerPub, psk *[32]byte) (punch.Key, error) {
	ss, err := curve25519.X25519(priv[:], peerPub[:])
	if err != nil {
		return punch.Key{}, err
	}
	h := hmac.New(sha256.New, ss)
	h.Write([]byte("natpass probe key"))
	h.Write(psk[:])
	var k punch.Key
	copy(k[:], h.Sum(nil))
	return k, nil
}

// handleIntroduction takes an introduction from the server: the router, not the
// server session, handles it, since what it makes is a peer.
func (n *Node) handleIntroduction(now proto.Instant, from netip.AddrPort, p []byte) error {
	if !n.srv.isServer(from) {
		n.stats.NotFromServer++
		return ErrNotFromServer
	}
	var m proto.Introduction
	if err := m.Parse(p); err != nil {
		return n.stats.count(err)
	}
	return n.onIntroduction(now, &m)
}

// onIntroduction makes a peerConn for a newly introduced peer, or refreshes the
// search of a known one. Every copy of a valid introduction is acknowledged, the
// repeats too: the server repeats until it hears. A low-order key makes it invalid.
func (n *Node) onIntroduction(now proto.Instant, m *proto.Introduction) error {
	id := string(m.PeerID)
	key, err := probeKey(&n.priv, &m.PeerKey, &m.PSK)
	if err != nil {
		n.stats.Malformed++
		return err
	}
	rebound := n.srv.introduced(m.PeerID, m.TxID)
	n.srv.ackIntroduction(m.PeerID)
	startAt := now.Add(time.Duration(m.StartDelayMs) * time.Millisecond)
	if p, ok := n.byID[id]; ok && (p.closed || p.closing) && m.Flags&proto.IntroRefresh == 0 {
		// The peer connects again after our connection ended, or while ours is
		// still closing: kept, the closing one would answer the new handshake with
		// its close and end the new connection (a room member re-linking).
		n.forget(p)
	}
	if p, ok := n.byID[id]; ok {
		if p.key != m.PeerKey {
			n.stats.Unexpected++
			return ErrUnexpected
		}
		// What the peer advertised now holds for the handshakes to come.
		_ = n.keyx.SetPeerSuites(p.pub(), m.PeerSuites) // p is keyx's peer: cannot fail
		if !p.established && p.psk != m.PSK {
			return n.rebase(now, p, m, key, startAt)
		}
		if m.Flags&proto.IntroRefresh != 0 && (!p.sameIntro(startAt) || rebound.IsValid() || p.newPrediction(m)) {
			if rebound.IsValid() {
				p.agent.Rebind(rebound) // the introduction that names its mapping
			}
			p.refresh(now, startAt, m, n.sameNAT(m.Candidates))
		}
		return nil // otherwise a repeated copy, or both sides connected at once
	}
	n.srv.strangerIntroduced(now, id)
	if len(n.peers) >= maxPeers {
		n.stats.Unexpected++
		return ErrUnexpected
	}
	p, err := n.newPeer(now, m, key, startAt)
	if err != nil {
		n.stats.Malformed++ // a low-order key from the server
		return err
	}
	n.emit(EventIntroduced{Peer: id, Strategy: p.agent.Strategy(), RelayOnly: m.Flags&proto.IntroRelayOnly != 0})
	p.startRelay(now, m.RelayToken, m.Flags)
	p.drainAgent(now)
	p.HandleTimeout(now) // the first relay-allocate goes out with the ack
	return nil
}

// newPeer builds a peer's machine: its keyx peer entry, connection and agent.
func (n *Node) newPeer(now proto.Instant, m *proto.Introduction, key punch.Key, startAt proto.Instant) (*peerConn, error) {
	id := string(m.PeerID)
	if err := n.keyx.AddPeer(keyx.PublicKey(m.PeerKey), keyx.PresharedKey(m.PSK)); err != nil {
		return nil, err
	}
	// Before any handshake: the initiator proposes AES-GCM only when both have it
	// (PROTOCOL.md §6.1, [INTRO-3]).
	_ = n.keyx.SetPeerSuites(keyx.PublicKey(m.PeerKey), m.PeerSuites) // just added: cannot fail
	cfg := n.cfg.RUDP
	cfg.Headroom = relayHeadroom + proto.TransportHeaderLen
	cfg.Tailroom = proto.TagLen
	n.connSeq++
	n.relaySeq++ // never reused, even after a peer is forgotten
	p := &peerConn{peerEnv: n.env, id: id, key: m.PeerKey, psk: m.PSK, flags: m.Flags, remoteNAT: m.NAT,
		initiator: n.initiatorOf(m.PeerKey), conn: rudp.New(cfg, now), connNum: n.connSeq,
		introStart: startAt, introPredicted: predictedOf(m), timers: newTimerTable[peerTimer]("retry direct", "handshake")}
	p.relay.addr = relayAddrFor(n.relaySeq)
	p.agent = n.newAgent(m, key, startAt)
	p.noteIntro(now, m)
	n.peers = append(n.peers, p)
	n.byID[id], n.byKey[p.key] = p, p
	n.lastByKey = nil
	n.byPair[p.agent.Pair()] = p
	n.byRelayAddr[p.relay.addr] = p
	return p, nil
}

// newAgent makes the punch agent of an introduction.
func (n *Node) newAgent(m *proto.Introduction, key punch.Key, startAt proto.Instant) *punch.Agent {
	var seed [32]byte
	binaryPut(seed[:], n.rng.Uint64(), n.rng.Uint64())
	return punch.NewAgent(punch.AgentConfig{
		Key: key, Controlling: n.initiatorOf(m.PeerKey), Local: n.cfg.Local, OtherLocal: n.cfg.OtherLocal,
		LocalNAT: n.srv.nat, RemoteNAT: m.NAT, Remote: slices.Clone(m.Candidates),
		StartAt: startAt, SameNAT: n.sameNAT(m.Candidates), Seed: seed,
	})
}

// rebase starts a peer with no session yet over from an introduction of a new
// pair: one side registered again (a server died, or restarted) and the server
// derived a new pair ID and PSK from the new registration (PROTOCOL §5.10). Kept as
// it was, the peer would shake hands with the old PSK, probe with the old key and
// allocate the relay with the old pair's token, none of which meets the other
// side's. The connection stays, and with it what the application queued.
func (n *Node) rebase(now proto.Instant, p *peerConn, m *proto.Introduction, key punch.Key, startAt proto.Instant) error {
	// The new PSK is for the handshakes to come; a session the peer started
	// with the old one and has not yet confirmed stays, for the peer may hold it
	// already (keyx.Endpoint.AddPeer keeps the sessions).
	if err := n.keyx.AddPeer(p.pub(), keyx.PresharedKey(m.PSK)); err != nil {
		n.stats.Malformed++
		return err
	}
	n.stats.Rebased++
	delete(n.byPair, p.agent.Pair())
	p.psk, p.flags, p.remoteNAT, p.introStart = m.PSK, m.Flags, m.NAT, startAt
	p.agent = n.newAgent(m, key, startAt)
	n.byPair[p.agent.Pair()] = p
	p.noteIntro(now, m)
	p.timers.stop(peerHandshake)
	p.hsTries = 0
	if p.path != proto.PathNone {
		p.setPath(now, EventPathChanged{Kind: proto.PathNone, Reason: "introduced again"})
	}
	p.relay.client, p.relay.unanswered, p.relay.unlinkedSince, p.relay.everReady = relayClientOff, 0, 0, false
	p.startRelay(now, m.RelayToken, m.Flags)
	p.drainRelay(now) // the old channel leaves the router's index
	p.drainAgent(now)
	p.HandleTimeout(now)
	return nil
}

func (n *Node) handleProbe(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	// The pair ID sits right after the header in both probe messages.
	if len(p) < proto.HeaderLen+8 {
		n.stats.Malformed++
		return proto.ErrShort
	}
	pair := uint64(0)
	for _, b := range p[proto.HeaderLen : proto.HeaderLen+8] {
		pair = pair<<8 | uint64(b)
	}
	pe, ok := n.byPair[pair]
	if !ok {
		n.stats.UnknownPair++
		return ErrUnknownPair
	}
	return pe.handleProbe(now, local, from, p)
}

// handleRelayAllocated routes the server's relay-allocated to the peer whose
// request it answers.
func (n *Node) handleRelayAllocated(now proto.Instant, from netip.AddrPort, p []byte) error {
	if !n.srv.isServer(from) {
		n.stats.NotFromServer++
		return ErrNotFromServer
	}
	var m proto.RelayAllocated
	if err := m.Parse(p); err != nil {
		return n.stats.count(err)
	}
	for _, pe := range n.peers {
		if pe.relayAllocated(now, &m) {
			return nil
		}
	}
	n.stats.Unexpected++
	return ErrUnexpected
}

// handleRelayDeliver unwraps a relayed packet and handles it as if it came from the
// peer on the relay path.
func (n *Node) handleRelayDeliver(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	if !n.srv.isServer(from) {
		n.stats.NotFromServer++
		return ErrNotFromServer
	}
	ch, inner, err := relayframe.ParseDeliver(p)
	if err != nil {
		n.stats.Malformed++
		return err
	}
	pe, ok := n.byChannel[ch]
	if !ok {
		n.stats.Unexpected++
		return ErrUnexpected
	}
	h, _, err := proto.ParseHeader(inner)
	if err != nil || h.Type < proto.TypeKeyxFirst || h.Type > proto.TypeKeyxLast {
		// Only keyx packets travel the relay (PROTOCOL.md §8.3).
		n.stats.Malformed++
		return proto.ErrMalformed
	}
	if h.Type == proto.TypeTransportData {
		return n.handleTransport(now, local, pe.relay.addr, inner)
	}
	return n.handleKeyx(now, local, pe.relay.addr, inner)
}

// handleKeyx takes a handshake message (initiation, response, cookie reply).
func (n *Node) handleKeyx(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	err := n.keyx.HandleDatagram(now, local, from, p)
	switch {
	case err == nil:
	case errors.Is(err, keyx.ErrReplay) || errors.Is(err, keyx.ErrUnknownIndex) && n.answeredResponse(p):
		// The echo of a handshake message that came (echo.go), or the network
		// repeating one.
		n.stats.Duplicates++
	default:
		n.stats.BadHandshake++
	}
	return err
}

// answeredResponse reports whether p is a response to an initiation of ours that
// an earlier response answered already: its receiver index is that of a peer's
// current session (a copy of the response that made it).
func (n *Node) answeredResponse(p []byte) bool {
	var m proto.Response
	if len(p) < proto.HeaderLen || proto.MsgType(p[1]) != proto.TypeResponse || m.Parse(p) != nil {
		return false
	}
	for _, pc := range n.peers {
		if s := n.keyx.Current(pc.pub()); s != nil && s.LocalIndex() == m.Receiver {
			return true
		}
	}
	return false
}

// peerByKey is byKey[key], remembering the hit in lastByKey.
func (n *Node) peerByKey(key keyx.PublicKey) (*peerConn, bool) {
	if p := n.lastByKey; p != nil && p.key == key {
		return p, true
	}
	p, ok := n.byKey[key]
	if ok {
		n.lastByKey = p
	}
	return p, ok
}

// handleTransport opens transport data and hands the plaintext to its peer.
func (n *Node) handleTransport(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	sess, pt, err := n.keyx.Open(now, n.open[:0], p)
	if errors.Is(err, keyx.ErrReplay) {
		// A counter seen before: normally the network repeating a datagram (a
		// replayed copy looks the same and is dropped the same way, before the
		// AEAD), not a bad packet.
		n.stats.Duplicates++
		return err
	}
	if err != nil {
		n.stats.BadTransport++
		return err
	}
	pe, ok := n.peerByKey(sess.Peer())
	if !ok {
		n.stats.BadTransport++
		return ErrUnexpected
	}
	pe.handleTransport(now, local, from, pt)
	return nil
}
