/*
 * errors.c: the ABI's error contract, checked from C (capi_test.go links it
 * against the c-archive build): codes, the per-thread message, truncation,
 * stale handles, Sans-IO argument checks. It sends no datagram. Prints "ok
 * NAME" or "FAIL NAME: ..." per check and exits 1 if any failed.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "natpass.h"

static int failed;

static void expect(const char *name, int64_t got, int64_t want, const char *in_message) {
    char msg[1024];
    natpass_last_error(msg, sizeof msg);
    if (got != want) {
        printf("FAIL %s: got %lld, want %lld (message: %s)\n", name, (long long)got, (long long)want, msg);
        failed = 1;
    } else if (in_message != NULL && strstr(msg, in_message) == NULL) {
        printf("FAIL %s: message \"%s\" lacks \"%s\"\n", name, msg, in_message);
        failed = 1;
    } else {
        printf("ok %s\n", name);
    }
}

static void *other_thread(void *arg) {
    (void)arg;
    natpass_config c = natpass_config_new();
    natpass_config_set(c, "unknown-in-thread", "x");
    natpass_config_free(c);
    return NULL;
}

static void driver_level(void) {
    expect("abi version", natpass_abi_version(), NATPASS_ABI_VERSION, NULL);
    expect("bad handle", natpass_send(123456789, 0, 0, "x", 1, 0), NATPASS_ERR_BAD_HANDLE, "handle");
    natpass_config cfg = natpass_config_new();
    expect("unknown option", natpass_config_set(cfg, "colour", "blue"), NATPASS_ERR_INVALID, "colour");
    expect("bad relay", natpass_config_set(cfg, "relay", "sometimes"), NATPASS_ERR_INVALID, "auto, force or never");
    expect("bad key", natpass_config_set(cfg, "key", "short"), NATPASS_ERR_INVALID, "32 bytes");
    expect("server set", natpass_config_set(cfg, "server", "127.0.0.1:9"), 0, NULL);
    expect("listen without id", natpass_listen(cfg), NATPASS_ERR_BAD_CONFIG, "ID");
    natpass_config_set(cfg, "id", "someone");
    expect("config handle is no node", natpass_accept(cfg, 0), NATPASS_ERR_BAD_HANDLE, NULL);
    expect("listen without admission", natpass_listen(cfg), NATPASS_ERR_BAD_CONFIG, "exactly one");

    /* The message is the calling thread's: another thread's failure leaves it. */
    pthread_t t;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, NULL);
    expect("message per thread", 0, 0, "exactly one");
    char small[4];
    int64_t full = natpass_last_error(small, sizeof small);
    expect("truncated message", full > 3 && strlen(small) == 3, 1, NULL);
    expect("config free", natpass_config_free(cfg), 0, NULL);
    expect("config freed", natpass_config_free(cfg), NATPASS_ERR_BAD_HANDLE, NULL);
}

static void sans_io(void) {
    natpass_config cfg = natpass_config_new();
    natpass_config_set(cfg, "server", "127.0.0.1:9");
    natpass_config_set(cfg, "id", "sio");
    natpass_config_set(cfg, "insecure-dev", "1");
    expect("sio unbound local", natpass_sio_new(cfg, "0.0.0.0:0", 1000), NATPASS_ERR_INVALID, "local");
    natpass_sio n = natpass_sio_new(cfg, "127.0.0.1:40000", 1000);
    expect("sio new", n > 0, 1, NULL);
    char buf[NATPASS_MAX_DATAGRAM], to[NATPASS_ADDR_MAX], from[NATPASS_ADDR_MAX];
    int32_t ttl = -1;
    expect("transmit into 1 byte", natpass_sio_poll_transmit(n, 1000, buf, 1, to, sizeof to, from, sizeof from, &ttl),
           NATPASS_ERR_TOO_SMALL, "buffer 1");
    int64_t len = natpass_sio_poll_transmit(n, 1000, buf, sizeof buf, to, sizeof to, from, sizeof from, &ttl);
    expect("register transmit kept", len > 0 && strcmp(to, "127.0.0.1:9") == 0 && strcmp(from, "127.0.0.1:40000") == 0, 1, NULL);
    expect("deadline ahead", natpass_sio_deadline(n) > 1000, 1, NULL);
    expect("clock backwards", natpass_sio_handle_timeout(n, 999), NATPASS_ERR_INVALID, "went back");
    expect("garbage datagram", natpass_sio_handle_datagram(n, 2000, "127.0.0.1:40000", "127.0.0.1:9", "\xff\xfe", 2),
           NATPASS_ERR_REJECTED, "refused");
    expect("send to a stranger", natpass_sio_send(n, 2000, "nobody", 0, 0, "x", 1), NATPASS_ERR_UNKNOWN_PEER, NULL);
    natpass_event ev;
    int32_t got;
    while ((got = natpass_sio_poll_event(n, &ev, NULL, 0)) == 1) {
    }
    expect("events drained", got, 0, NULL);
    expect("sio free", natpass_sio_free(n), 0, NULL);
    expect("sio freed", natpass_sio_deadline(n), NATPASS_ERR_BAD_HANDLE, NULL);
    natpass_config_free(cfg);
}

int main(void) {
    driver_level();
    sans_io();
    return failed;
}
