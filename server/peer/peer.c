/*
 * peer.c: the transport of peer.h: listeners, the accepting side of the handshake, the peer
 * table (one outbound stream connection per peer, redialed with backoff), message queues and
 * their batched writes, and the deferred handler calls. Snapshot transfer is in snapshot.c,
 * the wire format in wire.c.
 *
 * Invariants (beyond those of peer_int.h):
 *  - a peer's queue is its stream connection's output buffer: messages are encoded into it by
 *    peer_send and written by peer_flush / the tick timer; while the connection is being
 *    established only its HELLO may be written (c->gate bytes); while the peer is backing off
 *    (out == NULL) messages are dropped and on_unreachable is reported;
 *  - p->queued counts MSG frames appended since the buffer last drained; with the buffer's
 *    size it bounds the queue (PEER_QUEUE_MSGS, PEER_QUEUE_BYTES);
 *  - p->active_since != 0 iff p->out is in CS_READY;
 *  - t->ninbound counts the accepted connections alive (bounded by PEER_MAX_INBOUND).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "lebytes.h"
#include "log.h"
#include "peer_int.h"
#include "api/tls.h"

#define READ_MIN (256u << 10)          /* read room once a connection is established */
#define KEEP_BUF (1u << 20)
#define ACCEPT_BATCH 64
#define READ_ROUNDS 16

static void conn_io_cb(evloop *l, ev_io *w, int events);
static void peer_dial(peer *p);
static void free_urls(char **urls, int nurls);

/* ---- small helpers ---- */

bool log_allowed(log_limit *slots, uint64_t id)
{
    uint64_t now = evloop_now_ms();
    int oldest = 0;

    for (int i = 0; i < LOG_LIMIT_SLOTS; i++) {
        if (slots[i].ms && slots[i].id == id) {
            if (now - slots[i].ms < PEER_LOG_EVERY)
                return false;
            slots[i].ms = now;
            return true;
        }
        if (slots[i].ms < slots[oldest].ms)
            oldest = i;
    }
    slots[oldest].id = id;
    slots[oldest].ms = now ? now : 1;
    return true;
}

peer *peer_find(const peer_transport *t, uint64_t id)
{
    for (size_t i = 0; i < t->npeers; i++)
        if (t->peers[i]->id == id)
            return t->peers[i];
    return NULL;
}

bool peer_is_removed(const peer_transport *t, uint64_t id)
{
    for (size_t i = 0; i < t->nremoved; i++)
        if (t->removed[i] == id)
            return true;
    return false;
}

/* ---- connections ---- */

conn *conn_new(peer_transport *t, conn_kind kind)
{
    conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->t = t;
    c->kind = kind;
    c->fd = -1;
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    return c;
}

void conn_close(conn *c)
{
    peer_transport *t = c->t;

    if (c->dead)
        return;
    if (c->kind == CK_IN)
        t->ninbound--;
    if (c->peer && c->peer->out == c) {
        c->peer->out = NULL;
        c->peer->active_since = 0;
    }
    if (c->so)
        snap_out_free(c);
    if (c->si)
        snap_in_free(c);
    if (c->rq)
        resolve_cancel(&t->res, c->rq);
    if (c->ai)
        freeaddrinfo(c->ai);
    evloop_io_stop(t->loop, &c->io);
    evloop_timer_stop(t->loop, &c->timer);
    tls_sess_free(c->tls);
    c->tls = NULL;
    if (c->fd >= 0)
        close(c->fd);
    bytebuf_free(&c->in);
    bytebuf_free(&c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->busy)
        c->dead = true;
    else
        free(c);
}

static void conn_timer_cb(evloop *l, ev_timer *tm);

void conn_set_deadline(conn *c, uint64_t after_ms)
{
    peer_transport *t = c->t;

    if (!after_ms) {
        c->deadline_ms = 0;
        evloop_timer_stop(t->loop, &c->timer);
        return;
    }
    c->deadline_ms = evloop_now_ms() + after_ms;
    /* A later deadline keeps the timer; it re-arms itself when it fires early. */
    if (!c->timer.active || c->timer.due_ms > c->deadline_ms)
        evloop_timer_start(t->loop, &c->timer, after_ms, 0, conn_timer_cb, c);
}

/* One send, through TLS on https:// connections: >0 bytes, CE_AGAIN, or CE_IO (errno set). */
static ssize_t conn_send(conn *c, const void *buf, size_t len)
{
    ssize_t n;

    if (c->tls) {
        n = tls_sess_write(c->tls, buf, len);
        if (n == CE_IO)
            errno = EPROTO;
        return n;
    }
    do
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? CE_AGAIN : CE_IO;
    return n > 0 ? n : CE_IO;
}

/* One recv likewise: >0 bytes, 0 the other side closed, CE_AGAIN, CE_IO (errno set). */
static ssize_t conn_recv(conn *c, void *buf, size_t len)
{
    ssize_t n;

    if (c->tls) {
        n = tls_sess_read(c->tls, buf, len);
        if (n == CE_IO)
            errno = EPROTO;
        return n;
    }
    do
        n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? CE_AGAIN : CE_IO;
    return n;
}

/* The epoll interest of a TLS connection waiting in OpenSSL for the other direction. */
static bool tls_wants_write(const conn *c)
{
    return c->tls && tls_sess_wants_write(c->tls);
}

/* Byte counters of the peer at the other end (etcd_network_peer_{sent,received}_bytes_total);
 * bytes of a connection whose peer is not known yet (before the handshake) are not counted. */
