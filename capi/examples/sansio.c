/*
 * sansio.c: a natpass node whose sockets and clock belong to the program, over
 * the Sans-IO level of the C ABI (natpass.h): plain BSD sockets and poll(2),
 * the way an engine with its own network loop embeds natpass.
 *
 *   cc -O2 -o sansio capi/examples/sansio.c -Icapi -L. -lnatpass
 *   LD_LIBRARY_PATH=. ./sansio --server 127.0.0.1:3478 --id carol --insecure-dev   # echoes
 *   LD_LIBRARY_PATH=. ./sansio --server 127.0.0.1:3478 --id dave --insecure-dev --connect carol --count 5
 *
 * With --connect it sends --count messages ("message I") once the
 * session is up, prints each answer on stdout and exits 0 when all came back.
 * Without it, it answers every message with "echo: " and the message (same
 * lane and mode), and exits 0 when the peer closes. Other flags are
 * natpass_config_set options (--server must be a numeric IP:PORT here).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "natpass.h"

enum { MAX_SOCKETS = 64, MAX_MESSAGE = 1 << 20 };

struct sock {
    int fd;
    char addr[NATPASS_ADDR_MAX]; /* "IP:PORT", as natpass names it */
};

static struct sock socks[MAX_SOCKETS];
static int nsocks;
static natpass_sio node;
static const char *connect_to;
static int count = 3, answered, asked, done, status, send_errors;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void check(const char *what, int64_t rc) {
    if (rc >= 0 || rc == NATPASS_ERR_REJECTED)
        return; /* a refused datagram is the network's problem: counted, dropped */
    char msg[512];
    natpass_last_error(msg, sizeof msg);
    fprintf(stderr, "sansio: %s: %s (code %lld)\n", what, msg, (long long)rc);
    exit(1);
}

/* addr_text writes sa as "IP:PORT" ("[IP]:PORT" for IPv6). */
static void addr_text(const struct sockaddr_storage *sa, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN];
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

/* parse_addr reads "IP:PORT" or "[IP]:PORT". */
static int parse_addr(const char *text, struct sockaddr_storage *sa, socklen_t *len) {
    char host[NATPASS_ADDR_MAX];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof host)
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    unsigned port = (unsigned)atoi(colon + 1);
    memset(sa, 0, sizeof *sa);
    if (host[0] == '[') {
        struct sockaddr_in6 *s6 = (void *)sa;
        host[strlen(host) - 1] = 0;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
        return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *s4 = (void *)sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof *s4;
    return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
}

/* open_socket binds a non-blocking UDP socket on ip (port 0: any) and records it. */
static struct sock *open_socket(const struct sockaddr_storage *ip, socklen_t len) {
    if (nsocks == MAX_SOCKETS)
        return NULL;
    struct sockaddr_storage sa = *ip;
    ((struct sockaddr_in *)&sa)->sin_port = 0; /* same offset in sockaddr_in6 */
    int fd = socket(sa.ss_family, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    struct sock *s = &socks[nsocks++];
    s->fd = fd;
    addr_text(&sa, s->addr, sizeof s->addr);
    return s;
}

/* local_ip is the address the kernel would send to server from. */
static void local_ip(const char *server, struct sockaddr_storage *out, socklen_t *len) {
    struct sockaddr_storage sa;
    socklen_t sl;
    if (parse_addr(server, &sa, &sl) < 0) {
        fprintf(stderr, "sansio: --server %s: want a numeric IP:PORT\n", server);
        exit(2);
    }
    int fd = socket(sa.ss_family, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sl) < 0) {
        perror("sansio: no route to the server");
        exit(1);
    }
    *len = sizeof *out;
    getsockname(fd, (struct sockaddr *)out, len);
    close(fd);
}

static void send_transmits(void) {
    static char buf[NATPASS_MAX_DATAGRAM];
    char to[NATPASS_ADDR_MAX], from[NATPASS_ADDR_MAX];
    int32_t ttl;
    int64_t n;
    while ((n = natpass_sio_poll_transmit(node, now_ns(), buf, sizeof buf, to, sizeof to, from,
                                          sizeof from, &ttl)) > 0) {
        struct sock *s = &socks[0];
        for (int i = 0; i < nsocks; i++)
            if (strcmp(socks[i].addr, from) == 0)
                s = &socks[i];
        struct sockaddr_storage sa;
        socklen_t sl;
        if (parse_addr(to, &sa, &sl) < 0)
            continue;
        int def = 64, level = sa.ss_family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
        int opt = sa.ss_family == AF_INET6 ? IPV6_UNICAST_HOPS : IP_TTL;
        if (ttl > 0)
            setsockopt(s->fd, level, opt, &ttl, sizeof ttl);
        if (sendto(s->fd, buf, (size_t)n, 0, (struct sockaddr *)&sa, sl) < 0 && send_errors++ == 0)
            perror("sansio: sendto (further errors not shown)");
        if (ttl > 0)
            setsockopt(s->fd, level, opt, &def, sizeof def);
    }
    check("poll transmit", n);
}

