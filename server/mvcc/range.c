/*
 * range.c: the Range read, with etcd 3.4's semantics:
 *   - range_end empty = the key alone, "\0" = every key >= key, else [key, range_end);
 *   - revision <= 0 reads the newest state; > current -> CE_FUTURE_REV; below the compaction
 *     point -> CE_COMPACTED (the compaction point itself is readable);
 *   - count is the number of live keys in the range at that revision, before the
 *     min/max_mod/create_revision filters and before the limit; count_only returns no kvs;
 *   - with a sort or a filter every matching key is gathered, filtered, sorted, then cut to
 *     limit (more = something was cut); without, only the first `limit` keys are loaded;
 *   - sort_order NONE with a target other than KEY sorts ascending; ties keep key order;
 *   - the header revision is the store's current revision, also for historical reads.
 * Invariant: only the kvs returned are read from the kv table (counting uses the index only),
 * except when sorting by value.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mvcc_int.h"

typedef struct item {
    MDB_val key;                /* points into the LMDB transaction's pages */
    idx_ent e;
    Mvccpb__KeyValue *kv;       /* loaded lazily, owned until moved to the response */
} item;

typedef struct items {
    item *v;
    size_t n, cap;
} items;

static void items_free(items *it)
{
    for (size_t i = 0; i < it->n; i++)
        if (it->v[i].kv)
            protobuf_c_message_free_unpacked(&it->v[i].kv->base, NULL);
    free(it->v);
}

static int items_add(items *it, const MDB_val *k, const idx_ent *e)
{
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 64;
        item *n = realloc(it->v, cap * sizeof(*n));
        if (!n)
            return CE_NOMEM;
        it->v = n;
        it->cap = cap;
    }
    it->v[it->n++] = (item){.key = *k, .e = *e, .kv = NULL};
    return 0;
}

struct scan {
    mvcc *m;
    MDB_txn *t;
    const Etcdserverpb__RangeRequest *r;
    int64_t rev;
    bool newest;
    size_t want;                /* items to keep while counting */
    int64_t count;
};

static int scan_range(struct scan *s, items *it)
{
    MDB_cursor *c, *look;
    MDB_val k, d;
    idx_ent e;
    int rc = mvcc__lmdb_err(mdb_cursor_open(s->t, s->m->idx, &c));

    if (rc)
        return rc;
    if ((rc = mvcc__lmdb_err(mdb_cursor_open(s->t, s->m->idx, &look))) != 0)
        goto out_close_c;
    for (rc = mvcc__idx_seek(s->m, c, &s->r->key, &k);
         rc == 0 && mvcc__in_range(&k, &s->r->key, &s->r->range_end);
         rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &d, MDB_NEXT_NODUP))) {
        rc = mvcc__idx_at_cur(c, look, &k, s->rev, s->newest, &e);
        if (rc == CE_NOTFOUND || (rc == 0 && e.version == 0))
            continue;
        if (rc)
            break;
        s->count++;
        if (it->n < s->want && (rc = items_add(it, &k, &e)) != 0)
            break;
    }
    mdb_cursor_close(look);
out_close_c:
    mdb_cursor_close(c);
    return rc == CE_NOTFOUND ? 0 : rc;
}

static bool filtered_out(const Etcdserverpb__RangeRequest *r, const idx_ent *e)
{
    return (r->max_mod_revision && e->main > r->max_mod_revision) ||
           (r->min_mod_revision && e->main < r->min_mod_revision) ||
           (r->max_create_revision && e->create > r->max_create_revision) ||
           (r->min_create_revision && e->create < r->min_create_revision);
}

