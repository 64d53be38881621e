// Package interop checks natpass's handshake against implementations no one in this
// project wrote. It is its own module so that the core never depends on them.
package interop
