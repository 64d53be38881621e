package promnode

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rudp"
)

// metric is one row of a table: its name and help as Prometheus shows them, an
// optional label of its own, and how a stats value gives its samples.
type metric[S any] struct {
	name, help string
	gauge      bool
	label      string // "" for none
	points     func(s *S) []point
}

// point is one sample: its label values and value.
type point struct {
	labels []string
	value  float64
}

func (m metric[S]) desc(labels []string) *prometheus.Desc {
	if m.label != "" {
		labels = append(append([]string(nil), labels...), m.label)
	}
	return prometheus.NewDesc(m.name, m.help, labels, nil)
}

func (m metric[S]) metric(d *prometheus.Desc, p point) prometheus.Metric {
	typ := prometheus.CounterValue
	if m.gauge {
		typ = prometheus.GaugeValue
	}
	return prometheus.MustNewConstMetric(d, typ, p.value, p.labels...)
}

func one[T uint64 | int](v T) []point { return []point{{value: float64(v)}} }

func seconds(d time.Duration) []point { return []point{{value: d.Seconds()}} }

// pairs turns label value, value pairs into points; the label values go last,
// after the connection's peer (Collect puts that first).
func pairs[T uint64 | int](kv ...any) []point {
	ps := make([]point, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		ps = append(ps, point{labels: []string{kv[i].(string)}, value: float64(kv[i+1].(T))})
	}
	return ps
}

// nodeMetrics are a node's: driver.Stats and its node.Stats.
var nodeMetrics = []metric[driver.Stats]{
	{name: "natpass_node_datagrams_total", help: "UDP datagrams the node received and sent.", label: "direction",
		points: func(s *driver.Stats) []point { return pairs[uint64]("in", s.DatagramsIn, "out", s.DatagramsOut) }},
	{name: "natpass_node_bytes_total", help: "UDP payload bytes the node received and sent.", label: "direction",
		points: func(s *driver.Stats) []point { return pairs[uint64]("in", s.BytesIn, "out", s.BytesOut) }},
	{name: "natpass_node_sockets", help: "UDP sockets the node has open.", gauge: true,
		points: func(s *driver.Stats) []point { return one(s.Sockets) }},
	{name: "natpass_node_handshakes_total", help: "Encrypted sessions established with peers (first ones and rekeys).",
		points: func(s *driver.Stats) []point { return one(s.Node.Handshakes) }},
	{name: "natpass_node_cookie_replies_total", help: "Handshake-free cookie replies sent: initiations answered under load with a cookie instead of a handshake (no Diffie-Hellman done).",
		points: func(s *driver.Stats) []point { return one(s.Node.Keyx.CookieRepliesSent) }},
	{name: "natpass_node_dh_operations_total", help: "X25519 operations the node did for handshakes.",
		points: func(s *driver.Stats) []point { return one(s.Node.Keyx.DHOps) }},
	{name: "natpass_node_write_errors_total", help: "Sends the kernel refused.",
		points: func(s *driver.Stats) []point { return one(s.WriteErrors) }},
	{name: "natpass_node_incoming_refused_total", help: "Peers that connected while the accept queue was full.",
		points: func(s *driver.Stats) []point { return one(s.IncomingRefused) }},
	{name: "natpass_node_path_events_dropped_total", help: "Path events a connection's unread PathEvents channel could not hold.",
		points: func(s *driver.Stats) []point { return one(s.PathEventsDropped) }},
	{name: "natpass_node_drops_total", help: "Datagrams and messages the node dropped, by reason.", label: "reason",
		points: nodeDrops},
}