static void count_bytes(conn *c, size_t n, bool sent)
{
    peer *p = c->kind == CK_PEER_OUT ? c->peer : c->remote_id ? peer_find(c->t, c->remote_id) : NULL;

    if (!p)
        return;
    if (sent)
        p->sent_bytes += n;
    else
        p->recv_bytes += n;
}

int conn_write(conn *c)
{
    bool gated = c->kind != CK_IN && c->state == CS_HELLO;
    bool want;

    if (c->state < CS_HELLO || c->tls_hs)
        return 0;
    while (bytebuf_size(&c->out) > 0) {
        size_t n = bytebuf_size(&c->out);
        ssize_t w;

        if (gated && n > c->gate)
            n = c->gate;
        if (n == 0)
            break;
        w = conn_send(c, bytebuf_data(&c->out), n);
        if (w == CE_AGAIN)
            break;
        if (w < 0)
            return CE_IO;
        bytebuf_consume(&c->out, (size_t)w);
        count_bytes(c, (size_t)w, true);
        if (gated)
            c->gate -= (size_t)w;
        if (c->kind == CK_SNAP_OUT && c->state == CS_SNAP)
            conn_set_deadline(c, PEER_SNAP_IDLE);
    }
    if (bytebuf_size(&c->out) == 0) {
        bytebuf_trim(&c->out, KEEP_BUF);
        if (c->peer)
            c->peer->queued = 0;
    }
    want = (bytebuf_size(&c->out) > 0 && !(gated && c->gate == 0)) || tls_wants_write(c);
    return evloop_io_set(c->t->loop, &c->io, EV_READ | (want ? EV_WRITE : 0));
}

void conn_finish(conn *c)
{
    c->state = CS_CLOSING;
    conn_set_deadline(c, PEER_ACCEPT_TIMEOUT);
    if (conn_write(c) || bytebuf_size(&c->out) == 0)
        conn_close(c);
}

/* ---- the stream side of a peer ---- */

static void peer_connected(peer *p)
{
    uint64_t now = evloop_now_ms();

    p->active_since = now ? now : 1;
    p->backoff_ms = PEER_BACKOFF_MIN;
    p->fail_log_ms = 0;
    log_info("peer: connected to %016" PRIx64 " at %s", p->id, p->out->url);
}

static void retry_cb(evloop *l, ev_timer *tm)
{
    (void)l;
    peer_dial(tm->data);
}

/* The stream connection failed: drop it (and its queue), back off, redial. */
static void peer_lost(peer *p, const char *why)
{
    peer_transport *t = p->t;
    conn *c = p->out;
    bool was_active = p->active_since != 0;
    uint64_t now = evloop_now_ms();

    if (was_active) {
        log_warn("peer: lost connection to %016" PRIx64 " at %s: %s", p->id, c->url, why);
    } else if (now - p->fail_log_ms >= PEER_LOG_EVERY || !p->fail_log_ms) {
        p->fail_log_ms = now ? now : 1;
        log_warn("peer: cannot reach %016" PRIx64 " at %s: %s (retrying)", p->id, c->url, why);
    }
    if (was_active || p->queued) {
        p->unreachable = true;
        transport_schedule(t);
    }
    conn_close(c);
    p->queued = 0;
    p->url_next++;
    evloop_timer_start(t->loop, &p->retry, p->backoff_ms, 0, retry_cb, p);
    p->backoff_ms = p->backoff_ms * 2 > PEER_BACKOFF_MAX ? PEER_BACKOFF_MAX : p->backoff_ms * 2;
}

static void peer_dial(peer *p)
{
    peer_transport *t = p->t;
    hello h = {PEER_VERSION, HK_STREAM, t->member_id, p->id, t->cluster_id};
    uint8_t hb[HELLO_LEN];
    conn *c = conn_new(t, CK_PEER_OUT);
    int rc;

    if (!c) {
        evloop_timer_start(t->loop, &p->retry, PEER_BACKOFF_MAX, 0, retry_cb, p);
        return;
    }
    c->peer = p;
    c->remote_id = p->id;
    p->out = c;
    hello_encode(hb, &h);
    rc = frame_put(&c->out, FR_HELLO, hb, sizeof(hb), NULL, 0);
    c->gate = FRAME_HDR + HELLO_LEN;
    if (!rc)
        rc = conn_dial(c, p->urls[p->url_next % (unsigned)p->nurls]);
    if (rc)
        conn_fail(c, rc == CE_UNREACHABLE ? strerror(errno) : ce_strerror(rc));
}

void conn_fail(conn *c, const char *why)
{
    switch (c->kind) {
    case CK_PEER_OUT:
        if (c->peer) {
            peer_lost(c->peer, why);
            return;
        }
        break;
    case CK_SNAP_OUT:
        if (c->so) {
            log_warn("peer: sending a snapshot to %016" PRIx64 " at %s failed: %s", c->remote_id,
                     c->url, why);
            snap_out_end(c, false);
        }
        break;
    case CK_IN:
        if (c->si || c->in_kind == HK_SNAP)
            log_warn("peer: receiving a snapshot from %016" PRIx64 " failed: %s", c->remote_id,
                     why);
        else if (c->state == CS_READY)
            log_info("peer: stream from %016" PRIx64 " closed: %s", c->remote_id, why);
        else if (log_allowed(c->t->unknown_log, c->remote_id))
            log_warn("peer: closing a connection before its handshake: %s", why);
        break;
    }
    conn_close(c);
}

/* ---- dialing ---- */

