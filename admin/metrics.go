package admin

// serverMetric is one metric of the table: its name and help as Prometheus shows
// them, and how a snapshot gives its samples. A metric with a label gives one
// sample per label value; the others give one sample.
type serverMetric struct {
	name, help string
	gauge      bool   // a level now, not a count since start
	label      string // "" for none
	bus        bool   // read from the cluster bus: left out without one
	points     func(s *snapshot) []point
}

// point is one sample: its label value ("" without a label) and value.
type point struct {
	label string
	value float64
}

func one[T uint64 | int](v T) []point { return []point{{value: float64(v)}} }

// labeled turns label/value pairs into points.
func labeled(pairs ...any) []point {
	ps := make([]point, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		ps = append(ps, point{label: pairs[i].(string), value: float64(pairs[i+1].(uint64))})
	}
	return ps
}

// serverMetrics is every metric a ServerCollector reports. Names follow the
// Prometheus conventions: natpass_server_ prefix, _total on counters, units last.
// Counters come straight from driver.ServerStats (rendezvous.Stats and its Relay,
// Rooms and Cluster parts): the README's "Operating a server" lists them.
var serverMetrics = []serverMetric{
	{name: "natpass_server_sessions", help: "Nodes registered now (live sessions).", gauge: true,
		points: func(s *snapshot) []point { return one(s.st.Sessions) }},
	{name: "natpass_server_registrations_total", help: "Registrations that made a session (including replacements).",
		points: func(s *snapshot) []point { return one(s.st.Registered) }},
	{name: "natpass_server_sessions_ended_total", help: "Sessions ended, by reason.", label: "reason",
		points: func(s *snapshot) []point {
			return labeled("expired", s.st.Expired, "replaced", s.st.Replaced)
		}},
	{name: "natpass_server_requests_total", help: "Requests answered other than registrations and introductions, by kind.", label: "kind",
		points: func(s *snapshot) []point {
			return labeled("register_retransmit", s.st.Retransmits, "keepalive", s.st.Keepalives,
				"rebind", s.st.Rebinds, "nat_probe", s.st.NATProbes,
				"register_family", s.st.FamilyBinds, "register_family_retransmit", s.st.FamilyRetransmits,
				"family_rebind", s.st.FamilyRebinds)
		}},
	{name: "natpass_server_family_bindings", help: "Sessions with an address of their other IP family bound now (register-family, dual stack).", gauge: true,
		points: func(s *snapshot) []point { return one(s.st.FamilyBindings) }},
	{name: "natpass_server_family_bindings_expired_total", help: "Other-family bindings dropped for want of a keepalive within the session timeout.",
		points: func(s *snapshot) []point { return one(s.st.FamilyExpired) }},
	{name: "natpass_server_introductions_total", help: "Pairs of nodes introduced to each other.",
		points: func(s *snapshot) []point { return one(s.st.Introductions) }},
	{name: "natpass_server_rebound_introductions_total", help: "Rebound requests whose fresh address a peer's introduction carries (re-punching after a NAT reboot, PROTOCOL.md §5.7).",
		points: func(s *snapshot) []point { return one(s.st.Rebounds) }},
	{name: "natpass_server_introduction_copies_total", help: "Introduction copies acknowledged, and sent again for want of an acknowledgement.", label: "outcome",
		points: func(s *snapshot) []point {
			return labeled("acked", s.st.IntroAcks, "repeated", s.st.IntroRepeats)
		}},
	{name: "natpass_server_stun_answers_total", help: "STUN Binding requests answered.",
		points: func(s *snapshot) []point { return one(s.st.STUNBindings) }},
	{name: "natpass_server_stun_errors_total", help: "STUN Binding requests answered with error 420: a comprehension-required attribute this server does not support.",
		points: func(s *snapshot) []point { return one(s.st.STUNUnknownAttr) }},
	{name: "natpass_server_datagrams_total", help: "UDP datagrams received and sent.", label: "direction",
		points: func(s *snapshot) []point {
			return labeled("in", s.st.DatagramsIn, "out", s.st.DatagramsOut)
		}},
	{name: "natpass_server_bytes_total", help: "UDP payload bytes received and sent.", label: "direction",
		points: func(s *snapshot) []point { return labeled("in", s.st.BytesIn, "out", s.st.BytesOut) }},
	{name: "natpass_server_refusals_total", help: "Requests refused with an error message, by reason (rate_limited: the at most one notice per second a limited source gets).", label: "reason",
		points: refusals},
	{name: "natpass_server_drops_total", help: "Datagrams and messages dropped without a reply, by reason (rate_limited: refused by a source or session rate limit).", label: "reason",
		points: drops},
	{name: "natpass_server_write_errors_total", help: "Sends the kernel refused.",
		points: func(s *snapshot) []point { return one(s.st.WriteErrors) }},
	{name: "natpass_server_read_hold_wakeups_total", help: "Wake-ups of the holding reader (--read-hold): one per hold while traffic flows.",
		points: func(s *snapshot) []point { return one(s.st.Hold.Wakeups) }},
	{name: "natpass_server_read_hold_datagrams_total", help: "Datagrams the holding reader (--read-hold) read through io_uring.",
		points: func(s *snapshot) []point { return one(s.st.Hold.Datagrams) }},
	{name: "natpass_server_read_hold_sockets", help: "Server sockets read through io_uring (--read-hold), and those read without it because io_uring is unavailable here (fallback).", label: "reader", gauge: true,
		points: func(s *snapshot) []point {
			return labeled("io_uring", s.st.Hold.Readers, "fallback", s.st.Hold.Fallbacks)
		}},
	{name: "natpass_server_read_hold_events_total", help: "The holding reader's bounded queues: receives ended with every buffer full (re-armed; datagrams wait in the socket buffer), completions the kernel could not post, io_uring_enter failures (that socket is no longer read).", label: "event",
		points: func(s *snapshot) []point {
			h := &s.st.Hold
			return labeled("no_buffers", h.NoBuffers, "overflow", h.Overflow, "enter_error", h.EnterErrors)
		}},
	{name: "natpass_server_sources_forgotten_total", help: "Remote addresses a socket bound to an unspecified address forgot the local address of (its table was full): their replies leave from the kernel's choice.",
		points: func(s *snapshot) []point { return one(s.st.SourcesForgotten) }},
	{name: "natpass_server_tcp_connections_total", help: "TCP/TLS connections of nodes whose UDP is blocked (PROTOCOL.md §14): served, refused (too many open), TLS handshakes failed, closed for a bad frame length.", label: "outcome",
		points: func(s *snapshot) []point {
			t := &s.st.Streams
			return labeled("accepted", t.Accepted, "refused", t.Refused, "tls_handshake_failed", t.HandshakeFailures,
				"bad_frame", t.BadFrames)
		}},
	{name: "natpass_server_tcp_datagrams_dropped_total", help: "Datagrams for TCP/TLS connections dropped: the connection's write queue was full, or the connection had closed.", label: "reason",
		points: func(s *snapshot) []point {
			return labeled("queue_full", s.st.Streams.QueueDrops, "connection_closed", s.st.Streams.NoConn)
		}},
	{name: "natpass_server_events_dropped_total", help: "Server events (log lines) the event queue had no room for.",
		points: func(s *snapshot) []point { return one(s.st.EventsDropped) }},
	{name: "natpass_server_admission_retries_total", help: "Admission challenges (retry, PROTOCOL.md §5.13) sent to registers.",
		points: func(s *snapshot) []point { return one(s.st.Admission.Retries) }},
	{name: "natpass_server_admission_challenges_total", help: "Registers answered with an admission challenge, by cause (source: its bucket was empty; load: the server-wide budget of unproven registers was spent; proven: a register with a valid token found its source's proven bucket empty). Challenges that could not be sent count here and as drops.", label: "cause",
		points: func(s *snapshot) []point {
			a := &s.st.Admission
			return labeled("source", a.ChallengedSource, "load", a.ChallengedLoad, "proven", a.ChallengedProven)
		}},
	{name: "natpass_server_admission_tokens_total", help: "Registers carrying an admission token, by verdict (invalid: stale, another source's or forged; such a register counts as tokenless).", label: "verdict",
		points: func(s *snapshot) []point {
			return labeled("valid", s.st.Admission.TokensValid, "invalid", s.st.Admission.TokensInvalid)
		}},
	{name: "natpass_server_rate_limit_sources", help: "Per-source rate-limiter entries now.", gauge: true,
		points: func(s *snapshot) []point { return one(s.st.Sources) }},
	{name: "natpass_server_rate_limit_evictions_total", help: "Per-source rate-limiter entries reused for a new source.",
		points: func(s *snapshot) []point { return one(s.st.SourceEvictions) }},
	{name: "natpass_server_relay_channels", help: "Relay channels in the forwarding table now.", gauge: true,
		points: func(s *snapshot) []point { return one(s.st.Relay.Channels) }},
	{name: "natpass_server_relay_allocations_total", help: "Relay channels created.",
		points: func(s *snapshot) []point { return one(s.st.Relay.Allocations) }},
	{name: "natpass_server_relay_refreshes_total", help: "Relay-allocates that renewed a channel the session held.",
		points: func(s *snapshot) []point { return one(s.st.Relay.Refreshes) }},
	{name: "natpass_server_relay_ready_notices_total", help: "Repeated relay-allocated messages telling a node its channel is now linked.",
		points: func(s *snapshot) []point { return one(s.st.Relay.ReadyNotices) }},
	{name: "natpass_server_relay_channels_ended_total", help: "Relay channels ended, by reason.", label: "reason",
		points: func(s *snapshot) []point {
			return labeled("expired", s.st.Relay.ChannelsExpired, "session_ended", s.st.Relay.ChannelsClosed,
				"replaced", s.st.Relay.ChannelsReplaced)
		}},
	{name: "natpass_server_relayed_frames_total", help: "Relay frames forwarded from one node to another.",
		points: func(s *snapshot) []point { return one(s.st.Relay.Forwarded) }},
	{name: "natpass_server_relayed_bytes_total", help: "Bytes of the relay frames forwarded.",
		points: func(s *snapshot) []point { return one(s.st.Relay.BytesForwarded) }},
	{name: "natpass_server_rooms", help: "Rooms in the table now, empty ones included.", gauge: true,
		points: func(s *snapshot) []point { return one(s.st.Rooms.Rooms) }},
	{name: "natpass_server_room_changes_total", help: "Room membership changes, by kind.", label: "kind",
		points: func(s *snapshot) []point {
			return labeled("join", s.st.Rooms.Joins, "leave", s.st.Rooms.Leaves, "refresh", s.st.Rooms.Refreshes)
		}},
	{name: "natpass_server_rooms_expired_total", help: "Empty rooms forgotten.",
		points: func(s *snapshot) []point { return one(s.st.Rooms.Expired) }},
	{name: "natpass_server_room_notices_total", help: "Room-state notices sent to members.",
		points: func(s *snapshot) []point { return one(s.st.Rooms.NoticesSent) }},
}

