/*
 * services_watch.c: etcd's Watch service: one bidirectional stream (gRPC, or the gateway's
 * POST /v3/watch with a chunked answer) carrying many watchers, served by the watch hub
 * (server/watch/watch.h) that the node's store feeds.
 *
 * Each call becomes a watch_stream at its first message, after etcd's stream checks: a
 * learner refuses Watch ("rpc not supported for learner"), and a call whose metadata has
 * hasleader=true (etcdctl sets it) fails with "etcdserver: no leader" when the member knows
 * none. Such calls are also watched by etcd's leader monitor: every election timeout the
 * member looks for a leader, and after three misses in a row ends them with "no leader".
 * The client's half-close keeps the stream open (etcd does); on_close frees its watchers.
 * The hub answers through rpc_send_packed (events are packed once for many watchers) and
 * checks rpc_call_pending before sending, so slow readers fall back to catching up.
 *
 * Invariants: a call's data is its struct wcall from the first accepted message until
 * on_close; a wcall is on the monitor list iff it asked for a leader and is not finished.
 */
#include "services_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "watch/watch.h"

#define NO_LEADER_ROUNDS 3          /* etcd's maxNoLeaderCnt */
#define GRPC_OVERHEAD (512u * 1024u) /* etcd adds it to max-request-bytes for responses */

struct wcall;

struct watch_svc {
    watch_hub *hub;
    node *node;
    evloop *loop;
    ev_timer leader_timer;
    int no_leader;                  /* consecutive monitor rounds without a leader */
    struct wcall *monitored;
};

struct wcall {
    struct watch_svc *ws;
    rpc_call *call;
    watch_stream *stream;
    bool monitored;
    struct wcall *next, *prev;
};

/* ---- the hub's view of a call ---- */

static int call_send(void *ctx, const ProtobufCBinaryData *parts, size_t n)
{
    struct wcall *wc = ctx;

    return rpc_send_packed(wc->call, parts, n);
}

static size_t call_pending(void *ctx)
{
    struct wcall *wc = ctx;

    return rpc_call_pending(wc->call);
}

static const watch_stream_ops call_ops = {call_send, call_pending};

/* ---- the leader monitor ---- */

static void monitor_unlink(struct wcall *wc)
{
    if (!wc->monitored)
        return;
    if (wc->prev)
        wc->prev->next = wc->next;
    else
        wc->ws->monitored = wc->next;
    if (wc->next)
        wc->next->prev = wc->prev;
    wc->next = wc->prev = NULL;
    wc->monitored = false;
}

static void monitor_link(struct wcall *wc)
{
    struct watch_svc *ws = wc->ws;

    wc->prev = NULL;
    wc->next = ws->monitored;
    if (ws->monitored)
        ws->monitored->prev = wc;
    ws->monitored = wc;
    wc->monitored = true;
}

static void monitor_tick(evloop *l, ev_timer *t)
{
    struct watch_svc *ws = t->data;
    node_status st;

    (void)l;
    if (!ws->monitored) {           /* a call joins only while there is a leader */
        ws->no_leader = 0;
        return;
    }
    node_get_status(ws->node, &st);
    ws->no_leader = st.leader ? 0 : ws->no_leader + 1;
    if (ws->no_leader < NO_LEADER_ROUNDS)
        return;
    while (ws->monitored) {
        struct wcall *wc = ws->monitored;
        monitor_unlink(wc);
        rpc_finish(wc->call, CE_NO_LEADER);
    }
}

/* ---- the calls ---- */

static bool wants_leader(rpc_call *c)
{
    const char *v = rpc_call_metadata(c, "hasleader");

    return v && strcmp(v, "true") == 0;
}

/* etcd's stream checks, then a stream for the call. 0 or CE_*. */
static int call_open(rpc_call *c, struct wcall **out)
{
    services *s = svc_of(c);
    struct wcall *wc;
    node_status st;
    int rc;

    if (node_is_learner(s->node))
        return CE_LEARNER_NOT_SUPPORTED;
    if (wants_leader(c)) {
        node_get_status(s->node, &st);
        if (!st.leader)
            return CE_NO_LEADER;
    }
    wc = calloc(1, sizeof(*wc));
    if (!wc)
        return CE_NOMEM;
    wc->ws = s->watch;
    wc->call = c;
    rc = watch_stream_new(s->watch->hub, &call_ops, wc, &wc->stream);
    if (rc) {
        free(wc);
        return rc;
    }
    if (wants_leader(c))
        monitor_link(wc);
    rpc_call_set_data(c, wc);
    *out = wc;
    return 0;
}