// nodeDrops are the driver's and the node machine's drops. "rejected" is the
// driver's count of what the machine refused, which the machine's reasons break
// down (they overlap it).
func nodeDrops(s *driver.Stats) []point {
	n := &s.Node
	return slices.Concat(pairs[uint64]("rejected", s.Rejected, "too_long", s.TooLong,
		"handshake_transmit_queue_full", n.Keyx.TransmitsDropped),
		pairs[int]("malformed", n.Malformed, "not_from_server", n.NotFromServer, "unexpected", n.Unexpected,
			"unknown_pair", n.UnknownPair, "bad_probe", n.BadProbe, "unhandled", n.Unhandled,
			"bad_handshake", n.BadHandshake, "bad_transport", n.BadTransport, "duplicate", n.Duplicates,
			"handshake_error", n.HandshakeErrors, "seal_error", n.SealErrors, "relay", n.RelayDrops,
			"queue_full", n.QueueDrops, "probe_queue_full", n.ProbeDrops, "room_refused", n.RoomRefused,
			"room_stale", n.RoomStale, "stray_error", n.StrayErrors))
}

// connMetrics are a connection's rudp.Stats (Collect adds the peer label).
var connMetrics = []metric[rudp.Stats]{
	{name: "natpass_conn_srtt_seconds", help: "Smoothed round-trip time (RFC 9002 §5).", gauge: true,
		points: func(s *rudp.Stats) []point { return seconds(s.SRTT) }},
	{name: "natpass_conn_min_rtt_seconds", help: "Least round-trip time seen.", gauge: true,
		points: func(s *rudp.Stats) []point { return seconds(s.MinRTT) }},
	{name: "natpass_conn_cwnd_bytes", help: "Congestion window.", gauge: true,
		points: func(s *rudp.Stats) []point { return one(s.Cwnd) }},
	{name: "natpass_conn_in_flight_bytes", help: "Bytes sent and not yet acknowledged or lost.", gauge: true,
		points: func(s *rudp.Stats) []point { return one(s.BytesInFlight) }},
	{name: "natpass_conn_send_buffered_bytes", help: "Bytes handed to Send not yet acknowledged or gone.", gauge: true,
		points: func(s *rudp.Stats) []point { return one(s.SendBuffered) }},
	{name: "natpass_conn_pacing_rate_bytes_per_second", help: "Pacing rate.", gauge: true,
		points: func(s *rudp.Stats) []point { return one(s.PacingRate) }},
	{name: "natpass_conn_datagram_size_bytes", help: "Confirmed path MTU (UDP payload).", gauge: true,
		points: func(s *rudp.Stats) []point { return one(s.DatagramSize) }},
	{name: "natpass_conn_packets_total", help: "rudp packets sent and received.", label: "direction",
		points: func(s *rudp.Stats) []point {
			return pairs[uint64]("out", s.PacketsSent, "in", s.PacketsReceived)
		}},
	{name: "natpass_conn_bytes_total", help: "rudp packet bytes sent and received.", label: "direction",
		points: func(s *rudp.Stats) []point { return pairs[uint64]("out", s.BytesSent, "in", s.BytesReceived) }},
	{name: "natpass_conn_packets_acked_total", help: "Packets the peer acknowledged.",
		points: func(s *rudp.Stats) []point { return one(s.PacketsAcked) }},
	{name: "natpass_conn_packets_lost_total", help: "Packets declared lost.",
		points: func(s *rudp.Stats) []point { return one(s.PacketsLost) }},
	{name: "natpass_conn_retransmits_total", help: "Fragments sent again.",
		points: func(s *rudp.Stats) []point { return one(s.Retransmits) }},
	{name: "natpass_conn_recovery_events_total", help: "Loss-recovery events, by kind.", label: "kind",
		points: func(s *rudp.Stats) []point {
			return pairs[uint64]("pto", s.PTOs, "congestion", s.CongestionEvents,
				"persistent_congestion", s.PersistentCongestion, "loss_tolerated", s.LossesTolerated,
				"spurious_loss", s.SpuriousLosses, "pmtu_blackhole", s.PMTUBlackholes)
		}},
	{name: "natpass_conn_drops_total", help: "Received packets and messages dropped, by reason.", label: "reason",
		points: func(s *rudp.Stats) []point {
			return pairs[uint64]("duplicate", s.DuplicatePackets, "invalid", s.InvalidDatagrams,
				"unreliable_over_bound", s.UnreliableDropped)
		}},
}
