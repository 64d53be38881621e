// Package sim is natpass's deterministic network: a single-threaded discrete-event
// simulator of hosts, links, routers and RFC 4787 NAT boxes that runs the same state
// machines the driver runs on real sockets. Any pair of NAT behaviours, any loss
// pattern, reproduced exactly from one seed.
//
// # What it models
//
// The world NewPair builds for presets port-restricted-cone (a) and cgnat (b):
//
//	host a      a-nat                           b-nat2 (carrier)   b-nat (home)  host b
//	10.1.0.2 ── 198.51.100.1 ──┐           ┌── 198.51.100.2 ───── 100.64.0.2 ── 10.3.0.2
//	                           core (router)
//	                                 │
//	                      server 203.0.113.10, .11
//
// Its parts:
//
//   - Networks: the public core, which routes between everything attached to it and
//     is one router hop, and the inside of each NAT box or firewall, a LAN that
//     switches between its members and sends everything else to its box.
//   - Hosts (Host) attach to a network through a Link, with one or more addresses and
//     any number of UDP sockets (OpenSockets opens the extra ones a birthday attack
//     needs), and run one Machine.
//   - Links (LinkConfig): latency, jitter, loss, duplication, reordering, bandwidth
//     with a bounded drop-tail queue, an MTU, routers that decrement the TTL, and
//     outage windows (blackholes). Sim.Partition cuts two subtrees apart for a window.
//   - NAT boxes (Box, NATConfig): mapping and filtering each endpoint-independent,
//     address-dependent or address-and-port-dependent; port allocation preserving,
//     sequential with a delta or random, within a port range; mapping timeout with
//     outbound (always) and optional inbound refresh; hairpinning; Linux conntrack's
//     port clash (DESIGN §9); or, with NoTranslation, a stateful firewall. Boxes nest:
//     a home NAT on a carrier NAT's inside is CGNAT. Every box is a router: it
//     decrements the TTL, and a packet that arrives with TTL 1 dies there before it
//     makes any state, so a TTL-limited probe opens its own NAT and dies at the next
//     hop.
//   - IPv6 (Family, Stack): the core routes both families. An IPv6 box
//     (NATConfig.Family IPv6) is always a stateful firewall, since natpass meets no
//     NAT66: hosts behind it have global addresses from its own /64
//     (2001:db8:N::/64; public IPv6 hosts get 2001:db8::10 up, RFC 3849), outbound
//     packets pass unchanged and open filter entries, inbound ones pass only as its
//     Filtering admits, until MappingTimeout. A dual-stack host has a second
//     interface (Host.AddInterface) with its own link: its IPv4 address sits behind
//     the IPv4 chain, its IPv6 address behind the IPv6 one, and each family's packets
//     take their own path (a partition naming the IPv4 NAT leaves IPv6 alone).
//     Packets never cross families: a socket sends only to its own family (else
//     DropFamily, before any box sees it), an IPv4 NAT drops IPv6 (DropFamily), and a
//     Transmit without From leaves from the host's first socket of the
//     destination's family. An IPv4-mapped address (::ffff:a.b.c.d) counts as IPv4.
//   - Presets name the usual setups (PresetByName finds them all). Presets, the IPv4
//     ones natpass lab's matrix runs: open, firewall, full-cone, restricted-cone,
//     port-restricted-cone, linux, cgnat, symmetric-sequential, symmetric-random.
//     IPv6Presets, the ones with IPv6 (Preset.Stack, Preset.Boxes6): ipv6-open
//     (public IPv6, no IPv4), ipv6-firewall (IPv6 behind a stateful firewall,
//     address-and-port-dependent filtering, 2 min timeout, no IPv4), and dual stack
//     with that IPv6 firewall next to an IPv4 preset: dual-port-restricted-cone (a
//     home router), dual-cgnat, dual-symmetric-random (a mobile carrier).
//     AddSite builds one in front of a host; NewPair builds the world most tests
//     want: peers a and b behind presets, apart, on one LAN or as two subscribers of
//     one carrier NAT (Placement; a carrier is shared over IPv4 only), and a server
//     with two addresses on the core, and two IPv6 ones as well when a side has IPv6
//     (Pair.ServerSocketsOf).
//   - An oracle (Oracle, OracleOf, OracleFamily, DirectStrategy, Preset.BehaviorOf)
//     says which proto.Strategy gives two presets a direct path over each family:
//     simultaneous open, port prediction, birthday, or none; punch.Choose picks from
//     the same type, so the two compare as values. Over IPv6 (firewalls, no
//     translation) every pair is simultaneous open; a dual-stack pair ends on IPv6
//     when it has a path there, as a node prefers (OracleFamily). Oracle is the
//     strategy of that family, which for IPv4 presets is what it always was.
//     TestOracleAgreesWithSimulation checks it against punching runs for every pair
//     and placement of presets, TestOracleIPv6AgreesWithSimulation for every pair
//     with IPv6 over each family, and TestPropertyOracleAgreesWithSimulation for
//     thousands of random NATs.
//   - A cluster bus (Bus, Sim.NewBus): the servers of a cluster (DESIGN §12) join it
//     as ClusterMachines, and it carries their ClusterMessages as NATS core would:
//     to every member subscribed to the subject (exactly, or by a trailing ">"
//     wildcard), the publisher included (echo),
//     after Latency plus seeded Jitter, with seeded Loss between members; a request
//     nobody subscribes to comes back to its Reply subject as a NoResponders notice;
//     interest reaches the other members after Latency. Partition and Heal cut two
//     members apart, Kill is a server dying; BusStats counts every delivery and drop.
//     rendezvous.Server joins through AdaptCluster (sim cannot import rendezvous).
//
// # Call contract
//
// The sim drives machines exactly as the driver does (DESIGN §2). After every call
// into a machine (HandleDatagram, HandleTimeout) it drains PollTransmit until false,
// then calls the host's AfterStep hook, where the owner drains the machine's events
// and may issue commands (their transmits are drained too), then drains the host's
// bus member (PollInterest, then PollCluster, until false; messages go out as later
// events, never as calls), then reads Deadline. A message from the bus is one more
// call into the machine (HandleCluster), drained the same way. A command issued from
// outside a step is followed by Host.Drain. Datagrams to a
// machine always go through the event queue, so no machine is ever called from inside
// another's call. Transmit.From picks the socket (zero: the host's first) and
// Transmit.TTL the IP TTL (zero: DefaultTTL).
//
// Time is virtual and moves only in Step: each step jumps to the earliest pending
// packet arrival, bus event or machine deadline and handles that one thing; ties go
// to packets and bus events (in the order they were queued), then deadlines (in the
// order hosts were added).
// Run(until) steps until the next thing is later than until; RunUntil also stops when
// a condition holds; both stop with ErrStepLimit after Config.MaxSteps, which turns a
// livelock into a failure instead of a hang.
//
// # Determinism and replay
//
// One seed (Config.Seed) feeds a ChaCha8 stream from which every link, box and bus
// draws its own sub-stream at creation, and from which tests draw machine seeds
// (NewSeed, NewSeed32) and key material (Reader). Nothing reads a clock, the OS or
// global randomness, and no map order reaches an output, so the same seed and the
// same calls give a byte-identical trace (SetTracer, TraceTo). Tests take their seed
// from sim/simtest, which prints on failure
//
//	seed=N, replay: go test ./sim -run '^TestX$' -seed N
//
// (also NATPASS_SEED=N). The rapid property tests print rapid's own replay flag.
//
// # Bounds and cost
//
// Packets and their buffers come from a free list and NAT lookups hit one-entry
// caches before their maps, so a steady flow allocates nothing and formats nothing
// while no tracer is set (BenchmarkSimDeliver, TestDeliverAllocatesNothing). The
// event queue holds one event per busy link direction plus reordered and duplicated
// packets; in-flight packets are bounded by each link's queue (with Bandwidth), by
// what senders send within a latency, and in any case by Config.MaxInFlight, past
// which Run fails with ErrInFlightLimit. The bus bounds its deliveries and interest
// changes in flight (BusConfig.MaxInFlight) and its payloads (MaxPayload), counting
// what it drops. A machine that never stops transmitting, or an
// AfterStep that always issues more, panics after a fixed bound. NAT tables are
// bounded by the port range; a mapping's filter entries and the [UNREPLIED] table by
// 65,536 entries each.
package sim
