package relayframe

import (
	"cmp"
	"time"

	"github.com/natpass/natpass/proto"
)

// Client is a node's end of one relay channel (PROTOCOL.md §8), one per peer: it
// says when a relay-allocate is due (at once, repeated with backoff until answered,
// then again at half the channel's lifetime with the renewed token), remembers the
// channel the server gave and whether the peer's end is linked, and reads the
// server's answers. It sends nothing itself: the node asks AppendAllocate for the
// bytes when Deadline passes, and frames its packets with PutSendHeader(buf,
// Channel()) once Ready.
//
// Inputs: Start, Restart (commands), HandleAllocated, HandleError, HandleTimeout.
// Outputs: PollEvent (what changed: a channel, readiness, its loss, a refusal; drain
// it after every input), Deadline. Getters: Ready, Channel, Denied. The zero Client is
// idle (Deadline is proto.Never). Like every natpass machine it reads no clock.
//
// While the server has answered without "peer ready", the Client asks again after
// readyPollFirst, doubling to readyPollMax: the server's ready notice (PROTOCOL.md
// §8.2) normally comes first, and a lost notice then costs a poll, not half the
// channel's lifetime.
type Client struct {
	token    [proto.MaxRelayTokenLen]byte
	tokenLen int
	// txid is the latest request's: each relay-allocate gets the next one (the
	// first is Start's), so an answer to an older request, late, is not taken for
	// the answer to the latest (it could say "not ready" after "ready").
	txid uint64
	sent bool // a request with txid went out: the next one takes txid+1
	// answered: the request with txid was answered (crossedNotice).
	answered bool
	channel  uint16
	ready    bool
	denied   proto.ErrorCode // non-zero: the server refused; only Start clears it
	due      proto.Instant   // next relay-allocate; proto.Never when none
	expires  proto.Instant   // the channel's end, from the lifetime; Never without one
	backoff  time.Duration
	poll     time.Duration // the next ready poll's delay, while not ready
	retry    time.Duration // SetRetry's first repeat and first poll (0: the defaults)
	events   ClientEvent   // pending events, a set: PollEvent returns them in bit order
	now      proto.Instant // the latest instant of any call: time never goes back
}

// advance moves the clock; a decrease is a caller bug (DESIGN §2).
func (c *Client) advance(now proto.Instant) {
	if now < c.now {
		panic("relayframe: Client: time went backwards")
	}
	c.now = now
}

// ClientEvent is one thing a Client reports; PollEvent returns one at a time.
type ClientEvent uint8

const (
	// ClientLost: frames sent now are dropped until ClientReady: the channel ended
	// (its lifetime passed unrefreshed, or Restart; Channel is 0), or the server
	// answered that the peer's end is gone.
	ClientLost ClientEvent = 1 << iota
	// ClientDenied: the server refused the relay (Denied says why); nothing more is
	// sent until Start.
	ClientDenied
	// ClientAllocated: the server gave a channel (Channel), or another one.
	ClientAllocated
	// ClientReady: the peer's end is linked; frames sent now are delivered.
	ClientReady
)

// PollEvent returns the next pending event. Several changes within one input come
// out in the order Lost, Denied, Allocated, Ready; the set cannot overflow.
func (c *Client) PollEvent() (ClientEvent, bool) {
	if c.events == 0 {
		return 0, false
	}
	e := c.events & -c.events // lowest pending bit
	c.events &^= e
	return e, true
}

// Ready-poll timing: see the type doc.
const (
	readyPollFirst = 250 * time.Millisecond
	readyPollMax   = 2 * time.Second
)

// Allocation retry timing: the first repeat after allocRetryFirst, doubling up to
// allocRetryMax, for as long as the node keeps the Client (it stops by not asking).
const (
	allocRetryFirst = 250 * time.Millisecond
	allocRetryMax   = 4 * time.Second
)

// SetRetry sets how long an unanswered relay-allocate waits for its first repeat,
// and a "not ready" answer for the first ready poll, both doubling from there to
// their maxima: the node's measured round trip to the server makes them a couple
// of round trips instead of the defaults (allocRetryFirst, readyPollFirst), which
// must cover any server and so also bound it. 0 restores the defaults; Start keeps
// the setting. It applies from the next repeat or poll scheduled.
func (c *Client) SetRetry(first time.Duration) { c.retry = max(first, 0) }

// firstRetry is the first allocate repeat's delay.
func (c *Client) firstRetry() time.Duration {
	return min(cmp.Or(c.retry, allocRetryFirst), allocRetryFirst)
}

// firstPoll is the first ready poll's delay.
func (c *Client) firstPoll() time.Duration {
	return min(cmp.Or(c.retry, readyPollFirst), readyPollFirst)
}

// Start begins (or begins again, with a fresh token from a new introduction) the
// allocation: a relay-allocate is due at once. The node picks txid, the first
// request's; later ones count up from it, and answers carry their request's.
func (c *Client) Start(now proto.Instant, token []byte, txid uint64) {
	if len(token) == 0 || len(token) > proto.MaxRelayTokenLen {
		panic("relayframe: Client.Start with a token of bad length")
	}
	c.advance(now)
	*c = Client{txid: txid, due: now, expires: proto.Never, now: now, retry: c.retry}
	c.tokenLen = copy(c.token[:], token)
}

