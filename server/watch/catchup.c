/*
 * catchup.c: watchers that read history instead of the feed (unsynced), and the periodic
 * progress notifications.
 *
 * An unsynced watcher has next_rev, the first revision it has not been sent. A pass takes the
 * unsynced watchers in order and, for each whose stream is not slow and whose next_rev the
 * store has reached, reads history from next_rev in chunks (mvcc_events_read, bounded by
 * events, bytes and records scanned, cut only between revisions) and sends each chunk as one
 * response (etcd's catch-up responses also span revisions; their header carries the store's
 * current revision). Once a chunk ends past the store's revision the watcher rejoins the
 * feed (synced): reads and the feed run on the same thread, so nothing commits in between and
 * no event is lost or repeated. A next_rev below the compaction point ends the watcher with
 * etcd's compaction cancel. A pass is bounded (chunks and bytes); a watcher that used its turn
 * goes to the end of the order, and the pass re-arms its timer: soon while some watcher is
 * moving, every WATCH_SYNC_MS while all wait on slow readers or future revisions.
 *
 * Invariant: a chunk's next_rev is adopted only after its response was handed to the stream.
 */
#include "err.h"
#include "log.h"
#include "watch_int.h"

#define CHUNK_EVENTS 1000          /* etcd's watchBatchMaxRevs is per revision; ours per event */
#define CHUNK_SCAN 16384          /* records a chunk examines: bounds narrow ranges' walks */
#define PASS_CHUNKS 16             /* a pass: at most ~256 Ki records, ... */
#define PASS_BYTES (4u << 20)      /* ... or this much sent, then the loop runs again */

struct chunk {
    watch_hub *h;
    unsigned variant;
    int rc;
};

static void chunk_event(void *arg, const Mvccpb__Event *ev)
{
    struct chunk *x = arg;
    bool del = ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE;

    if (x->rc || (del && (x->variant & WV_NODELETE)) || (!del && (x->variant & WV_NOPUT)))
        return;
    x->rc = evlist_add_event(&x->h->scratch, ev);
}

void catchup_cancel_compacted(watch_hub *h, watcher *w, int64_t compact_rev)
{
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader hd = ETCDSERVERPB__RESPONSE_HEADER__INIT;

    hub_header(h, 0, &hd);          /* etcd leaves the revision out of this one */
    r.header = &hd;
    r.watch_id = w->id;
    r.canceled = true;
    r.compact_revision = compact_rev;
    hub_watcher_kill(h, w);
    stream_send_msg(w->st, &r);
}

/* etcd's compaction point: -1 before the first compaction (so a start revision of -1 reads
 * everything, and one below it is "compacted" with compact_revision -1, as etcd answers). */
static int64_t compact_point(watch_hub *h)
{
    int64_t c = mvcc_compact_rev(h->store);

    return c ? c : -1;
}

/* The range end as mvcc_events_read takes it. */
static ProtobufCBinaryData group_end(const wgroup *g)
{
    static uint8_t zero[1] = {0};
    ProtobufCBinaryData from = {1, zero};

    return g->kind == G_FROM ? from : g->end;
}

/* Reads and sends one chunk of w's history; *bytes gets what was sent. 0 or CE_*. */
static int chunk(watch_hub *h, watcher *w, int64_t rev, size_t *bytes)
{
    /* twice the fragment size, so that a catch-up splits into fragments as etcd's does */
    mvcc_events_limits lim = {CHUNK_EVENTS, 2 * (size_t)h->cfg.max_response_bytes, CHUNK_SCAN};
    struct chunk x = {h, w->cls->variant, 0};
    ProtobufCBinaryData end = group_end(w->cls->g);
    uint8_t hdr[WATCH_HDR_MAX];
    int64_t next;
    int rc;

    if (w->next_rev < compact_point(h)) {
        catchup_cancel_compacted(h, w, compact_point(h));
        return 0;
    }
    evlist_reset(&h->scratch);
    rc = mvcc_events_read(h->store, &w->cls->g->key, &end, w->next_rev < 1 ? 1 : w->next_rev,
                          (w->cls->variant & WV_PREV) != 0, &lim, chunk_event, &x, &next);
    if (rc == CE_COMPACTED) {
        catchup_cancel_compacted(h, w, mvcc_compact_rev(h->store));
        return 0;
    }
    rc = rc ? rc : x.rc;
    if (rc == 0 && h->scratch.n) {
        size_t hlen = wire_header(h, rev, hdr);
        rc = wire_send_events(h, w, hdr, hlen, &h->scratch);
    }
    *bytes = bytebuf_size(&h->scratch.bytes);
    evlist_reset(&h->scratch);
    if (rc)
        return rc;
    w->next_rev = next;
    if (next > rev)
        hub_make_synced(h, w);
    return 0;
}

/* Whether w can be read for now. */
static bool ready(const watcher *w, int64_t rev)
{
    return w->state == W_UNSYNCED && !w->st->broken && w->next_rev <= rev &&
           !stream_slow(w->st);
}

/* w's turn in a pass: chunks while it can take them and the pass has budget. true if it
 * made progress. */
static bool turn(watch_hub *h, watcher *w, int64_t rev, size_t *chunks, size_t *bytes)
{
    bool moved = false;
    size_t n;
    int rc;

    while (ready(w, rev) && *chunks < PASS_CHUNKS && *bytes < PASS_BYTES) {
        n = 0;
        rc = chunk(h, w, rev, &n);
        (*chunks)++;
        *bytes += n;
        if (rc) {
            if (rc != CE_STOPPED)
                log_warn("watch: catching up watcher %lld: %s", (long long)w->id,
                         ce_strerror(rc));
            break;
        }
        moved = true;
    }
    return moved;
}

void catchup_pass(watch_hub *h)
{
    size_t n = h->nunsynced, chunks = 0, bytes = 0;
    watcher *w = h->uhead, *next;
    bool moved = false;
    int64_t rev;

    if (!h->store)
        return;
    rev = mvcc_rev(h->store);
    for (; w && n > 0; w = next, n--) {
        next = w->next;
        if (turn(h, w, rev, &chunks, &bytes) && w->state == W_UNSYNCED) {
            moved = true;
            hub_unsynced_rotate(h, w);
        }
    }
    if (h->nunsynced)
        hub_schedule_sync(h, chunks >= PASS_CHUNKS || bytes >= PASS_BYTES ? 1
                             : moved                                      ? WATCH_SYNC_BUSY_MS
                                                                          : WATCH_SYNC_MS);
}

void catchup_progress_round(watch_hub *h)
{
    Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader hd = ETCDSERVERPB__RESPONSE_HEADER__INIT;

    if (!h->store)
        return;
    hub_header(h, mvcc_rev(h->store), &hd);
    r.header = &hd;
    for (watcher *w = h->progress; w; w = w->pnext) {
        if (w->state == W_SYNCED && w->quiet && !w->st->broken) {
            r.watch_id = w->id;
            stream_send_msg(w->st, &r);
        }
        w->quiet = true;
    }
}
