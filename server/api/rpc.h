/*
 * rpc.h: the contract between the client-port transport and the services behind it.
 *
 * The transport (transport*.c) owns sockets and protocols: gRPC over HTTP/2 (nghttp2) and the
 * HTTP/1.1 JSON gateway, on one port. It turns each gRPC call or gateway request into an
 * rpc_call on one rpc_method, decoding request messages (protobuf or JSON) before handing them
 * over, and encoding what the service sends back in the caller's own protocol. Services
 * (services.c) never see a socket, a frame or JSON.
 *
 * Lifecycle of a call:
 *   on_message(call, req) once for a unary method, once per client message for a client
 *   stream; the handler owns req (free with protobuf_c_message_free_unpacked).
 *   The handler answers with rpc_send() (0..n times: once for unary) and ends the call with
 *   rpc_finish(call, err) (err 0 = OK; a CE_* code becomes etcd's gRPC status + message, or the
 *   gateway's JSON error with the matching HTTP status).
 *   on_close(call) is called exactly once when the call ends for any reason (finished, peer
 *   reset, connection lost, server stopping); after it returns the call pointer is dead, so a
 *   handler with pending asynchronous work (a proposal) cancels it there.
 *   A server stream that produces on demand (Snapshot) keeps its unsent output bounded: it
 *   sends while rpc_call_pending() is below its own mark, then asks rpc_call_want_writable();
 *   on_writable(call) follows once the peer has taken enough (pending < RPC_WRITABLE_LOW).
 * Invariant: after rpc_finish, further rpc_send/rpc_finish calls are ignored and return
 * CE_STOPPED; on_close still follows.
 */
#ifndef CETCD_RPC_H
#define CETCD_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

typedef struct rpc_call rpc_call;

typedef struct rpc_method {
    const char *grpc_path;            /* "/etcdserverpb.KV/Put" */
    const char *http_path;            /* "/v3/kv/put" (also served under /v3beta/), or NULL */
    const ProtobufCMessageDescriptor *req_desc;
    const ProtobufCMessageDescriptor *resp_desc;
    bool client_stream;
    bool server_stream;
    void (*on_message)(rpc_call *c, ProtobufCMessage *req);
    void (*on_close)(rpc_call *c);    /* may be NULL */
    /* The client half-closed its side (gRPC END_STREAM; the gateway after the last body
     * message): no more on_message. Only for client_stream methods; may be NULL. etcd ends a
     * LeaseKeepAlive stream here, and keeps a Watch stream open. */
    void (*on_recv_end)(rpc_call *c);
    /* Once after each rpc_call_want_writable(c), when the call's unsent output has fallen below
     * RPC_WRITABLE_LOW; never after the call finished. From a timer of the transport, never
     * from inside its I/O. Only for server streams that use it; may be NULL. */
    void (*on_writable)(rpc_call *c);
} rpc_method;

/* Per-call pointers for the service. */
void rpc_call_set_data(rpc_call *c, void *data);
void *rpc_call_data(const rpc_call *c);
/* The context given to the transport at creation (the services' state). */
void *rpc_call_ctx(const rpc_call *c);
const rpc_method *rpc_call_method(const rpc_call *c);
/* A request metadata value (gRPC header / HTTP header, lowercase name), or NULL:
 * "token" (gRPC) / "authorization" (HTTP), "hasleader". */
const char *rpc_call_metadata(const rpc_call *c, const char *name);
/* The CN of the client certificate verified on this call's TLS connection, NULL if none
 * (plaintext, or no --client-cert-auth). With client-cert-auth, etcd takes it as the user. */
const char *rpc_call_tls_cn(const rpc_call *c);
/* True for calls that came through the JSON gateway. */
bool rpc_call_is_gateway(const rpc_call *c);

/* Response bytes of this call not yet taken by the peer (queued behind its flow-control
 * window or an unread socket). A server stream (Watch) checks it before rpc_send and holds
 * back (etcd's slow watcher) above its own threshold: the transport never refuses a send. */
size_t rpc_call_pending(const rpc_call *c);
/* Asks for one on_writable(c) as soon as rpc_call_pending(c) < RPC_WRITABLE_LOW (at the next
 * turn of the loop if it already is). Ignored after the call finished or without on_writable. */
