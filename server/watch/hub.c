/*
 * hub.c: the watch hub: its life, the store's event feed, and the dispatch of each committed
 * batch to the synced watchers.
 *
 * A batch arrives as one on_event call per event (revision order) and one on_batch_done.
 * on_event matches the event's key to the classes with synced watchers and, if any wants it,
 * encodes it once into the batch arena (once more for its prev_kv field if a class asks for
 * prev_kv), recording its index on each wanting class. on_batch_done then, per class, lays
 * the class's events out once (an evlist) and sends them to each synced watcher in one
 * response (cut between revisions above WATCH_GROUP_MAX; fragments where asked), whose header
 * carries the revision of its last event, as etcd's one-response-per-revision does. A watcher whose stream is slow (more than slow_bytes queued) is not sent to: it
 * becomes unsynced at the batch's first revision and catches up from history later
 * (catchup.c). A class whose events could not be gathered (out of memory) sends its synced
 * watchers the same way, so no event is ever dropped.
 *
 * Invariants: see watch_int.h. The feed is set on the store only while some watcher is
 * synced, so a server nobody watches pays nothing per write.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "watch_int.h"

#define ARENA_KEEP (4u << 20)      /* arena capacity kept between batches */

/* ---- headers ---- */

void hub_header(watch_hub *h, int64_t rev, Etcdserverpb__ResponseHeader *hd)
{
    if (h->cfg.fill_header)
        h->cfg.fill_header(h->cfg.header_arg, hd);
    hd->revision = rev;
}

/* ---- collecting a batch ---- */

struct collect {
    const Mvccpb__Event *ev;
    struct bev *b;
    size_t idx;
    bool keep;                    /* b has a slot in the batch (else: out of memory) */
    bool used;                    /* some class recorded it */
};

/* Appends len bytes of packed output to the arena; *off gets where. */
static uint8_t *arena_take(watch_hub *h, size_t len, uint32_t *off)
{
    uint8_t *p;

    if (h->arena.len + len > UINT32_MAX || bytebuf_reserve(&h->arena, len))
        return NULL;
    p = h->arena.p + h->arena.len;
    *off = (uint32_t)h->arena.len;
    h->arena.len += len;
    return p;
}

/* The Event without prev_kv. */
static int encode_base(watch_hub *h, struct collect *x)
{
    Mvccpb__Event e = *x->ev;
    size_t len;
    uint8_t *p;

    e.prev_kv = NULL;
    len = mvccpb__event__get_packed_size(&e);
    p = arena_take(h, len, &x->b->off);
    if (!p)
        return CE_NOMEM;
    x->b->len = (uint32_t)mvccpb__event__pack(&e, p);
    x->b->encoded = true;
    return 0;
}

/* The prev_kv field alone: tag 3 (length-delimited), length, KeyValue. */
static int encode_prev(watch_hub *h, struct collect *x)
{
    const Mvccpb__KeyValue *kv = x->ev->prev_kv;
    size_t len, n;
    uint8_t *p;

    x->b->pencoded = true;
    if (!kv)
        return 0;
    len = mvccpb__key_value__get_packed_size(kv);
    p = arena_take(h, 1 + wire_varint_len(len) + len, &x->b->poff);
    if (!p)
        return CE_NOMEM;
    p[0] = 0x1a;
    n = 1 + wire_varint(p + 1, len);
    n += mvccpb__key_value__pack(kv, p + n);
    x->b->plen = (uint32_t)n;
    return 0;
}

static void class_mark(watch_hub *h, wclass *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dnext = h->dirty;
    h->dirty = c;
}

static int class_push(wclass *c, size_t idx)
{
    if (c->nevs == c->capevs) {
        size_t cap = c->capevs ? c->capevs * 2 : 16;
        uint32_t *n = realloc(c->evs, cap * sizeof(*n));
        if (!n)
            return CE_NOMEM;
        c->evs = n;
        c->capevs = cap;
    }
    c->evs[c->nevs++] = (uint32_t)idx;
    return 0;
}

static bool class_wants(const wclass *c, const struct bev *b)
{
    if (!c->nsynced)
        return false;
    if (b->is_delete)
        return !(c->variant & WV_NODELETE);
    return !(c->variant & WV_NOPUT);
}

