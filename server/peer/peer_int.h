/*
 * peer_int.h: internals shared by the files of server/peer/: byte buffers and frames (wire.c),
 * the asynchronous host-name resolver (resolve.c), connections and the transport (peer.c),
 * snapshot transfer (snapshot.c) and the blocking member-list client (fetch.c).
 *
 * Invariants:
 *  - every socket and file descriptor is O_CLOEXEC and every send() uses MSG_NOSIGNAL;
 *  - a connection is on t->conns from conn_new until conn_close; after conn_close its fd, watcher
 *    and timer are gone, and the struct itself is freed at once, or, when closed from inside its
 *    own I/O callback (busy > 0), when that callback returns (dead = true until then);
 *  - a peer's stream connection (peer->out) has peer == that peer and kind CK_PEER_OUT;
 *  - handlers are called only from I/O callbacks (on_msg, on_snapshot, members_json) or from the
 *    0 ms tick timer (everything else), never from inside a peer_* API call.
 */
#ifndef CETCD_PEER_INT_H
#define CETCD_PEER_INT_H

#include "bytebuf.h"
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evloop.h"
#include "peer.h"

/* ---- wire.c: buffers, frames, handshake ---- */

#define FRAME_HDR 9                    /* u32 length, u8 type, u32 crc */
#define PEER_MAX_FRAME (64u << 20)     /* largest payload after the handshake */
#define PEER_MAX_CTRL 4096             /* largest payload before it (and of control frames) */
#define PEER_SNAP_CHUNK (1u << 20)     /* data bytes per SNAP_CHUNK frame */
#define PEER_MAX_JSON (16u << 20)      /* largest member list a fetch accepts */
#define PEER_MAGIC "CEPT"
#define PEER_VERSION 1

enum frame_type {
    FR_HELLO = 1,
    FR_HELLO_OK = 2,
    FR_ERROR = 3,
    FR_REMOVED = 4,
    FR_MSG = 5,
    FR_SNAP_HEADER = 6,
    FR_SNAP_CHUNK = 7,
    FR_SNAP_END = 8,
    FR_SNAP_ACK = 9,
    FR_MEMBERS = 10,
};

enum hello_kind { HK_STREAM = 1, HK_SNAP = 2, HK_MEMBERS = 3 };

enum peer_error_code {
    PEC_VERSION = 1,        /* protocol version not spoken */
    PEC_CLUSTER = 2,        /* cluster id mismatch */
    PEC_RECIPIENT = 3,      /* the recipient id is not the acceptor's member id */
    PEC_UNKNOWN_SENDER = 4, /* sender not a member the acceptor knows (yet) */
    PEC_BUSY = 5,           /* too many connections */
    PEC_UNAVAILABLE = 6,    /* member list not available */
    PEC_PROTOCOL = 7,       /* unexpected frame */
};


typedef struct frame {
    uint8_t type;
    const uint8_t *data;
    size_t len;
} frame;

/* Reserves a frame with up to max payload bytes; returns where the payload goes (NULL on
 * CE_NOMEM). frame_commit then seals n <= max of them: header + CRC, length grows. */
uint8_t *frame_reserve(bytebuf *b, size_t max);
void frame_commit(bytebuf *b, uint8_t type, size_t n);
/* Appends a frame whose payload is a (an bytes) followed by c (cn bytes). 0 or CE_NOMEM. */
int frame_put(bytebuf *b, uint8_t type, const void *a, size_t an, const void *c, size_t cn);
/* Parses the frame at p (avail bytes). 1 = *f is complete (it spans FRAME_HDR + f->len bytes);
 * 0 = incomplete, *need = the total bytes it spans; CE_CORRUPT = length over max, or bad CRC. */
int frame_parse(const uint8_t *p, size_t avail, size_t max, frame *f, size_t *need);

#define HELLO_LEN 32
#define HELLO_OK_LEN 24
#define ERROR_FIXED 20
#define MEMBERS_FIXED 8
#define SNAP_HEADER_FIXED 12
#define SNAP_END_LEN 12

typedef struct hello {
    uint16_t version;
    uint8_t kind;
    uint64_t from, to, cluster;
} hello;

void hello_encode(uint8_t out[HELLO_LEN], const hello *h);
/* CE_CORRUPT: wrong length or magic, non-zero reserved byte. The version is not checked. */
int hello_decode(const uint8_t *p, size_t len, hello *h);
void hello_ok_encode(uint8_t out[HELLO_OK_LEN], uint64_t id, uint64_t cluster);
int hello_ok_decode(const uint8_t *p, size_t len, uint64_t *id, uint64_t *cluster);
/* Appends an ERROR frame. 0 or CE_NOMEM. */
int error_put(bytebuf *b, uint32_t code, uint64_t id, uint64_t cluster, const char *text);
/* Decodes an ERROR payload; text is copied NUL-terminated (truncated) into buf. */
int error_decode(const uint8_t *p, size_t len, uint32_t *code, uint64_t *id, uint64_t *cluster,
                 char *buf, size_t buflen);