func init() { serverMetrics = append(serverMetrics, clusterMetrics...) }

// refusals are the error replies of rendezvous.Stats, RelayStats and RoomStats.
func refusals(s *snapshot) []point {
	st, r, rm := &s.st, &s.st.Relay, &s.st.Rooms
	return labeled(
		"bad_ticket", st.BadTicket, "expired_ticket", st.ExpiredTicket, "unknown_peer", st.UnknownPeer,
		"no_session", st.NoSession, "rate_limited", st.RateLimitNotices, "server_full", st.ServerFull,
		"relay_denied", st.RelayDenied, "peer_not_ready", st.PeerNotReady, "no_alt_socket", st.NoAltSocket,
		"self_introduction", st.SelfIntroduction, "same_family", st.SameFamily,
		"relay_disabled", r.DeniedDisabled, "relay_bad_token", r.DeniedBadToken,
		"relay_expired_token", r.DeniedExpiredToken, "relay_foreign_token", r.DeniedForeignToken,
		"relay_peer_key", r.DeniedPeerKey, "relay_unknown_peer", r.UnknownPeer, "relay_table_full", r.TableFull,
		"room_full", rm.Full, "room_table_full", rm.TableFull,
	)
}

// drops are the silent drops of rendezvous.Stats, RelayStats and RoomStats and the
// driver's datagrams too long to read.
func drops(s *snapshot) []point {
	st, r := &s.st, &s.st.Relay
	return labeled(
		"not_natpass", st.DropNotNatpass, "unknown_version", st.DropUnknownVersion, "malformed", st.DropMalformed,
		"not_for_server", st.DropNotForServer, "relay_type", st.DropRelay, "unknown_socket", st.DropUnknownSocket,
		"bad_source", st.DropBadSource, "rate_limited", st.DropRateLimited, "busy", st.DropBusy,
		"no_session_busy", st.DropNoSessionBusy,
		"amplification", st.DropAmplification, "queue_full", st.DropQueueFull, "too_long", st.TooLong,
		"stun_malformed", st.DropSTUNMalformed, "stun_not_request", st.DropSTUNNotRequest,
		"stun_bad_fingerprint", st.DropSTUNBadFingerprint, "stun_change_request", st.DropSTUNChangeRequest,
		"relay_malformed", r.DropMalformed, "relay_no_channel", r.DropNoChannel, "relay_wrong_source", r.DropWrongSource,
		"relay_peer_not_ready", r.DropPeerNotReady, "relay_session_rate", r.DropSessionRate,
		"relay_server_rate", r.DropServerRate, "relay_queue_full", r.DropQueueFull,
		"room_notice_queue_full", st.Rooms.NoticesDropped,
	)
}
