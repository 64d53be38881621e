/*
 * cat.c: `natpass cat` in C, over the driver level of the C ABI (natpass.h).
 *
 *   cc -O2 -o cat capi/examples/cat.c -Icapi -L. -lnatpass -lpthread
 *   LD_LIBRARY_PATH=. ./cat --server 127.0.0.1:3478 --id bob --insecure-dev
 *   LD_LIBRARY_PATH=. ./cat --server 127.0.0.1:3478 --id alice --insecure-dev --connect bob
 *
 * Every flag but --connect is a natpass_config_set option (--server, --id,
 * --ticket, --key, --key-file, --secret-file, --insecure-dev, --listen, --relay).
 * stdin goes to the peer (reliable-ordered, lane 0), the peer's bytes go to
 * stdout, path changes to stderr. The stream protocol is natpass cat's, so this
 * program and `natpass cat` talk to each other: an empty message ends a
 * direction; it exits 0 once its own end was acknowledged and the peer's end
 * arrived.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "natpass.h"

enum { CHUNK = 32 << 10 };

static natpass_conn conn;

/* fail prints what failed and the library's message for this thread. */
static int fail(const char *what, int64_t code) {
    char msg[512];
    natpass_last_error(msg, sizeof msg);
    fprintf(stderr, "cat: %s: %s (code %lld)\n", what, msg, (long long)code);
    return 1;
}

static void print_path(const natpass_event *ev) {
    static const char *kinds[] = {"none", "direct", "relay"};
    fprintf(stderr, "path=%s local=%s remote=%s rtt=%lldus reason=\"%s\"\n",
            kinds[ev->kind % 3], ev->addr, ev->addr2,
            (long long)(ev->rtt_ns / 1000), ev->text);
}

/* sender streams stdin, then the end marker, then waits for every ack. */
static void *sender(void *arg) {
    static char buf[CHUNK];
    (void)arg;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("cat: reading stdin");
            return (void *)1;
        }
        if (n == 0)
            break;
        int32_t rc = natpass_send(conn, 0, NATPASS_RELIABLE_ORDERED, buf, (size_t)n, -1);
        if (rc < 0)
            return (void *)(intptr_t)fail("sending", rc);
    }
    int32_t rc = natpass_send(conn, 0, NATPASS_RELIABLE_ORDERED, NULL, 0, -1);
    if (rc < 0)
        return (void *)(intptr_t)fail("sending the end marker", rc);
    rc = natpass_flush(conn, -1);
    /* The peer closes only after it received our end marker: EOF is success. */
    if (rc < 0 && rc != NATPASS_ERR_EOF)
        return (void *)(intptr_t)fail("flushing", rc);
    return NULL;
}

/* receive writes the peer's bytes to stdout until its end marker. */
static int receive(void) {
    size_t cap = 64 << 10;
    char *buf = malloc(cap);
    natpass_event ev;
    for (;;) {
        while (natpass_path_event(conn, &ev, 0) == 1)
            print_path(&ev);
        uint64_t need = 0;
        int64_t n = natpass_recv(conn, buf, cap, NULL, NULL, &need, 200);
        if (n == NATPASS_ERR_TIMEOUT)
            continue;
        if (n == NATPASS_ERR_TOO_SMALL) {
            cap = (size_t)need;
            buf = realloc(buf, cap);
            continue;
        }
        if (n < 0)
            return fail("receiving", n);
        if (n == 0)
            break;
        for (int64_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR) {
                perror("cat: writing stdout");
                return 1;
            }
            off += w > 0 ? w : 0;
        }
    }
    free(buf);
    return 0;
}

static int configure(natpass_config cfg, int argc, char **argv, const char **connect_to) {
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "cat: unexpected argument %s\n", argv[i]);
            return 2;
        }
        const char *name = argv[i] + 2;
        if (strcmp(name, "insecure-dev") == 0) {
            natpass_config_set(cfg, name, "1");
            continue;
        }
        if (i + 1 == argc) {
            fprintf(stderr, "cat: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *value = argv[++i];
        if (strcmp(name, "connect") == 0) {
            *connect_to = value;
        } else if (natpass_config_set(cfg, name, value) < 0) {
            return fail("configuration", NATPASS_ERR_INVALID) + 1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *connect_to = NULL;
    natpass_config cfg = natpass_config_new();
    int rc = configure(cfg, argc, argv, &connect_to);
    if (rc != 0)
        return rc;
    natpass_node node = natpass_listen(cfg);
    natpass_config_free(cfg);
    if (node < 0)
        return fail("listen", node);
    char local[NATPASS_ADDR_MAX], observed[NATPASS_ADDR_MAX];
    natpass_local_addr(node, local, sizeof local);
    natpass_observed_addr(node, observed, sizeof observed);
    fprintf(stderr, "cat: registered at %s (observed %s)\n", local, observed);

    conn = connect_to ? natpass_connect(node, connect_to, -1) : natpass_accept(node, -1);
    if (conn < 0)
        return fail(connect_to ? "connect" : "accept", conn);
    char peer[NATPASS_PEER_MAX];
    natpass_conn_peer(conn, peer, sizeof peer);
    fprintf(stderr, "cat: connected to \"%s\"\n", peer);

    pthread_t tid;
    void *sent = NULL;
    pthread_create(&tid, NULL, sender, NULL);
    rc = receive();
    pthread_join(tid, &sent);
    if (rc == 0 && sent != NULL)
        rc = 1;
    natpass_conn_stats st;
    if (natpass_conn_stats_get(conn, &st, sizeof st) == 0)
        fprintf(stderr, "cat: srtt=%lldus packets sent=%llu received=%llu lost=%llu\n",
                (long long)(st.srtt_ns / 1000), (unsigned long long)st.packets_sent,
                (unsigned long long)st.packets_received, (unsigned long long)st.packets_lost);
    natpass_conn_close(conn);
    /* Linger, so that the last acknowledgements and the close reach the peer. */
    nanosleep(&(struct timespec){.tv_nsec = 300 * 1000 * 1000}, NULL);
    natpass_close(node);
    return rc;
}