const char *peer_error_name(uint32_t code);

/* Splits "http[s]://host:port" (host may be "[v6]"; a trailing path is ignored). CE_INVAL for
 * anything malformed. */
int url_parse(const char *url, char *host, size_t hostlen, char *port, size_t portlen);
/* An https:// URL: the connection is TLS (peer TLS, tls.h). */
bool url_is_tls(const char *url);
/* A socket for ai: non-blocking, close-on-exec. -1 and errno on failure. */
int socket_for(const struct addrinfo *ai);
/* TCP_NODELAY, keepalive (5 s idle, 1 s interval, 3 probes) and TCP_USER_TIMEOUT. */
void tcp_tune(int fd, unsigned user_timeout_ms);

/* ---- resolve.c: host names resolved off the loop's thread ---- */

typedef struct resolve_req resolve_req;
/* res (freeaddrinfo by the callee) or gai != 0. */
typedef void (*resolve_cb)(void *arg, int gai, struct addrinfo *res);

typedef struct resolver {
    evloop *loop;
    int efd;             /* eventfd the helper threads signal */
    ev_io io;
    resolve_req *reqs;   /* in flight, or done and not yet delivered */
} resolver;

int resolver_init(resolver *r, evloop *loop);
/* Abandons the requests in flight: their callbacks are never called. */
void resolver_fini(resolver *r);
/* Resolves host:port (stream sockets, IPv4 first) on a helper thread; cb runs on the loop.
 * 0 (then *out identifies it until cb runs or resolve_cancel) or CE_NOMEM / CE_AGAIN. */
int resolve_start(resolver *r, const char *host, const char *port, resolve_cb cb, void *arg,
                  resolve_req **out);
void resolve_cancel(resolver *r, resolve_req *q);
/* A numeric host resolved at once: 0 and *res; CE_NOTFOUND if host is a name. */
int resolve_numeric(const char *host, const char *port, struct addrinfo **res);
/* Puts IPv4 addresses before IPv6 ones (the order etcd's clients try). */
struct addrinfo *addrinfo_v4_first(struct addrinfo *res);

/* ---- peer.c: transport, peers, connections ---- */

typedef struct conn conn;
typedef struct peer peer;
typedef struct snap_out snap_out;
typedef struct snap_in snap_in;

typedef enum conn_kind {
    CK_PEER_OUT,   /* our stream connection to a peer */
    CK_SNAP_OUT,   /* a snapshot we send */
    CK_IN,         /* accepted; its role follows from the handshake */
} conn_kind;

typedef enum conn_state {
    CS_RESOLVING,  /* dialer: host name lookup */
    CS_CONNECTING, /* dialer: non-blocking connect */
    CS_HELLO,      /* dialer: HELLO sent, waiting for the answer; acceptor: waiting for HELLO */
    CS_READY,      /* stream established (dialer may write; acceptor reads MSG frames) */
    CS_SNAP,       /* snapshot transfer (either side) */
    CS_CLOSING,    /* write what is queued, then close */
} conn_state;

struct conn {
    peer_transport *t;
    conn *prev, *next;        /* t->conns */
    conn_kind kind;
    conn_state state;
    uint8_t in_kind;          /* acceptor: the handshake's kind */
    int fd;                   /* -1 while resolving */
    ev_io io;
    ev_timer timer;           /* fires at deadline_ms */
    uint64_t deadline_ms;     /* 0 = none */
    uint64_t remote_id;       /* dialer: the peer dialed; acceptor: the handshake's sender */
    bytebuf in, out;
    size_t in_need;           /* bytes the frame being received spans */
    size_t gate;              /* dialer in CS_HELLO: bytes (the HELLO) that may be written */
    int busy;                 /* nesting of the I/O callback */
    bool dead;                /* closed while busy: free when the callback returns */
    resolve_req *rq;
    struct addrinfo *ai, *ai_cur; /* dialer: addresses of the URL, the one being tried */
    char url[256];
    char errtext[320];        /* a failure reason built from what the other side said */
    peer *peer;               /* CK_PEER_OUT: owner */
    snap_out *so;             /* CK_SNAP_OUT */
    snap_in *si;              /* CK_IN with in_kind HK_SNAP */
    struct tls_sess *tls;     /* https:// connections: the session (frames go through it) */
    bool tls_hs;              /* its TLS handshake is under way: no frame I/O yet */
};

