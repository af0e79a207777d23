/*
 * transport.c: the client-port transport of cetcd: listeners, connections, protocol sniffing,
 * output batching, and the rpc_call API of rpc.h.
 *
 * One port serves two protocols, as etcd does: gRPC over cleartext HTTP/2 with prior knowledge
 * (etcdctl, grpcio) and the HTTP/1.1 JSON gateway (/v3/..., /version, /health, /metrics).
 * Design decision: we run our own epoll loop (common/evloop.h) with nghttp2 for HTTP/2 and our
 * own HTTP/1.1 parser, not libwebsockets, because lws cannot serve prior-knowledge h2 and
 * HTTP/1.1 on one vhost and does not report gRPC END_STREAM (see shared/notes/toolchain.md).
 * WebSocket upgrades are handed, socket and all, to libwebsockets running in a thread of its
 * own (ws.c), started on the first upgrade; transport_ws.c keeps their calls on this loop.
 *
 * Counters (rpc_server_stats, rpc_server_msg_bytes, for grpc_server_* and the client byte
 * metrics): a call counts as started at its first request message, each message received or
 * sent is counted, and rpc_finish counts the call as handled under its gRPC code; a call never
 * started (no message decoded) is not counted at all.
 *
 * Sniffing: a connection whose first 24 bytes are the HTTP/2 client preface
 * ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") becomes an nghttp2 server session (transport_h2.c);
 * as soon as a byte differs it is HTTP/1.1 (transport_http1.c).
 *
 * Output: protocol code appends to conn->out and marks the connection dirty; once per loop
 * iteration (a 0 ms timer, which evloop runs right after the iteration's I/O callbacks; a flush
 * hook cannot be removed when the server is freed) every dirty connection is written with one
 * send() (EV_WRITE when the socket is full). Bounded buffering: an HTTP/1.1 peer is not read
 * while TRANSPORT_OUT_HIGH of its answers are unsent or TRANSPORT_H1_INFLIGHT requests are
 * unanswered; an HTTP/2 peer's answers wait behind its flow-control window and, above
 * TRANSPORT_H2_BACKLOG, its new streams are refused. An HTTP/1.1 request slower than
 * TRANSPORT_REQ_TIMEOUT_MS drops its connection (a once-a-second sweep).
 *
 * Producers on demand (rpc_call_want_writable): the call joins the server's writable list; after
 * every flush of a connection (the moment output can have drained) a 0 ms timer runs
 * writable_pass, which gives on_writable to each listed call whose unsent output is below
 * RPC_WRITABLE_LOW, each at most once per pass, so one stream's production is interleaved with
 * the loop's other work. WebSocket output drains in the bridge's thread, unseen here: while such
 * a call waits, the pass is repeated every TRANSPORT_WS_POLL_MS.
 *
 * TLS (https:// listeners, tls.h): the first byte must open a TLS record, else the client is
 * refused ("sent plaintext to a TLS port", logged) and closed without an answer (as etcd); the
 * handshake runs from the connection's read and write events (a slow one is dropped by the
 * same sweep as a slow request); then every recv/send of this file goes through the session.
 *
 * Invariants: see transport_int.h. Sockets are non-blocking, TCP_NODELAY, close-on-exec.
 */
#include "transport_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "server/api/tls.h"
#include "server/api/ws.h"

#define MAX_LISTENERS 16
#define READ_CHUNK 65536
#define READ_BUDGET (4u * READ_CHUNK)   /* bytes read per connection per wakeup */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

typedef struct listener {
    rpc_server *srv;
    int fd;
    int port;
    bool tls;
    ev_io io;
} listener;

struct rpc_server {
    evloop *loop;
    rpc_server_config cfg;
    listener ls[MAX_LISTENERS];
    int nls;
    rpc_conn *conns;
    rpc_conn *dirty;
    ev_timer flush_timer;          /* 0 ms one-shot, armed while a connection is dirty */
    ev_timer sweep_timer;          /* drops HTTP/1.1 requests slower than REQ_TIMEOUT */
    rpc_call *writable;            /* calls that asked for on_writable */
    ev_timer writable_timer;       /* runs writable_pass: 0 ms, or the WebSocket poll */
    unsigned wround;               /* number of the last writable_pass */
    ws_bridge *ws;                 /* libwebsockets and its thread, from the first upgrade */
    tls_ctx *tls;                  /* for the https:// listeners; NULL if none */
    tls_relay *relays;             /* TLS WebSockets: transport_tlsrelay.c */
    rpc_method_stats *stats;       /* one per entry of cfg.methods (rpc.h) */
    size_t nstats;
    uint64_t msg_bytes_in, msg_bytes_out;  /* gRPC message bytes (rpc_server_msg_bytes) */
};

