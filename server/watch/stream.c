/*
 * stream.c: one Watch call's watchers and the requests that manage them.
 *
 * A stream maps watch IDs to watchers (open addressing, linear probing, backward-shift
 * deletion; load at most 1/2). IDs are the client's or, for 0, etcd's AutoWatchID rule: the
 * stream's counter, skipping IDs in use, then advanced past the one taken. A dead (compacted)
 * watcher keeps its ID until the client cancels it, as in etcd.
 *
 * Control responses (created, canceled, progress) are ordinary protobuf-c messages packed
 * here; the create response always precedes any event of the new watcher, since the watcher
 * joins the hub only after it was sent.
 *
 * Invariant: every watcher of a stream is in its ID map exactly once; a stream whose send
 * failed (broken) is sent nothing more.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "watch_int.h"

#define SLOTS_INITIAL 16
#define SMALL_MSG 512

/* ---- the ID map ---- */

static size_t slot_of(int64_t id, size_t nslots)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;

    return (size_t)(x ^ (x >> 29)) & (nslots - 1);
}

static watcher *id_find(const watch_stream *s, int64_t id)
{
    if (!s->nslots)
        return NULL;
    for (size_t i = slot_of(id, s->nslots);; i = (i + 1) & (s->nslots - 1)) {
        watcher *w = s->slots[i];
        if (!w || w->id == id)
            return w;
    }
}

static void id_place(watcher **slots, size_t nslots, watcher *w)
{
    size_t i = slot_of(w->id, nslots);

    while (slots[i])
        i = (i + 1) & (nslots - 1);
    slots[i] = w;
}

