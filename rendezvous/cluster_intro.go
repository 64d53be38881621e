package rendezvous

import (
	"net/netip"

	"github.com/natpass/natpass/proto"
)

// Introductions across servers (PROTOCOL.md §12.4): the requester's server asks the
// target's subject; the target's server introduces its side and answers with the
// target's record; the requester's server then introduces the requester. Each
// server runs the local pending-introduction logic for its own side only.

// askIntroduction sends a cluster-intro-ask for m (from session i), whose target is
// not registered here.
func (s *Server) askIntroduction(now proto.Instant, sock int, from netip.AddrPort, m *proto.IntroduceRequest, i int32, size int) error {
	relayOnly := m.Flags&proto.IntroRelayOnly != 0
	switch {
	case relayOnly && s.cfg.DisableRelay:
		s.stats.RelayDenied++
		_ = s.sendError(sock, from, m.TxID, proto.CodeRelayDenied, textRelayDenied, size)
		return ErrRelayDenied
	case !relayOnly && s.unmeasured(now, i):
		s.stats.PeerNotReady++
		_ = s.sendError(sock, from, m.TxID, proto.CodePeerNotReady, textNotReady, size)
		return ErrPeerNotReady
	}
	req := &s.peers.sessions[i]
	a := s.addAsk(now, askIntro)
	// A rebound address does not cross servers: across a cluster the request is a
	// plain refresh (PROTOCOL.md §12.4).
	flags := m.Flags &^ proto.IntroRebound
	a.cookie, a.txid, a.flags = req.cookie, m.TxID, flags
	ask := proto.ClusterIntroAsk{AskID: a.id, Server: s.id, TxID: m.TxID, Flags: flags,
		Target: m.PeerID, Requester: clusterPeer(req)}
	if s.publish(peerSubject(m.PeerID), s.replySubject(a.id), ask.Append) {
		s.stats.Cluster.IntroAsks++
	}
	return nil
}

// handleIntroAsk serves another server's request to introduce a peer of ours.
func (s *Server) handleIntroAsk(now proto.Instant, p []byte, reply string) error {
	m := &s.askMsg
	if err := m.Parse(p); err != nil || reply == "" {
		s.stats.Cluster.DropMalformed++
		return proto.ErrMalformed
	}
	answer := func(st proto.ClusterStatus, tgt *session) error {
		a := proto.ClusterIntroAnswer{AskID: m.AskID, Server: s.id, Status: st}
		if tgt != nil {
			a.Target = clusterPeer(tgt)
		}
		s.publish(reply, "", a.Append)
		return nil
	}
	j, ok := s.localPeer(now, m.Target)
	relayOnly := m.Flags&proto.IntroRelayOnly != 0
	switch {
	case !ok:
		return answer(proto.ClusterUnknownPeer, nil)
	case relayOnly && s.cfg.DisableRelay:
		return answer(proto.ClusterRelayDenied, nil)
	case !relayOnly && s.unmeasured(now, j):
		return answer(proto.ClusterNotReady, nil)
	case s.tx.free() == 0:
		s.stats.DropQueueFull++
		return ErrQueueFull
	}
	req := s.storeRemote(now, m.Server, &m.Requester)
	tgt := &s.peers.sessions[j]
	pairID, _ := s.derivePair(&req.tag, &tgt.tag)
	e, first := s.introEntry(now, m.Flags, m.TxID, req, tgt, pairID)
	rs, ts := e.side(&req.tag), e.side(&tgt.tag)
	rs.remote, rs.acked, rs.txid = true, true, m.TxID // its own server introduces it
	if !ts.acked {
		s.sendIntroCopy(now, e, ts, tgt, req)
	}
	s.stats.Cluster.IntroAsksServed++
	if first {
		s.stats.Introductions++
		s.pushEvent(EventIntroduced{Requester: req.peer, Target: tgt.peer, PairID: pairID, Flags: m.Flags})
	}
	return answer(proto.ClusterOK, tgt)
}

// handleIntroAnswer introduces our requester once the target's server has answered.
func (s *Server) handleIntroAnswer(now proto.Instant, subject string, p []byte) error {
	m := &s.answerMsg
	if err := m.Parse(p); err != nil {
		s.stats.Cluster.DropMalformed++
		return err
	}
	a := s.takeAsk(now, subject, askIntro)
	if a == nil {
		s.stats.Cluster.DropUnknownAsk++
		return ErrClusterUnknownAsk
	}
	i, ok := s.peers.byCookie[a.cookie]
	if !ok {
		return nil // the requester left meanwhile
	}
	req := &s.peers.sessions[i]
	if m.Status != proto.ClusterOK {
		return s.refuseFromCluster(req, a.txid, m.Status)
	}
	if s.tx.free() == 0 {
		s.stats.DropQueueFull++
		return ErrQueueFull
	}
	tgt := s.storeRemote(now, m.Server, &m.Target)
	pairID, _ := s.derivePair(&req.tag, &tgt.tag)
	e, first := s.introEntry(now, a.flags, a.txid, req, tgt, pairID)
	rs, ts := e.side(&req.tag), e.side(&tgt.tag)
	ts.remote, ts.acked = true, true
	rs.txid, rs.acked = a.txid, false
	s.sendIntroCopy(now, e, rs, req, tgt)
	if first {
		s.stats.Introductions++
		s.pushEvent(EventIntroduced{Requester: req.peer, Target: tgt.peer, PairID: pairID, Flags: a.flags})
	}
	return nil
}

// refuseFromCluster passes another server's refusal on to our node as the error
// code its status stands for.
func (s *Server) refuseFromCluster(req *session, txid uint64, st proto.ClusterStatus) error {
	sock := s.socketIndex(req.local)
	switch st {
	case proto.ClusterNotReady:
		s.stats.PeerNotReady++
		_ = s.sendError(sock, req.addr, txid, proto.CodePeerNotReady, textNotReady, unlimited)
		return ErrPeerNotReady
	case proto.ClusterRelayDenied:
		s.stats.RelayDenied++
		_ = s.sendError(sock, req.addr, txid, proto.CodeRelayDenied, textRelayDenied, unlimited)
		return ErrRelayDenied
	}
	s.stats.UnknownPeer++
	_ = s.sendError(sock, req.addr, txid, proto.CodeUnknownPeer, textUnknownPeer, unlimited)
	return ErrUnknownPeer
}

// handleNoResponders: nobody holds the subject one of our requests went to, so the
// peer is registered nowhere in the cluster. The node hears it at once.
func (s *Server) handleNoResponders(now proto.Instant, subject string) error {
	a := s.takeAsk(now, subject, 0)
	if a == nil {
		s.stats.Cluster.DropUnknownAsk++
		return ErrClusterUnknownAsk
	}
	s.stats.Cluster.NoResponders++
	if a.kind == askRoom {
		return s.formRoom(a) // nobody holds the room: it is ours now
	}
	i, ok := s.peers.byCookie[a.cookie]
	if !ok {
		return nil
	}
	req := &s.peers.sessions[i]
	if a.kind == askBind {
		s.stats.Relay.UnknownPeer++
	} else {
		s.stats.UnknownPeer++
	}
	_ = s.sendError(s.socketIndex(req.local), req.addr, a.txid, proto.CodeUnknownPeer, textNotHere, unlimited)
	return ErrUnknownPeer
}
