// Package relayframe is the relay layer of natpass: the relay tokens the rendezvous
// server issues with every introduction, and (later) the relay frame format and the
// server-side forwarding table.
//
// # Relay tokens
//
// A relay token is the server's signed statement "I introduced the holders of these
// two public keys to each other as pair P, until time T". The server mints one per
// introduction and sends the same bytes to both peers; later, when a peer asks the
// relay to forward, the relay verifies the token instead of keeping a table of every
// introduction it ever made. The layout is given beside TokenLen.
//
// A TokenSigner holds one reusable HMAC-SHA256 state: minting and verifying allocate
// nothing. Wall time (seconds since the Unix epoch) is always an argument; the package
// reads no clock.
package relayframe
