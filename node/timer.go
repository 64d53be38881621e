package node

import "github.com/natpass/natpass/proto"

// timerTable is a fixed table of deadlines, one per timer of a machine, with a name
// per entry for debugging (quinn-proto's connection/timer.rs; firezone's deadlines
// with a reason). proto.Never means unarmed; the machine's Deadline is the minimum.
type timerTable[T ~uint8] struct {
	at    []proto.Instant
	names []string
}

func newTimerTable[T ~uint8](names ...string) timerTable[T] {
	t := timerTable[T]{at: make([]proto.Instant, len(names)), names: names}
	t.clear()
	return t
}

func (t *timerTable[T]) set(i T, at proto.Instant) { t.at[i] = at }

// earlier arms i at at unless it is armed sooner already.
func (t *timerTable[T]) earlier(i T, at proto.Instant) { t.at[i] = min(t.at[i], at) }

func (t *timerTable[T]) stop(i T) { t.at[i] = proto.Never }

// armed reports whether timer i is set.
func (t *timerTable[T]) armed(i T) bool { return t.at[i] != proto.Never }

// due reports whether i is armed at or before now, and disarms it if so.
func (t *timerTable[T]) due(i T, now proto.Instant) bool {
	if t.at[i] > now {
		return false
	}
	t.at[i] = proto.Never
	return true
}

func (t *timerTable[T]) clear() {
	for i := range t.at {
		t.at[i] = proto.Never
	}
}

// next returns the earliest deadline and its timer's name ("" when none is armed).
func (t *timerTable[T]) next() (proto.Instant, string) {
	at, name := proto.Never, ""
	for i, d := range t.at {
		if d < at {
			at, name = d, t.names[i]
		}
	}
	return at, name
}

// DeadlineReason names the timer behind Deadline, for debugging: the server
// session's ("server: keepalive"), the keyx endpoint's, or a peer's
// ("peer b: conn loss").
func (n *Node) DeadlineReason() string {
	d := n.Deadline()
	if d == proto.Never {
		return ""
	}
	if at, name := n.srv.timers.next(); at == d {
		return "server: " + name
	}
	if n.srv.classifier != nil && n.srv.classifier.Deadline() == d {
		return "server: classifier"
	}
	if n.keyx.Deadline() == d {
		return "keyx"
	}
	for _, p := range n.peers {
		if p.Deadline() == d {
			return "peer " + p.id + ": " + p.deadlineReason()
		}
	}
	return "unknown"
}
