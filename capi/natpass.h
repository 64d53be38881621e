/*
 * natpass.h: the C ABI of natpass (DESIGN §16), for runtimes that are not Go.
 *
 * Build the library from the repository root:
 *
 *     go build -buildmode=c-shared  -o libnatpass.so ./capi    (or .dylib / .dll)
 *     go build -buildmode=c-archive -o libnatpass.a  ./capi
 *
 * and compile against this header: cc app.c -Icapi -L. -lnatpass (with the
 * archive add -lpthread). The build also writes libnatpass.h, cgo's own header;
 * it includes this one and adds nothing a user needs: include natpass.h.
 *
 * Two levels:
 *
 *   - the driver level (natpass_listen ...): natpass owns the UDP sockets, the
 *     clock and its threads; calls block (each with a timeout) and are safe from
 *     any thread;
 *   - the Sans-IO level (natpass_sio_...): the caller owns the sockets and the
 *     clock and drives the node state machine itself (DESIGN §2), for engines
 *     with their own network loop.
 *
 * Conventions, for every function:
 *
 *   - Handles are positive 64-bit integers naming an object inside the library;
 *     they are never reused, and a closed or wrong-kind handle gives
 *     NATPASS_ERR_BAD_HANDLE, never a crash. The caller never holds a pointer
 *     into the library: every result is copied into a buffer the caller passes,
 *     every input is copied (or used only during the call).
 *   - A negative return is an error code (enum natpass_error). The calling
 *     thread's natpass_last_error then gives a message for people. Other returns
 *     are documented per function (0, a handle, a length).
 *   - Strings are NUL-terminated UTF-8. Output strings are truncated to the
 *     buffer and always NUL-terminated when the buffer has room for one byte.
 *   - Addresses are text: "192.0.2.1:3478", "[2001:db8::1]:3478".
 *   - timeout_ms: < 0 waits as long as it takes; 0 does not wait (the poll form:
 *     NATPASS_ERR_TIMEOUT when nothing is ready); > 0 waits at most that long.
 *
 * The ABI is stable: functions, constants and struct fields are only added
 * (structs at their end), never changed; NATPASS_ABI_VERSION counts additions.
 */
#ifndef NATPASS_H
#define NATPASS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NATPASS_ABI_VERSION 1

/* Error codes: every function returns one of these (< 0) when it fails. */
enum natpass_error {
    NATPASS_OK = 0,
    NATPASS_ERR_INVALID = -1,       /* a bad argument: NULL, unknown mode, lane, key, address */
    NATPASS_ERR_BAD_HANDLE = -2,    /* no such handle, or a handle of another kind */
    NATPASS_ERR_BAD_CONFIG = -3,    /* the configuration cannot work (missing id, two admissions ...) */
    NATPASS_ERR_TIMEOUT = -4,       /* nothing within timeout_ms (with 0: nothing ready now) */
    NATPASS_ERR_CLOSED = -5,        /* the node was closed or stopped (server refused the ticket ...) */
    NATPASS_ERR_REPLACED = -6,      /* another node registered this node's id: this one stopped */
    NATPASS_ERR_CONN_CLOSED = -7,   /* the connection ended (closed here, error, idle timeout) */
    NATPASS_ERR_EOF = -8,           /* the peer closed normally and every message was read */
    NATPASS_ERR_PEER_REFUSED = -9,  /* the server would not introduce the peer */
    NATPASS_ERR_UNKNOWN_PEER = -10, /* Sans-IO: no peer of that id was introduced */
    NATPASS_ERR_TOO_SMALL = -11,    /* the buffer is too small; nothing was taken, retry larger */
    NATPASS_ERR_AGAIN = -12,        /* Sans-IO: send buffer full; retry once the peer acknowledged */
    NATPASS_ERR_TOO_LARGE = -13,    /* the message is over the connection's maximum (1 MiB default) */
    NATPASS_ERR_REJECTED = -14,     /* Sans-IO: the datagram was refused (garbage, replay, stray); drop it */
    NATPASS_ERR_INTERNAL = -15      /* a bug in natpass; the handle is unusable from now on */
};

/* Delivery modes of natpass_send (rudp's). */
enum natpass_mode {
    NATPASS_RELIABLE_ORDERED = 0,     /* every message once, in send order on its lane */
    NATPASS_RELIABLE_UNORDERED = 1,   /* every message once, as soon as it is complete */
    NATPASS_UNRELIABLE_SEQUENCED = 2, /* some messages; never an older one after a newer */
    NATPASS_UNRELIABLE = 3            /* some messages, any order */
};