/* ---- per-method counters ---- */

static rpc_method_stats *call_stats(const rpc_call *c)
{
    const rpc_server *s = c->conn->srv;
    size_t i;

    if (!c->m || !s->stats || c->m < s->cfg.methods)
        return NULL;
    i = (size_t)(c->m - s->cfg.methods);
    return i < s->nstats ? &s->stats[i] : NULL;
}

void call_count_bytes(rpc_call *c, size_t n, bool sent)
{
    if (sent)
        c->conn->srv->msg_bytes_out += n;
    else
        c->conn->srv->msg_bytes_in += n;
}

void rpc_server_msg_bytes(const rpc_server *s, uint64_t *in, uint64_t *out)
{
    *in = s->msg_bytes_in;
    *out = s->msg_bytes_out;
}

const rpc_method_stats *rpc_server_stats(const rpc_server *s, size_t *n)
{
    *n = s->nstats;
    return s->stats;
}

static int stats_alloc(rpc_server *s)
{
    size_t n = 0;

    for (const rpc_method *m = s->cfg.methods; m && m->grpc_path; m++)
        n++;
    s->stats = calloc(n ? n : 1, sizeof(*s->stats));
    s->nstats = n;
    return s->stats ? 0 : CE_NOMEM;
}

/* ---- method table ---- */

const rpc_method *server_find_grpc(const rpc_server *s, const char *path, size_t len)
{
    for (const rpc_method *m = s->cfg.methods; m && m->grpc_path; m++)
        if (strlen(m->grpc_path) == len && memcmp(m->grpc_path, path, len) == 0)
            return m;
    return NULL;
}

/* Second gateway paths etcd 3.4 serves for a method: {alias, the method's http_path}. */
static const char *const http_aliases[][2] = {
    {"/v3/kv/lease/revoke", "/v3/lease/revoke"},
    {"/v3/kv/lease/timetolive", "/v3/lease/timetolive"},
    {"/v3/kv/lease/leases", "/v3/lease/leases"},
};

static void unalias(const char **path, size_t *len)
{
    for (size_t i = 0; i < sizeof(http_aliases) / sizeof(http_aliases[0]); i++)
        if (strlen(http_aliases[i][0]) == *len && memcmp(http_aliases[i][0], *path, *len) == 0) {
            *path = http_aliases[i][1];
            *len = strlen(*path);
            return;
        }
}

/* "/v3beta/x" is served as "/v3/x"; the aliases above as their methods' paths. */
const rpc_method *server_find_http(const rpc_server *s, const char *path, size_t len)
{
    static const char beta[] = "/v3beta/";
    char alt[256];

    if (len > sizeof(beta) - 1 && memcmp(path, beta, sizeof(beta) - 1) == 0 &&
        len - 4 < sizeof(alt)) {
        memcpy(alt, "/v3/", 4);
        memcpy(alt + 4, path + sizeof(beta) - 1, len - (sizeof(beta) - 1));
        len -= 4;
        path = alt;
    }
    unalias(&path, &len);
    for (const rpc_method *m = s->cfg.methods; m && m->grpc_path; m++)
        if (m->http_path && strlen(m->http_path) == len && memcmp(m->http_path, path, len) == 0)
            return m;
    return NULL;
}

/* True if some method lives under "/<svc>/". */
bool server_has_service(const rpc_server *s, const char *svc, size_t len)
{
    for (const rpc_method *m = s->cfg.methods; m && m->grpc_path; m++)
        if (strlen(m->grpc_path) > len + 1 && memcmp(m->grpc_path + 1, svc, len) == 0 &&
            m->grpc_path[len + 1] == '/')
            return true;
    return false;
}

const rpc_server_config *conn_config(const rpc_conn *c)
{
    return &c->srv->cfg;
}

static uint32_t server_max_msg(const rpc_server *s)
{
    uint64_t m = (uint64_t)s->cfg.max_request_bytes + TRANSPORT_EXTRA_BYTES;

    return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
}