static void collect(watch_hub *h, wclass *c, void *arg)
{
    struct collect *x = arg;
    int rc = 0;

    if (!class_wants(c, x->b))
        return;
    class_mark(h, c);
    if (c->lost)
        return;
    if (!x->keep)
        rc = CE_NOMEM;
    if (!rc && !x->b->encoded)
        rc = encode_base(h, x);
    if (!rc && (c->variant & WV_PREV) && !x->b->pencoded)
        rc = encode_prev(h, x);
    if (!rc)
        rc = class_push(c, x->idx);
    if (rc) {
        log_warn("watch: out of memory collecting events; watchers will catch up");
        c->lost = true;
        return;
    }
    x->used = true;
}

static int bevs_reserve(watch_hub *h)
{
    struct bev *n;
    size_t cap;

    if (h->nbevs < h->capbevs)
        return 0;
    cap = h->capbevs ? h->capbevs * 2 : 64;
    n = realloc(h->bevs, cap * sizeof(*n));
    if (!n)
        return CE_NOMEM;
    h->bevs = n;
    h->capbevs = cap;
    return 0;
}

static void on_event(void *arg, const Mvccpb__Event *ev)
{
    watch_hub *h = arg;
    struct bev spare;
    struct collect x = {.ev = ev, .idx = h->nbevs, .used = false};

    if (!ev->kv)
        return;
    if (!h->batch_first)
        h->batch_first = ev->kv->mod_revision;
    x.keep = bevs_reserve(h) == 0;
    x.b = x.keep ? &h->bevs[h->nbevs] : &spare;
    memset(x.b, 0, sizeof(*x.b));
    x.b->rev = ev->kv->mod_revision;
    x.b->is_delete = ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE;
    match_key(h, &ev->kv->key, collect, &x);
    if (x.used)
        h->nbevs++;
}

/* ---- dispatching a batch ---- */

/* Every synced watcher of c leaves the feed at revision first, to catch up from history. */
static void class_unsync_all(watch_hub *h, wclass *c, int64_t first)
{
    while (c->synced)
        hub_make_unsynced(h, c->synced, first);
}

static int class_layout(watch_hub *h, wclass *c)
{
    bool prev = c->variant & WV_PREV;

    for (size_t i = 0; i < c->nevs; i++) {
        const struct bev *b = &h->bevs[c->evs[i]];
        const uint8_t *a = h->arena.p;
        int rc = evlist_add(&h->scratch, a + b->off, b->len, prev ? a + b->poff : NULL,
                            prev ? b->plen : 0);
        if (rc)
            return rc;
    }
    return 0;
}

static int64_t rev_at(const watch_hub *h, const wclass *c, size_t i)
{
    return h->bevs[c->evs[i]].rev;
}

static int piece_add(watch_hub *h, const wclass *c, size_t from, size_t to)
{
    struct piece *p;

    if (h->npieces == h->cappieces) {
        size_t cap = h->cappieces ? h->cappieces * 2 : 4;
        p = realloc(h->pieces, cap * sizeof(*p));
        if (!p)
            return CE_NOMEM;
        h->pieces = p;
        h->cappieces = cap;
    }
    p = &h->pieces[h->npieces++];
    p->from = from;
    p->to = to;
    p->hlen = wire_header(h, rev_at(h, c, to - 1), p->hdr);
    return 0;
}

/* Cuts the class's laid-out events into responses of at most WATCH_GROUP_MAX bytes, only
 * between revisions; each carries the header of its last revision, as etcd's do. */
static int class_pieces(watch_hub *h, const wclass *c)
{
    const struct evlist *l = &h->scratch;
    size_t from = 0, to, size;
    int rc = 0;

    h->npieces = 0;
    while (rc == 0 && from < l->n) {
        size = l->offs[from + 1] - l->offs[from];
        for (to = from + 1; to < l->n; to++) {
            size_t ev = l->offs[to + 1] - l->offs[to];
            if (size + ev > WATCH_GROUP_MAX && rev_at(h, c, to) != rev_at(h, c, to - 1))
                break;
            size += ev;
        }
        rc = piece_add(h, c, from, to);
        from = to;
    }
    return rc;
}

/* The pieces to one watcher; a stream that becomes slow on the way gets the rest from
 * history (pieces start on revision boundaries). */
static void watcher_send(watch_hub *h, const wclass *c, watcher *w)
{
    for (size_t i = 0; i < h->npieces; i++) {
        const struct piece *p = &h->pieces[i];
        if (i > 0 && stream_slow(w->st)) {
            hub_make_unsynced(h, w, rev_at(h, c, p->from));
            return;
        }
        if (wire_send_range(h, w, p->hdr, p->hlen, &h->scratch, p->from, p->to))
            return;
    }
}