/* Starts connecting to c->ai_cur or a later address. 0 = under way; CE_UNREACHABLE = none
 * could be tried. */
static int try_connect(conn *c)
{
    peer_transport *t = c->t;
    int err = ECONNREFUSED;

    for (; c->ai_cur; c->ai_cur = c->ai_cur->ai_next) {
        const struct addrinfo *ai = c->ai_cur;

        if (c->fd >= 0) {
            evloop_io_stop(t->loop, &c->io);
            close(c->fd);
            c->fd = -1;
        }
        c->fd = socket_for(ai);
        if (c->fd < 0) {
            err = errno;
            continue;
        }
        tcp_tune(c->fd, c->kind == CK_PEER_OUT ? PEER_STREAM_USER_TIMEOUT : PEER_SNAP_IDLE);
        if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            err = errno;
            continue;
        }
        if (evloop_io_start(t->loop, &c->io, c->fd, EV_READ | EV_WRITE, conn_io_cb, c)) {
            err = errno;
            continue;
        }
        c->state = CS_CONNECTING;
        conn_set_deadline(c, PEER_CONNECT_TIMEOUT);
        return 0;
    }
    errno = err;
    return CE_UNREACHABLE;
}

static void resolved_cb(void *arg, int gai, struct addrinfo *res)
{
    conn *c = arg;

    c->rq = NULL;
    if (gai) {
        conn_fail(c, gai_strerror(gai));
        return;
    }
    c->ai = c->ai_cur = res;
    if (try_connect(c))
        conn_fail(c, strerror(errno));
}

int conn_dial(conn *c, const char *url)
{
    char host[256], port[16];
    struct addrinfo *ai;
    int rc;

    snprintf(c->url, sizeof(c->url), "%s", url);
    rc = url_parse(url, host, sizeof(host), port, sizeof(port));
    if (rc)
        return rc;
    if (!resolve_numeric(host, port, &ai)) {
        c->ai = c->ai_cur = addrinfo_v4_first(ai);
        return try_connect(c);
    }
    c->state = CS_RESOLVING;
    rc = resolve_start(&c->t->res, host, port, resolved_cb, c, &c->rq);
    if (!rc)
        conn_set_deadline(c, PEER_RESOLVE_TIMEOUT);
    return rc;
}

/* ---- TLS (https:// peer URLs) ---- */

/* Drives the handshake; once done, frames flow (the dialer's HELLO goes out). */
static void tls_step(conn *c)
{
    int rc = tls_sess_handshake(c->tls);

    if (rc == CE_AGAIN) {
        if (evloop_io_set(c->t->loop, &c->io, EV_READ | (tls_wants_write(c) ? EV_WRITE : 0)))
            conn_fail(c, "cannot watch the socket");
        return;
    }
    if (rc) {
        conn_fail(c, "TLS handshake failed");
        return;
    }
    c->tls_hs = false;
    if (conn_write(c))
        conn_fail(c, strerror(errno));
}

static void tls_client_start(conn *c)
{
    char host[256], port[16];

    if (!c->t->tls_cli) {
        conn_fail(c, "https:// peer URL but no peer TLS configured");
        return;
    }
    if (url_parse(c->url, host, sizeof(host), port, sizeof(port)) ||
        tls_sess_new(c->t->tls_cli, c->fd, host, &c->tls)) {
        conn_fail(c, "cannot start TLS");
        return;
    }
    c->tls_hs = true;
    tls_step(c);
}

/* The non-blocking connect finished (or failed: then the next address). */
static void connect_done(conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        c->ai_cur = c->ai_cur->ai_next;
        if (try_connect(c))
            conn_fail(c, strerror(err));
        return;
    }
    freeaddrinfo(c->ai);
    c->ai = c->ai_cur = NULL;
    c->state = CS_HELLO;
    conn_set_deadline(c, PEER_CONNECT_TIMEOUT);
    if (url_is_tls(c->url)) {
        tls_client_start(c);
        return;
    }
    if (conn_write(c))
        conn_fail(c, strerror(errno));
}

static void conn_timer_cb(evloop *l, ev_timer *tm)
{
    conn *c = tm->data;
    uint64_t now = evloop_now_ms();

    if (!c->deadline_ms)
        return;
    if (now < c->deadline_ms) {
        evloop_timer_start(l, &c->timer, c->deadline_ms - now, 0, conn_timer_cb, c);
        return;
    }
    c->deadline_ms = 0;
    if (c->state == CS_CONNECTING && c->ai_cur && c->ai_cur->ai_next) {
        c->ai_cur = c->ai_cur->ai_next;
        if (!try_connect(c))
            return;
    }
    if (c->state == CS_CLOSING)
        conn_close(c);
    else
        conn_fail(c, c->state == CS_SNAP ? "no progress for 30 s" : "timed out");
}

/* ---- the accepting side ---- */

/* Answers with an ERROR frame and closes once it is written. */
static int refuse(conn *c, uint32_t code, const char *text)
{
    peer_transport *t = c->t;

    if (error_put(&c->out, code, t->member_id, t->cluster_id, text))
        return CE_NOMEM;
    conn_finish(c);
    return 0;
}