uint32_t conn_max_msg(const rpc_conn *c)
{
    return server_max_msg(c->srv);
}

ws_bridge *server_ws_bridge(rpc_server *s)
{
    /* a WebSocket message may be as large as an HTTP/1.1 body (h1_body_limit) */
    if (!s->ws && ws_bridge_new(s->loop, &wsgw_ops, 2 * (size_t)server_max_msg(s) + 4096, &s->ws))
        s->ws = NULL;
    return s->ws;
}

int conn_detach_fd(rpc_conn *c)
{
    int fd = c->fd;

    evloop_io_stop(c->srv->loop, &c->io);
    c->fd = -1;
    c->proto = PROTO_WS;
    c->read_paused = c->write_armed = false;
    c->h1.started_ms = 0;
    return fd;
}

int conn_tls_relay(rpc_conn *c, int *fd)
{
    tls_sess *tls = c->tls;

    c->tls = NULL;
    return tlsrelay_start(c->srv->loop, &c->srv->relays, *fd, tls, fd);
}

/* ---- calls ---- */

rpc_call *call_new(rpc_conn *conn, bool gateway)
{
    rpc_call *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->conn = conn;
    c->gateway = gateway;
    c->prev = conn->calls_tail;
    if (conn->calls_tail)
        conn->calls_tail->next = c;
    else
        conn->calls = c;
    conn->calls_tail = c;
    return c;
}

static void writable_unlink(rpc_call *c)
{
    rpc_server *s = c->conn->srv;

    if (!c->want_writable)
        return;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        s->writable = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->wnext = c->wprev = NULL;
    c->want_writable = false;
}