static int id_insert(watch_stream *s, watcher *w)
{
    if (2 * (s->nids + 1) > s->nslots) {
        size_t n = s->nslots ? s->nslots * 2 : SLOTS_INITIAL;
        watcher **slots = calloc(n, sizeof(*slots));
        if (!slots)
            return CE_NOMEM;
        for (size_t i = 0; i < s->nslots; i++)
            if (s->slots[i])
                id_place(slots, n, s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->nslots = n;
    }
    id_place(s->slots, s->nslots, w);
    s->nids++;
    return 0;
}

/* Whether slot j's entry, whose home is home, may move back to the hole at i. */
static bool may_fill(size_t i, size_t j, size_t home)
{
    return i <= j ? (home <= i || home > j) : (home <= i && home > j);
}

static void id_remove(watch_stream *s, const watcher *w)
{
    size_t mask = s->nslots - 1, i = slot_of(w->id, s->nslots), j;

    while (s->slots[i] != w)
        i = (i + 1) & mask;
    s->slots[i] = NULL;
    for (j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
        if (may_fill(i, j, slot_of(s->slots[j]->id, s->nslots))) {
            s->slots[i] = s->slots[j];
            s->slots[j] = NULL;
            i = j;
        }
    }
    s->nids--;
}

/* ---- sending ---- */

int stream_send_parts(watch_stream *s, const ProtobufCBinaryData *parts, size_t n)
{
    int rc;

    if (s->broken)
        return CE_STOPPED;
    rc = s->ops.send(s->ctx, parts, n);
    if (rc)
        s->broken = true;
    return rc;
}

int stream_send_msg(watch_stream *s, const Etcdserverpb__WatchResponse *r)
{
    uint8_t small[SMALL_MSG];
    size_t len = etcdserverpb__watch_response__get_packed_size(r);
    uint8_t *buf = len <= sizeof(small) ? small : malloc(len);
    ProtobufCBinaryData part = {len, buf};
    int rc;

    if (!buf)
        return CE_NOMEM;
    etcdserverpb__watch_response__pack(r, buf);
    rc = stream_send_parts(s, &part, 1);
    if (buf != small)
        free(buf);
    return rc;
}

bool stream_slow(const watch_stream *s)
{
    return s->ops.pending(s->ctx) > s->hub->cfg.slow_bytes;
}

static int64_t current_rev(const watch_stream *s)
{
    return s->hub->store ? mvcc_rev(s->hub->store) : 0;
}

/* A control response with the current revision in its header. */
static int send_control(watch_stream *s, Etcdserverpb__WatchResponse *r)
{
    Etcdserverpb__ResponseHeader hd = ETCDSERVERPB__RESPONSE_HEADER__INIT;

    hub_header(s->hub, current_rev(s), &hd);
    r->header = &hd;
    return stream_send_msg(s, r);
}

/* ---- requests ---- */

/* etcd's answer to a create it refuses: created and canceled at once. */
int watch_stream_refuse(watch_stream *s, int64_t watch_id, const char *reason)
{
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;

    r.watch_id = watch_id;
    r.created = true;
    r.canceled = true;
    r.cancel_reason = (char *)reason;
    return send_control(s, &r);
}

static int cmp_bytes(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;

    return c ? c : (a->len < b->len ? -1 : a->len > b->len);
}

static unsigned variant_of(const Etcdserverpb__WatchCreateRequest *cr)
{
    unsigned v = cr->prev_kv ? WV_PREV : 0;

    for (size_t i = 0; i < cr->n_filters; i++) {
        if (cr->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT)
            v |= WV_NOPUT;
        else if (cr->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE)
            v |= WV_NODELETE;
    }
    return v;
}

/* A new watcher with its ID and class, in the stream's map; not in the hub yet. */
static int watcher_new(watch_stream *s, const Etcdserverpb__WatchCreateRequest *cr,
                       enum gkind kind, int64_t id, watcher **out)
{
    watcher *w = calloc(1, sizeof(*w));
    int rc;

    if (!w)
        return CE_NOMEM;
    w->st = s;
    w->id = id;
    w->fragment = cr->fragment;
    w->progress = cr->progress_notify;
    w->state = W_DEAD;
    rc = match_class_get(s->hub, &cr->key, &cr->range_end, kind, variant_of(cr), &w->cls);
    if (rc)
        goto out_free;
    rc = id_insert(s, w);
    if (rc)
        goto out_put_class;
    *out = w;
    return 0;
out_put_class:
    match_class_put(s->hub, w->cls);
out_free:
    free(w);
    return rc;
}

static int64_t auto_id(watch_stream *s)
{
    while (id_find(s, s->next_id))
        s->next_id++;
    return s->next_id++;
}

static int create(watch_stream *s, const Etcdserverpb__WatchCreateRequest *cr)
{
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    const ProtobufCBinaryData *end = &cr->range_end;
    enum gkind kind = end->len == 0 ? G_KEY : (end->len == 1 && end->data[0] == 0) ? G_FROM
                                                                                  : G_RANGE;
    int64_t id = cr->watch_id, rev = current_rev(s);
    watcher *w;
    int rc;

    if (kind == G_RANGE && cmp_bytes(&cr->key, end) >= 0)
        return watch_stream_refuse(s, -1, WATCH_REASON_EMPTY_RANGE);
    if (id == 0)
        id = auto_id(s);
    else if (id_find(s, id))
        return watch_stream_refuse(s, -1, WATCH_REASON_DUP_ID);
    rc = watcher_new(s, cr, kind, id, &w);
    if (rc)
        return rc;
    r.watch_id = id;
    r.created = true;
    rc = send_control(s, &r);
    hub_watcher_add(s->hub, w, cr->start_revision ? cr->start_revision : rev + 1);
    return rc;
}

static void watcher_end(watch_stream *s, watcher *w)
{
    id_remove(s, w);
    hub_watcher_remove(s->hub, w);
    free(w);
}

static int cancel(watch_stream *s, int64_t id)
{
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    watcher *w = id_find(s, id);

    if (!w)
        return 0;
    watcher_end(s, w);
    r.watch_id = id;
    r.canceled = true;
    return send_control(s, &r);
}

static int progress(watch_stream *s)
{
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;

    r.watch_id = -1;
    return send_control(s, &r);
}

int watch_stream_request(watch_stream *s, const Etcdserverpb__WatchRequest *req)
{
    if (s->broken)
        return CE_STOPPED;
    switch (req->request_union_case) {
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
        return create(s, req->create_request);
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
        return cancel(s, req->cancel_request->watch_id);
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
        return progress(s);
    default:
        return 0;
    }
}

/* ---- streams ---- */

int watch_stream_new(watch_hub *h, const watch_stream_ops *ops, void *ctx, watch_stream **out)
{
    watch_stream *s = calloc(1, sizeof(*s));

    if (!s)
        return CE_NOMEM;
    s->hub = h;
    s->ops = *ops;
    s->ctx = ctx;
    s->next = h->streams;
    if (h->streams)
        h->streams->prev = s;
    h->streams = s;
    h->nstreams++;
    *out = s;
    return 0;
}

void watch_stream_free(watch_stream *s)
{
    watch_hub *h;

    if (!s)
        return;
    h = s->hub;
    for (size_t i = 0; i < s->nslots; i++) {
        if (s->slots[i]) {
            hub_watcher_remove(h, s->slots[i]);
            free(s->slots[i]);
        }
    }
    free(s->slots);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    h->nstreams--;
    free(s);
}