// Restart allocates again with the token held, after the node registered again:
// channels die with sessions (PROTOCOL.md §8.4). A denied Client stays denied.
func (c *Client) Restart(now proto.Instant) {
	c.advance(now)
	if c.tokenLen == 0 || c.denied != 0 {
		return
	}
	if c.ready || c.channel != 0 {
		c.events |= ClientLost
	}
	c.channel, c.ready, c.expires, c.due, c.backoff, c.poll = 0, false, proto.Never, now, 0, 0
}

// Ready reports whether frames sent now are delivered: the channel exists and the
// peer's end is linked.
func (c *Client) Ready() bool { return c.ready }

// Channel is the channel number the server gave (0 before the first answer).
func (c *Client) Channel() uint16 { return c.channel }

// Denied is the error code of the server's refusal (PROTOCOL.md §8.2: 8 relay denied,
// e.g. an expired token), or 0. A denied Client sends nothing more until Start.
func (c *Client) Denied() proto.ErrorCode { return c.denied }

// Deadline is when HandleTimeout (and, if a request is due, AppendAllocate) must be
// called next.
func (c *Client) Deadline() proto.Instant {
	if c.tokenLen == 0 {
		return proto.Never
	}
	return proto.Min(c.due, c.expires)
}

// HandleTimeout ends the channel when its lifetime has passed without a refresh
// answered (the server has dropped it too) and allocates anew.
func (c *Client) HandleTimeout(now proto.Instant) {
	c.advance(now)
	if c.tokenLen != 0 && now >= c.expires {
		c.events |= ClientLost
		c.channel, c.ready, c.expires = 0, false, proto.Never
		if c.denied == 0 {
			c.due = min(c.due, now)
		}
	}
}

// AppendAllocate appends the relay-allocate that is due at now and schedules its
// repetition; it returns b unchanged when none is due.
func (c *Client) AppendAllocate(now proto.Instant, b []byte, cookie proto.Session, peerID []byte) []byte {
	c.advance(now)
	if c.tokenLen == 0 || c.denied != 0 || now < c.due {
		return b
	}
	c.backoff = min(max(2*c.backoff, c.firstRetry()), allocRetryMax)
	c.due = now.Add(c.backoff)
	if c.sent {
		c.txid++
	}
	c.sent, c.answered = true, false
	m := proto.RelayAllocate{Session: cookie, TxID: c.txid, PeerID: peerID, Token: c.token[:c.tokenLen]}
	return m.Append(b)
}

// HandleAllocated takes a relay-allocated and reports whether it was for this
// Client: the answer to its latest request, or the server's repeat of it when the
// peer linked (both carry that request's txid), or such a repeat for the request
// before it that crossed our ready poll (crossedNotice). An answer saying the peer's
// end is gone after it was linked reports ClientLost.
func (c *Client) HandleAllocated(now proto.Instant, m *proto.RelayAllocated) bool {
	c.advance(now)
	switch {
	case c.tokenLen == 0 || c.denied != 0:
		return false
	case m.TxID == c.txid && c.answered && !c.ready && m.Channel == c.channel && m.Flags&proto.RelayPeerReady == 0:
		// The same "not ready" again (the server answering a repeated copy of
		// the request): nothing changed, and the ready poll keeps its time.
		return true
	case m.TxID == c.txid || c.crossedNotice(m):
		c.answered = true
		if m.Channel != c.channel {
			c.events |= ClientAllocated
		}
		wasReady := c.ready
		c.channel = m.Channel
		c.ready = m.Flags&proto.RelayPeerReady != 0
		c.tokenLen = copy(c.token[:], m.Token)
		life := time.Duration(m.LifetimeS) * time.Second
		c.expires = now.Add(life)
		c.due = now.Add(life / 2) // refresh at half the lifetime (PROTOCOL.md §8.4)
		c.backoff = 0
		switch {
		case c.ready && !wasReady:
			c.events |= ClientReady
			c.poll = 0
		case !c.ready:
			if wasReady {
				c.events |= ClientLost
			}
			c.poll = min(max(2*c.poll, c.firstPoll()), readyPollMax)
			c.due = min(c.due, now.Add(c.poll))
		}
		return true
	}
	return false
}

// crossedNotice reports whether m is the server's ready notice for our previous
// request, sent when the peer linked while our ready poll (the latest request) was
// on its way: "peer ready" on the channel that request was given, with the poll
// still unanswered. Taking it saves the poll's round trip; an answer to the poll
// saying otherwise (the peer left since) still reports ClientLost. A late notice
// from before a Restart names no channel we hold, and one older than an answer
// to the poll is not taken.
func (c *Client) crossedNotice(m *proto.RelayAllocated) bool {
	return m.TxID+1 == c.txid && !c.answered && !c.ready && c.channel != 0 &&
		m.Channel == c.channel && m.Flags&proto.RelayPeerReady != 0
}

// HandleError takes an error message and reports whether it answered this Client's
// request. Code 8 (relay denied) stops the Client (Denied); any other code leaves the
// repetition already scheduled to try again, backing off (the node handles code 5 by
// registering again and then calling Restart).
func (c *Client) HandleError(now proto.Instant, m *proto.Error) bool {
	c.advance(now)
	if c.tokenLen == 0 || m.TxID != c.txid {
		return false
	}
	if m.Code == proto.CodeRelayDenied {
		c.events |= ClientDenied
		c.denied = m.Code
		c.channel, c.ready, c.due, c.expires = 0, false, proto.Never, proto.Never
	}
	return true
}