void call_release(rpc_call *c)
{
    rpc_conn *conn = c->conn;

    if (!c->closed) {
        c->closed = true;
        c->finished = true;
        if (c->m && c->m->on_close)
            c->m->on_close(c);
        if (c->get_pending && conn->srv->cfg.http_close) {
            c->get_pending = false;
            conn->srv->cfg.http_close(c);
        }
    }
    writable_unlink(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        conn->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        conn->calls_tail = c->prev;
    if (conn->h1.cur == c)
        conn->h1.cur = NULL;
    bytebuf_free(&c->in);
    bytebuf_free(&c->out);
    bytebuf_free(&c->resp);
    free(c->grpc_message);
    free(c->md);
    free(c);
}

int call_md_add(rpc_call *c, const char *name, size_t nlen, const char *value, size_t vlen)
{
    size_t need = nlen + vlen + 2;
    char *p;

    if (c->md_cap - c->md_len < need) {
        size_t cap = c->md_cap ? c->md_cap : 256;
        while (cap - c->md_len < need)
            cap *= 2;
        p = realloc(c->md, cap);
        if (!p)
            return CE_NOMEM;
        c->md = p;
        c->md_cap = cap;
    }
    p = c->md + c->md_len;
    for (size_t i = 0; i < nlen; i++) {
        char ch = name[i];
        p[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    p[nlen] = 0;
    memcpy(p + nlen + 1, value, vlen);
    p[nlen + 1 + vlen] = 0;
    c->md_len += need;
    return 0;
}

void call_deliver(rpc_call *c, ProtobufCMessage *req)
{
    rpc_method_stats *st;

    if (c->finished || !c->m) {
        protobuf_c_message_free_unpacked(req, NULL);
        return;
    }
    if ((st = call_stats(c)) != NULL) {
        st->started += !c->counted;
        st->msg_received++;
        c->counted = true;
    }
    c->m->on_message(c, req);
}

void call_recv_end(rpc_call *c)
{
    if (c->recv_ended)
        return;
    c->recv_ended = true;
    if (!c->finished && c->m && c->m->on_recv_end)
        c->m->on_recv_end(c);
}

void rpc_call_set_data(rpc_call *c, void *data) { c->data = data; }
void *rpc_call_data(const rpc_call *c) { return c->data; }
void *rpc_call_ctx(const rpc_call *c) { return c->conn->srv->cfg.ctx; }
const rpc_method *rpc_call_method(const rpc_call *c) { return c->m; }
bool rpc_call_is_gateway(const rpc_call *c) { return c->gateway; }

const char *rpc_call_tls_cn(const rpc_call *c)
{
    return c->conn->tls ? tls_sess_peer_cn(c->conn->tls) : NULL;
}

static const char *md_find(const rpc_call *c, const char *name)
{
    size_t i = 0;

    while (i < c->md_len) {
        const char *n = c->md + i;
        const char *v = n + strlen(n) + 1;
        if (v >= c->md + c->md_len)   /* cannot happen: names and values hold no NUL */
            break;
        if (strcmp(n, name) == 0)
            return v;
        i = (size_t)(v - c->md) + strlen(v) + 1;
    }
    return NULL;
}

/* The gateway also takes grpc-gateway's form of gRPC metadata: "Grpc-Metadata-<name>". */
const char *rpc_call_metadata(const rpc_call *c, const char *name)
{
    const char *v = md_find(c, name);
    char prefixed[128];

    if (v || !c->gateway || (size_t)snprintf(prefixed, sizeof(prefixed), "grpc-metadata-%s",
                                             name) >= sizeof(prefixed))
        return v;
    return md_find(c, prefixed);
}

size_t rpc_call_pending(const rpc_call *c)
{
    size_t n = c->gateway ? bytebuf_size(&c->resp) : bytebuf_size(&c->out);

    if (c->conn->proto == PROTO_WS)
        return wsgw_pending(c);
    if (c->gateway && c->conn->calls == c)
        n += bytebuf_size(&c->conn->out);
    return n;
}

static void writable_pass(evloop *l, ev_timer *t);

/* Runs writable_pass in ms (0: at the loop's next timer run); an earlier due time stands. */
static void writable_arm(rpc_server *s, uint64_t ms)
{
    if (!s->writable_timer.active || ms == 0)
        evloop_timer_start(s->loop, &s->writable_timer, ms, 0, writable_pass, s);
}

void rpc_call_want_writable(rpc_call *c)
{
    rpc_server *s = c->conn->srv;

    if (c->finished || c->conn->dead || !c->m || !c->m->on_writable || c->want_writable)
        return;
    c->want_writable = true;
    c->wprev = NULL;
    c->wnext = s->writable;
    if (s->writable)
        s->writable->wprev = c;
    s->writable = c;
    if (rpc_call_pending(c) < RPC_WRITABLE_LOW)
        writable_arm(s, 0);
    else if (c->conn->proto == PROTO_WS)
        writable_arm(s, TRANSPORT_WS_POLL_MS);
}

/* Gives on_writable to each listed call that has drained, once per pass (the list may change
 * under a callback: the scan restarts, skipping calls this pass has seen). */
static void writable_pass(evloop *l, ev_timer *t)
{
    rpc_server *s = t->data;
    unsigned round = ++s->wround;
    bool poll = false;
    rpc_call *c;

    (void)l;
again:
    for (c = s->writable; c; c = c->wnext) {
        if (c->wround == round)
            continue;
        c->wround = round;
        if (!c->finished && !c->conn->dead && rpc_call_pending(c) >= RPC_WRITABLE_LOW) {
            poll = poll || c->conn->proto == PROTO_WS;
            continue;
        }
        writable_unlink(c);
        if (!c->finished && !c->conn->dead)
            c->m->on_writable(c);
        goto again;
    }
    if (poll)
        writable_arm(s, TRANSPORT_WS_POLL_MS);
}

int rpc_send(rpc_call *c, const ProtobufCMessage *msg)
{
    int err;

    if (c->finished || c->conn->dead)
        return CE_STOPPED;
    if (c->conn->proto == PROTO_WS)
        err = wsgw_send(c, msg);
    else
        err = c->gateway ? h1_send(c, msg) : h2_send(c, msg);
    conn_mark_dirty(c->conn);
    if (!err && call_stats(c))
        call_stats(c)->msg_sent++;
    return err;
}

/* Other protocols than gRPC: decode the packed bytes, send the message. */
static int send_unpacked(rpc_call *c, const ProtobufCBinaryData *parts, size_t n)
{
    size_t len = 0, at = 0;
    ProtobufCMessage *msg;
    uint8_t *buf;
    int err;

    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    buf = malloc(len ? len : 1);
    if (!buf)
        return CE_NOMEM;
    for (size_t i = 0; i < n; at += parts[i].len, i++)
        if (parts[i].len)
            memcpy(buf + at, parts[i].data, parts[i].len);
    msg = protobuf_c_message_unpack(c->m->resp_desc, NULL, len, buf);
    free(buf);
    if (!msg)
        return CE_BAD_PROTO;
    err = rpc_send(c, msg);
    protobuf_c_message_free_unpacked(msg, NULL);
    return err;
}

int rpc_send_packed(rpc_call *c, const ProtobufCBinaryData *parts, size_t n)
{
    int err;

    if (c->finished || c->conn->dead || !c->m)
        return CE_STOPPED;
    if (c->gateway || c->conn->proto != PROTO_H2)
        return send_unpacked(c, parts, n);
    err = h2_send_packed(c, parts, n);
    conn_mark_dirty(c->conn);
    if (!err && call_stats(c))
        call_stats(c)->msg_sent++;
    return err;
}

int rpc_finish_msg(rpc_call *c, int err, const char *message)
{
    rpc_method_stats *st;
    int rc, code = ce_grpc_code(err);

    if (c->finished || c->conn->dead)
        return CE_STOPPED;
    if (c->counted && (st = call_stats(c)) != NULL && code >= 0 && code < RPC_NCODES)
        st->handled[code]++;
    if (!message)
        message = err ? ce_strerror(err) : "";
    if (c->conn->proto == PROTO_WS)
        rc = wsgw_finish(c, code, message);
    else
        rc = c->gateway ? h1_finish(c, code, message) : h2_finish(c, code, message);
    conn_mark_dirty(c->conn);
    return rc;
}

int rpc_finish(rpc_call *c, int err)
{
    return rpc_finish_msg(c, err, NULL);
}

/* ---- connections ---- */

static void flush_all(evloop *l, ev_timer *t);

void conn_mark_dirty(rpc_conn *c)
{
    rpc_server *s = c->srv;

    if (c->dirty)
        return;
    if (!s->flush_timer.active)
        evloop_timer_start(s->loop, &s->flush_timer, 0, 0, flush_all, s);
    c->dirty = true;
    c->dprev = NULL;
    c->dnext = s->dirty;
    if (s->dirty)
        s->dirty->dprev = c;
    s->dirty = c;
}

static void dirty_unlink(rpc_conn *c)
{
    if (!c->dirty)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        c->srv->dirty = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    c->dirty = false;
    c->dnext = c->dprev = NULL;
}

/* Closes the socket, ends every call (on_close each), frees the connection. */
static void conn_free(rpc_conn *c)
{
    rpc_server *s = c->srv;

    wsgw_conn_release(c);
    c->dead = true;
    dirty_unlink(c);
    evloop_io_stop(s->loop, &c->io);
    tls_sess_free(c->tls);
    if (c->fd >= 0)
        close(c->fd);
    if (c->h2)
        h2_free(c);
    while (c->calls)
        call_release(c->calls);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bytebuf_free(&c->in);
    bytebuf_free(&c->out);
    free(c);
}

static int conn_watch(rpc_conn *c)
{
    int ev = (c->read_paused ? 0 : EV_READ) | (c->write_armed ? EV_WRITE : 0);

    if (ev == c->io.events)
        return 0;
    return evloop_io_set(c->srv->loop, &c->io, ev);
}

/* After the client's EOF: every request that could still complete was answered. (A request
 * cut short by the EOF, h1.cur, never completes.) */
static bool h1_drained(const rpc_conn *c)
{
    return c->peer_eof && !c->h1.blocked && (!c->calls || c->calls == c->h1.cur);
}

/* One recv through the connection's TLS session if any: >0 bytes, 0 EOF, CE_AGAIN, CE_IO. */
static ssize_t conn_recv(rpc_conn *c, void *buf, size_t len)
{
    ssize_t n;

    if (c->tls)
        return tls_sess_read(c->tls, buf, len);
    do
        n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? CE_AGAIN : CE_IO;
    return n;
}

/* One send, likewise: >0 bytes taken, CE_AGAIN, CE_IO. */
static ssize_t conn_send(rpc_conn *c, const void *buf, size_t len)
{
    ssize_t n;

    if (c->tls)
        return tls_sess_write(c->tls, buf, len);
    do
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? CE_AGAIN : CE_IO;
    return n > 0 ? n : CE_IO;
}

/* Advances the TLS handshake of a connection from an https:// listener: 0 established,
 * CE_AGAIN waiting (epoll interest set), other CE_* refused (logged by tls.c). */
static int conn_tls_step(rpc_conn *c)
{
    int rc;

    if (!c->tls) {
        rc = tls_sniff_plaintext(c->fd, "client");
        if (rc)
            return rc;
        rc = tls_sess_new(c->srv->tls, c->fd, NULL, &c->tls);
        if (rc)
            return rc;
    }
    rc = tls_sess_handshake(c->tls);
    if (rc == CE_AGAIN) {
        c->write_armed = tls_sess_wants_write(c->tls);
        return conn_watch(c) ? CE_IO : CE_AGAIN;
    }
    if (rc)
        return rc;
    c->tls_pending = false;
    c->write_armed = false;
    c->h1.started_ms = 0;
    return 0;
}

/* Generates pending protocol output, sends what the socket takes. 0, or CE_* = drop it. */
static int conn_flush(rpc_conn *c)
{
    ssize_t n;

    if (c->proto == PROTO_WS)
        return wsgw_conn_done(c) ? CE_STOPPED : 0;
    if (c->tls_pending) {
        int rc = conn_tls_step(c);
        if (rc)
            return rc == CE_AGAIN ? 0 : rc;
    }
    if (c->proto == PROTO_H1) {
        h1_emit(c);
        if (!c->close_after_flush && bytebuf_size(&c->in) > 0 && h1_process(c))
            return CE_IO;
        h1_emit(c);
    } else if (c->proto == PROTO_H2 && h2_produce(c)) {
        return CE_IO;
    }
    while (bytebuf_size(&c->out) > 0) {
        n = conn_send(c, bytebuf_data(&c->out), bytebuf_size(&c->out));
        if (n == CE_AGAIN)
            break;
        if (n < 0)
            return CE_IO;
        bytebuf_consume(&c->out, (size_t)n);
        if (c->proto == PROTO_H2 && bytebuf_size(&c->out) == 0 && h2_produce(c))
            return CE_IO;
    }
    if (bytebuf_size(&c->out) == 0 && c->out.cap > 4 * READ_CHUNK)
        bytebuf_free(&c->out);
    if (c->proto == PROTO_H1 && wsgw_ready(c))
        return wsgw_handoff(c) ? CE_IO : conn_flush(c);
    /* Requests held back by the backlog limit can go now: another round. */
    if (c->proto == PROTO_H1 && c->h1.blocked && !c->close_after_flush &&
        c->h1.inflight < TRANSPORT_H1_INFLIGHT && h1_backlog(c) < TRANSPORT_OUT_HIGH)
        conn_mark_dirty(c);
    if (bytebuf_size(&c->out) == 0 &&
        (c->close_after_flush || (c->proto == PROTO_H2 && h2_done(c)) || h1_drained(c)))
        return CE_STOPPED;
    c->write_armed = bytebuf_size(&c->out) > 0 || (c->tls && tls_sess_wants_write(c->tls));
    if (c->srv->writable)
        writable_arm(c->srv, 0);
    /* HTTP/2 is always read: the peer's WINDOW_UPDATEs are what drains its backlog. */
    c->read_paused = c->peer_eof || c->upgrade || (c->proto == PROTO_H1 &&
                                     (c->h1.inflight >= TRANSPORT_H1_INFLIGHT ||
                                      h1_backlog(c) >= TRANSPORT_OUT_HIGH));
    return conn_watch(c);
}

/* The per-iteration flush: a 0 ms timer runs right after the iteration's I/O callbacks.
 * (evloop has no way to remove a flush hook, and a server can be freed before its loop.)
 * Connections are taken off the dirty list one at a time, since flushing one may dirty
 * another (a handler answering a call elsewhere); marking re-arms the timer, so what the
 * budget leaves is done on the timer's next run. */
static void flush_all(evloop *l, ev_timer *t)
{
    rpc_server *s = t->data;
    rpc_conn *c;

    (void)l;
    for (int budget = 4096; budget > 0 && (c = s->dirty); budget--) {
        dirty_unlink(c);
        if (conn_flush(c))
            conn_free(c);
    }
}

/* Slowloris guard: an HTTP/1.1 request (or an undecided first read) that has been arriving
 * for longer than TRANSPORT_REQ_TIMEOUT_MS closes its connection. */
static void sweep(evloop *l, ev_timer *t)
{
    rpc_server *s = t->data;
    uint64_t now = evloop_now_ms();
    rpc_conn *c = s->conns, *next;

    (void)l;
    for (; c; c = next) {
        next = c->next;
        if (c->proto != PROTO_H2 && c->h1.started_ms &&
            now - c->h1.started_ms > TRANSPORT_REQ_TIMEOUT_MS)
            conn_free(c);
    }
}

static int sniff(rpc_conn *c)
{
    size_t n = bytebuf_size(&c->in);
    size_t cmp = n < 24 ? n : 24;

    if (memcmp(bytebuf_data(&c->in), h2_preface, cmp) != 0) {
        c->proto = PROTO_H1;
        return h1_process(c);
    }
    if (n < 24) {
        if (!c->h1.started_ms)
            c->h1.started_ms = evloop_now_ms();
        return 0;
    }
    c->proto = PROTO_H2;
    c->h1.started_ms = 0;
    if (h2_start(c))
        return CE_IO;
    if (h2_recv(c, bytebuf_data(&c->in), n))
        return CE_IO;
    bytebuf_free(&c->in);
    return 0;
}

/* Reads what is there (bounded), feeds the protocol. 0, or CE_* = drop the connection. */
static int conn_read(rpc_conn *c)
{
    uint8_t stack[READ_CHUNK];
    size_t total = 0;
    ssize_t n;

    if (c->tls_pending) {
        int rc = conn_tls_step(c);
        if (rc)
            return rc == CE_AGAIN ? 0 : rc;
    }
    while (total < READ_BUDGET && !c->read_paused) {
        if (c->proto == PROTO_H2) {
            n = conn_recv(c, stack, sizeof(stack));
        } else {
            if (bytebuf_reserve(&c->in, READ_CHUNK))
                return CE_NOMEM;
            n = conn_recv(c, c->in.p + c->in.len, c->in.cap - c->in.len);
        }
        if (n == CE_AGAIN) {
            if (c->tls && tls_sess_wants_write(c->tls))
                conn_mark_dirty(c);   /* the flush arms EV_WRITE for it */
            return 0;
        }
        if (n == 0 && c->proto == PROTO_H1) {
            h1_peer_eof(c);
            c->peer_eof = true;
            c->read_paused = true;
            conn_mark_dirty(c);
            return conn_watch(c);
        }
        if (n <= 0)
            return CE_IO;
        total += (size_t)n;
        if (c->proto == PROTO_H2) {
            if (h2_recv(c, stack, (size_t)n))
                return CE_IO;
        } else {
            c->in.len += (size_t)n;
            if (c->proto == PROTO_SNIFF ? sniff(c) : h1_process(c))
                return CE_IO;
        }
        conn_mark_dirty(c);
        if (c->close_after_flush || c->upgrade)
            return 0;
        if (c->proto == PROTO_H1 && (c->h1.inflight >= TRANSPORT_H1_INFLIGHT ||
                                     h1_backlog(c) >= TRANSPORT_OUT_HIGH))
            c->read_paused = true;
    }
    return 0;
}

static void conn_cb(evloop *l, ev_io *w, int events)
{
    rpc_conn *c = w->data;

    (void)l;
    if ((events & EV_READ) && !c->read_paused && !c->close_after_flush && conn_read(c)) {
        conn_free(c);
        return;
    }
    conn_mark_dirty(c);
}

static void conn_accept(rpc_server *s, int fd, bool tls)
{
    rpc_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (!c) {
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = s;
    c->fd = fd;
    c->tls_pending = tls;
    if (tls)
        c->h1.started_ms = evloop_now_ms();   /* the handshake is timed like a request */
    if (evloop_io_start(s->loop, &c->io, fd, EV_READ, conn_cb, c)) {
        close(fd);
        free(c);
        return;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
}

static void listen_cb(evloop *l, ev_io *w, int events)
{
    listener *ls = w->data;

    (void)l;
    (void)events;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                log_warn("transport: accept: %s", strerror(errno));
            return;
        }
        conn_accept(ls->srv, fd, ls->tls);
    }
}

/* ---- listeners ---- */

/* Splits "http[s]://host:port" (host may be [v6]) into host and port; *tls for https. */
static int parse_url(const char *url, char *host, size_t hostlen, char *port, size_t portlen,
                     bool *tls)
{
    const char *p = url, *colon, *end;
    size_t n;

    *tls = strncmp(p, "https://", 8) == 0;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (*tls)
        p += 8;
    else if (strstr(p, "://"))
        return CE_INVAL;
    end = p + strcspn(p, "/");
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb || rb[1] != ':')
            return CE_INVAL;
        n = (size_t)(rb - p - 1);
        if (n >= hostlen)
            return CE_INVAL;
        memcpy(host, p + 1, n);
        host[n] = 0;
        colon = rb + 1;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        if (!colon)
            return CE_INVAL;
        n = (size_t)(colon - p);
        if (n >= hostlen)
            return CE_INVAL;
        memcpy(host, p, n);
        host[n] = 0;
    }
    n = (size_t)(end - colon - 1);
    if (n == 0 || n >= portlen)
        return CE_INVAL;
    memcpy(port, colon + 1, n);
    port[n] = 0;
    return 0;
}

static int bind_one(const struct addrinfo *ai, int *out_fd, int *out_port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);

    if (fd < 0)
        return ce_from_errno(errno);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024) ||
        getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        int err = ce_from_errno(errno);
        close(fd);
        return err;
    }
    *out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *out_fd = fd;
    return 0;
}

