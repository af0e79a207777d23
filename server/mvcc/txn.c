/*
 * txn.c: request validation (mvcc_check_*) and the Txn request, with etcd 3.4's semantics:
 *   - validation: empty keys, at most max_txn_ops compares/success/failure ops per level (a
 *     nested txn is checked against what its parent leaves), an empty RequestOp is refused
 *     with "key not found" like etcd, and no key may be put twice or put and deleted in one
 *     branch, across nested txns too (a put in `success` and `failure` of one nested txn is
 *     fine: only one of them runs);
 *   - every compare of the txn and of the nested txns on the chosen path is evaluated against
 *     the store before the txn; a compare over a range holds if it holds for every live key in
 *     it; with no live key, a VALUE compare fails and the others compare against zero;
 *   - the store-dependent checks (ignore_value/ignore_lease need the key, a lease must exist,
 *     a range revision must be neither future nor compacted) also run on that state, before
 *     any change, so a refused txn changes nothing;
 *   - the ops then run in order in one revision (brev + 1, sub...), each seeing the earlier
 *     ones' changes; a Txn that changes nothing leaves the revision alone.
 * Invariant: a Txn runs in an LMDB child transaction of the batch, so any failure midway
 * (I/O, out of memory) rolls it back whole, events included, and the batch stays usable.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mvcc_int.h"


/* ---- validation, no store access ---- */

int mvcc_check_put(const Etcdserverpb__PutRequest *r)
{
    if (!r || r->key.len == 0)
        return CE_KEY_EMPTY;
    if (r->ignore_value && r->value.len != 0)
        return CE_VALUE_PROVIDED;
    if (r->ignore_lease && r->lease != 0)
        return CE_LEASE_PROVIDED;
    return 0;
}

int mvcc_check_delete(const Etcdserverpb__DeleteRangeRequest *r)
{
    return !r || r->key.len == 0 ? CE_KEY_EMPTY : 0;
}

int mvcc_check_range(const Etcdserverpb__RangeRequest *r)
{
    return !r || r->key.len == 0 ? CE_KEY_EMPTY : 0;
}

static int check_txn_ops(const Etcdserverpb__TxnRequest *r, int64_t max_ops);

static int check_op(const Etcdserverpb__RequestOp *op, int64_t max_ops)
{
    if (!op)
        return CE_KEY_NOT_FOUND;
    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        return mvcc_check_range(op->request_range);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        return mvcc_check_put(op->request_put);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        return mvcc_check_delete(op->request_delete_range);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        return op->request_txn ? check_txn_ops(op->request_txn, max_ops) : CE_KEY_NOT_FOUND;
    default: return CE_KEY_NOT_FOUND;
    }
}

static int check_txn_ops(const Etcdserverpb__TxnRequest *r, int64_t max_ops)
{
    size_t opc = r->n_compare;
    int rc;

    if (opc < r->n_success)
        opc = r->n_success;
    if (opc < r->n_failure)
        opc = r->n_failure;
    if ((int64_t)opc > max_ops)
        return CE_TOO_MANY_OPS;
    for (size_t i = 0; i < r->n_compare; i++)
        if (!r->compare[i] || r->compare[i]->key.len == 0)
            return CE_KEY_EMPTY;
    for (size_t i = 0; i < r->n_success; i++)
        if ((rc = check_op(r->success[i], max_ops - (int64_t)opc)) != 0)
            return rc;
    for (size_t i = 0; i < r->n_failure; i++)
        if ((rc = check_op(r->failure[i], max_ops - (int64_t)opc)) != 0)
            return rc;
    return 0;
}

/* Key sets for the duplicate check: puts are points, deletes intervals [b, e) where an empty
 * e is unbounded and a point delete has e = NULL. Bytes point into the request. */
typedef struct ivl {
    const ProtobufCBinaryData *b, *e;
} ivl;

typedef struct keyset {
    ivl *v;
    size_t n, cap;
} keyset;

static int keyset_add(keyset *s, const ProtobufCBinaryData *b, const ProtobufCBinaryData *e)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        ivl *n = realloc(s->v, cap * sizeof(*n));
        if (!n)
            return CE_NOMEM;
        s->v = n;
        s->cap = cap;
    }
    s->v[s->n++] = (ivl){b, e};
    return 0;
}

static int bcmp_(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;

    return c ? c : (a->len < b->len ? -1 : a->len > b->len);
}

static bool has_point(const keyset *s, const ProtobufCBinaryData *k)
{
    for (size_t i = 0; i < s->n; i++)
        if (bcmp_(s->v[i].b, k) == 0)
            return true;
    return false;
}

