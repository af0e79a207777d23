/*
 * write.c: the changes of a batch: Put, DeleteRange and Compaction, plus the events they
 * produce for the watch sink.
 *
 * Invariants: every check that can refuse a request runs before its first write, so a refused
 * request changes nothing; a failure after a write (I/O, map full) poisons the batch
 * (batch_err), which then can only be aborted. A change gets revision (brev + 1, sub++); kv
 * records are appended in revision order (MDB_APPEND). Events are kept only when a sink is set.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mvcc_int.h"

#define COMPACT_CHUNK 1024      /* keys gathered per compaction pass over the kv table */

void mvcc__request_begin(mvcc *m)
{
    m->sub = 0;
}

void mvcc__request_end(mvcc *m)
{
    if (m->sub > 0)
        m->brev++;
    m->sub = 0;
}

void mvcc__events_free(mvcc *m)
{
    for (size_t i = 0; i < m->nevs; i++)
        protobuf_c_message_free_unpacked(&m->evs[i]->base, NULL);
    free(m->evs);
    m->evs = NULL;
    m->nevs = m->capevs = 0;
}

/* Takes ownership of kv and prev (even on failure). */
static int event_push(mvcc *m, Mvccpb__Event__EventType type, Mvccpb__KeyValue *kv,
                      Mvccpb__KeyValue *prev)
{
    Mvccpb__Event *ev;

    if (!kv)
        goto out_free_kvs;
    if (m->nevs == m->capevs) {
        size_t cap = m->capevs ? m->capevs * 2 : 64;
        Mvccpb__Event **n = realloc(m->evs, cap * sizeof(*n));
        if (!n)
            goto out_free_kvs;
        m->evs = n;
        m->capevs = cap;
    }
    ev = malloc(sizeof(*ev));
    if (!ev)
        goto out_free_kvs;
    mvccpb__event__init(ev);
    ev->type = type;
    ev->kv = kv;
    ev->prev_kv = prev;
    m->evs[m->nevs++] = ev;
    return 0;
out_free_kvs:
    if (kv)
        protobuf_c_message_free_unpacked(&kv->base, NULL);
    if (prev)
        protobuf_c_message_free_unpacked(&prev->base, NULL);
    return CE_NOMEM;
}

static Mvccpb__KeyValue *kv_copy(const Mvccpb__KeyValue *src)
{
    Mvccpb__KeyValue *kv;

    if (!src)
        return NULL;
    kv = mvcc__kv_new(src->key.data, src->key.len, src->value.data, src->value.len);
    if (!kv)
        return NULL;
    kv->create_revision = src->create_revision;
    kv->mod_revision = src->mod_revision;
    kv->version = src->version;
    kv->lease = src->lease;
    return kv;
}

bool mvcc_has_room(mvcc *m, uint64_t bytes)
{
    MDB_envinfo info;
    MDB_stat st;
    uint64_t used;

    if (mdb_env_info(m->env, &info) != 0 || mdb_env_stat(m->env, &st) != 0)
        return false;
    used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    return used + m->batch_bytes + bytes <= m->quota;
}

/* Appends one kv record and its index entry: the write half of a change. */
static int change_write(mvcc *m, const Mvccpb__KeyValue *kv, const idx_ent *e)
{
    uint8_t rk[REVKEY_LEN + 1], ie[IDXENT_LEN];
    size_t sz = mvccpb__key_value__get_packed_size(kv);
    MDB_val k = {e->version ? REVKEY_LEN : REVKEY_LEN + 1, rk}, d = {sz, NULL};
    MDB_val ik = {kv->key.len, kv->key.data}, id = {IDXENT_LEN, ie};
    int rc;

    mvcc__revkey(rk, e->main, e->sub);
    rc = mdb_put(m->wtxn, m->kv, &k, &d, MDB_RESERVE | MDB_APPEND);
    if (rc == 0) {
        mvccpb__key_value__pack(kv, d.mv_data);
        mvcc__idxent_enc(ie, e);
        rc = mdb_put(m->wtxn, m->idx, &ik, &id, 0);
    }
    if (rc) {
        m->batch_err = mvcc__lmdb_err(rc);
        return m->batch_err;
    }
    m->batch_bytes += sz + ik.mv_size + 2 * IDXENT_LEN;
    return 0;
}

/* ---- put ---- */

struct put_state {
    idx_ent cur;
    bool alive;
    Mvccpb__KeyValue *prev;     /* loaded when needed, owned */
};