static int answer_members(conn *c, const hello *h)
{
    peer_transport *t = c->t;
    uint8_t fixed[MEMBERS_FIXED];
    char *json = NULL;
    size_t n;
    int rc = CE_UNSUPPORTED;

    if (h->cluster && t->cluster_id && h->cluster != t->cluster_id)
        return refuse(c, PEC_CLUSTER, "cluster ID mismatch");
    if (t->h.members_json)
        rc = t->h.members_json(t->h.ctx, &json);
    if (c->dead) {
        free(json);
        return 0;
    }
    if (rc || !json || (n = strlen(json)) > PEER_MAX_JSON) {
        free(json);
        return refuse(c, PEC_UNAVAILABLE, "member list unavailable");
    }
    le_put64(fixed, t->cluster_id);
    rc = frame_put(&c->out, FR_MEMBERS, fixed, sizeof(fixed), json, n);
    free(json);
    if (rc)
        return rc;
    conn_finish(c);
    return 0;
}

/* A new stream from a sender replaces its older ones (half-dead after a restart or a
 * partition). */
static void close_older_streams(conn *c)
{
    conn *o, *next;

    for (o = c->t->conns; o; o = next) {
        next = o->next;
        if (o != c && o->kind == CK_IN && o->in_kind == HK_STREAM && o->state == CS_READY &&
            o->remote_id == c->remote_id)
            conn_close(o);
    }
}

static int admit(conn *c, const hello *h)
{
    peer_transport *t = c->t;
    uint8_t ok[HELLO_OK_LEN];
    int rc;

    c->remote_id = h->from;
    c->in_kind = h->kind;
    hello_ok_encode(ok, t->member_id, t->cluster_id);
    rc = frame_put(&c->out, FR_HELLO_OK, ok, sizeof(ok), NULL, 0);
    if (rc)
        return rc;
    if (h->kind == HK_STREAM) {
        close_older_streams(c);
        c->state = CS_READY;
        conn_set_deadline(c, 0);
    } else {
        c->state = CS_SNAP;
        conn_set_deadline(c, PEER_SNAP_IDLE);
    }
    return conn_write(c);
}

static int accept_hello(conn *c, const frame *f, const char **why)
{
    peer_transport *t = c->t;
    hello h;
    uint8_t idb[8];

    if (f->type != FR_HELLO || hello_decode(f->data, f->len, &h)) {
        *why = "no handshake";
        return CE_CORRUPT;
    }
    if (h.version != PEER_VERSION)
        return refuse(c, PEC_VERSION, "protocol version not supported");
    if (h.kind == HK_MEMBERS)
        return answer_members(c, &h);
    if (h.kind != HK_STREAM && h.kind != HK_SNAP)
        return refuse(c, PEC_PROTOCOL, "unknown connection kind");
    if (h.cluster && t->cluster_id && h.cluster != t->cluster_id) {
        if (log_allowed(t->unknown_log, h.from))
            log_warn("peer: refusing member %016" PRIx64 ": cluster ID mismatch (its %016" PRIx64
                     ", ours %016" PRIx64 ")", h.from, h.cluster, t->cluster_id);
        return refuse(c, PEC_CLUSTER, "cluster ID mismatch");
    }
    if (h.to != t->member_id) {
        if (log_allowed(t->unknown_log, h.from))
            log_warn("peer: refusing member %016" PRIx64 ": it dialed member %016" PRIx64
                     ", we are %016" PRIx64, h.from, h.to, t->member_id);
        return refuse(c, PEC_RECIPIENT, "wrong recipient");
    }
    if (peer_is_removed(t, h.from)) {
        if (log_allowed(t->unknown_log, h.from))
            log_info("peer: telling member %016" PRIx64 " it was removed", h.from);
        le_put64(idb, t->member_id);
        if (frame_put(&c->out, FR_REMOVED, idb, sizeof(idb), NULL, 0))
            return CE_NOMEM;
        conn_finish(c);
        return 0;
    }
    if (!peer_find(t, h.from)) {
        if (log_allowed(t->unknown_log, h.from))
            log_info("peer: refusing unknown member %016" PRIx64 " (not added here, or not yet)",
                     h.from);
        return refuse(c, PEC_UNKNOWN_SENDER, "unknown sender");
    }
    return admit(c, &h);
}

static int deliver_msg(conn *c, const frame *f, const char **why)
{
    peer_transport *t = c->t;
    raft_msg m;
    int rc;

    if (f->type != FR_MSG) {
        *why = "unexpected frame on a stream";
        return CE_CORRUPT;
    }
    rc = raft_msg_decode(f->data, f->len, &m);
    if (rc) {
        *why = rc == CE_NOMEM ? "out of memory" : "undecodable raft message";
        return rc;
    }
    if (m.from != c->remote_id || m.to != t->member_id) {
        if (log_allowed(t->unknown_log, c->remote_id))
            log_warn("peer: dropping a %s from %016" PRIx64 " to %016" PRIx64
                     " on the stream of %016" PRIx64, raft_msg_type_name(m.type), m.from, m.to,
                     c->remote_id);
    } else if (t->h.on_msg) {
        t->h.on_msg(t->h.ctx, &m);
    }
    raft_msg_free(&m);
    return 0;
}

/* ---- the dialing side's handshake ---- */