static int listen_url(rpc_server *s, const char *url)
{
    char host[256], port[16];
    struct addrinfo hints = {0}, *res, *ai;
    listener *ls;
    int err = CE_INVAL;
    bool tls;

    if (s->nls >= MAX_LISTENERS || parse_url(url, host, sizeof(host), port, sizeof(port), &tls)) {
        log_error("transport: bad listen URL %s", url);
        return CE_INVAL;
    }
    if (tls && !s->tls) {
        log_error("transport: %s needs TLS: --cert-file and --key-file, or --auto-tls", url);
        return CE_INVAL;
    }
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host, port, &hints, &res)) {
        log_error("transport: cannot resolve %s", url);
        return CE_INVAL;
    }
    ls = &s->ls[s->nls];
    for (ai = res; ai; ai = ai->ai_next) {
        /* "localhost" may resolve to ::1 and 127.0.0.1: prefer IPv4 as etcd clients do. */
        if (ai->ai_family == AF_INET6 && ai->ai_next)
            continue;
        err = bind_one(ai, &ls->fd, &ls->port);
        if (!err)
            break;
    }
    freeaddrinfo(res);
    if (err) {
        log_error("transport: cannot listen on %s: %s", url, ce_strerror(err));
        return err;
    }
    ls->srv = s;
    ls->tls = tls;
    err = evloop_io_start(s->loop, &ls->io, ls->fd, EV_READ, listen_cb, ls);
    if (err) {
        close(ls->fd);
        return err;
    }
    s->nls++;
    return 0;
}