static void filter(const Etcdserverpb__RangeRequest *r, items *it)
{
    size_t j = 0;

    for (size_t i = 0; i < it->n; i++)
        if (!filtered_out(r, &it->v[i].e))
            it->v[j++] = it->v[i];
    it->n = j;
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int cmp_bytes(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;

    return c ? c : cmp_i64((int64_t)a->len, (int64_t)b->len);
}

/* Order of a before b for the target, ascending; 0 on a tie. */
static int cmp_item(const item *a, const item *b, int target)
{
    switch (target) {
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION:
        return cmp_i64(a->e.version, b->e.version);
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE:
        return cmp_i64(a->e.create, b->e.create);
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD:
        return cmp_i64(a->e.main, b->e.main);
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE:
        return cmp_bytes(&a->kv->value, &b->kv->value);
    default: {
        ProtobufCBinaryData ka = {a->key.mv_size, a->key.mv_data};
        ProtobufCBinaryData kb = {b->key.mv_size, b->key.mv_data};
        return cmp_bytes(&ka, &kb);
    }
    }
}

/* Stable merge sort of v[0..n) using tmp; desc reverses the order but not ties. */
static void msort(item *v, item *tmp, size_t n, int target, bool desc)
{
    size_t h = n / 2, i = 0, j = h, o = 0;

    if (n < 2)
        return;
    msort(v, tmp, h, target, desc);
    msort(v + h, tmp, n - h, target, desc);
    while (i < h && j < n) {
        int c = cmp_item(&v[j], &v[i], target);
        tmp[o++] = (desc ? c > 0 : c < 0) ? v[j++] : v[i++];
    }
    while (i < h)
        tmp[o++] = v[i++];
    while (j < n)
        tmp[o++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
}

static int load_kvs(struct scan *s, items *it, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (!it->v[i].kv && (rc = mvcc__kv_load(s->m, s->t, &it->v[i].e, &it->v[i].kv)) != 0)
            return rc;
    }
    return 0;
}

static int sort_items(struct scan *s, items *it)
{
    const Etcdserverpb__RangeRequest *r = s->r;
    int order = r->sort_order, target = r->sort_target;
    item *tmp;
    int rc;

    if (order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE &&
        target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY)
        order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    if (order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND &&
        order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND)
        return 0;
    if (order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND &&
        target == ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY)
        return 0;               /* the scan order already */
    if (target == ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE &&
        (rc = load_kvs(s, it, it->n)) != 0)
        return rc;
    tmp = malloc((it->n ? it->n : 1) * sizeof(*tmp));
    if (!tmp)
        return CE_NOMEM;
    msort(it->v, tmp, it->n, target, order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND);
    free(tmp);
    return 0;
}

static int build_response(struct scan *s, items *it, bool more, int64_t header_rev,
                          Etcdserverpb__RangeResponse **out)
{
    Etcdserverpb__RangeResponse *resp = malloc(sizeof(*resp));

    if (!resp)
        return CE_NOMEM;
    etcdserverpb__range_response__init(resp);
    resp->header = mvcc__header_new(header_rev);
    resp->count = s->count;
    resp->more = more;
    if (it->n && !(resp->kvs = malloc(it->n * sizeof(*resp->kvs))))
        goto out_free_resp;
    if (!resp->header)
        goto out_free_resp;
    for (size_t i = 0; i < it->n; i++) {
        Mvccpb__KeyValue *kv = it->v[i].kv;
        if (s->r->keys_only && kv->value.data) {
            free(kv->value.data);
            kv->value.data = NULL;
            kv->value.len = 0;
        }
        resp->kvs[resp->n_kvs++] = kv;
        it->v[i].kv = NULL;
    }
    *out = resp;
    return 0;
out_free_resp:
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return CE_NOMEM;
}

int mvcc__range_txn(mvcc *m, MDB_txn *t, int64_t cur, int64_t compact,
                    const Etcdserverpb__RangeRequest *r, Etcdserverpb__RangeResponse **out)
{
    struct scan s = {.m = m, .t = t, .r = r, .rev = r->revision};
    bool all = r->sort_order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE ||
               r->min_mod_revision || r->max_mod_revision || r->min_create_revision ||
               r->max_create_revision;
    items it = {0};
    bool more = false;
    int rc;

    if (r->key.len == 0)
        return CE_KEY_EMPTY;
    if (s.rev > cur)
        return CE_FUTURE_REV;
    if (s.rev <= 0)
        s.rev = cur;
    if (s.rev < compact)
        return CE_COMPACTED;
    s.newest = s.rev == cur;
    s.want = r->count_only ? 0 : (all || r->limit <= 0) ? SIZE_MAX : (size_t)r->limit;
    if ((rc = scan_range(&s, &it)) != 0)
        goto out_free_items;
    filter(r, &it);
    if ((rc = sort_items(&s, &it)) != 0)
        goto out_free_items;
    if (!r->count_only && r->limit > 0 && (all ? it.n > (size_t)r->limit : s.count > r->limit)) {
        more = true;
        for (size_t i = (size_t)r->limit; i < it.n; i++)
            if (it.v[i].kv)
                protobuf_c_message_free_unpacked(&it.v[i].kv->base, NULL);
        if (it.n > (size_t)r->limit)
            it.n = (size_t)r->limit;
    }
    if ((rc = load_kvs(&s, &it, it.n)) != 0)
        goto out_free_items;
    rc = build_response(&s, &it, more, cur, out);
out_free_items:
    items_free(&it);
    return rc;
}

int mvcc_range(mvcc *m, const Etcdserverpb__RangeRequest *r, Etcdserverpb__RangeResponse **out)
{
    MDB_txn *t;
    int rc;

    if ((rc = mvcc_check_range(r)) != 0)
        return rc;
    if ((rc = mvcc__read_begin(m, &t)) != 0)
        return rc;
    rc = mvcc__range_txn(m, t, m->rev, m->compact_rev, r, out);
    mvcc__read_end(m, t);
    return rc;
}
