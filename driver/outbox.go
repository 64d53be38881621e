package driver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/rudp"
)

// Per-link outboxes (issue 14: "a slow member slows what is sent to it, not the
// room"). Room.Broadcast puts a message in the outbox of every link and returns;
// the loop moves outboxes into their connections as rudp's send buffers take them.
// A member that reads slowly fills its own connection (its window, then its send
// buffer), then its own outbox; only then does a broadcast wait, and only for that
// member's outbox to have room. Every other member's link keeps its pace meanwhile.
//
// Bounds: an outbox holds Config.RoomOutboxBytes (counted as len + msgOverhead per
// message, so the entries are bounded too) and always at least one message. The
// loop's list of outboxes to move holds each Conn at most once (outbox.listed).

// defaultRoomOutboxBytes is Config.RoomOutboxBytes' default.
const defaultRoomOutboxBytes = 1 << 20

// outMsg is one message waiting in an outbox. data is shared by every link's
// outbox a broadcast reached and never written.
type outMsg struct {
	lane int
	mode rudp.Mode
	data []byte
}

// outbox is a Conn's queue of room messages not yet in its connection; Conn.mu
// guards it.
type outbox struct {
	q     []outMsg
	head  int
	bytes int // len(data) + msgOverhead of every message waiting
	peak  int // the most bytes ever waited
	// listed: the Conn is on the loop's list (Node.outs or Node.outPending).
	listed bool
	// slow: RoomMemberSlow was reported; cleared once half the bound is free.
	slow bool
	// dropped counts unreliable messages refused while full, and messages of
	// every mode lost with the link (it ended, or was closed).
	dropped uint64
}

func (o *outbox) len() int { return len(o.q) - o.head }

// drop empties the outbox, counting what it held.
func (o *outbox) drop() {
	o.dropped += uint64(o.len())
	clear(o.q)
	o.q, o.head, o.bytes = o.q[:0], 0, 0
}

// offerResult is what offering a message to a link's outbox did.
type offerResult uint8

const (
	offerQueued  offerResult = iota
	offerFull                // reliable, no room: wait for the outbox
	offerDropped             // unreliable, no room: dropped and counted
	offerClosed              // the link ended: skipped
)

// offer puts m in c's outbox if it has room. The first message to find it full
// reports RoomMemberSlow to c's rooms.
func (c *Conn) offer(m outMsg) offerResult {
	cost := len(m.data) + msgOverhead
	c.mu.Lock()
	o := &c.out
	switch {
	case c.err != nil:
		c.mu.Unlock()
		return offerClosed
	case o.bytes > 0 && o.bytes+cost > c.n.cfg.RoomOutboxBytes:
		res, report := offerFull, !o.slow
		o.slow = true
		if !m.mode.Reliable() {
			res = offerDropped
			o.dropped++
		}
		rooms := c.rooms
		c.mu.Unlock()
		if report {
			for _, r := range rooms {
				r.push(RoomEvent{Kind: RoomMemberSlow, Member: c.peer})
			}
		}
		return res
	}
	if o.head > 0 && o.head >= len(o.q)/2 {
		n := copy(o.q, o.q[o.head:])
		clear(o.q[n:])
		o.q, o.head = o.q[:n], 0
	}
	o.q = append(o.q, m)
	o.bytes += cost
	o.peak = max(o.peak, o.bytes)
	list := !o.listed
	o.listed = true
	c.mu.Unlock()
	if list {
		c.n.listOutbox(c)
	}
	return offerQueued
}

// outboxBusy reports whether c's outbox holds messages: a Send or Flush on c waits
// behind them, so that order holds between Room and Conn calls.
func (c *Conn) outboxBusy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.len() > 0
}

// listOutbox puts c on the loop's list and wakes the loop. offer calls it when c's
// outbox was not listed, so c is on the list at most once.
func (n *Node) listOutbox(c *Conn) {
	n.outMu.Lock()
	n.outs = append(n.outs, c)
	n.outMu.Unlock()
	select {
	case n.outKick <- struct{}{}:
	default: // the loop is woken already and will see c
	}
}

// drainOutboxes moves what the listed outboxes hold into their connections, as
// far as the send buffers take it; an outbox that emptied leaves the list. It runs
// holding the loop's mu and reports whether it sent anything.
func (n *Node) drainOutboxes(now proto.Instant) bool {
	n.outMu.Lock()
	n.outPending = append(n.outPending, n.outs...)
	clear(n.outs)
	n.outs = n.outs[:0]
	n.outMu.Unlock()
	sent := false
	keep := n.outPending[:0]
	for _, c := range n.outPending {
		more, s := c.drainOutbox(n, now)
		sent = sent || s
		if more {
			keep = append(keep, c)
		}
	}
	clear(n.outPending[len(keep):])
	n.outPending = keep
	return sent
}

// drainOutbox sends c's outbox until it is empty (more false: c leaves the list)
// or the send buffer is full. An outbox of a link that ended is dropped, counted.
func (c *Conn) drainOutbox(n *Node, now proto.Instant) (more, sent bool) {
	defer c.signalSpace(&sent)
	for {
		c.mu.Lock()
		o := &c.out
		if c.err != nil || o.len() == 0 {
			o.drop()
			o.listed = false
			c.mu.Unlock()
			return false, sent
		}
		m := o.q[o.head]
		c.mu.Unlock()
		err := n.nm.Send(now, c.peer, m.lane, m.mode, m.data)
		if errors.Is(err, rudp.ErrSendBufferFull) {
			return true, sent
		}
		c.mu.Lock()
		o.q[o.head] = outMsg{}
		o.head++
		o.bytes -= len(m.data) + msgOverhead
		if err != nil {
			o.dropped++ // the machine has no such peer any more; its end is on the way
		}
		if o.slow && o.bytes <= c.n.cfg.RoomOutboxBytes/2 {
			o.slow = false
		}
		c.mu.Unlock()
		sent = true
	}
}

// signalSpace wakes a broadcast waiting for room in c's outbox (capacity 1: a
// signal is never lost, and a waiter that finds the outbox still full waits again).
func (c *Conn) signalSpace(sent *bool) {
	if !*sent && c.closeErr() == nil {
		return
	}
	select {
	case c.outSpace <- struct{}{}:
	default:
	}
}

// checkMessage refuses at once what the connections would refuse later: the
// outboxes hold only messages rudp takes.
func (n *Node) checkMessage(lane int, mode rudp.Mode, msg []byte) error {
	rc := n.rudp
	switch {
	case lane < 0 || lane >= len(rc.Lanes):
		return rudp.ErrBadLane
	case mode > rudp.Unreliable:
		return rudp.ErrBadMode
	case len(msg) > rc.MaxMessageSize:
		return rudp.ErrMessageTooLarge
	}
	return nil
}

// BroadcastError is BroadcastContext's answer when its context ended while the
// outboxes of Members were full: every other member has the message, these do not
// (the next broadcast may reach them: a caller that needs every message everywhere
// sends it again to them, or waits longer).
type BroadcastError struct {
	Members []string
	Err     error // the context's error
}

func (e *BroadcastError) Error() string {
	return fmt.Sprintf("driver: broadcast not queued for %s (outbox full): %v", strings.Join(e.Members, ", "), e.Err)
}

func (e *BroadcastError) Unwrap() error { return e.Err }

// MemberBacklog is what waits for one member: messages in its link's outbox (not
// yet in the connection), and Dropped, the unreliable messages its full outbox
// refused plus the messages lost when a link with it ended.
type MemberBacklog struct {
	Member          string
	Messages, Bytes int
	Peak            int // the most bytes its current link's outbox held
	Dropped         uint64
}
