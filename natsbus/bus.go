package natsbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rendezvous"
)

var _ driver.ClusterBus = (*Bus)(nil)

// Errors of a running Bus; compare with errors.Is.
var (
	ErrClosed   = errors.New("natsbus: bus closed")
	ErrSubject  = errors.New("natsbus: bad subject")
	ErrExternal = errors.New("natsbus: not known with an external NATS")
)

// closeFlush bounds how long Close waits for published messages to leave.
const closeFlush = 2 * time.Second

// flushLimit bounds a Flush whose context has no deadline (nats.go wants one).
const flushLimit = 10 * time.Second

// Bus is one server's connection to its cluster. See the package doc for the call
// contract.
type Bus struct {
	cfg    Config
	prefix string // "natpass.<ClusterName>."
	nc     *nats.Conn
	srv    *server.Server // nil with an external NATS

	// received is the one channel every subscription delivers to (nats.go's
	// ChanSubscribe: no goroutine per subject, so a server holding 100k peers runs
	// one forwarder, not 100k). nats.go never blocks on it: when it is full the
	// message is dropped and counted by the subscription (DroppedSlowConsumer).
	// Bound: InboxSize, like Inbox.
	received chan *nats.Msg
	inbox    chan rendezvous.ClusterMessage
	done     chan struct{}
	fwd      sync.WaitGroup

	mu          sync.Mutex
	subs        map[string]*nats.Subscription // by relative subject
	goneDropped uint64                        // slow-consumer drops of ended subscriptions
	closed      atomic.Bool
	closeOnce   sync.Once

	published, delivered, droppedInboxFull, droppedForeign atomic.Uint64
	noResponders, disconnects, reconnects                  atomic.Uint64
}

// Stats counts what a Bus did. Every message received from NATS is either
// Delivered to Inbox or counted in one of the Dropped counters.
type Stats struct {
	Published uint64 // Publish calls NATS accepted
	Delivered uint64 // messages and notices put on Inbox
	// NoResponders counts the 503 notices received (whether Inbox had room or not).
	NoResponders uint64
	// DroppedInboxFull: Inbox was full (the server's loop fell behind).
	DroppedInboxFull uint64
	// DroppedSlowConsumer: the channel between nats.go and the forwarder was full.
	DroppedSlowConsumer uint64
	// DroppedForeign: a message whose reply subject was outside the cluster prefix.
	DroppedForeign uint64
	Subscriptions  int    // subjects subscribed now
	Disconnects    uint64 // connection losses (external NATS)
	Reconnects     uint64 // reconnections after them
}

// Start connects a Bus: to an embedded nats-server (started here, routes and all)
// unless cfg.URL names an external NATS. It returns once the connection is up;
// routes come up in the background (WaitPeers).
func Start(cfg Config) (*Bus, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	b := &Bus{
		cfg:      cfg,
		prefix:   "natpass." + cfg.ClusterName + ".",
		received: make(chan *nats.Msg, cfg.InboxSize),
		inbox:    make(chan rendezvous.ClusterMessage, cfg.InboxSize),
		done:     make(chan struct{}),
		subs:     make(map[string]*nats.Subscription),
	}
	opts := b.connectOptions()
	if cfg.URL == "" {
		var token string
		if b.srv, token, err = startServer(cfg); err != nil {
			return nil, err
		}
		opts = append(opts, nats.InProcessServer(b.srv))
		if token != "" {
			opts = append(opts, nats.Token(token))
		}
	}
	if b.nc, err = nats.Connect(cfg.URL, opts...); err != nil {
		if b.srv != nil {
			b.srv.Shutdown()
			b.srv.WaitForShutdown()
		}
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	b.fwd.Add(1)
	go b.forward()
	return b, nil
}

// connectOptions are the nats.go options of both modes. The connection retries
// forever: a cluster server without its bus is cut off, so it waits for NATS.
func (b *Bus) connectOptions() []nats.Option {
	opts := []nats.Option{
		nats.Name("natpass-" + b.cfg.ClusterName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.disconnects.Add(1)
			b.logf("natsbus: disconnected: %v", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.reconnects.Add(1)
			b.logf("natsbus: reconnected to %s", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.logf("natsbus: %v", err)
		}),
	}
	if b.cfg.Token != "" {
		opts = append(opts, nats.Token(b.cfg.Token))
	}
	if b.cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(b.cfg.CredsFile))
	}
	return opts
}

func (b *Bus) logf(format string, args ...any) {
	if b.cfg.Log != nil {
		b.cfg.Log(fmt.Sprintf(format, args...))
	}
}

// Publish sends m on the cluster. A Reply makes it a request: when nobody
// subscribes to m.Subject, a NoResponders notice for m.Reply reaches Inbox, provided
// this bus subscribes to m.Reply (package doc). m.Data is copied before Publish
// returns; Publish does not wait for the network.
func (b *Bus) Publish(m rendezvous.ClusterMessage) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if !validSubject(m.Subject, false) || (m.Reply != "" && !validSubject(m.Reply, false)) {
		return fmt.Errorf("%w: publish %q reply %q", ErrSubject, m.Subject, m.Reply)
	}
	var err error
	if m.Reply == "" {
		err = b.nc.Publish(b.prefix+m.Subject, m.Data)
	} else {
		err = b.nc.PublishRequest(b.prefix+m.Subject, b.prefix+m.Reply, m.Data)
	}
	if err != nil {
		return fmt.Errorf("natsbus: publish %s: %w", m.Subject, err)
	}
	b.published.Add(1)
	return nil
}