static int dialer_answer(conn *c, const frame *f, const char **why)
{
    char *text = c->errtext; /* *why must outlive this call */
    size_t textlen = sizeof(c->errtext);
    char detail[128];
    uint64_t id, cluster;
    uint32_t code;

    switch (f->type) {
    case FR_HELLO_OK:
        if (hello_ok_decode(f->data, f->len, &id, &cluster)) {
            *why = "bad handshake answer";
            return CE_CORRUPT;
        }
        if (id != c->remote_id) {
            snprintf(text, textlen, "answered by member %016" PRIx64 " instead", id);
            *why = text;
            return CE_CORRUPT;
        }
        c->gate = 0;
        if (c->kind == CK_SNAP_OUT) {
            c->state = CS_SNAP;
            return snap_out_ready(c, why);
        }
        c->state = CS_READY;
        conn_set_deadline(c, 0);
        peer_connected(c->peer);
        *why = "write failed";
        return conn_write(c);
    case FR_ERROR:
        if (error_decode(f->data, f->len, &code, &id, &cluster, detail, sizeof(detail))) {
            *why = "bad error frame";
            return CE_CORRUPT;
        }
        snprintf(text, textlen, "refused: %s (member %016" PRIx64 ", cluster %016" PRIx64
                 "; ours %016" PRIx64 ")", peer_error_name(code), id, cluster, c->t->cluster_id);
        *why = text;
        return CE_UNREACHABLE;
    case FR_REMOVED:
        c->t->removed_pending = true;
        transport_schedule(c->t);
        *why = "it says we were removed from the cluster";
        return CE_STOPPED;
    default:
        *why = "unexpected frame in the handshake";
        return CE_CORRUPT;
    }
}

/* ---- reading ---- */

static int handle_frame(conn *c, const frame *f, const char **why)
{
    int rc;

    if (c->kind == CK_IN) {
        if (c->state == CS_HELLO)
            return accept_hello(c, f, why);
        if (c->in_kind == HK_STREAM)
            return deliver_msg(c, f, why);
        rc = snap_in_frame(c, f);
        if (rc)
            *why = rc == CE_NOMEM ? "out of memory" : "bad snapshot frame";
        return rc;
    }
    if (c->state == CS_HELLO)
        return dialer_answer(c, f, why);
    if (c->kind == CK_SNAP_OUT && c->so)
        return snap_out_frame(c, f, why);
    *why = "unexpected frame";
    return CE_CORRUPT;
}

static size_t max_payload(const conn *c)
{
    return c->kind == CK_IN && c->state != CS_HELLO ? PEER_MAX_FRAME : PEER_MAX_CTRL;
}

/* Handles every complete frame in c->in. 0, or CE_* with *why (c is then still open). */
static int process_frames(conn *c, const char **why)
{
    for (;;) {
        frame f;
        size_t need;
        int rc = frame_parse(bytebuf_data(&c->in), bytebuf_size(&c->in), max_payload(c), &f, &need);

        if (rc == 0) {
            c->in_need = need;
            return 0;
        }
        if (rc < 0) {
            *why = "bad frame (length or CRC)";
            return rc;
        }
        rc = handle_frame(c, &f, why);
        if (c->dead)
            return 0;
        if (rc)
            return rc;
        bytebuf_consume(&c->in, FRAME_HDR + f.len);
        if (c->state == CS_CLOSING) {
            bytebuf_consume(&c->in, bytebuf_size(&c->in));
            return 0;
        }
    }
}

static void conn_read(conn *c)
{
    const char *why = "protocol error";

    /* A TLS record read in part (little room before the handshake) waits inside OpenSSL,
     * unseen by epoll: it is always taken before leaving. */
    for (int round = 0; (round < READ_ROUNDS || (c->tls && tls_sess_pending(c->tls))) && !c->dead;
         round++) {
        size_t want = c->in_need > bytebuf_size(&c->in) ? c->in_need - bytebuf_size(&c->in) : 0;
        /* Little room before the handshake: unauthenticated connections stay cheap. */
        size_t room = c->state == CS_HELLO ? FRAME_HDR + PEER_MAX_CTRL : READ_MIN;
        ssize_t n;

        if (bytebuf_reserve(&c->in, want > room ? want : room)) {
            conn_fail(c, "out of memory");
            return;
        }
        n = conn_recv(c, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (n == CE_AGAIN) {
            if (tls_wants_write(c) && conn_write(c))
                conn_fail(c, strerror(errno));
            break;
        }
        if (n <= 0) {
            if (c->state == CS_CLOSING && n == 0)
                conn_close(c);
            else
                conn_fail(c, n == 0 ? "closed by the other side" : strerror(errno));
            return;
        }
        c->in.len += (size_t)n;
        count_bytes(c, (size_t)n, false);
        if (c->state == CS_CLOSING) {
            bytebuf_consume(&c->in, bytebuf_size(&c->in));
            continue;
        }
        if (process_frames(c, &why) && !c->dead) {
            conn_fail(c, why);
            return;
        }
    }
    if (!c->dead && bytebuf_size(&c->in) == 0)
        bytebuf_trim(&c->in, KEEP_BUF);
}

static void conn_events(conn *c, int events)
{
    const char *why = "write failed";
    int rc;

    if (c->state == CS_CONNECTING) {
        connect_done(c);
        return;
    }
    if (c->tls_hs) {
        tls_step(c);
        if (c->dead || c->tls_hs)
            return;
    }
    if (events & EV_WRITE) {
        if (c->kind == CK_SNAP_OUT && c->state == CS_SNAP && c->so)
            rc = snap_out_pump(c, &why);
        else
            rc = conn_write(c);
        if (rc) {
            conn_fail(c, why);
            return;
        }
        if (c->state == CS_CLOSING && bytebuf_size(&c->out) == 0) {
            conn_close(c);
            return;
        }
    }
    if (events & EV_READ)
        conn_read(c);
}

static void conn_io_cb(evloop *l, ev_io *w, int events)
{
    conn *c = w->data;

    (void)l;
    c->busy++;
    conn_events(c, events);
    if (--c->busy == 0 && c->dead)
        free(c);
}

/* ---- listeners ---- */

static void accept_one(peer_transport *t, int fd, bool tls)
{
    conn *c;

    if (t->ninbound >= PEER_MAX_INBOUND) {
        if (log_allowed(t->unknown_log, 0))
            log_warn("peer: too many connections (%d), refusing more", PEER_MAX_INBOUND);
        close(fd);
        return;
    }
    c = conn_new(t, CK_IN);
    if (!c) {
        close(fd);
        return;
    }
    t->ninbound++;
    c->fd = fd;
    c->state = CS_HELLO;
    tcp_tune(fd, 0);
    if (tls && tls_sess_new(t->tls_srv, fd, NULL, &c->tls)) {
        conn_close(c);
        return;
    }
    c->tls_hs = tls;
    if (evloop_io_start(t->loop, &c->io, fd, EV_READ, conn_io_cb, c)) {
        conn_close(c);
        return;
    }
    conn_set_deadline(c, PEER_ACCEPT_TIMEOUT);
}

static void accept_cb(evloop *l, ev_io *w, int events)
{
    listener *ls = w->data;

    (void)l;
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && log_allowed(ls->t->unknown_log, 0))
                log_warn("peer: accept: %s", strerror(errno));
            return;
        }
        accept_one(ls->t, fd, ls->tls);
    }
}

