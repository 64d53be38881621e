// Package interop checks natpass's handshake against implementations no one in this
// project wrote: flynn/noise, in both cipher suites (ChaChaPoly and AES-GCM), as
// initiator and responder, handshake and transport. It is its own module so that the
// core never depends on them.
package interop
