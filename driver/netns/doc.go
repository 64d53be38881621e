// Package netns holds natpass's end-to-end tests through real Linux NAT: each test
// builds network namespaces (a core router with the rendezvous server on its
// loopback, NAT routers running iptables MASQUERADE, hosts behind them), runs
// `natpass server` and two `natpass cat` inside them, moves 1 MiB each way and
// checks the bytes and the path (DESIGN §9). The tests skip, saying why, without
// root, ip(8) or iptables. The package has no code of its own.
package netns