static void class_send(watch_hub *h, wclass *c, int64_t first)
{
    watcher *w = c->synced, *next;

    evlist_reset(&h->scratch);
    if (c->lost || class_layout(h, c) || class_pieces(h, c)) {
        class_unsync_all(h, c, first);
        return;
    }
    for (; w; w = next) {
        next = w->next;
        if (w->st->broken)
            continue;
        if (stream_slow(w->st))
            hub_make_unsynced(h, w, first);
        else
            watcher_send(h, c, w);
    }
}

static void on_batch_done(void *arg)
{
    watch_hub *h = arg;
    int64_t first = h->batch_first;
    wclass *c;

    while ((c = h->dirty) != NULL) {
        h->dirty = c->dnext;
        c->dirty = false;
        if (c->nsynced)
            class_send(h, c, first);
        c->nevs = 0;
        c->lost = false;
    }
    evlist_reset(&h->scratch);
    h->nbevs = 0;
    h->arena.off = h->arena.len = 0;
    bytebuf_trim(&h->arena, ARENA_KEEP);
    h->batch_first = 0;
    h->rev = mvcc_rev(h->store);
    if (h->nunsynced)
        hub_schedule_sync(h, 0);
}

/* ---- watcher states ---- */

void hub_feed_update(watch_hub *h)
{
    bool want = h->nsynced > 0 && h->store;

    if (want == h->feeding)
        return;
    h->feeding = want;
    if (want) {
        h->rev = mvcc_rev(h->store);
        mvcc_set_event_feed(h->store, on_event, on_batch_done, h);
    } else if (h->store) {
        mvcc_set_event_feed(h->store, NULL, NULL, NULL);
    }
}

static void unsynced_link(watch_hub *h, watcher *w)
{
    w->next = NULL;
    w->prev = h->utail;
    if (h->utail)
        h->utail->next = w;
    else
        h->uhead = w;
    h->utail = w;
    h->nunsynced++;
}

static void unsynced_unlink(watch_hub *h, watcher *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        h->uhead = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        h->utail = w->prev;
    w->next = w->prev = NULL;
    h->nunsynced--;
}

static void synced_link(watch_hub *h, watcher *w)
{
    wclass *c = w->cls;

    w->prev = NULL;
    w->next = c->synced;
    if (c->synced)
        c->synced->prev = w;
    c->synced = w;
    c->nsynced++;
    h->nsynced++;
}

static void synced_unlink(watch_hub *h, watcher *w)
{
    wclass *c = w->cls;

    if (w->prev)
        w->prev->next = w->next;
    else
        c->synced = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    c->nsynced--;
    h->nsynced--;
}

void hub_make_unsynced(watch_hub *h, watcher *w, int64_t next_rev)
{
    log_debug("watch: watcher %lld leaves the feed, catches up from revision %lld",
              (long long)w->id, (long long)next_rev);
    synced_unlink(h, w);
    w->state = W_UNSYNCED;
    w->next_rev = next_rev;
    unsynced_link(h, w);
    hub_feed_update(h);
    hub_schedule_sync(h, 0);
}

void hub_make_synced(watch_hub *h, watcher *w)
{
    log_debug("watch: watcher %lld caught up, fed again", (long long)w->id);
    unsynced_unlink(h, w);
    w->state = W_SYNCED;
    w->next_rev = 0;
    synced_link(h, w);
    hub_feed_update(h);
}

static void progress_link(watch_hub *h, watcher *w)
{
    w->pprev = NULL;
    w->pnext = h->progress;
    if (h->progress)
        h->progress->pprev = w;
    h->progress = w;
}

static void progress_unlink(watch_hub *h, watcher *w)
{
    if (w->pprev)
        w->pprev->pnext = w->pnext;
    else
        h->progress = w->pnext;
    if (w->pnext)
        w->pnext->pprev = w->pprev;
    w->pnext = w->pprev = NULL;
}

void hub_watcher_add(watch_hub *h, watcher *w, int64_t start_rev)
{
    int64_t cur = h->store ? mvcc_rev(h->store) : 0;

    h->nwatchers++;
    w->quiet = true;
    if (w->progress)
        progress_link(h, w);
    if (start_rev == cur + 1) {
        w->state = W_SYNCED;
        synced_link(h, w);
        hub_feed_update(h);
        return;
    }
    w->state = W_UNSYNCED;
    w->next_rev = start_rev;
    unsynced_link(h, w);
    hub_schedule_sync(h, 0);
}