/* etcd's interval test of point k against the deletes (adt string-affine intervals). */
static bool dels_hit(const keyset *dels, const ProtobufCBinaryData *k)
{
    for (size_t i = 0; i < dels->n; i++) {
        const ivl *d = &dels->v[i];
        if (!d->e) {
            if (bcmp_(d->b, k) == 0)
                return true;
        } else if (bcmp_(d->b, k) <= 0 && (d->e->len == 0 || bcmp_(k, d->e) < 0)) {
            return true;
        }
    }
    return false;
}

static int check_intervals(Etcdserverpb__RequestOp **ops, size_t n, keyset *puts, keyset *dels);

/* Merges a nested txn's branches into this level's sets. */
static int merge_nested(const Etcdserverpb__TxnRequest *t, keyset *puts, keyset *dels)
{
    keyset pt = {0}, dt = {0}, pe = {0}, de = {0};
    int rc = check_intervals(t->success, t->n_success, &pt, &dt);

    if (rc == 0)
        rc = check_intervals(t->failure, t->n_failure, &pe, &de);
    for (size_t i = 0; rc == 0 && i < pt.n; i++) {
        if (has_point(puts, pt.v[i].b) || dels_hit(dels, pt.v[i].b))
            rc = CE_DUP_KEY;
        else
            rc = keyset_add(puts, pt.v[i].b, NULL);
    }
    for (size_t i = 0; rc == 0 && i < pe.n; i++) {
        if ((has_point(puts, pe.v[i].b) && !has_point(&pt, pe.v[i].b)) ||
            dels_hit(dels, pe.v[i].b))
            rc = CE_DUP_KEY;
        else
            rc = keyset_add(puts, pe.v[i].b, NULL);
    }
    for (size_t i = 0; rc == 0 && i < dt.n; i++)
        rc = keyset_add(dels, dt.v[i].b, dt.v[i].e);
    for (size_t i = 0; rc == 0 && i < de.n; i++)
        rc = keyset_add(dels, de.v[i].b, de.v[i].e);
    free(pt.v);
    free(dt.v);
    free(pe.v);
    free(de.v);
    return rc;
}

static int check_intervals(Etcdserverpb__RequestOp **ops, size_t n, keyset *puts, keyset *dels)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Etcdserverpb__DeleteRangeRequest *d = ops[i]->request_delete_range;
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE && d)
            rc = keyset_add(dels, &d->key, d->range_end.len ? &d->range_end : NULL);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN &&
            ops[i]->request_txn)
            rc = merge_nested(ops[i]->request_txn, puts, dels);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Etcdserverpb__PutRequest *p = ops[i]->request_put;
        if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT || !p)
            continue;
        if (has_point(puts, &p->key) || dels_hit(dels, &p->key))
            rc = CE_DUP_KEY;
        else
            rc = keyset_add(puts, &p->key, NULL);
    }
    return rc;
}

static int check_branch_dups(Etcdserverpb__RequestOp **ops, size_t n)
{
    keyset puts = {0}, dels = {0};
    int rc = check_intervals(ops, n, &puts, &dels);

    free(puts.v);
    free(dels.v);
    return rc;
}

int mvcc_check_txn(const mvcc *m, const Etcdserverpb__TxnRequest *r)
{
    int rc;

    if (!r)
        return CE_INVAL;
    if ((rc = check_txn_ops(r, m ? (int64_t)m->max_txn_ops : 128)) != 0)
        return rc;
    if ((rc = check_branch_dups(r->success, r->n_success)) != 0)
        return rc;
    return check_branch_dups(r->failure, r->n_failure);
}

/* ---- compares ---- */

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static bool compare_kv(const Etcdserverpb__Compare *c, const Mvccpb__KeyValue *kv)
{
    static const ProtobufCBinaryData empty = {0, NULL};
    int res = 0;

    switch (c->target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE:
        res = bcmp_(&kv->value, c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE
                                    ? &c->value : &empty);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        res = cmp_i64(kv->create_revision, c->target_union_case ==
                      ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION ? c->create_revision : 0);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        res = cmp_i64(kv->mod_revision, c->target_union_case ==
                      ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION ? c->mod_revision : 0);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        res = cmp_i64(kv->version, c->target_union_case ==
                      ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION ? c->version : 0);
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        res = cmp_i64(kv->lease, c->target_union_case ==
                      ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE ? c->lease : 0);
        break;
    default:
        break;
    }
    switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL: return res == 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL: return res != 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER: return res > 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS: return res < 0;
    default: return true;
    }
}