/* Where a connection's traffic goes. */
enum natpass_path_kind {
    NATPASS_PATH_NONE = 0,   /* nothing works (yet) */
    NATPASS_PATH_DIRECT = 1, /* a confirmed direct path */
    NATPASS_PATH_RELAY = 2   /* through the server's relay */
};

/* Sizes of the text fields of natpass_event, and of buffers worth passing. */
#define NATPASS_PEER_MAX 65      /* a peer id is 1..64 bytes, plus the NUL */
#define NATPASS_ADDR_MAX 64      /* "[v6]:port" text, plus the NUL */
#define NATPASS_TEXT_MAX 256     /* reasons, strategies; longer ones are truncated */
#define NATPASS_MAX_DATAGRAM 2048 /* a buffer this big holds any datagram natpass sends */
#define NATPASS_NEVER INT64_MAX   /* natpass_sio_deadline when no timer is armed */

/* Event types (natpass_event.type). */
enum natpass_event_type {
    NATPASS_EVENT_NONE = 0,
    NATPASS_EVENT_REGISTERED = 1,     /* addr: observed address; addr2: the server */
    NATPASS_EVENT_SERVER_CHANGED = 2, /* addr: old server; addr2: new one; text: why */
    NATPASS_EVENT_NAT_REPORT = 3,     /* addr: observed address; text: the NAT behaviour */
    NATPASS_EVENT_OPEN_SOCKETS = 4,   /* Sans-IO: open `count` more UDP sockets, answer with
                                         natpass_sio_handle_sockets(tag, ...) */
    NATPASS_EVENT_INTRODUCED = 5,     /* peer; text: the punching strategy */
    NATPASS_EVENT_PATH_CHANGED = 6,   /* peer; kind; addr: local; addr2: remote; rtt_ns; text: why */
    NATPASS_EVENT_PEER_ERROR = 7,     /* peer; code: the server's refusal; text */
    NATPASS_EVENT_CLOSED = 8,         /* the node stopped; code: the server's error code (0: none); text */
    NATPASS_EVENT_CONNECTED = 9,      /* peer: the encrypted session is up */
    NATPASS_EVENT_MESSAGE = 10,       /* peer; lane; mode; data_len bytes in the data buffer */
    NATPASS_EVENT_PEER_CLOSED = 11,   /* peer; code (0: normal close); local: 1 if this side closed; text */
    NATPASS_EVENT_OTHER = 99          /* an event this ABI version does not describe; text names it */
};

/* One event, flat: which fields mean something depends on type (above). Its
 * size never changes (functions fill it whole): what later versions add comes
 * as new types using these fields. */
typedef struct natpass_event {
    int32_t type;
    int32_t code;
    int32_t kind;
    int32_t lane;
    int32_t mode;
    int32_t local;
    int32_t count;
    uint64_t tag;
    int64_t rtt_ns;
    uint64_t data_len;
    char peer[NATPASS_PEER_MAX];
    char addr[NATPASS_ADDR_MAX];
    char addr2[NATPASS_ADDR_MAX];
    char text[NATPASS_TEXT_MAX];
} natpass_event;

/* A node's counters (driver level). */
typedef struct natpass_node_stats {
    uint64_t datagrams_in, bytes_in;
    uint64_t datagrams_out, bytes_out;
    uint64_t rejected;     /* datagrams the node refused: garbage, forgeries, replays */
    uint64_t write_errors; /* sends the kernel refused */
    int64_t sockets;       /* open UDP sockets */
} natpass_node_stats;

/* A connection's counters (rudp's). */
typedef struct natpass_conn_stats {
    int64_t srtt_ns, min_rtt_ns, latest_rtt_ns;
    int64_t cwnd_bytes, bytes_in_flight, send_buffered;
    uint64_t packets_sent, packets_received, packets_lost, retransmits;
    uint64_t bytes_sent, bytes_received;
} natpass_conn_stats;

typedef int64_t natpass_config; /* a configuration handle */
typedef int64_t natpass_node;   /* a driver-level node handle */
typedef int64_t natpass_conn;   /* a driver-level connection handle */
typedef int64_t natpass_sio;    /* a Sans-IO node handle */

/* ---- Common ---------------------------------------------------------------- */

/* NATPASS_ABI_VERSION of the library (compare with the header's). */
int32_t natpass_abi_version(void);