#define RPC_WRITABLE_LOW (128u * 1024u)
void rpc_call_want_writable(rpc_call *c);
/* Sends one response message (encoded now; msg stays the caller's). 0 or CE_STOPPED. */
int rpc_send(rpc_call *c, const ProtobufCMessage *msg);
/* Sends one response already packed: the concatenation of parts[0..n) is the protobuf
 * encoding of a resp_desc message (the watch hub encodes a batch's events once for many
 * watchers). gRPC frames the bytes as they are; other protocols decode them and go through
 * rpc_send. 0, CE_STOPPED, CE_NOMEM, or CE_BAD_PROTO (bytes that do not decode). */
int rpc_send_packed(rpc_call *c, const ProtobufCBinaryData *parts, size_t n);
/* Ends the call: err 0 = OK; CE_* = etcd's status and message (ce_strerror). */
int rpc_finish(rpc_call *c, int err);
/* Same, with a message other than ce_strerror(err) (e.g. one naming a bad field). */
int rpc_finish_msg(rpc_call *c, int err, const char *message);

/* Plain HTTP GET endpoints (/version, /health, /metrics, ...). The handler either answers at
 * once: fills reply (a malloc'd body the transport frees) and returns the HTTP status; or
 * returns 0 for "no such path" (404); or returns RPC_HTTP_LATER and answers afterwards, from
 * the loop's thread, with exactly one rpc_http_answer(c, ...), unless the call ends first (the
 * client went away, the server stops): then cfg.http_close(c) runs once instead and c is dead
 * after it returns. A deferred call may keep its state with rpc_call_set_data. c is NULL when
 * the transport only asks whether path exists (another method on it is answered 405): the
 * handler then returns nonzero for a path it serves and does nothing else. */
typedef struct rpc_http_reply {
    int status;
    const char *content_type;
    char *body;
    size_t len;
} rpc_http_reply;
#define RPC_HTTP_LATER (-1)
typedef int (*rpc_http_get_fn)(void *ctx, rpc_call *c, const char *path, rpc_http_reply *reply);
typedef void (*rpc_http_close_fn)(rpc_call *c);
/* The answer to a GET deferred with RPC_HTTP_LATER (status, type and body as above; the body is
 * taken in every case). 0, or CE_STOPPED when the call cannot be answered any more. */
int rpc_http_answer(rpc_call *c, rpc_http_reply *reply);

/* The transport. */
typedef struct rpc_server rpc_server;
typedef struct rpc_server_config {
    const char *const *listen_urls;   /* "http://127.0.0.1:2379" or "https://..." */
    int nlisten;
    const rpc_method *methods;        /* table, terminated by an entry with grpc_path NULL */
    void *ctx;                        /* returned by rpc_call_ctx */
    rpc_http_get_fn http_get;
    uint32_t max_request_bytes;       /* --max-request-bytes; larger messages: CE_REQ_TOO_LARGE */
    /* TLS for the https:// listeners (http:// ones stay plaintext, as etcd): NULL = no TLS
     * configured, then an https:// URL is a configuration error (CE_INVAL). */
    const struct tls_files *tls;
    /* Called for a deferred GET that ends unanswered (see rpc_http_get_fn); may be NULL when
     * http_get never defers. */
    rpc_http_close_fn http_close;
} rpc_server_config;

#include "evloop.h"
int rpc_server_new(evloop *loop, const rpc_server_config *cfg, rpc_server **out);
/* The port listener idx (order of listen_urls) is bound to (useful with port 0), or CE_INVAL. */
int rpc_server_port(const rpc_server *s, int idx);
/* Closes listeners and every connection (each open call gets on_close). */
void rpc_server_free(rpc_server *s);

/* Per-method call counters (grpc_server_started_total, _handled_total by status code,
 * _msg_received_total, _msg_sent_total), over every protocol (gRPC, gateway, WebSocket: etcd's
 * gateway goes through its gRPC server too). Entry i belongs to cfg.methods[i]. */
#define RPC_NCODES 17
typedef struct rpc_method_stats {
    uint64_t started, msg_received, msg_sent;
    uint64_t handled[RPC_NCODES];     /* by gRPC status code 0 (OK) .. 16 (Unauthenticated) */
} rpc_method_stats;
/* The table (one entry per method) and its length in *n. */
const rpc_method_stats *rpc_server_stats(const rpc_server *s, size_t *n);
/* Bytes of the protobuf messages received from and sent to gRPC clients (etcd's
 * etcd_network_client_grpc_{received,sent}_bytes_total count message sizes; the JSON gateway
 * and WebSocket calls are not counted yet). */
void rpc_server_msg_bytes(const rpc_server *s, uint64_t *in, uint64_t *out);

#endif
