package admin

// clusterMetrics are the cluster's part of the table (DESIGN §12): what the server
// machine counted of its cluster work (rendezvous.ClusterStats, present alone too,
// all zero), and the bus's own numbers (only with a bus).
var clusterMetrics = []serverMetric{
	{name: "natpass_server_cluster_peers", help: "Other servers of the cluster the embedded NATS has routes to (0 with an external NATS).",
		gauge: true, bus: true, points: func(s *snapshot) []point { return one(s.bus.Peers) }},
	{name: "natpass_server_cluster_subscriptions", help: "Cluster bus subjects subscribed now.",
		gauge: true, bus: true, points: func(s *snapshot) []point { return one(s.bus.Subscriptions) }},
	{name: "natpass_server_cluster_bus_messages_total", help: "Messages the cluster bus published to NATS and delivered to the server.", label: "direction",
		bus: true, points: func(s *snapshot) []point {
			return labeled("out", s.bus.Published, "in", s.bus.Delivered)
		}},
	{name: "natpass_server_cluster_bus_connection_events_total", help: "The bus's connection to an external NATS lost and regained.", label: "event",
		bus: true, points: func(s *snapshot) []point {
			return labeled("disconnect", s.bus.Disconnects, "reconnect", s.bus.Reconnects)
		}},
	{name: "natpass_server_cluster_messages_total", help: "Cluster messages the server machine handled and sent.", label: "direction",
		points: func(s *snapshot) []point {
			return labeled("in", s.st.Cluster.MessagesIn, "out", s.st.Cluster.MessagesOut)
		}},
	{name: "natpass_server_cluster_forwarded_frames_total", help: "Relay frames forwarded to and received from other servers of the cluster.", label: "direction",
		points: func(s *snapshot) []point {
			return labeled("out", s.st.Cluster.RelayFramesOut, "in", s.st.Cluster.RelayFramesIn)
		}},
	{name: "natpass_server_cluster_forwarded_bytes_total", help: "Bytes of the relay frames forwarded to and received from other servers.", label: "direction",
		points: func(s *snapshot) []point {
			return labeled("out", s.st.Cluster.RelayBytesOut, "in", s.st.Cluster.RelayBytesIn)
		}},
	{name: "natpass_server_cluster_requests_total", help: "Cluster requests, by kind.", label: "kind",
		points: func(s *snapshot) []point {
			c := &s.st.Cluster
			return labeled("intro_ask_sent", c.IntroAsks, "intro_ask_served", c.IntroAsksServed,
				"peer_not_here", c.NoResponders, "claim", c.Claims, "claim_back", c.ClaimsBack,
				"relay_bind", c.RelayBinds, "relay_link", c.RelayLinks)
		}},
	{name: "natpass_server_cluster_sessions_moved_total", help: "Sessions ended by the cluster: registered anew elsewhere, replaced by another key, or told to move by a drain.", label: "reason",
		points: func(s *snapshot) []point {
			c := &s.st.Cluster
			return labeled("moved_away", c.MovedAway, "replaced", c.Replaced, "drain_notice", c.DrainNoticesQueued)
		}},
	{name: "natpass_server_cluster_room_messages_total", help: "Cluster room messages (PROTOCOL.md §13.1), by kind: joins and leaves sent to a room's home and served there, room states sent and received.", label: "kind",
		points: func(s *snapshot) []point {
			c := &s.st.Cluster
			return labeled("join_sent", c.RoomJoinsSent, "join_served", c.RoomJoinsServed,
				"leave_sent", c.RoomLeavesSent, "leave_served", c.RoomLeavesServed,
				"state_sent", c.RoomStatesSent, "state_in", c.RoomStatesIn, "claim", c.RoomClaims)
		}},
	{name: "natpass_server_cluster_room_homes_total", help: "Rooms this server became the home of (new, or formed again from its copy after the home went) or handed to an older home.", label: "event",
		points: func(s *snapshot) []point {
			c := &s.st.Cluster
			return labeled("formed", c.RoomsFormed, "reformed", c.RoomsReformed, "handed_over", c.RoomHandovers,
				"epoch_raised", c.RoomEpochRaises, "member_timed_out", c.RoomMembersTimedOut)
		}},
	{name: "natpass_server_cluster_drops_total", help: "Cluster messages dropped, by reason.", label: "reason",
		points: clusterDrops},
}

// clusterDrops are rendezvous.ClusterStats' drops, the bus errors the driver
// counted, and the bus's own drops when there is a bus.
func clusterDrops(s *snapshot) []point {
	c, b := &s.st.Cluster, &s.bus
	return labeled(
		"malformed", c.DropMalformed, "wrong_subject", c.DropSubject, "unknown_ask", c.DropUnknownAsk,
		"queue_full", c.DropQueueFull, "relay_no_link", c.DropRelayNoLink, "relay_rate", c.DropRelayRate,
		"relay_tx_full", c.DropRelayTxFull, "ask_overwritten", c.AsksOverwritten,
		"tombstone_table_full", c.TombstonesDropped, "bus_refused", s.st.ClusterErrors,
		"bus_inbox_full", b.DroppedInboxFull, "bus_slow_consumer", b.DroppedSlowConsumer,
		"bus_foreign_reply", b.DroppedForeign, "room_state_stale", c.RoomStale, "room_not_home", c.DropRoomNotHome,
	)
}
