package main

/*
typedef const char np_cchar;
typedef const void np_cvoid;
#include "natpass.h"
void np_set_error(const char *msg, size_t len);
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/rudp"
)

// Error codes (natpass.h enum natpass_error).
const (
	codeInvalid     = C.NATPASS_ERR_INVALID
	codeBadHandle   = C.NATPASS_ERR_BAD_HANDLE
	codeBadConfig   = C.NATPASS_ERR_BAD_CONFIG
	codeTimeout     = C.NATPASS_ERR_TIMEOUT
	codeClosed      = C.NATPASS_ERR_CLOSED
	codeReplaced    = C.NATPASS_ERR_REPLACED
	codeConnClosed  = C.NATPASS_ERR_CONN_CLOSED
	codeEOF         = C.NATPASS_ERR_EOF
	codePeerRefused = C.NATPASS_ERR_PEER_REFUSED
	codeUnknownPeer = C.NATPASS_ERR_UNKNOWN_PEER
	codeTooSmall    = C.NATPASS_ERR_TOO_SMALL
	codeAgain       = C.NATPASS_ERR_AGAIN
	codeTooLarge    = C.NATPASS_ERR_TOO_LARGE
	codeRejected    = C.NATPASS_ERR_REJECTED
	codeInternal    = C.NATPASS_ERR_INTERNAL
)

// codeError is an error that names its code itself (argument checks of the ABI).
type codeError struct {
	code int
	msg  string
}

func (e *codeError) Error() string { return e.msg }

func errCode(code int, format string, args ...any) error {
	return &codeError{code: code, msg: fmt.Sprintf(format, args...)}
}

var errorCodes = []struct {
	target error
	code   int
}{
	{context.DeadlineExceeded, codeTimeout}, {context.Canceled, codeTimeout},
	{io.EOF, codeEOF}, {driver.ErrReplaced, codeReplaced}, {driver.ErrClosed, codeClosed},
	{driver.ErrConnClosed, codeConnClosed}, {node.ErrPeerClosed, codeConnClosed},
	{rudp.ErrClosed, codeConnClosed}, {driver.ErrPeerRefused, codePeerRefused},
	{driver.ErrBadConfig, codeBadConfig}, {node.ErrUnknownPeer, codeUnknownPeer},
	{rudp.ErrSendBufferFull, codeAgain}, {rudp.ErrMessageTooLarge, codeTooLarge},
	{rudp.ErrBadLane, codeInvalid}, {rudp.ErrBadMode, codeInvalid},
}

// codeOf maps err to its natpass.h code. Order matters: ErrReplaced comes
// wrapped with ErrClosed, and a node's close reaches a Conn as ErrClosed too.
func codeOf(err error) int {
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	for _, t := range errorCodes {
		if errors.Is(err, t.target) {
			return t.code
		}
	}
	return codeInternal
}

// fail records err as the calling thread's last error and returns its code.
func fail(err error) int {
	code := codeOf(err)
	msg := err.Error()
	if code == codeTimeout {
		msg = "natpass: timed out (" + msg + ")"
	}
	setError(msg)
	return code
}

// setError hands msg to lasterror.c, which copies it during the call.
func setError(msg string) {
	if msg == "" {
		msg = "natpass: unknown error"
	}
	C.np_set_error((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
}

// status is an int32 return: 0 for nil, or the failure's code.
func status(err error) C.int32_t {
	if err == nil {
		return 0
	}
	return C.int32_t(fail(err))
}
