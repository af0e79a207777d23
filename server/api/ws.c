/*
 * ws.c: the WebSocket bridge (see ws.h): one libwebsockets context serviced by a thread of its
 * own, and the locked queues through which it trades whole messages with the main loop.
 *
 * Design: lws gets a server vhost that listens nowhere (CONTEXT_PORT_NO_LISTEN_SERVER). The
 * transport reads and validates an upgrade request itself, then ws_sock_open() queues the
 * socket; the bridge thread, woken by lws_cancel_service(), adopts it in its
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED handler with lws_adopt_socket_vhost_readbuf(), which
 * replays the request head so lws answers the handshake (101, Sec-WebSocket-Accept, and
 * "Sec-WebSocket-Protocol: Bearer" when the head asks for that protocol: the vhost has a
 * default protocol plus one named "Bearer", as etcd's grpc-websocket-proxy answers).
 * No extension (permessage-deflate) is offered, as etcd offers none.
 *
 * Queues (all under b->mu):
 *   per socket: out (main -> lws, text messages), in (lws -> main, complete messages);
 *   per bridge: to_lws (sockets with work for the thread: adopt, write, close, re-check flow
 *   control) and to_main (sockets with messages or a close for the main loop), both FIFO.
 *   Waking is edge-triggered and coalesced: lws_woken / main_woken say a wake-up is already on
 *   its way (lws_cancel_service, or 8 bytes on the eventfd), so a burst of sends costs one.
 * Invariants:
 *   - refs counts the main side's reference (until ws_sock_close), the lws side's (until
 *     lws_side_release: the wsi was destroyed, or the socket was never adopted), and one per
 *     bridge list the socket is on; whoever drops the last one frees it, under b->mu.
 *   - Nothing calls into lws while holding b->mu (lws may call back synchronously).
 *   - A message is counted in out_bytes from ws_sock_send until lws_write took it (or it was
 *     dropped); lws's own buffer behind a partial write holds at most the message being sent,
 *     because the writer stops as soon as lws_send_pipe_choked() says so.
 *   - The main side gets on_closed exactly once, and never after ws_sock_close.
 * Closing: from the main side, "flush" drains the queue, then returns -1 from the writable
 * callback, which lws turns into a plain TCP close without a close frame (what a client of
 * etcd's gateway sees when a call ends); a flush that cannot finish (the client reads nothing)
 * is cut after FLUSH_TIMEOUT_S. "Now" kills the connection at once. A close frame from the
 * client is answered by lws with the same status code.
 */
#include "server/api/ws.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "bytebuf.h"
#include "err.h"
#include "log.h"

#define MAIN_BUDGET 256          /* messages handed to the main loop per wake-up */
#define WRITE_BURST 64           /* messages written per writable callback */
#define FLUSH_TIMEOUT_S 10       /* a closing socket may take this long to drain */
#define RX_CHUNK 4096            /* lws's receive buffer per connection */
#define TX_CHUNK (1u << 20)      /* the largest single send() lws makes */

struct ws_msg {
    ws_msg *next;
    size_t len;
    uint8_t buf[];               /* LWS_PRE bytes of headroom, then len bytes of payload */
};

enum close_mode { OPEN, CLOSE_FLUSH, CLOSE_NOW };

struct ws_sock {
    ws_bridge *b;
    void *user;
    /* under b->mu */
    int refs;
    ws_msg *out, *out_tail;
    ws_msg *in, *in_tail;
    size_t in_bytes;
    enum close_mode closing;     /* what the main side asked for */
    bool main_done, lws_done, closed_reported;
    bool rx_wait_main;           /* reading stopped until the main loop takes `in` */
    bool on_lws, on_main;
    ws_sock *next_lws, *next_main;
    _Atomic size_t out_bytes;    /* main adds, lws subtracts */
    /* bridge thread only */
    int fd;                      /* until adopted */
    uint8_t *head;
    size_t head_len;
    bool adopted, established, rx_paused, flush_armed;
    struct lws *wsi;
    bytebuf frag;                /* a message arriving in several pieces */
};

struct ws_bridge {
    evloop *loop;
    ws_bridge_ops ops;
    size_t max_msg;
    pthread_mutex_t mu;
    /* under mu */
    ws_sock *to_lws, *to_lws_tail;
    ws_sock *to_main, *to_main_tail;
    bool lws_woken, main_woken;
    int nsocks;
    atomic_bool stopping;
    /* main thread */
    int efd;
    ev_io efd_io;
    /* the bridge thread (and creation / destruction around it) */
    struct lws_context *ctx;
    struct lws_vhost *vh;
    pthread_t thread;
    bool thread_started;
    ws_sock *adopting;           /* the socket lws is adopting right now */
};

