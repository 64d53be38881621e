// Command capi is natpass's C ABI (DESIGN §16): built with
//
//	go build -buildmode=c-shared  -o libnatpass.so ./capi
//	go build -buildmode=c-archive -o libnatpass.a  ./capi
//
// it gives C, and through C any runtime (Python ctypes, C#, Swift, C++), the
// driver level (natpass owns the sockets: listen, connect, accept, send, recv,
// path events, stats, close) and the Sans-IO node (the caller owns sockets and
// clock: handle datagram, handle timeout, poll transmit, poll event, deadline).
// natpass.h, beside this file, is the documented interface C code includes.
//
// # Rules the exports keep
//
// C holds no Go pointer: objects live in a handle table (handles.go) and C
// holds their int64 handles, which are never reused, so a stale one is an error
// and not a crash. Inputs are copied (or read only during the call); outputs are
// copied into buffers the caller passes. Every failure returns a negative code
// and leaves a message in the calling thread's C thread-local buffer
// (lasterror.c), which natpass_last_error reads: an exported function runs on
// the C thread that called it, so the message reaches the right thread. A panic
// inside a Sans-IO call is recovered and poisons its handle (ERR_INTERNAL)
// rather than killing the host process.
package main

func main() {}
