/*
 * transport_int.h: what the three transport files share (not a public header).
 *
 * transport.c owns the server, listeners, connections, the output buffer of each connection,
 * the per-loop flush and the rpc_call API; transport_h2.c speaks gRPC over an nghttp2 server
 * session; transport_http1.c parses HTTP/1.1 and runs the JSON gateway; transport_ws.c gives
 * WebSockets etcd's gateway semantics, their protocol being spoken by libwebsockets in the
 * bridge thread of ws.c. A connection starts in PROTO_SNIFF and switches once, after its first
 * bytes, to PROTO_H2 or PROTO_H1; an HTTP/1.1 connection whose last request is a WebSocket
 * upgrade switches once more, to PROTO_WS, when its socket is handed to the bridge (from then
 * on fd is -1, the connection has exactly one call, and the bridge owns the socket).
 * A connection accepted on an https:// listener first completes a TLS handshake
 * (tls_pending); then the same sniffing runs on the decrypted bytes (ALPN "h2" clients send
 * the HTTP/2 preface, "http/1.1" and ALPN-less clients do not). A TLS connection that becomes
 * a WebSocket gives its socket and session to a relay (transport_tlsrelay.c) and the bridge a
 * socketpair end carrying the same bytes in clear.
 *
 * Invariants:
 * - Nothing is written to a socket outside conn_flush(); protocol code only appends to
 *   conn->out (or lets nghttp2 produce bytes) and marks the connection dirty.
 * - A connection is torn down only from the top of an event callback or from the flush timer,
 *   never from inside a service callback or an nghttp2 callback; inside those it is only
 *   marked (dead / close_after_flush).
 * - Every rpc_call is on its connection's call list until it is freed; on_close runs exactly
 *   once, from call_release(), before the free.
 */
#ifndef CETCD_TRANSPORT_INT_H
#define CETCD_TRANSPORT_INT_H

#include "bytebuf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "rpc.h"

#define TRANSPORT_EXTRA_BYTES (512u * 1024u) /* grpc overhead over max_request_bytes */
#define TRANSPORT_MAX_HEADER (64u * 1024u)   /* HTTP/1.1 request head limit */
#define TRANSPORT_OUT_HIGH (1u << 20)        /* stop reading a peer above this much output */
#define TRANSPORT_H1_INFLIGHT 64             /* pipelined requests in progress per connection */
#define TRANSPORT_H2_BACKLOG (16u << 20)     /* queued gRPC response bytes: refuse new streams */
#define TRANSPORT_REQ_TIMEOUT_MS 60000       /* an HTTP/1.1 request must arrive within this */
#define TRANSPORT_WS_OUT_MAX (64u << 20)     /* WebSocket output queued: drop the client */
#define TRANSPORT_WS_POLL_MS 5               /* WebSocket drain is polled for on_writable */


enum conn_proto { PROTO_SNIFF, PROTO_H1, PROTO_H2, PROTO_WS };

typedef struct rpc_conn rpc_conn;
struct ws_bridge;
struct ws_sock;
struct tls_sess;
typedef struct tls_relay tls_relay;

/* HTTP/1.1 parser state of one connection. */
enum h1_state { H1_HEAD, H1_BODY_CL, H1_CHUNK_SIZE, H1_CHUNK_DATA, H1_CHUNK_CRLF, H1_TRAILER };
struct h1_parser {
    enum h1_state state;
    size_t scanned;      /* bytes of conn->in already searched for the end of the head */
    size_t remaining;    /* body bytes (content-length) or chunk bytes still to come */
    rpc_call *cur;       /* the request whose body is being read */
    int inflight;        /* calls on the list whose response is not fully emitted */
    bool stopped;        /* no more requests are parsed (error, Connection: close) */
    uint64_t started_ms; /* when the request being received began (0: none) */
    bool blocked;        /* input waits because of the inflight/backlog limits */
};

struct rpc_conn {
    rpc_server *srv;
    int fd;
    ev_io io;
    enum conn_proto proto;
    bytebuf in;                       /* sniff / HTTP/1.1 input not consumed yet */
    bytebuf out;                      /* bytes to send */
    rpc_conn *next, *prev;         /* all connections of the server */
    rpc_conn *dnext, *dprev;       /* the server's dirty list */
    bool dirty;
    bool dead;                     /* being torn down: calls get CE_STOPPED */
    bool close_after_flush;        /* close once out is empty (HTTP/1.1 Connection: close) */
    bool read_paused;
    bool write_armed;
    bool peer_eof;                 /* HTTP/1.1 client half-closed: answer, then close */
    rpc_call *calls, *calls_tail;  /* open calls; HTTP/1.1: in response order */
    nghttp2_session *h2;
    size_t h2_backlog;             /* sum of call->out over the connection's gRPC calls */
    struct h1_parser h1;
    bool upgrade;                  /* the last call is a WebSocket upgrade awaiting hand-off */
    bool ws_gone;                  /* PROTO_WS: the bridge reported the socket closed */
    struct ws_sock *ws;            /* PROTO_WS: the socket in the bridge */
    struct tls_sess *tls;          /* TLS listener: the session (NULL before the first byte) */
    bool tls_pending;              /* TLS listener: handshake not finished, no protocol yet */
};