/* Copies the message of the calling thread's last failed call into buf (cap
 * bytes, NUL-terminated) and returns the message's full length. Valid after a
 * call returned < 0, until the thread's next failing call. */
int64_t natpass_last_error(char *buf, size_t cap);

/* ---- Configuration -------------------------------------------------------- */

/* A new, empty configuration. Free it with natpass_config_free; listen and
 * natpass_sio_new copy what they need. */
natpass_config natpass_config_new(void);

/* Sets one option; the names are natpass cat's flags:
 *   "server"        HOST:PORT, or a comma-separated list of a cluster's servers (required)
 *   "id"            this node's peer id, 1..64 bytes (required)
 *   "ticket"        a ticket from `natpass ticket` (base64); needs "key" or "key-file"
 *   "key"           the node's X25519 private key (base64); "key-file": a file holding it
 *   "secret-file"   the server secret: mint a ticket locally
 *   "insecure-dev"  "1": the server runs --insecure-dev, no real ticket needed
 *   "listen"        local IP:PORT of the main socket (driver level; default: any port)
 *   "relay"         "auto" (default), "force" (relay only) or "never" (direct only)
 *   "register-timeout"  how long listen waits for the server, e.g. "10s" (default 30s);
 *                   Sans-IO: how long the node tries before NATPASS_EVENT_CLOSED
 * Exactly one of ticket, secret-file, insecure-dev must be set at listen time.
 * Returns 0, or NATPASS_ERR_INVALID for an unknown name or a bad value. */
int32_t natpass_config_set(natpass_config cfg, const char *name, const char *value);

int32_t natpass_config_free(natpass_config cfg);

/* ---- Driver level: natpass owns the sockets -------------------------------- */

/* Opens the node's socket, registers with the server and returns the node once
 * the server admitted it (or the error: BAD_CONFIG, CLOSED when refused or not
 * answered within register-timeout). */
natpass_node natpass_listen(natpass_config cfg);

/* Asks the server to introduce peer and returns the connection once the
 * encrypted session is up. Connecting to the same peer again gives the same
 * handle while the connection lives. */
natpass_conn natpass_connect(natpass_node node, const char *peer, int64_t timeout_ms);

/* The next connection a peer opened to this node. */
natpass_conn natpass_accept(natpass_node node, int64_t timeout_ms);

/* The node's main socket, its address as the server sees it, the server it is
 * registered with; each copied into buf; returns the length. */
int64_t natpass_local_addr(natpass_node node, char *buf, size_t cap);
int64_t natpass_observed_addr(natpass_node node, char *buf, size_t cap);
int64_t natpass_server_addr(natpass_node node, char *buf, size_t cap);

/* The node's counters, copied into *out (size: sizeof *out, so that an older
 * caller's smaller struct is filled only as far as it reaches). */
int32_t natpass_node_stats_get(natpass_node node, natpass_node_stats *out, size_t size);

/* Closes every connection (telling each peer), stops the node, closes its
 * sockets and frees the handle and those of its connections. */
int32_t natpass_close(natpass_node node);

/* The connection's peer id, copied into buf; returns the length. */
int64_t natpass_conn_peer(natpass_conn conn, char *buf, size_t cap);

/* Queues len bytes for the peer on lane (0 unless configured otherwise) with
 * mode; the bytes are copied before it returns. It waits (timeout_ms) while the
 * send buffer is full, which is how a slow reader slows the sender. len 0 sends
 * an empty message. */
int32_t natpass_send(natpass_conn conn, int32_t lane, int32_t mode, const void *data, size_t len,
                     int64_t timeout_ms);

/* Waits until the peer acknowledged everything sent so far. */
int32_t natpass_flush(natpass_conn conn, int64_t timeout_ms);

/* Receives the next message into buf and returns its length (0 is an empty
 * message); *lane and *mode are set when not NULL. NATPASS_ERR_TOO_SMALL leaves
 * the message in place and sets *need (when not NULL) to its length.
 * NATPASS_ERR_EOF: the peer closed normally, after every message was read. */
int64_t natpass_recv(natpass_conn conn, void *buf, size_t cap, int32_t *lane, int32_t *mode,
                     uint64_t *need, int64_t timeout_ms);

/* The next path change of the connection (NATPASS_EVENT_PATH_CHANGED in *ev):
 * returns 1, or NATPASS_ERR_TIMEOUT. The 16 latest unread changes are kept. */
int32_t natpass_path_event(natpass_conn conn, natpass_event *ev, int64_t timeout_ms);