static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

/* No idle pings or hang-ups: etcd's gateway has neither, and a watch may be quiet for days.
 * (lws otherwise pings after 300 s of silence and hangs up 10 s later.) */
static const lws_retry_bo_t no_idle_checks;   /* all zero: secs_since_valid_hangup 0 */

static const struct lws_protocols protocols[] = {
    {"cetcd-gateway", lws_cb, 0, RX_CHUNK, 0, NULL, TX_CHUNK},
    {"Bearer", lws_cb, 0, RX_CHUNK, 0, NULL, TX_CHUNK},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- messages ---- */

ws_msg *ws_msg_new(size_t len)
{
    ws_msg *m = malloc(sizeof(*m) + LWS_PRE + len);

    if (!m)
        return NULL;
    m->next = NULL;
    m->len = len;
    return m;
}

uint8_t *ws_msg_data(ws_msg *m) { return m->buf + LWS_PRE; }
void ws_msg_free(ws_msg *m) { free(m); }

/* Frees a list of messages; returns their payload bytes. */
static size_t msgs_free(ws_msg *m)
{
    size_t n = 0;

    while (m) {
        ws_msg *next = m->next;
        n += m->len;
        free(m);
        m = next;
    }
    return n;
}

/* ---- references and lists (callers hold b->mu) ---- */

static void unref(ws_sock *s)
{
    if (--s->refs > 0)
        return;
    s->b->nsocks--;
    msgs_free(s->out);
    msgs_free(s->in);
    free(s);
}

/* Puts s on to_lws; true if the thread must be woken (lws_cancel_service). */
static bool link_lws(ws_sock *s)
{
    ws_bridge *b = s->b;

    if (!s->on_lws) {
        s->on_lws = true;
        s->refs++;
        s->next_lws = NULL;
        if (b->to_lws_tail)
            b->to_lws_tail->next_lws = s;
        else
            b->to_lws = s;
        b->to_lws_tail = s;
    }
    if (b->lws_woken)
        return false;
    b->lws_woken = true;
    return true;
}

static ws_sock *pop_lws(ws_bridge *b)
{
    ws_sock *s = b->to_lws;

    if (!s)
        return NULL;
    b->to_lws = s->next_lws;
    if (!b->to_lws)
        b->to_lws_tail = NULL;
    s->on_lws = false;
    return s;
}

/* Puts s on to_main; true if the eventfd must be written. */
static bool link_main(ws_sock *s)
{
    ws_bridge *b = s->b;

    if (!s->on_main) {
        s->on_main = true;
        s->refs++;
        s->next_main = NULL;
        if (b->to_main_tail)
            b->to_main_tail->next_main = s;
        else
            b->to_main = s;
        b->to_main_tail = s;
    }
    if (b->main_woken)
        return false;
    b->main_woken = true;
    return true;
}

static ws_sock *pop_main(ws_bridge *b)
{
    ws_sock *s = b->to_main;

    if (!s)
        return NULL;
    b->to_main = s->next_main;
    if (!b->to_main)
        b->to_main_tail = NULL;
    s->on_main = false;
    return s;
}

static void wake_main(ws_bridge *b)
{
    uint64_t one = 1;

    while (write(b->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

/* ---- the bridge thread ---- */

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);

    (void)level;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_debug("ws: lws: %.*s", (int)n, line);
}

/* The lws side is done with s: its connection is gone or was never made. */
static void lws_side_release(ws_sock *s)
{
    ws_bridge *b = s->b;
    bool wake = false;

    bytebuf_free(&s->frag);
    free(s->head);
    s->head = NULL;
    s->wsi = NULL;
    pthread_mutex_lock(&b->mu);
    s->lws_done = true;
    atomic_fetch_sub(&s->out_bytes, msgs_free(s->out));
    s->out = s->out_tail = NULL;
    if (!s->main_done)
        wake = link_main(s);
    unref(s);
    pthread_mutex_unlock(&b->mu);
    if (wake)
        wake_main(b);
}

/* Reading stops while the main loop has WS_IN_HIGH to take or the client WS_OUT_HIGH to read. */
static void flow_update(ws_sock *s)
{
    ws_bridge *b = s->b;
    bool want;

    if (!s->wsi || !s->established)
        return;
    pthread_mutex_lock(&b->mu);
    want = s->in_bytes < WS_IN_HIGH && atomic_load(&s->out_bytes) < WS_OUT_HIGH;
    if (s->in_bytes >= WS_IN_HIGH)
        s->rx_wait_main = true;
    pthread_mutex_unlock(&b->mu);
    if (want == s->rx_paused) {
        s->rx_paused = !want;
        lws_rx_flow_control(s->wsi, want);
    }
}

static void adopt(ws_bridge *b, ws_sock *s)
{
    struct lws *wsi;

    s->adopted = true;
    b->adopting = s;
    wsi = lws_adopt_socket_vhost_readbuf(b->vh, s->fd, (const char *)s->head, s->head_len);
    b->adopting = NULL;
    s->fd = -1;   /* lws owns it now, or closed it */
    free(s->head);
    s->head = NULL;
    if (!wsi) {
        if (!s->lws_done)
            lws_side_release(s);
        return;
    }
    if (!s->lws_done && !s->wsi) {
        lws_set_opaque_user_data(wsi, s);
        s->wsi = wsi;
    }
}

/* Arms the flush deadline once, when a flushing close meets an established connection. */
static void arm_flush(ws_sock *s, enum close_mode mode)
{
    if (mode != CLOSE_FLUSH || s->flush_armed || !s->established)
        return;
    s->flush_armed = true;
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, FLUSH_TIMEOUT_S);
}

/* Whatever the main side asked of s. */
static void lws_process(ws_bridge *b, ws_sock *s)
{
    enum close_mode mode;
    bool has_out, done;

    pthread_mutex_lock(&b->mu);
    mode = s->closing;
    has_out = s->out != NULL;
    done = s->lws_done;
    pthread_mutex_unlock(&b->mu);
    if (done)
        return;
    if (!s->adopted) {
        if (mode != CLOSE_NOW) {
            adopt(b, s);
            return;
        }
        close(s->fd);
        s->fd = -1;
        lws_side_release(s);
        return;
    }
    if (!s->wsi)
        return;
    if (mode == CLOSE_NOW) {
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    arm_flush(s, mode);
    if (s->established && (has_out || mode == CLOSE_FLUSH))
        lws_callback_on_writable(s->wsi);
    flow_update(s);
}

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: the main side queued work. */
static void lws_drain(ws_bridge *b)
{
    ws_sock *s;

    pthread_mutex_lock(&b->mu);
    b->lws_woken = false;
    pthread_mutex_unlock(&b->mu);
    for (;;) {
        pthread_mutex_lock(&b->mu);
        s = pop_lws(b);
        pthread_mutex_unlock(&b->mu);
        if (!s)
            break;
        lws_process(b, s);
        pthread_mutex_lock(&b->mu);
        unref(s);
        pthread_mutex_unlock(&b->mu);
    }
}

static void push_in(ws_sock *s, ws_msg *m)
{
    ws_bridge *b = s->b;
    bool wake = false;

    pthread_mutex_lock(&b->mu);
    if (s->main_done) {
        pthread_mutex_unlock(&b->mu);
        free(m);
        return;
    }
    if (s->in_tail)
        s->in_tail->next = m;
    else
        s->in = m;
    s->in_tail = m;
    s->in_bytes += m->len;
    wake = link_main(s);
    pthread_mutex_unlock(&b->mu);
    if (wake)
        wake_main(b);
}

/* A piece of a message; the last piece completes it. -1 closes the connection. */
static int on_receive(ws_sock *s, const void *in, size_t len)
{
    size_t have = bytebuf_size(&s->frag);
    ws_msg *m;

    if (have + len > s->b->max_msg) {
        lws_close_reason(s->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    if (!lws_is_final_fragment(s->wsi))
        return bytebuf_append(&s->frag, in, len) ? -1 : 0;
    m = ws_msg_new(have + len);
    if (!m)
        return -1;
    if (have)
        memcpy(ws_msg_data(m), bytebuf_data(&s->frag), have);
    if (len)
        memcpy(ws_msg_data(m) + have, in, len);
    bytebuf_free(&s->frag);
    push_in(s, m);
    flow_update(s);
    return 0;
}

/* Writes queued messages while the socket takes them; -1 ends a flushing close. */
static int on_writable(ws_sock *s)
{
    ws_bridge *b = s->b;

    for (int i = 0; i < WRITE_BURST; i++) {
        enum close_mode mode;
        ws_msg *m;
        int n;

        if (i > 0 && lws_send_pipe_choked(s->wsi)) {
            lws_callback_on_writable(s->wsi);
            break;
        }
        pthread_mutex_lock(&b->mu);
        m = s->out;
        if (m) {
            s->out = m->next;
            if (!s->out)
                s->out_tail = NULL;
        }
        mode = s->closing;
        pthread_mutex_unlock(&b->mu);
        if (!m) {
            if (mode != OPEN)
                return -1;
            break;
        }
        n = lws_write(s->wsi, ws_msg_data(m), m->len, LWS_WRITE_TEXT);
        atomic_fetch_sub(&s->out_bytes, m->len);
        free(m);
        if (n < 0)
            return -1;
        if (i == WRITE_BURST - 1)
            lws_callback_on_writable(s->wsi);
    }
    flow_update(s);
    return 0;
}

static void on_established(ws_sock *s)
{
    ws_bridge *b = s->b;
    enum close_mode mode;
    bool has_out;

    s->established = true;
    pthread_mutex_lock(&b->mu);
    mode = s->closing;
    has_out = s->out != NULL;
    pthread_mutex_unlock(&b->mu);
    arm_flush(s, mode);
    if (has_out || mode != OPEN)
        lws_callback_on_writable(s->wsi);
}

/* The socket a callback is about. A wsi learns its socket in the first callback that lws
 * makes for it while adopting (lws runs the handshake synchronously inside the adoption). */
static ws_sock *sock_of(ws_bridge *b, struct lws *wsi)
{
    ws_sock *s = lws_get_opaque_user_data(wsi);

    if (!s && b->adopting) {
        s = b->adopting;
        lws_set_opaque_user_data(wsi, s);
        s->wsi = wsi;
    }
    return s;
}

static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    ws_bridge *b = ctx ? lws_context_user(ctx) : NULL;
    ws_sock *s;

    (void)user;
    if (!b || reason == LWS_CALLBACK_PROTOCOL_INIT || reason == LWS_CALLBACK_PROTOCOL_DESTROY)
        return 0;
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
        lws_drain(b);
        return 0;
    }
    s = sock_of(b, wsi);
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        if (s)
            on_established(s);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return s ? on_receive(s, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return s ? on_writable(s) : -1;
    case LWS_CALLBACK_WSI_DESTROY:
        lws_set_opaque_user_data(wsi, NULL);
        if (s && !s->lws_done)
            lws_side_release(s);
        return 0;
    case LWS_CALLBACK_HTTP:
        return -1;   /* only validated upgrade requests are handed over */
    default:
        return 0;
    }
}

static void *thread_main(void *arg)
{
    ws_bridge *b = arg;

    while (!atomic_load(&b->stopping)) {
        if (lws_service(b->ctx, 0) < 0) {
            log_error("ws: lws service failed; WebSockets stop");
            break;
        }
    }
    return NULL;
}

/* ---- the main loop side ---- */

/* Hands the messages and closes lws queued for the main loop to the transport. */
static void efd_cb(evloop *l, ev_io *w, int events)
{
    ws_bridge *b = w->data;
    uint64_t v;
    int budget = MAIN_BUDGET;
    bool again;

    (void)l;
    (void)events;
    while (read(b->efd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&b->mu);
    b->main_woken = false;
    pthread_mutex_unlock(&b->mu);
    while (budget > 0) {
        bool closed, wake = false;
        ws_msg *msgs;
        ws_sock *s;

        pthread_mutex_lock(&b->mu);
        s = pop_main(b);
        if (!s) {
            pthread_mutex_unlock(&b->mu);
            break;
        }
        msgs = s->in;
        s->in = s->in_tail = NULL;
        s->in_bytes = 0;
        closed = s->lws_done && !s->closed_reported && !s->main_done;
        s->closed_reported |= closed;
        if (s->rx_wait_main && !s->lws_done) {
            s->rx_wait_main = false;
            wake = link_lws(s);
        }
        pthread_mutex_unlock(&b->mu);
        if (wake)
            lws_cancel_service(b->ctx);
        for (ws_msg *m = msgs, *next; m; m = next, budget--) {
            next = m->next;
            if (!s->main_done)
                b->ops.on_message(s->user, ws_msg_data(m), m->len);
            free(m);
        }
        if (closed && !s->main_done)
            b->ops.on_closed(s->user);
        pthread_mutex_lock(&b->mu);
        unref(s);
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_lock(&b->mu);
    again = b->to_main && !b->main_woken;
    b->main_woken |= again;
    pthread_mutex_unlock(&b->mu);
    if (again)
        wake_main(b);
}

int ws_sock_open(ws_bridge *b, int fd, const void *head, size_t len, void *user, ws_sock **out)
{
    ws_sock *s = calloc(1, sizeof(*s));
    bool wake;

    if (!s || !(s->head = malloc(len ? len : 1))) {
        free(s);
        close(fd);
        return CE_NOMEM;
    }
    memcpy(s->head, head, len);
    s->head_len = len;
    s->b = b;
    s->user = user;
    s->fd = fd;
    s->refs = 2;   /* the main side's and the lws side's */
    pthread_mutex_lock(&b->mu);
    b->nsocks++;
    wake = link_lws(s);
    pthread_mutex_unlock(&b->mu);
    if (wake)
        lws_cancel_service(b->ctx);
    *out = s;
    return 0;
}

void ws_sock_send(ws_sock *s, ws_msg *m)
{
    ws_bridge *b = s->b;
    bool wake;

    m->next = NULL;
    pthread_mutex_lock(&b->mu);
    if (s->lws_done || s->main_done) {
        pthread_mutex_unlock(&b->mu);
        free(m);
        return;
    }
    if (s->out_tail)
        s->out_tail->next = m;
    else
        s->out = m;
    s->out_tail = m;
    atomic_fetch_add(&s->out_bytes, m->len);
    wake = link_lws(s);
    pthread_mutex_unlock(&b->mu);
    if (wake)
        lws_cancel_service(b->ctx);
}

size_t ws_sock_pending(const ws_sock *s)
{
    return atomic_load(&s->out_bytes);
}

void ws_sock_close(ws_sock *s, bool flush)
{
    ws_bridge *b = s->b;
    bool wake = false;

    pthread_mutex_lock(&b->mu);
    s->main_done = true;
    s->closing = flush ? CLOSE_FLUSH : CLOSE_NOW;
    msgs_free(s->in);
    s->in = s->in_tail = NULL;
    s->in_bytes = 0;
    if (!flush) {   /* the thread may be writing a message it took: count only these */
        atomic_fetch_sub(&s->out_bytes, msgs_free(s->out));
        s->out = s->out_tail = NULL;
    }
    if (!s->lws_done)
        wake = link_lws(s);
    unref(s);
    pthread_mutex_unlock(&b->mu);
    if (wake)
        lws_cancel_service(b->ctx);
}

static int start_lws(ws_bridge *b)
{
    struct lws_context_creation_info info;

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.gid = -1;
    info.uid = -1;
    info.user = b;
    info.count_threads = 1;
    info.timeout_secs = 20;
    b->ctx = lws_create_context(&info);
    if (!b->ctx)
        return CE_NOMEM;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.vhost_name = "cetcd";
    info.retry_and_idle_policy = &no_idle_checks;
    b->vh = lws_create_vhost(b->ctx, &info);
    return b->vh ? 0 : CE_NOMEM;
}

int ws_bridge_new(evloop *loop, const ws_bridge_ops *ops, size_t max_msg, ws_bridge **out)
{
    ws_bridge *b = calloc(1, sizeof(*b));
    int err = CE_NOMEM;

    if (!b)
        return CE_NOMEM;
    b->loop = loop;
    b->ops = *ops;
    b->max_msg = max_msg;
    b->efd = -1;
    pthread_mutex_init(&b->mu, NULL);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->efd < 0 || evloop_io_start(loop, &b->efd_io, b->efd, EV_READ, efd_cb, b))
        goto out_free;
    err = start_lws(b);
    if (err)
        goto out_free;
    if (pthread_create(&b->thread, NULL, thread_main, b)) {
        err = CE_NOMEM;
        goto out_free;
    }
    b->thread_started = true;
    *out = b;
    return 0;
out_free:
    log_error("ws: cannot start libwebsockets: %s", ce_strerror(err));
    ws_bridge_free(b);
    return err;
}

void ws_bridge_free(ws_bridge *b)
{
    ws_sock *s;

    if (!b)
        return;
    atomic_store(&b->stopping, true);
    if (b->thread_started) {
        lws_cancel_service(b->ctx);
        pthread_join(b->thread, NULL);
    }
    /* The thread is gone: what it never adopted is closed here, the rest by the context. */
    while ((s = pop_lws(b))) {
        if (!s->adopted && !s->lws_done) {
            close(s->fd);
            lws_side_release(s);
        }
        unref(s);
    }
    if (b->ctx)
        lws_context_destroy(b->ctx);
    while ((s = pop_main(b)))
        unref(s);
    if (b->nsocks)
        log_warn("ws: %d sockets left at shutdown", b->nsocks);
    evloop_io_stop(b->loop, &b->efd_io);
    if (b->efd >= 0)
        close(b->efd);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