static int put_prepare(mvcc *m, const Etcdserverpb__PutRequest *r, struct put_state *ps)
{
    bool need_prev = r->prev_kv || r->ignore_value || r->ignore_lease || m->sink;
    int64_t lease = r->lease;
    int rc;

    if (r->key.len == 0)
        return CE_KEY_EMPTY;
    if (r->key.len > m->max_key)
        return CE_REQ_TOO_LARGE;
    rc = mvcc__idx_at(m, m->wtxn, &r->key, -1, &ps->cur);
    if (rc && rc != CE_NOTFOUND)
        return rc;
    ps->alive = rc == 0 && ps->cur.version > 0;
    if (ps->alive && need_prev && (rc = mvcc__kv_load(m, m->wtxn, &ps->cur, &ps->prev)) != 0)
        return rc;
    if (!r->ignore_lease && lease != 0 && m->lease_exists &&
        !m->lease_exists(m->lease_arg, lease))
        return CE_LEASE_NOT_FOUND;
    if ((r->ignore_value || r->ignore_lease) && !ps->alive)
        return CE_KEY_NOT_FOUND;
    return 0;
}

static int put_response(mvcc *m, const Etcdserverpb__PutRequest *r, struct put_state *ps,
                        Etcdserverpb__PutResponse **out)
{
    Etcdserverpb__PutResponse *resp = malloc(sizeof(*resp));

    if (!resp)
        return CE_NOMEM;
    etcdserverpb__put_response__init(resp);
    resp->header = mvcc__header_new(m->brev + 1);
    if (r->prev_kv && ps->prev) {
        resp->prev_kv = m->sink ? kv_copy(ps->prev) : ps->prev;
        if (!m->sink)
            ps->prev = NULL;
        if (!resp->prev_kv)
            goto out_free_resp;
    }
    if (!resp->header)
        goto out_free_resp;
    *out = resp;
    return 0;
out_free_resp:
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return CE_NOMEM;
}

int mvcc__put_apply(mvcc *m, const Etcdserverpb__PutRequest *r,
                    Etcdserverpb__PutResponse **out)
{
    struct put_state ps = {.alive = false, .prev = NULL};
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
    idx_ent e;
    int rc;

    if ((rc = put_prepare(m, r, &ps)) != 0)
        goto out_free_prev;
    kv.key = r->key;
    kv.value = r->ignore_value ? ps.prev->value : r->value;
    kv.lease = r->ignore_lease ? ps.prev->lease : r->lease;
    e.main = kv.mod_revision = m->brev + 1;
    e.sub = m->sub;
    e.create = kv.create_revision = ps.alive ? ps.cur.create : e.main;
    e.version = kv.version = ps.alive ? ps.cur.version + 1 : 1;
    if ((rc = change_write(m, &kv, &e)) != 0)
        goto out_free_prev;
    m->sub++;
    if (out && (rc = put_response(m, r, &ps, out)) != 0)
        m->batch_err = rc;          /* written but unanswerable: the batch must not commit */
    if (rc == 0 && m->sink) {
        rc = event_push(m, MVCCPB__EVENT__EVENT_TYPE__PUT, kv_copy(&kv), ps.prev);
        ps.prev = NULL;
        if (rc)
            m->batch_err = rc;
    }
out_free_prev:
    if (ps.prev)
        protobuf_c_message_free_unpacked(&ps.prev->base, NULL);
    return rc;
}

int mvcc_put(mvcc *m, const Etcdserverpb__PutRequest *r, Etcdserverpb__PutResponse **out)
{
    int rc;

    if (!m->wtxn)
        return CE_INVAL;
    if ((rc = mvcc_check_put(r)) != 0)
        return rc;
    mvcc__request_begin(m);
    rc = mvcc__put_apply(m, r, out);
    mvcc__request_end(m);
    return rc;
}

/* ---- delete ---- */

struct key_list {
    ProtobufCBinaryData *keys;
    idx_ent *ents;
    size_t n, cap;
};

static void key_list_free(struct key_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i].data);
    free(l->keys);
    free(l->ents);
    l->keys = NULL;
    l->ents = NULL;
    l->n = l->cap = 0;
}

static int key_list_add(struct key_list *l, const MDB_val *k, const idx_ent *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        ProtobufCBinaryData *nk = realloc(l->keys, cap * sizeof(*nk));
        if (!nk)
            return CE_NOMEM;
        l->keys = nk;
        idx_ent *ne = realloc(l->ents, cap * sizeof(*ne));
        if (!ne)
            return CE_NOMEM;
        l->ents = ne;
        l->cap = cap;
    }
    l->keys[l->n].data = NULL;
    l->keys[l->n].len = 0;
    if (k && mvcc__bytes_dup(&l->keys[l->n], k->mv_data, k->mv_size) != 0)
        return CE_NOMEM;
    if (e)
        l->ents[l->n] = *e;
    l->n++;
    return 0;
}

