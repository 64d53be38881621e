package rendezvous

import (
	"errors"
	"net/netip"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// The relay across servers (PROTOCOL.md §12.5): a channel whose peer is on another
// server is linked to that server's channel by a relay-bind; frames cross the bus as
// relay-data, charged to the sender's budgets on its server and to the receiving
// server's budget there.

// allocateRemote gives session i its channel of tok's pair, whose other end (peer
// ID target, key other) is not registered here, and binds it across the cluster
// unless it is linked already.
func (s *Server) allocateRemote(now proto.Instant, sock int, from netip.AddrPort, m *proto.RelayAllocate, i int32, tok relayframe.Token, other [proto.KeyLen]byte, unix uint64, size int) error {
	req := &s.peers.sessions[i]
	st := &s.stats.Relay
	// The peer's ticket is its server's to check: its channel there ends with it.
	expiry := min(unix+uint64(s.cfg.RelayTokenLifetime/time.Second), req.ticketExpiryUnix)
	a, err := s.relay.Allocate(i, relayframe.NoOwner, tok.PairID, s.wall.InstantAt(expiry), expiry, m.TxID)
	if err != nil {
		st.TableFull++
		_ = s.sendError(sock, from, m.TxID, proto.CodeServerFull, textRelayFull, size)
		return ErrRelayTableFull
	}
	if a.Refreshed {
		st.Refreshes++
	} else {
		st.Allocations++
	}
	s.sendAllocated(sock, from, m.TxID, a.Number, a.PeerReady, unix, expiry, tok, size)
	if a.PeerReady {
		return nil
	}
	b := s.addAsk(now, askBind)
	b.cookie, b.txid, b.channel, b.pairID, b.otherKey = req.cookie, m.TxID, a.Number, tok.PairID, other
	bind := proto.ClusterRelayBind{BindID: b.id, Server: s.id, PairID: tok.PairID, Channel: a.Number,
		RequesterKey: req.key, TargetKey: other, Target: m.PeerID}
	if s.publish(peerSubject(m.PeerID), s.replySubject(b.id), bind.Append) {
		s.stats.Cluster.RelayBinds++
	}
	return nil
}

// handleRelayBind links our peer's channel of the pair to the requester's channel
// on the requester's server, when our peer holds one.
func (s *Server) handleRelayBind(now proto.Instant, p []byte, reply string) error {
	m := &s.bindMsg
	if err := m.Parse(p); err != nil || reply == "" {
		s.stats.Cluster.DropMalformed++
		return proto.ErrMalformed
	}
	answer := func(st proto.ClusterStatus, ch uint16) error {
		b := proto.ClusterRelayBound{BindID: m.BindID, Server: s.id, Status: st, Channel: ch}
		s.publish(reply, "", b.Append)
		return nil
	}
	j, ok := s.localPeer(now, m.Target)
	switch {
	case !ok:
		return answer(proto.ClusterUnknownPeer, 0)
	case s.relay == nil || s.peers.sessions[j].key != m.TargetKey || m.TargetKey == m.RequesterKey:
		s.stats.Relay.DeniedPeerKey++
		return answer(proto.ClusterRelayDenied, 0)
	}
	n, tag, expiry, linked, found := s.relay.Find(j, m.PairID)
	if !found {
		return answer(proto.ClusterNoChannelYet, 0)
	}
	if _, changed := s.relay.LinkRemote(n, m.Server, m.Channel); changed {
		s.stats.Cluster.RelayLinks++
	}
	if err := answer(proto.ClusterOK, n); err != nil {
		return err
	}
	if !linked {
		tok := relayframe.Token{PairID: m.PairID, KeyA: m.TargetKey, KeyB: m.RequesterKey}
		s.readyNotice(j, n, tag, expiry, tok)
	}
	return nil
}

// handleRelayBound links our requester's channel once the peer's server answered.
func (s *Server) handleRelayBound(now proto.Instant, subject string, p []byte) error {
	m := &s.boundMsg
	if err := m.Parse(p); err != nil {
		s.stats.Cluster.DropMalformed++
		return err
	}
	a := s.takeAsk(now, subject, askBind)
	if a == nil {
		s.stats.Cluster.DropUnknownAsk++
		return ErrClusterUnknownAsk
	}
	i, ok := s.peers.byCookie[a.cookie]
	if !ok {
		return nil
	}
	switch m.Status {
	case proto.ClusterOK:
	case proto.ClusterNoChannelYet:
		return nil // the peer's own allocation will bind the other way
	default:
		return s.refuseFromCluster(&s.peers.sessions[i], a.txid, m.Status)
	}
	n, tag, expiry, linked, found := s.relay.Find(i, a.pairID)
	if !found || n != a.channel {
		return nil // the channel ended meanwhile
	}
	if _, changed := s.relay.LinkRemote(n, m.Server, m.Channel); changed {
		s.stats.Cluster.RelayLinks++
	}
	if !linked {
		req := &s.peers.sessions[i]
		s.readyNotice(i, n, tag, expiry, relayframe.Token{PairID: a.pairID, KeyA: req.key, KeyB: a.otherKey})
	}
	return nil
}

// readyNotice answers session i's latest relay-allocate (txid tag) for channel n
// again, with "peer ready" (PROTOCOL.md §8.2).
func (s *Server) readyNotice(i int32, n uint16, tag, expiry uint64, tok relayframe.Token) {
	if s.cfg.DisableRelayReadyNotice || s.tx.free() == 0 {
		return
	}
	ss := &s.peers.sessions[i]
	s.stats.Relay.ReadyNotices++
	s.sendAllocated(s.socketIndex(ss.local), ss.addr, tag, n, true, s.wall.UnixAt(s.now), expiry, tok, unlimited)
}

// relayRemote forwards a relay-send on channel n, whose peer is on another server,
// as relay-data on the bus.
func (s *Server) relayRemote(now proto.Instant, r relayframe.Route, n uint16, p []byte) error {
	if err := s.chargeRelay(now, r.Owner, len(p)); err != nil {
		return err
	}
	b := s.cluster.begin()
	if b == nil {
		s.stats.Relay.DropQueueFull++
		s.stats.Cluster.DropQueueFull++
		return ErrQueueFull
	}
	b = proto.AppendClusterRelayData(b, s.id, n, r.PeerChannel)
	s.cluster.commit(s.relaySubject(r.RemoteServer), "", append(b, p...))
	s.stats.Cluster.RelayFramesOut++
	s.stats.Cluster.RelayBytesOut += uint64(len(p))
	return nil
}

// relaySubject is srv.<id>.relay, cached: it is built once per server, not per frame.
func (s *Server) relaySubject(id uint64) string {
	if sub, ok := s.relaySubj[id]; ok {
		return sub
	}
	if s.relaySubj == nil || len(s.relaySubj) >= maxRemotes {
		s.relaySubj = make(map[uint64]string)
	}
	sub := serverSubject(id) + ".relay"
	s.relaySubj[id] = sub
	return sub
}

// errRelayNoLink: relay data for a channel not linked to its sender.
var errRelayNoLink = errors.New("rendezvous: cluster relay data for a channel not linked to its sender")

// handleRelayData delivers a frame another server forwarded to the holder of its
// channel here.
func (s *Server) handleRelayData(now proto.Instant, p []byte) error {
	st := &s.stats.Cluster
	server, from, to, frame, err := proto.ParseClusterRelayData(p)
	if err == nil {
		var ch uint16
		if ch, _, err = relayframe.ParseSend(frame); err == nil && ch != from {
			err = proto.ErrMalformed
		}
	}
	if err != nil {
		st.DropMalformed++
		return err
	}
	if s.relay == nil {
		st.DropRelayNoLink++
		return errRelayNoLink
	}
	r, ok := s.relay.Lookup(to)
	if !ok || r.RemoteServer != server || r.PeerChannel != from {
		st.DropRelayNoLink++
		return errRelayNoLink
	}
	if s.relay.ChargeServer(now, len(frame)) != nil {
		st.DropRelayRate++
		return ErrRelayRate
	}
	b := s.tx.begin()
	if b == nil {
		st.DropRelayTxFull++
		return ErrQueueFull
	}
	b = append(b, frame...)
	relayframe.PutDeliverHeader(b, to)
	owner := &s.peers.sessions[r.Owner]
	s.tx.commit(owner.local, owner.addr, b)
	st.RelayFramesIn++
	st.RelayBytesIn += uint64(len(frame))
	return nil
}