struct peer {
    peer_transport *t;
    uint64_t id;
    char **urls;
    int nurls;
    unsigned url_next;        /* URL of the next dial (cycles) */
    conn *out;                /* stream connection, NULL while backing off */
    ev_timer retry;
    uint64_t backoff_ms;
    uint64_t active_since;    /* evloop_now_ms() at handshake, 0 unless out is CS_READY */
    uint32_t queued;          /* MSG frames in out->out since it last drained */
    bool unreachable;         /* dropped messages, on_unreachable pending */
    bool report_now;          /* in the set report_unreachable is calling for */
    bool ever_active;
    uint64_t fail_log_ms;     /* rate limit of "cannot reach" lines */
    uint64_t sent_bytes;      /* every byte written to it (messages, snapshots): metrics */
    uint64_t recv_bytes;      /* every byte read from it after its handshake: metrics */
};

typedef struct snap_result {
    uint64_t to;
    bool ok;
} snap_result;

typedef struct listener {
    peer_transport *t;
    int fd;
    int port;
    bool tls;                 /* https:// listen URL */
    ev_io io;
} listener;

typedef struct log_limit {
    uint64_t id;
    uint64_t ms;
} log_limit;

#define LOG_LIMIT_SLOTS 16

struct peer_transport {
    evloop *loop;
    uint64_t member_id, cluster_id;
    char *snap_dir;
    peer_handlers h;
    listener ls[PEER_MAX_LISTEN];
    int nls;
    peer **peers;
    size_t npeers, peers_cap;
    uint64_t *removed;
    size_t nremoved, removed_cap;
    conn *conns;
    size_t ninbound;
    ev_timer tick;            /* 0 ms: writes + deferred handler calls */
    snap_result *results;     /* deferred on_snapshot_sent */
    size_t nresults, results_cap;
    bool removed_pending;     /* on_removed to call */
    bool removed_reported;
    resolver res;
    struct tls_ctx *tls_srv;  /* for https:// listeners (NULL: none configured) */
    struct tls_ctx *tls_cli;  /* for dialing https:// peer URLs (NULL: none configured) */
    log_limit unknown_log[LOG_LIMIT_SLOTS]; /* handshakes from unknown senders */
    uint64_t drop_log_ms;     /* peer_send to an unknown id */
    uint64_t dropped_unknown;
};

/* Timeouts and backoff, in ms. */
#define PEER_BACKOFF_MIN 50
#define PEER_BACKOFF_MAX 1000
#define PEER_RESOLVE_TIMEOUT 5000
#define PEER_CONNECT_TIMEOUT 1000   /* per address, connect + handshake */
#define PEER_ACCEPT_TIMEOUT 5000    /* acceptor: for the HELLO, and for CS_CLOSING */
#define PEER_SNAP_IDLE 30000        /* snapshot transfer without progress */
#define PEER_STREAM_USER_TIMEOUT 5000
#define PEER_MAX_INBOUND 512
#define PEER_LOG_EVERY 60000

peer *peer_find(const peer_transport *t, uint64_t id);
bool peer_is_removed(const peer_transport *t, uint64_t id);
/* Arms the 0 ms tick (writes + deferred handler calls). */
void transport_schedule(peer_transport *t);
/* True (and remembers now) when a line about id may be logged: once a minute per id. */
bool log_allowed(log_limit *slots, uint64_t id);

conn *conn_new(peer_transport *t, conn_kind kind);
/* Dials url (c->out already holds what goes first). 0, or CE_* = c failed to start (the
 * caller fails it; CE_UNREACHABLE leaves the reason in errno). */
int conn_dial(conn *c, const char *url);
void conn_close(conn *c);
void conn_set_deadline(conn *c, uint64_t after_ms);
/* Sends what the socket takes, adjusts the watcher. 0, or CE_IO = the connection broke. */
int conn_write(conn *c);
/* Sends what it can now and closes the connection once the rest is written. */
void conn_finish(conn *c);
/* The dialer-side failure of c: routes to the peer (backoff) or the snapshot (report). */
void conn_fail(conn *c, const char *why);

/* ---- snapshot.c ---- */

/* Creates the sending connection (its HELLO and SNAP_HEADER queued) and dials. */
int snap_out_start(peer_transport *t, peer *p, const raft_msg *m, const uint8_t *extra,
                   size_t extra_len, int data_fd, uint64_t len);
/* The acceptor said HELLO_OK: the transfer starts. 0, or CE_* with *why. */
int snap_out_ready(conn *c, const char **why);
/* Writes, refilling the output from the data file while the socket drains. 0, or CE_* with
 * *why. */
int snap_out_pump(conn *c, const char **why);
/* A frame on the sending connection (the ACK). 0 or CE_*; *why set on failure. */
int snap_out_frame(conn *c, const frame *f, const char **why);
/* Reports the result (deferred) and releases the sender's state. */
void snap_out_end(conn *c, bool ok);
/* Releases the sender's state without a report (conn_close, peer_free). */
void snap_out_free(conn *c);
/* A frame on a receiving connection. 0, or CE_* = abort (c is closed by the caller). */
int snap_in_frame(conn *c, const frame *f);
/* Releases the receiver's state; an incomplete file is unlinked. */
void snap_in_free(conn *c);

#endif