struct rpc_call {
    rpc_conn *conn;
    const rpc_method *m;           /* NULL: no service behind (unknown method, GET route) */
    rpc_call *next, *prev;
    void *data;
    bool gateway;
    bool finished;                 /* rpc_finish done (or the transport ended the call) */
    bool closed;                   /* on_close delivered */
    bool recv_ended;               /* client half-closed */
    bool counted;                  /* counted in grpc_server_started_total (first message) */
    /* request metadata: "name\0value\0" pairs */
    char *md;
    size_t md_len, md_cap;
    /* gRPC (HTTP/2) */
    int32_t stream_id;
    bytebuf in;                       /* request bytes not yet framed (HTTP/1.1: chunked body;
                                         WebSocket: JSON stream not yet decoded) */
    bytebuf out;                      /* framed response messages not yet given to nghttp2 */
    bool headers_sent, deferred, trailers_sent;
    bool discard_input;            /* gRPC, WebSocket: further request input is ignored */
    bool want_writable;            /* on the server's writable list (rpc_call_want_writable) */
    unsigned wround;               /* the writable pass that last looked at it */
    rpc_call *wnext, *wprev;
    bool got_msg;                  /* gRPC, WebSocket: a request message was delivered */
    int grpc_status;
    char *grpc_message;
    /* HTTP/1.1 */
    bytebuf resp;                     /* response bytes not yet moved to conn->out */
    bool resp_started;             /* status line of a chunked response written */
    bool done;                     /* response complete */
    bool keep_alive;
    uint64_t content_length;
    bool get_pending;              /* a GET the handler deferred (RPC_HTTP_LATER), unanswered */
    bool get_head;                 /* that GET is a HEAD: its answer goes without the body */
};

/* transport.c */
void conn_mark_dirty(rpc_conn *c);
rpc_call *call_new(rpc_conn *conn, bool gateway);
void call_release(rpc_call *c);   /* on_close (once) + unlink + free */
int call_md_add(rpc_call *c, const char *name, size_t nlen, const char *value, size_t vlen);
const rpc_server_config *conn_config(const rpc_conn *c);
uint32_t conn_max_msg(const rpc_conn *c);
const rpc_method *server_find_grpc(const rpc_server *s, const char *path, size_t len);
const rpc_method *server_find_http(const rpc_server *s, const char *path, size_t len);
bool server_has_service(const rpc_server *s, const char *svc, size_t len);
void call_deliver(rpc_call *c, ProtobufCMessage *req);
/* Counts gRPC message bytes (etcd_network_client_grpc_*_bytes_total). */
void call_count_bytes(rpc_call *c, size_t n, bool sent);
void call_recv_end(rpc_call *c);
struct ws_bridge *server_ws_bridge(rpc_server *s);   /* started on first use; NULL on error */
int conn_detach_fd(rpc_conn *c);  /* stops watching the socket; returns it; now PROTO_WS */
/* A detached TLS connection (c->tls): *fd and the session go to a relay; *fd becomes the clear
 * end for the bridge. Takes *fd and the session in every case. 0 or CE_NOMEM. */
int conn_tls_relay(rpc_conn *c, int *fd);

/* transport_tlsrelay.c */
int tlsrelay_start(evloop *loop, tls_relay **head, int fd, struct tls_sess *tls, int *plain_fd);
void tlsrelay_free_all(tls_relay **head);

/* transport_h2.c */
int h2_start(rpc_conn *c);
int h2_recv(rpc_conn *c, const uint8_t *data, size_t len);
int h2_produce(rpc_conn *c);      /* moves nghttp2 output into conn->out */
bool h2_done(rpc_conn *c);
void h2_free(rpc_conn *c);
int h2_send(rpc_call *call, const ProtobufCMessage *msg);
int h2_send_packed(rpc_call *call, const ProtobufCBinaryData *parts, size_t n);
int h2_finish(rpc_call *call, int grpc_code, const char *message);

/* transport_http1.c */
int h1_process(rpc_conn *c);      /* parses conn->in, dispatches requests */
void h1_emit(rpc_conn *c);        /* moves finished responses, in order, into conn->out */
size_t h1_backlog(const rpc_conn *c);   /* response bytes not yet sent */
void h1_peer_eof(rpc_conn *c);    /* the client half-closed: end its server streams */
int h1_send(rpc_call *call, const ProtobufCMessage *msg);
int h1_finish(rpc_call *call, int grpc_code, const char *message);
/* A complete response with extra header lines ("Name: value\r\n"...); marks the call done. */
int h1_reply(rpc_call *c, int status, const char *extra, const char *ctype, const void *body,
             size_t len);
int h1_error_json(bytebuf *b, int grpc_code, const char *message);        /* unary error */
int h1_stream_error_json(bytebuf *b, int grpc_code, const char *message); /* stream error */
size_t h1_body_limit(const rpc_conn *c);   /* the largest request body accepted */

/* transport_ws.c */
bool wsgw_is_upgrade(const rpc_call *c);
void wsgw_upgrade(rpc_call *c, const char *method);   /* refuses, or marks for hand-off */
bool wsgw_ready(const rpc_conn *c);   /* the upgrade call is first and all before it sent */
int wsgw_handoff(rpc_conn *c);        /* 0: now PROTO_WS; CE_*: drop the connection */
bool wsgw_conn_done(const rpc_conn *c);
void wsgw_conn_release(rpc_conn *c);  /* from conn_free, before the calls are released */
int wsgw_send(rpc_call *call, const ProtobufCMessage *msg);
int wsgw_finish(rpc_call *call, int grpc_code, const char *message);
size_t wsgw_pending(const rpc_call *call);
extern const struct ws_bridge_ops wsgw_ops;

#endif
