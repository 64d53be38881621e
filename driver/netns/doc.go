// Package netns holds natpass's end-to-end tests through real Linux NAT: each test
// builds network namespaces (a core router with the rendezvous server on its
// loopback, NAT routers running iptables MASQUERADE, hosts behind them), runs
// `natpass server` and two `natpass cat` inside them, moves 1 MiB each way and
// checks the bytes and the path (DESIGN §9).
//
// The TestNetnsCluster tests run a cluster (DESIGN §12): three `natpass server`
// processes on three addresses of the core, joined by NATS routes
// (--cluster-listen, --cluster-peers, one --cluster-secret-file), and four cats,
// each with the server list starting with its own server: a relayed pair behind
// two random-symmetric NATs (MASQUERADE --random-fully), registered on servers 0
// and 1, and a direct pair behind two port-restricted NATs, on servers 0 and 2.
// Each cat sends 8 MiB of random data, paced through its stdin. Once every cat
// received 3 MiB, server 0 is SIGKILLed (TestNetnsClusterServerKilled) or
// SIGTERMed (TestNetnsClusterServerDrained: it drains and must exit 0): the
// relayed node moves to the next server of its list (a `server from=... to=...`
// line; "server moving" when drained), the relay keeps crossing two servers, the
// direct pair stays direct, every byte arrives in order and every cat exits 0.
//
// TestNetnsRoomFourMembers runs one server and four `natpass room --room lobby
// --wait 3` (PROTOCOL §13), two behind random-symmetric NATs and two behind
// port-restricted ones, 20 lines each: every member exits 0 with exactly the other
// three's lines, each once and in each sender's order, and the random-symmetric
// pair's link only ever reports path=relay.
//
// The tests skip, saying why, without root, ip(8) or iptables. The package has no
// code of its own.
package netns
