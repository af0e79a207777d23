/*
 * events.c: reading history as watch events (mvcc_events_since). The kv table is ordered by
 * revision, so a catch-up is one cursor walk from (from_rev, 0): each record becomes a PUT
 * (the stored KeyValue) or, for an 18-byte tombstone key, a DELETE whose kv has the key and
 * mod_revision = the delete's main revision, as etcd reports it. prev_kv is the key's state
 * just before that revision, looked up in the index.
 * Bounds (mvcc_events_read: events, record bytes, records examined) are checked only where
 * the next record starts a new revision.
 * Invariant: only whole revisions are reported, so a caller resuming at *next_rev neither
 * loses nor repeats an event.
 */
#include <stdlib.h>

#include "err.h"
#include "mvcc_int.h"

struct walk {
    mvcc *m;
    MDB_txn *t;
    const ProtobufCBinaryData *key, *end;
    bool want_prev;
    mvcc_event_fn fn;
    void *arg;
};

/* The key's live state before revision main, or NULL. */
static int prev_of(struct walk *w, const MDB_val *uk, int64_t main, Mvccpb__KeyValue **out)
{
    ProtobufCBinaryData k = {uk->mv_size, uk->mv_data};
    idx_ent e;
    int rc = mvcc__idx_at(w->m, w->t, &k, main - 1, &e);

    *out = NULL;
    if (rc == CE_NOTFOUND || (rc == 0 && e.version == 0))
        return 0;
    return rc ? rc : mvcc__kv_load(w->m, w->t, &e, out);
}

/* Turns one kv record into an event for fn, if its key is in range. */
static int emit(struct walk *w, const MDB_val *k, const MDB_val *v, int64_t main, bool *sent)
{
    Mvccpb__Event ev = MVCCPB__EVENT__INIT;
    Mvccpb__KeyValue *kv, *prev = NULL;
    MDB_val uk;
    int rc = mvcc__kv_rec_key(v, &uk);

    *sent = false;
    if (rc || !mvcc__in_range(&uk, w->key, w->end))
        return rc;
    kv = mvccpb__key_value__unpack(NULL, v->mv_size, v->mv_data);
    if (!kv)
        return CE_CORRUPT;
    if (k->mv_size > REVKEY_LEN) {
        ev.type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
        kv->mod_revision = main;
    }
    if (w->want_prev && (rc = prev_of(w, &uk, main, &prev)) != 0)
        goto out_free_kv;
    ev.kv = kv;
    ev.prev_kv = prev;
    w->fn(w->arg, &ev);
    *sent = true;
    if (prev)
        protobuf_c_message_free_unpacked(&prev->base, NULL);
out_free_kv:
    protobuf_c_message_free_unpacked(&kv->base, NULL);
    return rc;
}

/* What a walk has done so far, against its limits. */
struct progress {
    size_t events, bytes, scanned;
};

static bool limit_reached(const mvcc_events_limits *l, const struct progress *p)
{
    return (l->max_events && p->events >= l->max_events) ||
           (l->max_bytes && p->bytes >= l->max_bytes) ||
           (l->max_scan && p->scanned >= l->max_scan);
}

static int walk_from(struct walk *w, int64_t from, const mvcc_events_limits *lim,
                     int64_t *next_rev)
{
    uint8_t rk[REVKEY_LEN + 1];
    MDB_cursor *c;
    MDB_val k = {REVKEY_LEN, rk}, v;
    struct progress p = {0, 0, 0};
    int64_t last = from - 1;
    bool sent;
    int rc = mvcc__lmdb_err(mdb_cursor_open(w->t, w->m->kv, &c));

    if (rc)
        return rc;
    mvcc__revkey(rk, from, 0);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        int64_t main = (int64_t)mvcc__be64(k.mv_data);
        if (main != last && limit_reached(lim, &p))
            break;
        if ((rc = emit(w, &k, &v, main, &sent)) != 0)
            break;
        p.scanned++;
        if (sent) {
            p.events++;
            p.bytes += v.mv_size;
        }
        last = main;
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND || rc == 0) {
        *next_rev = rc == MDB_NOTFOUND ? w->m->rev + 1 : last + 1;
        return 0;
    }
    return mvcc__lmdb_err(rc);
}

int mvcc_events_read(mvcc *m, const ProtobufCBinaryData *key,
                     const ProtobufCBinaryData *range_end, int64_t from_rev, bool want_prev,
                     const mvcc_events_limits *lim, mvcc_event_fn fn, void *arg,
                     int64_t *next_rev)
{
    struct walk w = {.m = m, .key = key, .end = range_end, .want_prev = want_prev,
                     .fn = fn, .arg = arg};
    int rc;

    if (!key || !range_end || !fn || !next_rev || !lim)
        return CE_INVAL;
    if (from_rev < m->compact_rev)
        return CE_COMPACTED;
    if (from_rev < 1)
        from_rev = 1;
    if ((rc = mvcc__read_begin(m, &w.t)) != 0)
        return rc;
    rc = walk_from(&w, from_rev, lim, next_rev);
    mvcc__read_end(m, w.t);
    return rc;
}

int mvcc_events_since(mvcc *m, const ProtobufCBinaryData *key,
                      const ProtobufCBinaryData *range_end, int64_t from_rev, bool want_prev,
                      size_t max, mvcc_event_fn fn, void *arg, int64_t *next_rev)
{
    mvcc_events_limits lim = {.max_events = max, .max_bytes = 0, .max_scan = 0};

    return mvcc_events_read(m, key, range_end, from_rev, want_prev, &lim, fn, arg, next_rev);
}