void hub_watcher_kill(watch_hub *h, watcher *w)
{
    unsynced_unlink(h, w);
    match_class_put(h, w->cls);
    w->cls = NULL;
    w->state = W_DEAD;
}

void hub_unsynced_rotate(watch_hub *h, watcher *w)
{
    unsynced_unlink(h, w);
    unsynced_link(h, w);
}

void hub_watcher_remove(watch_hub *h, watcher *w)
{
    if (w->state == W_SYNCED)
        synced_unlink(h, w);
    else if (w->state == W_UNSYNCED)
        unsynced_unlink(h, w);
    if (w->progress)
        progress_unlink(h, w);
    if (w->cls)
        match_class_put(h, w->cls);
    w->cls = NULL;
    w->state = W_DEAD;
    h->nwatchers--;
    hub_feed_update(h);
}

/* ---- timers ---- */

static void sync_cb(evloop *l, ev_timer *t)
{
    (void)l;
    catchup_pass(t->data);
}

static void progress_cb(evloop *l, ev_timer *t)
{
    (void)l;
    catchup_progress_round(t->data);
}

void hub_schedule_sync(watch_hub *h, uint64_t after_ms)
{
    ev_timer *t = &h->sync_timer;

    if (!h->cfg.loop)
        return;
    if (t->active && t->due_ms <= evloop_now_ms() + after_ms)
        return;
    evloop_timer_start(h->cfg.loop, t, after_ms, 0, sync_cb, h);
}

/* ---- the hub ---- */

int watch_hub_new(const watch_hub_config *cfg, watch_hub **out)
{
    watch_hub *h = calloc(1, sizeof(*h));

    if (!h)
        return CE_NOMEM;
    h->cfg = *cfg;
    if (!h->cfg.max_response_bytes)
        h->cfg.max_response_bytes = WATCH_DEFAULT_MAX_RESPONSE;
    if (!h->cfg.progress_interval_ms)
        h->cfg.progress_interval_ms = WATCH_DEFAULT_PROGRESS_MS;
    if (!h->cfg.slow_bytes)
        h->cfg.slow_bytes = WATCH_DEFAULT_SLOW_BYTES;
    if (h->cfg.loop)
        evloop_timer_start(h->cfg.loop, &h->progress_timer, h->cfg.progress_interval_ms,
                           h->cfg.progress_interval_ms, progress_cb, h);
    *out = h;
    return 0;
}

void watch_hub_free(watch_hub *h)
{
    if (!h)
        return;
    while (h->streams)
        watch_stream_free(h->streams);
    if (h->cfg.loop) {
        evloop_timer_stop(h->cfg.loop, &h->sync_timer);
        evloop_timer_stop(h->cfg.loop, &h->progress_timer);
    }
    if (h->feeding && h->store)
        mvcc_set_event_feed(h->store, NULL, NULL, NULL);
    match_free_all(h);
    free(h->bevs);
    free(h->pieces);
    bytebuf_free(&h->arena);
    evlist_free(&h->scratch);
    free(h);
}

/* Every synced watcher goes back to reading history, from the revision after the last one
 * it was sent. */
static void unsync_everyone(watch_hub *h)
{
    for (watch_stream *s = h->streams; s; s = s->next)
        for (size_t i = 0; i < s->nslots; i++)
            if (s->slots[i] && s->slots[i]->state == W_SYNCED)
                hub_make_unsynced(h, s->slots[i], h->rev + 1);
}

void watch_hub_set_store(watch_hub *h, mvcc *store)
{
    if (store == h->store)
        return;
    /* the old store may be closed already: forget its feed without touching it */
    h->feeding = false;
    h->store = NULL;
    unsync_everyone(h);
    h->store = store;
    h->rev = store ? mvcc_rev(store) : 0;
    hub_feed_update(h);
    if (h->nunsynced)
        hub_schedule_sync(h, 0);
}

void watch_hub_sync(watch_hub *h)
{
    catchup_pass(h);
}

void watch_hub_progress(watch_hub *h)
{
    catchup_progress_round(h);
}

void watch_hub_get_stats(const watch_hub *h, watch_hub_stats *st)
{
    st->streams = h->nstreams;
    st->watchers = h->nwatchers;
    st->synced = h->nsynced;
    st->unsynced = h->nunsynced;
    st->responses = h->responses;
    st->events = h->events;
}
