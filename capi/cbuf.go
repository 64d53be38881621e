package main

/*
typedef const char np_cchar;
typedef const void np_cvoid;
#include "natpass.h"
*/
import "C"

import (
	"context"
	"time"
	"unsafe"
)

// copyString copies s into the caller's buffer (truncated, NUL-terminated when
// there is room) and returns len(s), so that the caller can tell truncation.
func copyString(s string, buf *C.char, size C.size_t) C.int64_t {
	if buf != nil && size > 0 {
		putString(unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(size)), s)
	}
	return C.int64_t(len(s))
}

// putString writes s, truncated, and a NUL into dst (len(dst) > 0).
func putString(dst []byte, s string) {
	n := copy(dst[:len(dst)-1], s)
	dst[n] = 0
}

// field is a fixed char array of a C struct as bytes.
func field(p *C.char, n int) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(p)), n) }

// cBytes is the caller's buffer as a slice, for the duration of the call.
func cBytes(p unsafe.Pointer, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), int(n))
}

// copyStruct copies the Go-side value *src into the caller's struct out of
// size bytes: a caller compiled against an older, shorter struct gets its
// prefix (natpass.h only appends fields).
func copyStruct[T any](out unsafe.Pointer, size C.size_t, src *T) {
	n := min(int(size), int(unsafe.Sizeof(*src)))
	copy(unsafe.Slice((*byte)(out), n), unsafe.Slice((*byte)(unsafe.Pointer(src)), n))
}

// pollWait is what a poll (timeout 0) grants calls whose answer comes from the
// node's goroutine (send, accept): long enough for the loop to answer, so that
// "ready now" is not reported as a timeout.
const pollWait = time.Millisecond

// waitCtx turns a timeout_ms into a context: < 0 no bound, 0 already ended (or
// pollWait for calls that need the loop), > 0 that many milliseconds.
func waitCtx(ms C.int64_t, loopAnswers bool) (context.Context, context.CancelFunc) {
	switch {
	case ms < 0:
		return context.WithCancel(context.Background())
	case ms == 0 && loopAnswers:
		return context.WithTimeout(context.Background(), pollWait)
	case ms == 0:
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	return context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
}

// unsafePointer is a const void * argument as a pointer.
func unsafePointer(p *C.np_cvoid) unsafe.Pointer { return unsafe.Pointer(p) }
