// Package promnode exports a natpass client's counters to Prometheus, for apps
// that ask: a driver.Node's datagram counters and drops (driver.Stats and its
// node.Stats), and, for each connection the app tracks, its rudp statistics and
// path (driver.Conn.Stats, Conn.Path).
//
// It is a package of its own so that an app that does not want Prometheus
// compiles none of it: driver/ and the core packages never import Prometheus (a
// test checks).
//
//	c := promnode.NewCollector(node)
//	prometheus.MustRegister(c)
//	conn, err := node.Connect(ctx, "peer")
//	c.Track(conn) // until conn ends
//
// Like admin's server collector it keeps no counters: each scrape reads the
// node's and the tracked connections' stats. Several nodes in one registry: wrap
// each collector's registerer with a label (prometheus.WrapRegistererWith).
package promnode

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/natpass/natpass/driver"
)

// maxTracked bounds the connections one collector follows (a label value each);
// Track refuses more and counts them in natpass_conn_untracked_total.
const maxTracked = 1024

// Collector is a prometheus.Collector over one driver.Node and the connections
// handed to Track. Safe for concurrent use.
type Collector struct {
	node *driver.Node

	mu        sync.Mutex
	conns     map[*driver.Conn]struct{}
	untracked uint64 // Track calls over maxTracked

	nodeDescs, connDescs    []*prometheus.Desc // parallel to nodeMetrics, connMetrics
	pathDesc, untrackedDesc *prometheus.Desc
}

// NewCollector returns a collector over n. Register it with a registry.
func NewCollector(n *driver.Node) *Collector {
	c := &Collector{node: n, conns: map[*driver.Conn]struct{}{}}
	for _, m := range nodeMetrics {
		c.nodeDescs = append(c.nodeDescs, m.desc(nil))
	}
	for _, m := range connMetrics {
		c.connDescs = append(c.connDescs, m.desc([]string{"peer"}))
	}
	c.pathDesc = prometheus.NewDesc("natpass_conn_path", "The connection's path now: 1 for its kind (direct, relay or none).",
		[]string{"peer", "kind"}, nil)
	c.untrackedDesc = prometheus.NewDesc("natpass_conn_untracked_total",
		"Connections Track refused: the collector followed 1024 already.", nil, nil)
	return c
}

// Track adds conn's metrics (labelled with its peer ID) until conn ends: a scrape
// after conn's Done forgets it. It reports false, and counts, when the collector
// follows maxTracked connections already.
func (c *Collector) Track(conn *driver.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.conns[conn]; !ok && len(c.conns) >= maxTracked {
		c.untracked++
		return false
	}
	c.conns[conn] = struct{}{}
	return true
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range append(append(c.nodeDescs, c.connDescs...), c.pathDesc, c.untrackedDesc) {
		ch <- d
	}
}

// Collect reads the node's stats and each live tracked connection's.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Stats()
	for i, m := range nodeMetrics {
		for _, p := range m.points(&st) {
			ch <- m.metric(c.nodeDescs[i], p)
		}
	}
	conns, untracked := c.live()
	ch <- prometheus.MustNewConstMetric(c.untrackedDesc, prometheus.CounterValue, float64(untracked))
	for _, conn := range conns {
		cs, err := conn.Stats()
		if err != nil {
			continue // the node stopped
		}
		peer := conn.Peer()
		for i, m := range connMetrics {
			for _, p := range m.points(&cs) {
				ch <- m.metric(c.connDescs[i], point{labels: append([]string{peer}, p.labels...), value: p.value})
			}
		}
		ch <- prometheus.MustNewConstMetric(c.pathDesc, prometheus.GaugeValue, 1, peer, conn.Path().Kind.String())
	}
}

// live forgets the tracked connections that ended and returns the others.
func (c *Collector) live() ([]*driver.Conn, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*driver.Conn, 0, len(c.conns))
	for conn := range c.conns {
		select {
		case <-conn.Done():
			delete(c.conns, conn)
		default:
			out = append(out, conn)
		}
	}
	return out, c.untracked
}