static void on_event(const natpass_event *ev, const char *data) {
    static const char *kinds[] = {"none", "direct", "relay"};
    char text[256];
    switch (ev->type) {
    case NATPASS_EVENT_REGISTERED:
        fprintf(stderr, "sansio: registered (observed %s, server %s)\n", ev->addr, ev->addr2);
        if (connect_to != NULL && !asked) {
            asked = 1;
            check("connect", natpass_sio_connect(node, now_ns(), connect_to));
        }
        break;
    case NATPASS_EVENT_OPEN_SOCKETS: {
        /* Extra sockets on the main socket's IP, for NAT measurement and birthday punching. */
        static char list[MAX_SOCKETS * NATPASS_ADDR_MAX];
        struct sockaddr_storage ip;
        socklen_t len;
        parse_addr(socks[0].addr, &ip, &len);
        list[0] = 0;
        for (int i = 0; i < ev->count; i++) {
            struct sock *s = open_socket(&ip, len);
            if (s == NULL)
                break;
            if (list[0])
                strcat(list, ",");
            strcat(list, s->addr);
        }
        check("handle sockets", natpass_sio_handle_sockets(node, now_ns(), ev->tag, list));
        break;
    }
    case NATPASS_EVENT_CONNECTED:
        fprintf(stderr, "sansio: connected to \"%s\"\n", ev->peer);
        for (int i = 0; connect_to != NULL && i < count; i++) {
            snprintf(text, sizeof text, "message %d", i);
            check("send", natpass_sio_send(node, now_ns(), ev->peer, 0, NATPASS_RELIABLE_ORDERED, text, strlen(text)));
        }
        break;
    case NATPASS_EVENT_PATH_CHANGED:
        fprintf(stderr, "path=%s local=%s remote=%s reason=\"%s\"\n", kinds[ev->kind % 3], ev->addr,
                ev->addr2, ev->text);
        break;
    case NATPASS_EVENT_MESSAGE:
        if (connect_to == NULL) {
            static char echo[6 + MAX_MESSAGE];
            memcpy(echo, "echo: ", 6);
            memcpy(echo + 6, data, ev->data_len);
            check("send", natpass_sio_send(node, now_ns(), ev->peer, ev->lane, ev->mode, echo, 6 + ev->data_len));
            break;
        }
        printf("%s: %.*s\n", ev->peer, (int)ev->data_len, data);
        fflush(stdout);
        if (++answered == count) {
            check("close", natpass_sio_close_peer(node, now_ns(), ev->peer, 0, "done"));
            done = 1;
        }
        break;
    case NATPASS_EVENT_PEER_CLOSED:
        fprintf(stderr, "sansio: \"%s\" closed (code %d): %s\n", ev->peer, ev->code, ev->text);
        done = 1;
        break;
    case NATPASS_EVENT_PEER_ERROR:
    case NATPASS_EVENT_CLOSED:
        fprintf(stderr, "sansio: %s (code %d)\n", ev->text, ev->code);
        done = 1, status = 1;
        break;
    }
}

/* drain follows the drain rule until the node has nothing more to say (an
 * event's answer, a send or handle_sockets, makes new datagrams). */
static void drain(void) {
    static char data[MAX_MESSAGE];
    natpass_event ev;
    for (;;) {
        send_transmits();
        int32_t got = natpass_sio_poll_event(node, &ev, data, sizeof data);
        check("poll event", got);
        if (got == 0)
            return;
        on_event(&ev, data);
    }
}

static void receive(struct sock *s) {
    static char buf[65536];
    struct sockaddr_storage from;
    for (;;) {
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(s->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return; /* EAGAIN: read everything */
        char text[NATPASS_ADDR_MAX];
        addr_text(&from, text, sizeof text);
        check("handle datagram", natpass_sio_handle_datagram(node, now_ns(), s->addr, text, buf, (size_t)n));
        drain();
    }
}

static void run(void) {
    struct pollfd fds[MAX_SOCKETS];
    while (!done) {
        int64_t deadline = natpass_sio_deadline(node), now = now_ns();
        int wait_ms = 1000;
        if (deadline != NATPASS_NEVER)
            wait_ms = deadline <= now ? 0 : (int)((deadline - now + 999999) / 1000000);
        if (wait_ms > 1000)
            wait_ms = 1000;
        for (int i = 0; i < nsocks; i++)
            fds[i] = (struct pollfd){.fd = socks[i].fd, .events = POLLIN};
        int nfds = nsocks;
        if (poll(fds, (nfds_t)nfds, wait_ms) < 0 && errno != EINTR) {
            perror("sansio: poll");
            exit(1);
        }
        for (int i = 0; i < nfds; i++)
            if (fds[i].revents & POLLIN)
                receive(&socks[i]);
        if (now_ns() >= natpass_sio_deadline(node)) {
            check("handle timeout", natpass_sio_handle_timeout(node, now_ns()));
            drain();
        }
    }
    drain(); /* the close goes out */
}

int main(int argc, char **argv) {
    natpass_config cfg = natpass_config_new();
    const char *server = NULL;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i] + 2, *value = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(argv[i], "--insecure-dev") == 0) {
            natpass_config_set(cfg, "insecure-dev", "1");
            continue;
        }
        i++;
        if (strcmp(name, "connect") == 0)
            connect_to = value;
        else if (strcmp(name, "count") == 0)
            count = atoi(value);
        else {
            if (strcmp(name, "server") == 0)
                server = value;
            check("configuration", natpass_config_set(cfg, name, value));
        }
    }
    if (server == NULL) {
        fprintf(stderr, "usage: sansio --server IP:PORT --id NAME --insecure-dev [--connect PEER] [--count N]\n");
        return 2;
    }
    struct sockaddr_storage ip;
    socklen_t len;
    local_ip(server, &ip, &len);
    struct sock *main_sock = open_socket(&ip, len);
    if (main_sock == NULL) {
        perror("sansio: bind");
        return 1;
    }
    node = natpass_sio_new(cfg, main_sock->addr, now_ns());
    check("new", node);
    natpass_config_free(cfg);
    drain();
    run();
    natpass_sio_free(node);
    return status;
}