/* etcd's cancel reason for a refused create: its gRPC error's text. */
static void refusal_reason(int rc, char *buf, size_t len)
{
    static const char *const names[] = {
        "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
        "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
        "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
        "Unauthenticated"};
    int code = ce_grpc_code(rc);

    snprintf(buf, len, "rpc error: code = %s desc = %s",
             code >= 0 && code <= 16 ? names[code] : "Unknown", ce_strerror(rc));
}

/* A create the caller may not read is refused (etcd's permission check: the watch is
 * answered created and canceled with the reason); the rest goes to the stream. */
static int request(rpc_call *c, struct wcall *wc, const Etcdserverpb__WatchRequest *req)
{
    const Etcdserverpb__WatchCreateRequest *cr = req->create_request;
    char reason[160];
    int rc = 0;

    if (req->request_union_case == ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST)
        rc = svc_check_range(c, &cr->key, &cr->range_end, false);
    if (rc) {
        refusal_reason(rc, reason, sizeof(reason));
        return watch_stream_refuse(wc->stream, cr->watch_id, reason);
    }
    return watch_stream_request(wc->stream, req);
}

void svc_watch(rpc_call *c, ProtobufCMessage *m)
{
    struct wcall *wc = rpc_call_data(c);
    int rc = wc ? 0 : call_open(c, &wc);

    if (!rc)
        rc = request(c, wc, (Etcdserverpb__WatchRequest *)m);
    svc_free_msg(m);
    if (rc && rc != CE_STOPPED)
        rpc_finish(c, rc);
}

void svc_watch_close(rpc_call *c)
{
    struct wcall *wc = rpc_call_data(c);

    if (!wc)
        return;
    rpc_call_set_data(c, NULL);
    monitor_unlink(wc);
    watch_stream_free(wc->stream);
    free(wc);
}

/* etcd keeps a Watch stream open after the client's half-close. */
void svc_watch_end(rpc_call *c)
{
    (void)c;
}

/* ---- the service ---- */

static void fill_header(void *arg, Etcdserverpb__ResponseHeader *h)
{
    node_fill_header(arg, h);
}

static void store_changed(void *arg, mvcc *store)
{
    watch_hub_set_store(arg, store);
}

int svc_watch_init(services *s, evloop *loop, const config *cfg)
{
    struct watch_svc *ws = calloc(1, sizeof(*ws));
    watch_hub_config hc = {0};
    int rc;

    if (!ws)
        return CE_NOMEM;
    hc.loop = loop;
    hc.max_response_bytes = (uint32_t)cfg->max_request_bytes + GRPC_OVERHEAD;
    hc.progress_interval_ms = cfg->watch_progress_notify_ms;
    hc.fill_header = fill_header;
    hc.header_arg = s->node;
    rc = watch_hub_new(&hc, &ws->hub);
    if (rc) {
        free(ws);
        return rc;
    }
    ws->node = s->node;
    ws->loop = loop;
    s->watch = ws;
    node_set_store_listener(s->node, store_changed, ws->hub);
    evloop_timer_start(loop, &ws->leader_timer, cfg->election_ms, cfg->election_ms,
                       monitor_tick, ws);
    return 0;
}

void svc_watch_stats(const services *s, watch_hub_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (s->watch && s->watch->hub)
        watch_hub_get_stats(s->watch->hub, st);
}

void svc_watch_fini(services *s)
{
    struct watch_svc *ws = s->watch;

    if (!ws)
        return;
    evloop_timer_stop(ws->loop, &ws->leader_timer);
    node_set_store_listener(ws->node, NULL, NULL);
    watch_hub_free(ws->hub);
    free(ws);
    s->watch = NULL;
}
