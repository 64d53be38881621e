package node

import "github.com/natpass/natpass/proto"

// The admission challenge, the node's side (PROTOCOL.md §5.13, [RETRY-3]): a server
// that will not admit our register unproven answers retry with a token bound to our
// address; the register goes again with it.

// admissionToken is the token of the latest retry of the current registration.
type admissionToken struct {
	token [proto.RetryTokenLen]byte
	held  bool
}

// queueRegister queues the register of the current registration, with its token
// when a retry gave one (every repetition carries it until the server admits us).
func (s *serverSession) queueRegister() {
	m := &proto.Register{TxID: s.regTxID, Ticket: s.cfg.Ticket, Hosts: s.cfg.hosts(), Suites: s.suites}
	if s.regToken.held {
		m.Token = s.regToken.token[:]
	}
	s.queue(m)
}

// onRetry takes a retry from the current server. One answering our outstanding
// register keeps its token; if that register carried no token it goes again at once
// (its retransmission timer runs on), otherwise the server's proven budget for our
// address is spent or our token went stale, and the new token waits for the next
// repetition at the register's backoff: each attempt repeats at most once, so the
// node never loops with the server.
func (s *serverSession) onRetry(p []byte) error {
	var m proto.Retry
	if err := m.Parse(p); err != nil {
		return s.stats.count(err)
	}
	if s.registered || s.closed || m.TxID != s.regTxID {
		return s.stats.count(ErrUnexpected)
	}
	carried := s.regToken.held
	s.regToken = admissionToken{token: m.Token, held: true}
	if carried {
		s.stats.RetriesWaited++
		return nil
	}
	s.stats.Retries++
	s.rtt.regSends++ // the answer may be to either send: no round-trip sample
	s.queueRegister()
	return nil
}