static int bind_one(const struct addrinfo *ai, listener *ls)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int one = 1;
    int fd = socket_for(ai);

    if (fd < 0)
        return ce_from_errno(errno);
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128) ||
        getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        int err = ce_from_errno(errno);
        close(fd);
        return err;
    }
    ls->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    ls->fd = fd;
    return 0;
}

static int listen_url(peer_transport *t, const char *url)
{
    char host[256], port[16];
    struct addrinfo hints = {0}, *res, *ai;
    listener *ls = &t->ls[t->nls];
    int rc = url_parse(url, host, sizeof(host), port, sizeof(port));

    if (rc) {
        log_error("peer: bad listen URL %s", url ? url : "(null)");
        return rc;
    }
    if (url_is_tls(url) && !t->tls_srv) {
        log_error("peer: %s needs peer TLS: --peer-cert-file and --peer-key-file, or "
                  "--peer-auto-tls", url);
        return CE_UNSUPPORTED;
    }
    ls->tls = url_is_tls(url);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res)) {
        log_error("peer: cannot resolve listen URL %s", url);
        return CE_INVAL;
    }
    res = addrinfo_v4_first(res);
    rc = CE_INVAL;
    for (ai = res; ai; ai = ai->ai_next)
        if (!(rc = bind_one(ai, ls)))
            break;
    freeaddrinfo(res);
    if (!rc) {
        ls->t = t;
        rc = evloop_io_start(t->loop, &ls->io, ls->fd, EV_READ, accept_cb, ls);
        if (rc)
            close(ls->fd);
    }
    if (rc) {
        log_error("peer: cannot listen on %s: %s", url, ce_strerror(rc));
        return rc;
    }
    t->nls++;
    log_info("peer: listening for peers on %s (port %d)", url, ls->port);
    return 0;
}

/* ---- the tick: writes, then deferred handler calls ---- */

static void write_all(peer_transport *t)
{
    for (size_t i = 0; i < t->npeers; i++) {
        conn *c = t->peers[i]->out;

        /* With EV_WRITE armed the socket is full: its callback continues. */
        if (c && c->state == CS_READY && bytebuf_size(&c->out) > 0 && !(c->io.events & EV_WRITE) &&
            conn_write(c))
            conn_fail(c, strerror(errno)); /* changes p->out only, not t->peers */
    }
}

/* Two phases: the set to report is taken first, so a handler that drops more messages
 * (flagging peers again) is reported at the next tick, never starving the others or looping
 * here, and a handler that changes the peer table cannot make us skip or repeat a peer. */
static void report_unreachable(peer_transport *t)
{
    for (size_t i = 0; i < t->npeers; i++) {
        t->peers[i]->report_now = t->peers[i]->unreachable;
        t->peers[i]->unreachable = false;
    }
    for (;;) {
        peer *p = NULL;

        for (size_t i = 0; i < t->npeers && !p; i++)
            if (t->peers[i]->report_now)
                p = t->peers[i];
        if (!p)
            return;
        p->report_now = false;
        if (t->h.on_unreachable)
            t->h.on_unreachable(t->h.ctx, p->id);
    }
}

static void run_deferred(peer_transport *t)
{
    size_t n = t->nresults;

    if (t->removed_pending) {
        t->removed_pending = false;
        if (!t->removed_reported) {
            t->removed_reported = true;
            if (t->h.on_removed)
                t->h.on_removed(t->h.ctx);
        }
    }
    /* Only the results present now: a handler's new snapshot may fail into the list. */
    for (size_t i = 0; i < n && t->nresults; i++) {
        snap_result r = t->results[0];

        memmove(t->results, t->results + 1, (t->nresults - 1) * sizeof(r));
        t->nresults--;
        if (t->h.on_snapshot_sent)
            t->h.on_snapshot_sent(t->h.ctx, r.to, r.ok);
    }
    report_unreachable(t);
}

static void tick_cb(evloop *l, ev_timer *tm)
{
    peer_transport *t = tm->data;

    (void)l;
    write_all(t);
    run_deferred(t);
}

void transport_schedule(peer_transport *t)
{
    if (!t->tick.active)
        evloop_timer_start(t->loop, &t->tick, 0, 0, tick_cb, t);
}

