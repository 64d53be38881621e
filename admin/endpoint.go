package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is a server's readiness: not ready until SetReady (its sockets are up),
// and not ready again once StartDrain was called (it is shutting down). Safe for
// concurrent use.
type Health struct {
	up, draining atomic.Bool
}

// SetReady says the server's sockets are up and it serves.
func (h *Health) SetReady() { h.up.Store(true) }

// StartDrain says the server is going away: /readyz answers 503 from now on, so a
// load balancer sends no new nodes while the old ones move.
func (h *Health) StartDrain() { h.draining.Store(true) }

// Ready reports whether the server takes new nodes, and why not.
func (h *Health) Ready() (bool, string) {
	switch {
	case h.draining.Load():
		return false, "draining"
	case !h.up.Load():
		return false, "starting"
	}
	return true, "ready"
}

// Handler serves the admin paths:
//
//	/metrics  Prometheus text format: reg's metrics
//	/healthz  200 "alive" while the process serves HTTP at all
//	/readyz   200 "ready", or 503 "starting" / "draining" (Health.Ready)
func Handler(reg *prometheus.Registry, h *Health) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("alive\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := h.Ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(why + "\n"))
	})
	return mux
}

// NewRegistry returns a registry holding the Go runtime's and the process's
// standard collectors: what an operator expects beside the server's own metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Endpoint is a running admin HTTP server.
type Endpoint struct {
	srv  *http.Server
	addr net.Addr
	done chan error
}

// Listen serves h on addr ("host:port"; port 0 picks one) until Close.
func Listen(addr string, h http.Handler) (*Endpoint, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		// The timeouts bound what a slow or stuck client can hold: this is an
		// operator's port, but it may face a network.
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10},
		addr: ln.Addr(),
		done: make(chan error, 1),
	}
	go func() { e.done <- e.srv.Serve(ln) }()
	return e, nil
}

// Addr is the address the endpoint listens on (with port 0 resolved).
func (e *Endpoint) Addr() net.Addr { return e.addr }

// Close stops the endpoint: requests under way get up to a second to finish.
func (e *Endpoint) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = e.srv.Close()
	}
	if serr := <-e.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
