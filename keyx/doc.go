// Package keyx is natpass's key exchange and transport encryption: the
// Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake exactly as WireGuard builds it (with
// natpass's identifier "natpass v1"), its mac1/mac2 cookie defence, and the transport
// Session that seals and opens packets (PROTOCOL.md §6).
//
// # Cipher suites
//
// ChaChaPoly is the default and the fallback; Noise_IKpsk2_25519_AESGCM_BLAKE2s is the
// same construction with AES-256-GCM, for ends with AES hardware. Config.Suites says
// what an endpoint accepts (by default AES-GCM only where HasAESHardware, injectable
// through Config.AESHardware); SetPeerSuites records what a peer advertised; Initiate
// proposes AES-GCM when both have it (an initiation of type 0x14 instead of 0x10) and
// ChaChaPoly otherwise, and falls back to ChaChaPoly for a peer after an AES-GCM
// initiation to it timed out. The suite is in the Noise protocol name, so a message
// read in the other suite fails its first AEAD. Session.Suite tells which one a
// session runs.
//
// # Messages
//
//	initiator                                        responder
//	   | initiation 0x10 or 0x14 (146 B): sender, e, {s}, {TAI64N}, macs|
//	   |--------------------------------------------------------------->|  mac1 before any DH
//	   |      under load and mac2 not valid for this source:            |
//	   |<------- cookie reply 0x12 (62 B): receiver, nonce, {cookie} ---|  no DH at all
//	   |--------- the same initiation, now with mac2 ------------------>|
//	   |<------ response 0x11 (90 B): sender, receiver, e, {}, macs ----|
//	   |--- transport data 0x13: receiver, counter, {payload} -------->|  confirms the keys
//	   |<-------------------------- transport data --------------------|
//
// # Layers
//
// Handshake is the Noise level alone: CreateInitiation, ConsumeInitiation,
// CreateResponse, ConsumeResponse, TransportKeys, over the Noise fields of
// proto.Initiation and proto.Response. Identity (a static key with its precomputed
// hashes) and PeerKey (a remote static key with the cached static-static DH) feed it.
// It is what interop/ checks against flynn/noise.
//
// Endpoint is what a node composes: the peers it accepts (by static public key, each
// with an optional PSK), the handshakes in flight, the table of random 32-bit receiver
// indexes, the responder's guard (mac1, load meter, cookie replies under an XChaCha20-
// Poly1305 key with a secret rotating every 120 s, a bounded per-source rate limiter,
// growing timestamps, one initiation per peer per 20 ms) and the session timers.
//
// Session is one handshake's transport keys: Seal and Open with counter nonces and
// an 8128-packet RFC 6479 replay window that moves only after the AEAD check.
//
// # Call contract
//
// Endpoint follows DESIGN §2: HandleDatagram (handshake messages) and Open (transport
// data) are the inputs, Initiate/AddPeer/SetPeerSuites/RemovePeer the commands; after each, drain
// PollTransmit until false, then PollEvent until false, then read Deadline and call
// HandleTimeout when it passes. now is a proto.Instant that never decreases; wall
// time enters only as Initiate's argument, for the TAI64N timestamp. Randomness
// (ephemeral keys, indexes, cookie secrets and nonces) comes from Config.Rand. A
// datagram that fails any check returns a sentinel error (ErrBadMAC, ErrDecrypt,
// ErrReplay, ErrRateLimited, ErrUnknownIndex, ErrUnknownPeer, ErrLowOrder or a proto
// error; ErrSuite for an initiation in a suite the endpoint does not accept) and changes
// no handshake, session or peer state; no reply to an
// unauthenticated sender is larger than what it sent.
//
// Session.Seal and Endpoint.Open allocate nothing in steady state.
package keyx