int rpc_server_new(evloop *loop, const rpc_server_config *cfg, rpc_server **out)
{
    rpc_server *s = calloc(1, sizeof(*s));
    int err;

    if (!s)
        return CE_NOMEM;
    s->loop = loop;
    s->cfg = *cfg;
    if (stats_alloc(s)) {
        free(s);
        return CE_NOMEM;
    }
    evloop_timer_start(loop, &s->sweep_timer, 1000, 1000, sweep, s);
    if (cfg->tls) {
        err = tls_ctx_new_server(cfg->tls, "client", &s->tls);
        if (err)
            goto out_free;
    }
    for (int i = 0; i < cfg->nlisten; i++) {
        err = listen_url(s, cfg->listen_urls[i]);
        if (err)
            goto out_free;
    }
    *out = s;
    return 0;
out_free:
    rpc_server_free(s);
    return err;
}

int rpc_server_port(const rpc_server *s, int idx)
{
    if (idx < 0 || idx >= s->nls)
        return CE_INVAL;
    return s->ls[idx].port;
}

void rpc_server_free(rpc_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nls; i++) {
        evloop_io_stop(s->loop, &s->ls[i].io);
        close(s->ls[i].fd);
    }
    while (s->conns)
        conn_free(s->conns);
    tlsrelay_free_all(&s->relays);
    ws_bridge_free(s->ws);   /* joins its thread; every WebSocket was closed just above */
    evloop_timer_stop(s->loop, &s->flush_timer);
    evloop_timer_stop(s->loop, &s->sweep_timer);
    evloop_timer_stop(s->loop, &s->writable_timer);
    tls_ctx_free(s->tls);
    free(s->stats);
    free(s);
}