/* The connection's current path, as a NATPASS_EVENT_PATH_CHANGED event. */
int32_t natpass_path(natpass_conn conn, natpass_event *ev);

int32_t natpass_conn_stats_get(natpass_conn conn, natpass_conn_stats *out, size_t size);

/* Ends the connection (unacknowledged messages are dropped: flush first), tells
 * the peer, and frees the handle. */
int32_t natpass_conn_close(natpass_conn conn);

/* ---- Sans-IO level: the caller owns the sockets and the clock ------------------
 *
 * now_ns is the caller's monotonic clock in nanoseconds (any origin); it never
 * decreases from one call to the next (NATPASS_ERR_INVALID if it does). The
 * drain rule: after natpass_sio_new and after every handle/command call, call
 * natpass_sio_poll_transmit until it returns 0 (sending each datagram), then
 * natpass_sio_poll_event until it returns 0, then read natpass_sio_deadline and
 * call natpass_sio_handle_timeout when the clock reaches it (or earlier: a
 * spurious call does nothing). Calls on one handle are serialized internally.
 */

/* A node for the socket bound at local ("IP:PORT", the address peers on its
 * network reach: not 0.0.0.0), configured by cfg ("server" must be numeric or
 * resolvable now; "listen" is ignored). It starts registering at once: drain. */
natpass_sio natpass_sio_new(natpass_config cfg, const char *local, int64_t now_ns);

/* One datagram that arrived on the caller's socket local from from. 0, or
 * NATPASS_ERR_REJECTED: the node refused it and nothing changed (count, drop). */
int32_t natpass_sio_handle_datagram(natpass_sio node, int64_t now_ns, const char *local,
                                    const char *from, const void *data, size_t len);

/* The deadline passed (or any time: a spurious call does nothing). */
int32_t natpass_sio_handle_timeout(natpass_sio node, int64_t now_ns);

/* The answer to NATPASS_EVENT_OPEN_SOCKETS: the addresses of the sockets opened
 * for tag, comma-separated ("" when none could be opened). */
int32_t natpass_sio_handle_sockets(natpass_sio node, int64_t now_ns, uint64_t tag,
                                   const char *addrs);

/* The next datagram to send: copies its payload into buf and returns its length
 * (0: nothing to send). to: the destination; from: the caller's socket it must
 * leave from (the main socket, or one opened for OPEN_SOCKETS); *ttl: the IP TTL
 * to send it with, 0 for the socket's default (when not NULL). A buf of
 * NATPASS_MAX_DATAGRAM bytes always suffices; a smaller one may get
 * NATPASS_ERR_TOO_SMALL, and the datagram stays for the next call. */
int64_t natpass_sio_poll_transmit(natpass_sio node, int64_t now_ns, void *buf, size_t cap,
                                  char *to, size_t to_cap, char *from, size_t from_cap,
                                  int32_t *ttl);

/* The next event into *ev; a message's bytes go into data (data_cap bytes;
 * NATPASS_ERR_TOO_SMALL leaves the event in place with ev->data_len set).
 * Returns 1, or 0 when there is none. Messages hold flow-control credit until
 * they are polled; the credit goes back to the peer with the next handle call,
 * and natpass_sio_deadline is "now" while some waits. */
int32_t natpass_sio_poll_event(natpass_sio node, natpass_event *ev, void *data, size_t data_cap);

/* When to call natpass_sio_handle_timeout, on the caller's clock; NATPASS_NEVER
 * when nothing is armed. */
int64_t natpass_sio_deadline(natpass_sio node);

/* Commands: connect to a peer (the server introduces it; NATPASS_EVENT_CONNECTED
 * follows), send a message (NATPASS_ERR_AGAIN: the send buffer is full), close
 * a peer's connection telling it code and reason. */
int32_t natpass_sio_connect(natpass_sio node, int64_t now_ns, const char *peer);
int32_t natpass_sio_send(natpass_sio node, int64_t now_ns, const char *peer, int32_t lane,
                         int32_t mode, const void *data, size_t len);
int32_t natpass_sio_close_peer(natpass_sio node, int64_t now_ns, const char *peer, int32_t code,
                               const char *reason);
int32_t natpass_sio_conn_stats_get(natpass_sio node, const char *peer, natpass_conn_stats *out,
                                   size_t size);

/* Frees the node (it sends nothing more: close peers first to tell them). */
int32_t natpass_sio_free(natpass_sio node);

#ifdef __cplusplus
}
#endif

#endif /* NATPASS_H */
