// The calling thread's last error message (natpass_last_error), in C thread-local
// storage: an exported Go function runs on the C thread that called it, so the
// message lands with the thread that will ask for it, whichever goroutine ran.

#include <string.h>

#include "natpass.h"

#define NP_ERR_CAP 1024

static __thread char np_err[NP_ERR_CAP];
static __thread size_t np_err_len;

// np_set_error keeps the first NP_ERR_CAP-1 bytes of msg (msg need not be
// NUL-terminated; it is only read during the call).
__attribute__((visibility("hidden"))) void np_set_error(const char *msg, size_t len) {
	np_err_len = len < NP_ERR_CAP - 1 ? len : NP_ERR_CAP - 1;
	memcpy(np_err, msg, np_err_len);
	np_err[np_err_len] = 0;
}

int64_t natpass_last_error(char *buf, size_t cap) {
	if (buf != NULL && cap > 0) {
		size_t n = np_err_len < cap - 1 ? np_err_len : cap - 1;
		memcpy(buf, np_err, n);
		buf[n] = 0;
	}
	return (int64_t)np_err_len;
}

int32_t natpass_abi_version(void) { return NATPASS_ABI_VERSION; }
