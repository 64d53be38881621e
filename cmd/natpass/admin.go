package main

import (
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/natpass/natpass/admin"
	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/natsbus"
)

// adminEndpoint is natpass server's --admin-listen endpoint; nil without one (its
// methods then do nothing).
type adminEndpoint struct {
	ep  *admin.Endpoint
	reg *prometheus.Registry
	log *slog.Logger
}

// startAdmin opens the admin endpoint on addr ("" for none) before the server's
// sockets: /healthz answers from the start and /readyz says 503 "starting" until
// health is set ready.
func startAdmin(addr string, health *admin.Health, log *slog.Logger) (*adminEndpoint, error) {
	if addr == "" {
		return nil, nil
	}
	reg := admin.NewRegistry()
	ep, err := admin.Listen(addr, admin.Handler(reg, health))
	if err != nil {
		return nil, err
	}
	log.Info("admin endpoint listening", "addr", ep.Addr().String(), "paths", "/metrics /healthz /readyz")
	return &adminEndpoint{ep: ep, reg: reg, log: log}, nil
}

// serve adds the server's (and its cluster bus's) metrics to /metrics.
func (a *adminEndpoint) serve(s *driver.Server, bus *natsbus.Bus) {
	if a == nil {
		return
	}
	src := admin.Sources{Server: s.Stats}
	if bus != nil {
		src.Bus = func() admin.BusStats { return busStats(bus) }
	}
	a.reg.MustRegister(admin.NewServerCollector(src))
}

// busStats copies the bus's numbers for the collector.
func busStats(b *natsbus.Bus) admin.BusStats {
	st := b.Stats()
	return admin.BusStats{
		Peers: b.Peers(), Subscriptions: st.Subscriptions, Published: st.Published, Delivered: st.Delivered,
		NoResponders: st.NoResponders, DroppedInboxFull: st.DroppedInboxFull,
		DroppedSlowConsumer: st.DroppedSlowConsumer, DroppedForeign: st.DroppedForeign,
		Disconnects: st.Disconnects, Reconnects: st.Reconnects,
	}
}

// addr is the endpoint's address, nil without one.
func (a *adminEndpoint) addr() net.Addr {
	if a == nil {
		return nil
	}
	return a.ep.Addr()
}

// close stops the endpoint (the last thing the server does).
func (a *adminEndpoint) close() {
	if a == nil {
		return
	}
	if err := a.ep.Close(); err != nil {
		a.log.Warn("admin endpoint close", "err", err)
	}
}
