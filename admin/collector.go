// Package admin is the operator's side of a natpass server (DESIGN §15): a
// Prometheus collector over the server's counters, and the admin HTTP endpoint
// that serves it with /healthz and /readyz.
//
// The collector keeps no counters of its own: each scrape reads one snapshot of
// driver.Server.Stats (and of the cluster bus, when there is one) and reports it,
// so a metric can never disagree with the server's own stats line.
//
// The package imports Prometheus; driver/ and the core packages do not (a test
// checks), so an app that embeds driver.Server without metrics compiles none of it.
package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natpass/natpass/driver"
)

// BusStats are the cluster bus's own numbers: natsbus.Stats and Bus.Peers, copied
// by the caller so that this package does not import natsbus (and NATS with it).
type BusStats struct {
	Peers         int // other servers the embedded NATS has routes to
	Subscriptions int // subjects subscribed now
	Published     uint64
	Delivered     uint64
	NoResponders  uint64
	// Drops, by reason: the bus's inbox was full, nats.go's channel to the bus was
	// full, a reply subject outside the cluster.
	DroppedInboxFull, DroppedSlowConsumer, DroppedForeign uint64
	Disconnects, Reconnects                               uint64
}

// Sources are what a ServerCollector reads at each scrape. Server is required;
// Bus is nil for a server alone (its metrics are then left out).
type Sources struct {
	Server func() driver.ServerStats
	Bus    func() BusStats
}

// snapshot is one scrape's reading of the sources.
type snapshot struct {
	st  driver.ServerStats
	bus BusStats
}

// ServerCollector is a prometheus.Collector over a natpass server's counters. It is
// safe for concurrent scrapes; each reads the sources once.
type ServerCollector struct {
	src   Sources
	descs []*prometheus.Desc // parallel to serverMetrics
}

// NewServerCollector returns a collector over src. Register it with a
// prometheus.Registry (Handler does that for the endpoint).
func NewServerCollector(src Sources) *ServerCollector {
	c := &ServerCollector{src: src}
	for _, m := range serverMetrics {
		var labels []string
		if m.label != "" {
			labels = []string{m.label}
		}
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, labels, nil))
	}
	return c
}

// Describe sends every metric's description.
func (c *ServerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the sources once and sends every metric's samples.
func (c *ServerCollector) Collect(ch chan<- prometheus.Metric) {
	s := snapshot{st: c.src.Server()}
	if c.src.Bus != nil {
		s.bus = c.src.Bus()
	}
	for i, m := range serverMetrics {
		if m.bus && c.src.Bus == nil {
			continue
		}
		typ := prometheus.CounterValue
		if m.gauge {
			typ = prometheus.GaugeValue
		}
		for _, p := range m.points(&s) {
			var labels []string
			if m.label != "" {
				labels = []string{p.label}
			}
			ch <- prometheus.MustNewConstMetric(c.descs[i], typ, p.value, labels...)
		}
	}
}