// Subscribe starts delivering subject's messages to Inbox. subject is relative and
// may hold the wildcards * and > as whole tokens. Subscribing to a subject already
// subscribed does nothing. Interest reaches the other servers asynchronously
// (WaitInterest).
func (b *Bus) Subscribe(subject string) error {
	if !validSubject(subject, true) {
		return fmt.Errorf("%w: subscribe %q", ErrSubject, subject)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	if _, ok := b.subs[subject]; ok {
		return nil
	}
	sub, err := b.nc.ChanSubscribe(b.prefix+subject, b.received)
	if err != nil {
		return fmt.Errorf("natsbus: subscribe %s: %w", subject, err)
	}
	b.subs[subject] = sub
	return nil
}

// Unsubscribe stops delivering subject's messages; an unknown subject is a no-op.
// Messages already received for subject may still reach Inbox after it returns.
func (b *Bus) Unsubscribe(subject string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	sub, ok := b.subs[subject]
	if !ok {
		return nil
	}
	delete(b.subs, subject)
	if n, err := sub.Dropped(); err == nil {
		b.goneDropped += uint64(n)
	}
	if err := sub.Unsubscribe(); err != nil && !b.closed.Load() {
		return fmt.Errorf("natsbus: unsubscribe %s: %w", subject, err)
	}
	return nil
}

// Flush waits until the NATS server this bus is connected to has processed every
// Publish, Subscribe and Unsubscribe made so far, or ctx ends. Other servers of an
// embedded cluster learn of subscriptions later (WaitInterest).
func (b *Bus) Flush(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushLimit)
		defer cancel()
	}
	return b.nc.FlushWithContext(ctx)
}

// Inbox delivers the subscribed subjects' messages and the NoResponders notices,
// with subjects relative. Bound: Config.InboxSize. Closed by Close.
func (b *Bus) Inbox() <-chan rendezvous.ClusterMessage { return b.inbox }

// forward moves messages from nats.go to Inbox, never blocking: what finds Inbox
// full is dropped and counted.
func (b *Bus) forward() {
	defer b.fwd.Done()
	for {
		select {
		case m := <-b.received:
			cm, ok := b.convert(m)
			if !ok {
				continue
			}
			select {
			case b.inbox <- cm:
				b.delivered.Add(1)
			default:
				b.droppedInboxFull.Add(1)
			}
		case <-b.done:
			return
		}
	}
}

// convert turns a NATS message into a ClusterMessage with relative subjects.
func (b *Bus) convert(m *nats.Msg) (rendezvous.ClusterMessage, bool) {
	subject, ok := strings.CutPrefix(m.Subject, b.prefix)
	if !ok {
		b.droppedForeign.Add(1)
		return rendezvous.ClusterMessage{}, false
	}
	// nats-server's no-responders notice: no payload, header "NATS/1.0 503",
	// which nats.go exposes as the Status header.
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		b.noResponders.Add(1)
		return rendezvous.ClusterMessage{Subject: subject, NoResponders: true}, true
	}
	var reply string
	if m.Reply != "" {
		if reply, ok = strings.CutPrefix(m.Reply, b.prefix); !ok {
			b.droppedForeign.Add(1)
			return rendezvous.ClusterMessage{}, false
		}
	}
	return rendezvous.ClusterMessage{Subject: subject, Reply: reply, Data: m.Data}, true
}

// Close ends the connection (after flushing what was published, for at most
// closeFlush), shuts the embedded server down and closes Inbox. Later calls
// return nil and do nothing.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed.Store(true)
		b.mu.Unlock()
		if b.nc.IsConnected() {
			_ = b.nc.FlushTimeout(closeFlush)
		}
		b.nc.Close()
		close(b.done)
		b.fwd.Wait()
		if b.srv != nil {
			b.srv.Shutdown()
			b.srv.WaitForShutdown()
		}
		close(b.inbox)
	})
	return nil
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	dropped, nsubs := b.goneDropped, len(b.subs)
	for _, sub := range b.subs {
		if n, err := sub.Dropped(); err == nil {
			dropped += uint64(n)
		}
	}
	b.mu.Unlock()
	return Stats{
		Published:           b.published.Load(),
		Delivered:           b.delivered.Load(),
		NoResponders:        b.noResponders.Load(),
		DroppedInboxFull:    b.droppedInboxFull.Load(),
		DroppedSlowConsumer: dropped,
		DroppedForeign:      b.droppedForeign.Load(),
		Subscriptions:       nsubs,
		Disconnects:         b.disconnects.Load(),
		Reconnects:          b.reconnects.Load(),
	}
}

// validSubject: dot-separated non-empty tokens without whitespace; '*' and '>'
// only as whole tokens, '>' only last, and neither unless wild. It runs on every
// Publish, so it scans in place rather than splitting.
func validSubject(s string, wild bool) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if c := s[i]; c == ' ' || c == '\t' || c == '\r' || c == '\n' {
				return false
			}
			continue
		}
		tok := s[start:i]
		switch {
		case tok == "":
			return false
		case tok == "*" || tok == ">":
			if !wild || (tok == ">" && i != len(s)) {
				return false
			}
		case strings.ContainsAny(tok, "*>"):
			return false
		}
		start = i + 1
	}
	return true
}