/* Compares one live key (index entry e) and reports whether it holds. */
static int compare_key(mvcc *m, const Etcdserverpb__Compare *c, const idx_ent *e, bool *ok)
{
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT, *full;
    int rc;

    if (c->target != ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE &&
        c->target != ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE) {
        kv.create_revision = e->create;
        kv.mod_revision = e->main;
        kv.version = e->version;
        *ok = compare_kv(c, &kv);
        return 0;
    }
    if ((rc = mvcc__kv_load(m, m->wtxn, e, &full)) != 0)
        return rc;
    *ok = compare_kv(c, full);
    protobuf_c_message_free_unpacked(&full->base, NULL);
    return 0;
}

static int compare_one(mvcc *m, const Etcdserverpb__Compare *c, bool *ok)
{
    Mvccpb__KeyValue zero = MVCCPB__KEY_VALUE__INIT;
    MDB_cursor *cur;
    MDB_val k, d;
    idx_ent e;
    size_t found = 0;
    int rc = mvcc__lmdb_err(mdb_cursor_open(m->wtxn, m->idx, &cur));

    if (rc)
        return rc;
    *ok = true;
    for (rc = mvcc__idx_seek(m, cur, &c->key, &k); rc == 0 && *ok &&
         mvcc__in_range(&k, &c->key, &c->range_end);
         rc = mvcc__lmdb_err(mdb_cursor_get(cur, &k, &d, MDB_NEXT_NODUP))) {
        if ((rc = mvcc__idx_at_cur(cur, cur, &k, 0, true, &e)) != 0)
            break;
        if (e.version == 0)
            continue;
        found++;
        if ((rc = compare_key(m, c, &e, ok)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc && rc != CE_NOTFOUND)
        return rc;
    if (found == 0)
        *ok = c->target != ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE && compare_kv(c, &zero);
    return 0;
}

/* ---- the path: which branch each txn on the way takes, in visiting order ---- */

typedef struct path {
    bool *v;
    size_t n, cap, pos;
} path;

static int path_push(path *p, bool b)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        bool *n = realloc(p->v, cap * sizeof(*n));
        if (!n)
            return CE_NOMEM;
        p->v = n;
        p->cap = cap;
    }
    p->v[p->n++] = b;
    return 0;
}

static Etcdserverpb__RequestOp **branch(const Etcdserverpb__TxnRequest *r, bool ok, size_t *n)
{
    *n = ok ? r->n_success : r->n_failure;
    return ok ? r->success : r->failure;
}

static int txn_path(mvcc *m, const Etcdserverpb__TxnRequest *r, path *p)
{
    Etcdserverpb__RequestOp **ops;
    bool ok = true;
    size_t n;
    int rc;

    for (size_t i = 0; ok && i < r->n_compare; i++)
        if ((rc = compare_one(m, r->compare[i], &ok)) != 0)
            return rc;
    if ((rc = path_push(p, ok)) != 0)
        return rc;
    ops = branch(r, ok, &n);
    for (size_t i = 0; i < n; i++)
        if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN &&
            (rc = txn_path(m, ops[i]->request_txn, p)) != 0)
            return rc;
    return 0;
}

/* ---- store-dependent checks along the path, before any change ---- */

static int check_put_store(mvcc *m, const Etcdserverpb__PutRequest *r)
{
    idx_ent e;
    int rc;

    if (r->ignore_value || r->ignore_lease) {
        rc = mvcc__idx_at(m, m->wtxn, &r->key, -1, &e);
        if (rc == CE_NOTFOUND || (rc == 0 && e.version == 0))
            return CE_KEY_NOT_FOUND;
        if (rc)
            return rc;
    }
    if (r->lease != 0 && m->lease_exists && !m->lease_exists(m->lease_arg, r->lease))
        return CE_LEASE_NOT_FOUND;
    if (r->key.len > m->max_key)
        return CE_REQ_TOO_LARGE;
    return 0;
}

static int check_range_store(mvcc *m, const Etcdserverpb__RangeRequest *r)
{
    if (r->revision == 0)
        return 0;
    if (r->revision > m->brev)
        return CE_FUTURE_REV;
    if (r->revision < (m->bcompact ? m->bcompact : -1))
        return CE_COMPACTED;
    return 0;
}

static int check_store(mvcc *m, const Etcdserverpb__TxnRequest *r, path *p)
{
    size_t n;
    Etcdserverpb__RequestOp **ops = branch(r, p->v[p->pos++], &n);
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        switch (ops[i]->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            rc = check_store(m, ops[i]->request_txn, p);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            rc = check_put_store(m, ops[i]->request_put);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
            rc = check_range_store(m, ops[i]->request_range);
            break;
        default:
            break;
        }
    }
    return rc;
}

