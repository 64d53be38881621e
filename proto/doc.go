// Package proto is natpass's wire vocabulary: the shared time and transmit types every
// state machine speaks, first-byte demultiplexing of the one UDP socket, and the
// encoders and parsers of every packet that is not the business of a single layer.
// It also holds the value types two packages name across a boundary (Strategy,
// CloseReason, PathKind), so that both import one definition.
//
// # Packet layout
//
// Every natpass packet starts with a two-byte common header:
//
//	 0               1
//	 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+---------------
//	|1 1 1 0|version|  message type | body ...
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+---------------
//
// The high nibble 0xE keeps natpass out of every range RFC 7983 assigns on a shared
// socket (STUN 0–3, ZRTP 16–19, DTLS 20–63, TURN channels 64–79, RTP 128–191), so a
// STUN client can query the same port. PROTOCOL.md at the repository root gives the
// byte layout of every message; the golden vectors in testdata/vectors pin it.
//
// # Call contract
//
// Append methods append a whole packet (header included) to b and return the extended
// slice; they never fail, because a struct that cannot be encoded is a programming
// error and panics. Parse methods take a whole packet, accept only the canonical
// encoding (so that Parse followed by Append reproduces the input byte for byte), and
// on error leave the receiver in an unspecified state and return one of the sentinel
// errors below. Byte-slice fields of a parsed message alias the input; slices of
// addresses reuse the receiver's capacity, so parsing into a reused value does not
// allocate.
//
// The package reads no clock and holds no state.
package proto
