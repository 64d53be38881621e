package natsbus

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded server settings.
const (
	// readyTimeout bounds the wait for the embedded server (and its route
	// listener) to come up.
	readyTimeout = 10 * time.Second
	// writeDeadline: a route or client that takes longer than this to accept a
	// write is a slow consumer and is cut (nats-server's default is 10 s; a
	// cluster on one network answers in milliseconds).
	writeDeadline = 5 * time.Second
	// pollInterval is how often WaitPeers and WaitInterest look.
	pollInterval = 10 * time.Millisecond
	// readyStep is how long one readiness check waits before waitReady looks for
	// a fatal error.
	readyStep = 50 * time.Millisecond
)

// startServer starts the embedded nats-server of cfg (normalized, URL empty) and
// returns it with the token the in-process connection presents ("" for none).
//
// The bus connects in process and needs no client listener, but nats-server
// v2.15.3 starts routing only after its client accept loop is up: with DontListen
// and a cluster, routes never start and Shutdown hangs (server.go Start:
// StartRouting waits on clientListenReady, which only AcceptLoop closes). So a
// clustered server listens for clients on a random loopback port, guarded by a
// random token that only this process knows; a lone server uses DontListen.
func startServer(cfg Config) (*server.Server, string, error) {
	opts := &server.Options{
		DontListen:    true,
		NoSigs:        true,
		WriteDeadline: writeDeadline,
	}
	var token string
	if cfg.ClusterListen != "" {
		token = rand.Text()
		opts.DontListen = false
		opts.Host, opts.Port, opts.Authorization = "127.0.0.1", server.RANDOM_PORT, token
		host, port, err := listenHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, "", err
		}
		user, password := routeCredentials(cfg.Secret, cfg.ClusterName)
		routes, err := routeURLs(cfg.ClusterPeers, user, password)
		if err != nil {
			return nil, "", err
		}
		opts.Cluster = server.ClusterOpts{
			Name:          cfg.ClusterName,
			Host:          host,
			Port:          port,
			Username:      user,
			Password:      password,
			WriteDeadline: writeDeadline,
			NoAdvertise:   true, // clients have no business with the other servers
		}
		opts.Routes = routes
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("natsbus: embedded server: %w", err)
	}
	l := &logger{log: cfg.Log, fatal: make(chan string, 1)}
	s.SetLogger(l, false, false)
	s.Start()
	if err := waitReady(s, l.fatal); err != nil {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, "", err
	}
	return s, token, nil
}

// waitReady waits for s to be ready (its route listener bound) for at most
// readyTimeout, and gives up at once when s reports a fatal error (a route port in
// use), which nats-server only logs.
func waitReady(s *server.Server, fatal <-chan string) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if s.ReadyForConnections(readyStep) {
			return nil
		}
		select {
		case msg := <-fatal:
			return fmt.Errorf("natsbus: embedded server: %s", msg)
		default:
		}
	}
	return fmt.Errorf("natsbus: embedded server not ready after %v", readyTimeout)
}

// ClusterAddr is the address the embedded server's route listener is bound to
// (with ClusterListen's port 0 resolved), "" without one.
func (b *Bus) ClusterAddr() string {
	if b.srv == nil {
		return ""
	}
	if a := b.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Peers is the number of other servers the embedded server has routes to; 0 with
// an external NATS, whose routes the bus does not see.
func (b *Bus) Peers() int {
	if b.srv == nil {
		return 0
	}
	return b.srv.NumRemotes()
}

// WaitPeers waits until the embedded server has routes to at least n other servers,
// or ctx ends. With an external NATS it returns ErrExternal for n > 0.
func (b *Bus) WaitPeers(ctx context.Context, n int) error {
	if b.srv == nil && n > 0 {
		return ErrExternal
	}
	return poll(ctx, func() bool { return b.Peers() >= n })
}

// WaitInterest waits until the embedded server knows of a subscriber to subject
// (relative) anywhere in the cluster, this bus's own included, so that a message
// published here now reaches it; or until ctx ends. With an external NATS it
// returns ErrExternal.
func (b *Bus) WaitInterest(ctx context.Context, subject string) error {
	if b.srv == nil {
		return ErrExternal
	}
	if !validSubject(subject, false) {
		return fmt.Errorf("%w: %q", ErrSubject, subject)
	}
	acc := b.srv.GlobalAccount()
	return poll(ctx, func() bool { return acc.SubscriptionInterest(b.prefix + subject) })
}

// poll calls done every pollInterval until it returns true or ctx ends.
func poll(ctx context.Context, done func() bool) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// logger adapts Config.Log to nats-server's Logger. Fatalf does not exit (an
// embedded server must not end the process): it logs and hands the message to
// waitReady.
type logger struct {
	log   func(string) // nil: silence
	fatal chan string  // bound 1: the first fatal error is enough
}

func (l *logger) line(level, format string, v []any) {
	if l.log != nil {
		l.log("nats" + level + ": " + fmt.Sprintf(format, v...))
	}
}

func (l *logger) Noticef(format string, v ...any) { l.line("", format, v) }
func (l *logger) Warnf(format string, v ...any)   { l.line(" warning", format, v) }
func (l *logger) Errorf(format string, v ...any)  { l.line(" error", format, v) }
func (l *logger) Debugf(string, ...any)           {}
func (l *logger) Tracef(string, ...any)           {}

func (l *logger) Fatalf(format string, v ...any) {
	l.line(" fatal", format, v)
	select {
	case l.fatal <- fmt.Sprintf(format, v...):
	default:
	}
}

var _ server.Logger = (*logger)(nil)