/* ---- apply ---- */

static int txn_resp_new(int64_t rev, bool ok, size_t n, Etcdserverpb__TxnResponse **out)
{
    Etcdserverpb__TxnResponse *resp = malloc(sizeof(*resp));

    if (!resp)
        return CE_NOMEM;
    etcdserverpb__txn_response__init(resp);
    resp->succeeded = ok;
    resp->header = mvcc__header_new(rev);
    if (n && (resp->responses = calloc(n, sizeof(*resp->responses))))
        resp->n_responses = n;
    if (!resp->header || (n && !resp->responses)) {
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return CE_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        resp->responses[i] = malloc(sizeof(**resp->responses));
        if (!resp->responses[i]) {
            protobuf_c_message_free_unpacked(&resp->base, NULL);
            return CE_NOMEM;
        }
        etcdserverpb__response_op__init(resp->responses[i]);
    }
    *out = resp;
    return 0;
}

static int txn_apply(mvcc *m, const Etcdserverpb__TxnRequest *r, path *p, int64_t hdr_rev,
                     Etcdserverpb__TxnResponse **out);

static int op_apply(mvcc *m, const Etcdserverpb__RequestOp *op, path *p,
                    Etcdserverpb__ResponseOp *ro)
{
    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
        return mvcc__range_txn(m, m->wtxn, m->sub > 0 ? m->brev + 1 : m->brev, m->bcompact,
                               op->request_range, &ro->response_range);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
        return mvcc__put_apply(m, op->request_put, &ro->response_put);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
        return mvcc__delete_apply(m, op->request_delete_range, &ro->response_delete_range);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        ro->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
        return txn_apply(m, op->request_txn, p, 0, &ro->response_txn);
    default:
        return 0;
    }
}

static int txn_apply(mvcc *m, const Etcdserverpb__TxnRequest *r, path *p, int64_t hdr_rev,
                     Etcdserverpb__TxnResponse **out)
{
    bool ok = p->v[p->pos++];
    size_t n;
    Etcdserverpb__RequestOp **ops = branch(r, ok, &n);
    Etcdserverpb__TxnResponse *resp = NULL;
    int rc = txn_resp_new(hdr_rev, ok, n, &resp);

    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = op_apply(m, ops[i], p, resp->responses[i]);
        if (rc)
            resp->responses[i]->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE__NOT_SET;
    }
    if (rc == 0)
        *out = resp;
    else if (resp)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rc;
}

/* Runs the checked txn in a child transaction; see the file comment. */
static int txn_run(mvcc *m, const Etcdserverpb__TxnRequest *r, path *p,
                   Etcdserverpb__TxnResponse **out)
{
    MDB_txn *parent = m->wtxn, *child;
    size_t nevs = m->nevs;
    uint64_t bytes = m->batch_bytes;
    int batch_err = m->batch_err;
    int rc = mvcc__lmdb_err(mdb_txn_begin(m->env, parent, 0, &child));

    if (rc)
        return rc;
    m->wtxn = child;
    p->pos = 0;
    rc = txn_apply(m, r, p, 0, out);
    m->wtxn = parent;
    if (rc == 0) {
        rc = mvcc__lmdb_err(mdb_txn_commit(child));
        if (rc == 0) {
            (*out)->header->revision = m->sub > 0 ? m->brev + 1 : m->brev;
            return 0;
        }
        protobuf_c_message_free_unpacked(&(*out)->base, NULL);
        *out = NULL;
    } else {
        mdb_txn_abort(child);
    }
    while (m->nevs > nevs)
        protobuf_c_message_free_unpacked(&m->evs[--m->nevs]->base, NULL);
    m->batch_bytes = bytes;
    m->batch_err = batch_err;
    m->sub = 0;
    return rc;
}

int mvcc_txn(mvcc *m, const Etcdserverpb__TxnRequest *r, Etcdserverpb__TxnResponse **out)
{
    path p = {0};
    int rc;

    if (!m->wtxn)
        return CE_INVAL;
    if ((rc = mvcc_check_txn(m, r)) != 0)
        return rc;
    mvcc__request_begin(m);
    if ((rc = txn_path(m, r, &p)) != 0)
        goto out_free_path;
    p.pos = 0;
    if ((rc = check_store(m, r, &p)) != 0)
        goto out_free_path;
    *out = NULL;
    rc = txn_run(m, r, &p, out);
out_free_path:
    mvcc__request_end(m);
    free(p.v);
    return rc;
}