/* The live keys of [key, end) at the newest revision of the batch. */
static int live_keys(mvcc *m, const ProtobufCBinaryData *key, const ProtobufCBinaryData *end,
                     struct key_list *l)
{
    MDB_cursor *c;
    MDB_val k, d;
    idx_ent e;
    int rc = mvcc__lmdb_err(mdb_cursor_open(m->wtxn, m->idx, &c));

    if (rc)
        return rc;
    for (rc = mvcc__idx_seek(m, c, key, &k); rc == 0 && mvcc__in_range(&k, key, end);
         rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &d, MDB_NEXT_NODUP))) {
        if ((rc = mvcc__idx_at_cur(c, c, &k, 0, true, &e)) != 0)
            break;
        if (e.version > 0 && (rc = key_list_add(l, &k, &e)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == CE_NOTFOUND ? 0 : rc;
}

/* Writes key's tombstone; prev (owned, may be NULL) is its last state, for the event. */
static int tombstone(mvcc *m, const ProtobufCBinaryData *key, Mvccpb__KeyValue *prev)
{
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT, *ev_kv;
    idx_ent e = {.main = m->brev + 1, .sub = m->sub, .create = 0, .version = 0};
    int rc;

    kv.key = *key;
    if ((rc = change_write(m, &kv, &e)) != 0)
        goto out_free_prev;
    m->sub++;
    if (!m->sink)
        goto out_free_prev;
    ev_kv = mvcc__kv_new(key->data, key->len, NULL, 0);
    if (!ev_kv) {
        rc = m->batch_err = CE_NOMEM;
        goto out_free_prev;
    }
    ev_kv->mod_revision = e.main;
    if ((rc = event_push(m, MVCCPB__EVENT__EVENT_TYPE__DELETE, ev_kv, prev)) != 0)
        m->batch_err = rc;
    return rc;
out_free_prev:
    if (prev)
        protobuf_c_message_free_unpacked(&prev->base, NULL);
    return rc;
}

static int delete_response(mvcc *m, size_t n, Etcdserverpb__DeleteRangeResponse **out)
{
    Etcdserverpb__DeleteRangeResponse *resp = malloc(sizeof(*resp));

    if (!resp)
        return CE_NOMEM;
    etcdserverpb__delete_range_response__init(resp);
    resp->deleted = (int64_t)n;
    resp->header = mvcc__header_new(m->sub > 0 ? m->brev + 1 : m->brev);
    if (!resp->header) {
        free(resp);
        return CE_NOMEM;
    }
    if (n) {
        resp->prev_kvs = calloc(n, sizeof(*resp->prev_kvs));
        if (!resp->prev_kvs) {
            protobuf_c_message_free_unpacked(&resp->base, NULL);
            return CE_NOMEM;
        }
    }
    *out = resp;
    return 0;
}

static int delete_keys(mvcc *m, const Etcdserverpb__DeleteRangeRequest *r, struct key_list *l,
                       Etcdserverpb__DeleteRangeResponse *resp)
{
    for (size_t i = 0; i < l->n; i++) {
        Mvccpb__KeyValue *prev = NULL;
        int rc;
        if ((r->prev_kv || m->sink) && (rc = mvcc__kv_load(m, m->wtxn, &l->ents[i], &prev)))
            return m->batch_err = rc;
        if (resp && r->prev_kv) {
            resp->prev_kvs[resp->n_prev_kvs] = m->sink ? kv_copy(prev) : prev;
            if (!resp->prev_kvs[resp->n_prev_kvs++])
                return m->batch_err = CE_NOMEM;
            if (!m->sink)
                prev = NULL;
        }
        if ((rc = tombstone(m, &l->keys[i], prev)) != 0)
            return rc;
    }
    return 0;
}

int mvcc__delete_apply(mvcc *m, const Etcdserverpb__DeleteRangeRequest *r,
                       Etcdserverpb__DeleteRangeResponse **out)
{
    struct key_list l = {0};
    Etcdserverpb__DeleteRangeResponse *resp = NULL;
    int rc;

    if (r->key.len == 0)
        return CE_KEY_EMPTY;
    if ((rc = live_keys(m, &r->key, &r->range_end, &l)) != 0)
        goto out_free_list;
    if (out && (rc = delete_response(m, l.n, &resp)) != 0)
        goto out_free_list;
    rc = delete_keys(m, r, &l, resp);
    if (rc == 0 && resp) {
        resp->header->revision = m->sub > 0 ? m->brev + 1 : m->brev;
        *out = resp;
    } else if (resp) {
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
out_free_list:
    key_list_free(&l);
    return rc;
}

int mvcc_delete(mvcc *m, const Etcdserverpb__DeleteRangeRequest *r,
                Etcdserverpb__DeleteRangeResponse **out)
{
    int rc;

    if (!m->wtxn)
        return CE_INVAL;
    if ((rc = mvcc_check_delete(r)) != 0)
        return rc;
    mvcc__request_begin(m);
    rc = mvcc__delete_apply(m, r, out);
    mvcc__request_end(m);
    return rc;
}

/* ---- compaction ---- */

static int del_rev(mvcc *m, const ProtobufCBinaryData *key, const idx_ent *e)
{
    uint8_t rk[REVKEY_LEN + 1], ie[IDXENT_LEN];
    MDB_val k = {e->version ? REVKEY_LEN : REVKEY_LEN + 1, rk};
    MDB_val ik = {key->len, key->data}, id = {IDXENT_LEN, ie};
    int rc;

    mvcc__revkey(rk, e->main, e->sub);
    mvcc__idxent_enc(ie, e);
    rc = mdb_del(m->wtxn, m->kv, &k, NULL);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = mdb_del(m->wtxn, m->idx, &ik, &id);
    return rc == MDB_NOTFOUND ? 0 : mvcc__lmdb_err(rc);
}

/* Drops every revision of key <= rev but the newest, and that one too if a tombstone. */
static int compact_key(mvcc *m, const ProtobufCBinaryData *key, int64_t rev)
{
    struct key_list old = {0};
    MDB_cursor *c;
    MDB_val k = {key->len, key->data}, d;
    idx_ent e;
    int rc = mvcc__lmdb_err(mdb_cursor_open(m->wtxn, m->idx, &c));

    if (rc)
        return rc;
    rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &d, MDB_SET));
    for (MDB_cursor_op op = MDB_FIRST_DUP; rc == 0; op = MDB_NEXT_DUP) {
        MDB_val kk = k;
        if ((rc = mvcc__lmdb_err(mdb_cursor_get(c, &kk, &d, op))) != 0)
            break;
        mvcc__idxent_dec(d.mv_data, &e);
        if (e.main > rev)
            break;
        rc = key_list_add(&old, NULL, &e);
    }
    mdb_cursor_close(c);
    if (rc == CE_NOTFOUND)
        rc = 0;
    for (size_t i = 0; rc == 0 && i < old.n; i++)
        if (i + 1 < old.n || old.ents[i].version == 0)
            rc = del_rev(m, key, &old.ents[i]);
    key_list_free(&old);
    return rc;
}

/* Gathers up to COMPACT_CHUNK keys changed in revisions [*from, rev]; advances *from. */
static int compact_gather(mvcc *m, int64_t *from_main, int64_t *from_sub, int64_t rev,
                          struct key_list *l, bool *done)
{
    uint8_t rk[REVKEY_LEN + 1];
    MDB_cursor *c;
    MDB_val k = {REVKEY_LEN, rk}, d, uk;
    int rc = mvcc__lmdb_err(mdb_cursor_open(m->wtxn, m->kv, &c));

    if (rc)
        return rc;
    mvcc__revkey(rk, *from_main, *from_sub);
    *done = true;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        idx_ent e;
        if (k.mv_size < REVKEY_LEN)
            break;
        e.main = (int64_t)mvcc__be64(k.mv_data);
        if (e.main > rev)
            break;
        if (l->n == COMPACT_CHUNK) {
            *from_main = e.main;
            *from_sub = (int64_t)mvcc__be64((const uint8_t *)k.mv_data + 9);
            *done = false;
            break;
        }
        if ((rc = mvcc__kv_rec_key(&d, &uk)) != 0)
            break;
        if ((rc = key_list_add(l, &uk, NULL)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : mvcc__lmdb_err(rc);
}

int mvcc_compact(mvcc *m, int64_t rev)
{
    int64_t from_main = m->bcompact + 1, from_sub = 0;
    bool done = false;
    int rc = 0;

    if (!m->wtxn)
        return CE_INVAL;
    if (rev <= m->bcompact)
        return CE_COMPACTED;
    if (rev > m->brev)
        return CE_FUTURE_REV;
    while (rc == 0 && !done) {
        struct key_list l = {0};
        rc = compact_gather(m, &from_main, &from_sub, rev, &l, &done);
        for (size_t i = 0; rc == 0 && i < l.n; i++)
            if (i == 0 || l.keys[i].len != l.keys[i - 1].len ||
                memcmp(l.keys[i].data, l.keys[i - 1].data, l.keys[i].len) != 0)
                rc = compact_key(m, &l.keys[i], rev);
        key_list_free(&l);
    }
    if (rc) {
        m->batch_err = rc;
        return rc;
    }
    m->bcompact = rev;
    return 0;
}