static bool has_deferred(const peer_transport *t)
{
    if (t->removed_pending || t->nresults)
        return true;
    for (size_t i = 0; i < t->npeers; i++)
        if (t->peers[i]->unreachable)
            return true;
    return false;
}

void peer_flush(peer_transport *t)
{
    write_all(t);
    if (!has_deferred(t))
        evloop_timer_stop(t->loop, &t->tick);
}

/* ---- public API ---- */

int peer_new(evloop *loop, const peer_config *cfg, peer_transport **out)
{
    peer_transport *t;
    int rc;

    if (!loop || !cfg || !cfg->member_id || cfg->nlisten < 0 || cfg->nlisten > PEER_MAX_LISTEN ||
        (cfg->nlisten && !cfg->listen_urls))
        return CE_INVAL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return CE_NOMEM;
    t->loop = loop;
    t->member_id = cfg->member_id;
    t->cluster_id = cfg->cluster_id;
    t->h = cfg->h;
    t->res.efd = -1;
    if (cfg->snap_dir && !(t->snap_dir = strdup(cfg->snap_dir))) {
        peer_free(t);
        return CE_NOMEM;
    }
    rc = resolver_init(&t->res, loop);
    if (!rc && cfg->tls_server)
        rc = tls_ctx_new_server(cfg->tls_server, "peer", &t->tls_srv);
    if (!rc && cfg->tls_client)
        rc = tls_ctx_new_client(cfg->tls_client, "peer", &t->tls_cli);
    for (int i = 0; !rc && i < cfg->nlisten; i++)
        rc = listen_url(t, cfg->listen_urls[i]);
    if (rc) {
        peer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static void peer_destroy(peer *p)
{
    peer_transport *t = p->t;

    if (p->out)
        conn_close(p->out);
    evloop_timer_stop(t->loop, &p->retry);
    free_urls(p->urls, p->nurls);
    free(p);
}

void peer_free(peer_transport *t)
{
    if (!t)
        return;
    evloop_timer_stop(t->loop, &t->tick);
    while (t->conns)
        conn_close(t->conns); /* snapshot sends end without a callback */
    for (size_t i = 0; i < t->npeers; i++)
        peer_destroy(t->peers[i]);
    for (int i = 0; i < t->nls; i++) {
        evloop_io_stop(t->loop, &t->ls[i].io);
        close(t->ls[i].fd);
    }
    resolver_fini(&t->res);
    tls_ctx_free(t->tls_srv);
    tls_ctx_free(t->tls_cli);
    free(t->peers);
    free(t->removed);
    free(t->results);
    free(t->snap_dir);
    free(t);
}

int peer_listen_port(const peer_transport *t, int i)
{
    return i >= 0 && i < t->nls ? t->ls[i].port : -1;
}

static int copy_urls(const char *const *urls, int nurls, char ***out)
{
    char **v = calloc((size_t)nurls, sizeof(*v));

    if (!v)
        return CE_NOMEM;
    for (int i = 0; i < nurls; i++) {
        if (!(v[i] = strdup(urls[i]))) {
            while (i--)
                free(v[i]);
            free(v);
            return CE_NOMEM;
        }
    }
    *out = v;
    return 0;
}

static bool url_listed(const peer *p, const char *url)
{
    for (int i = 0; i < p->nurls; i++)
        if (!strcmp(p->urls[i], url))
            return true;
    return false;
}

static void unremove(peer_transport *t, uint64_t id)
{
    for (size_t i = 0; i < t->nremoved; i++) {
        if (t->removed[i] == id) {
            t->removed[i] = t->removed[--t->nremoved];
            return;
        }
    }
}

static bool same_urls(const peer *p, char **urls, int nurls)
{
    if (nurls != p->nurls)
        return false;
    for (int i = 0; i < nurls; i++)
        if (!url_listed(p, urls[i]))
            return false;
    return true;
}

static void free_urls(char **urls, int nurls)
{
    for (int i = 0; i < nurls; i++)
        free(urls[i]);
    free(urls);
}

/* New URLs for a known peer; its connection is redialed at once if its URL is gone. The same
 * URLs again change nothing (the backoff goes on). */
static void peer_update(peer *p, char **urls, int nurls)
{
    if (same_urls(p, urls, nurls)) {
        free_urls(urls, nurls);
        return;
    }
    for (int i = 0; i < p->nurls; i++)
        free(p->urls[i]);
    free(p->urls);
    p->urls = urls;
    p->nurls = nurls;
    p->url_next = 0;
    if (p->out && url_listed(p, p->out->url))
        return;
    if (p->out) {
        if (p->queued || p->active_since) {
            p->unreachable = true;
            transport_schedule(p->t);
        }
        conn_close(p->out);
        p->queued = 0;
    }
    p->backoff_ms = PEER_BACKOFF_MIN;
    evloop_timer_stop(p->t->loop, &p->retry);
    peer_dial(p);
}

static int peer_insert(peer_transport *t, uint64_t id, char **urls, int nurls)
{
    peer *p;

    if (t->npeers == t->peers_cap) {
        size_t cap = t->peers_cap ? t->peers_cap * 2 : 8;
        peer **v = realloc(t->peers, cap * sizeof(*v));
        if (!v)
            return CE_NOMEM;
        t->peers = v;
        t->peers_cap = cap;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        return CE_NOMEM;
    p->t = t;
    p->id = id;
    p->urls = urls;
    p->nurls = nurls;
    p->backoff_ms = PEER_BACKOFF_MIN;
    t->peers[t->npeers++] = p;
    peer_dial(p);
    return 0;
}

int peer_add(peer_transport *t, uint64_t id, const char *const *urls, int nurls)
{
    char host[256], port[16], **copy;
    peer *p;
    int rc;

    if (!id || !urls || nurls <= 0)
        return CE_INVAL;
    for (int i = 0; i < nurls; i++) {
        rc = url_parse(urls[i], host, sizeof(host), port, sizeof(port));
        if (rc)
            return rc;
        if (url_is_tls(urls[i]) && !t->tls_cli) {
            log_error("peer: %s: https:// peer URL but no peer TLS configured", urls[i]);
            return CE_UNSUPPORTED;
        }
    }
    if (id == t->member_id)
        return 0;
    rc = copy_urls(urls, nurls, &copy);
    if (rc)
        return rc;
    unremove(t, id);
    p = peer_find(t, id);
    if (p) {
        peer_update(p, copy, nurls);
        return 0;
    }
    rc = peer_insert(t, id, copy, nurls);
    if (rc)
        free_urls(copy, nurls);
    return rc;
}

static int remember_removed(peer_transport *t, uint64_t id)
{
    if (peer_is_removed(t, id))
        return 0;
    if (t->nremoved == t->removed_cap) {
        size_t cap = t->removed_cap ? t->removed_cap * 2 : 8;
        uint64_t *v = realloc(t->removed, cap * sizeof(*v));
        if (!v)
            return CE_NOMEM;
        t->removed = v;
        t->removed_cap = cap;
    }
    t->removed[t->nremoved++] = id;
    return 0;
}

void peer_remove(peer_transport *t, uint64_t id)
{
    conn *c, *next;

    if (!id || id == t->member_id)
        return;
    for (size_t i = 0; i < t->npeers; i++) {
        if (t->peers[i]->id == id) {
            peer *p = t->peers[i];
            memmove(t->peers + i, t->peers + i + 1, (t->npeers - i - 1) * sizeof(*t->peers));
            t->npeers--;
            peer_destroy(p);
            break;
        }
    }
    for (c = t->conns; c; c = next) {
        next = c->next;
        if (c->remote_id != id)
            continue;
        if (c->kind == CK_SNAP_OUT && c->so)
            snap_out_end(c, false);
        if (c->kind != CK_PEER_OUT && !(c->kind == CK_IN && c->state == CS_CLOSING))
            conn_close(c);
    }
    if (remember_removed(t, id))
        log_error("peer: out of memory remembering removed member %016" PRIx64, id);
    log_info("peer: removed member %016" PRIx64, id);
}

void peer_set_cluster_id(peer_transport *t, uint64_t cluster_id)
{
    t->cluster_id = cluster_id;
}

static void note_unknown_drop(peer_transport *t, uint64_t to)
{
    uint64_t now = evloop_now_ms();

    t->dropped_unknown++;
    if (!t->drop_log_ms || now - t->drop_log_ms >= PEER_LOG_EVERY) {
        log_warn("peer: dropping messages to unknown or removed member %016" PRIx64
                 " (%" PRIu64 " dropped so far)", to, t->dropped_unknown);
        t->drop_log_ms = now ? now : 1;
    }
}

int peer_send(peer_transport *t, const raft_msg *m)
{
    peer *p = peer_find(t, m->to);
    uint8_t *buf;
    size_t len;
    conn *c;
    int rc;

    if (!p) {
        note_unknown_drop(t, m->to);
        return CE_NOTFOUND;
    }
    c = p->out;
    if (!c || p->queued >= PEER_QUEUE_MSGS || bytebuf_size(&c->out) >= PEER_QUEUE_BYTES)
        goto out_drop;
    rc = raft_msg_encode(m, &buf, &len);
    if (rc)
        return rc;
    rc = len > PEER_MAX_FRAME ? CE_INVAL : frame_put(&c->out, FR_MSG, buf, len, NULL, 0);
    free(buf);
    if (rc == CE_INVAL)
        return rc;
    if (rc)
        goto out_drop;
    p->queued++;
    if (c->state == CS_READY)
        transport_schedule(t);
    return 0;

out_drop:
    p->unreachable = true;
    transport_schedule(t);
    return CE_AGAIN;
}

int peer_send_snapshot(peer_transport *t, const raft_msg *m, const uint8_t *extra,
                       size_t extra_len, int data_fd, uint64_t len)
{
    peer *p = peer_find(t, m->to);
    int rc;

    if (!p) {
        close(data_fd);
        note_unknown_drop(t, m->to);
        return CE_NOTFOUND;
    }
    if (m->type != RAFT_MSG_SNAP || (extra_len && !extra) || extra_len > PEER_MAX_FRAME / 2) {
        close(data_fd);
        return CE_INVAL;
    }
    rc = snap_out_start(t, p, m, extra, extra_len, data_fd, len);
    return rc;
}

size_t peer_get_stats(const peer_transport *t, peer_stats *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < t->npeers && n < max; i++, n++) {
        out[n].id = t->peers[i]->id;
        out[n].sent_bytes = t->peers[i]->sent_bytes;
        out[n].recv_bytes = t->peers[i]->recv_bytes;
        out[n].active = t->peers[i]->active_since != 0;
    }
    return n;
}

bool peer_is_active(const peer_transport *t, uint64_t id)
{
    return peer_active_since_ms(t, id) != 0;
}

uint64_t peer_active_since_ms(const peer_transport *t, uint64_t id)
{
    const peer *p = peer_find(t, id);

    return p ? p->active_since : 0;
}
