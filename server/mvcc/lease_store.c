/*
 * lease_store.c: leases in the mvcc store (mvcc.h, "Leases").
 *
 * Table "lease" (plain, a fourth named database of the store's LMDB environment, created by
 * the first lease written; a store without it has no leases):
 *   key   8 bytes  lease ID, int64 two's complement, big-endian
 *   value 16 bytes bytes 0-7  granted TTL in seconds, int64 big-endian
 *                  bytes 8-15 renewed_index: Raft index of the entry that last granted or
 *                             renewed the lease, uint64 big-endian
 * A grant or a renewal overwrites the record; a revoke (or an expiry, which is a revoke)
 * deletes it in the same batch, and the same revision, as the lease's keys.
 *
 * Attached keys are not stored here: a key is attached to lease L when its newest KeyValue
 * (table "kv", see store.c) is live and has lease = L. mvcc_lease_attached finds them with one
 * walk over the index, reading the lease field straight from each packed record (protobuf
 * field 6, a varint) without unpacking it.
 *
 * The table's handle is opened in each transaction that uses it (a name lookup in memory
 * once the environment knows it), so store.c needs no change for it.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "mvcc_int.h"

#define LEASE_DB "lease"
#define LEASE_VAL_LEN 16

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The table's handle in t; CE_NOTFOUND when it does not exist and create is false. */
static int lease_dbi(MDB_txn *t, bool create, MDB_dbi *dbi)
{
    return mvcc__lmdb_err(mdb_dbi_open(t, LEASE_DB, create ? MDB_CREATE : 0, dbi));
}

int mvcc_lease_put(mvcc *m, const mvcc_lease *l)
{
    uint8_t k[8], v[LEASE_VAL_LEN];
    MDB_val key = {sizeof(k), k}, val = {sizeof(v), v};
    MDB_dbi dbi;
    int rc;

    if (!m->wtxn)
        return CE_INVAL;
    if (m->batch_err)
        return m->batch_err;
    put_be64(k, (uint64_t)l->id);
    put_be64(v, (uint64_t)l->ttl);
    put_be64(v + 8, l->renewed_index);
    rc = lease_dbi(m->wtxn, true, &dbi);
    if (rc == 0)
        rc = mvcc__lmdb_err(mdb_put(m->wtxn, dbi, &key, &val, 0));
    if (rc)
        m->batch_err = rc;      /* LMDB wants a failed write transaction aborted */
    else
        m->batch_bytes += sizeof(k) + sizeof(v);
    return rc;
}

/* ---- reading the lease of a packed KeyValue -------------------------------------------- */

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;

    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* KeyValue.lease (field 6) of a packed record; 0 when absent. 0 or CE_CORRUPT. */
static int rec_lease(const MDB_val *rec, int64_t *lease)
{
    const uint8_t *p = rec->mv_data, *end = p + rec->mv_size;
    uint64_t tag, v;

    *lease = 0;
    while (p < end) {
        if (!varint(&p, end, &tag))
            return CE_CORRUPT;
        if ((tag & 7) == 0) {
            if (!varint(&p, end, &v))
                return CE_CORRUPT;
            if ((tag >> 3) == 6)
                *lease = (int64_t)v;
        } else if ((tag & 7) == 2) {
            if (!varint(&p, end, &v) || v > (uint64_t)(end - p))
                return CE_CORRUPT;
            p += v;
        } else {
            return CE_CORRUPT;
        }
    }
    return 0;
}

/* The lease named by the live revision e (version > 0) of a key, read in t. */
static int entry_lease(mvcc *m, MDB_txn *t, const idx_ent *e, int64_t *lease)
{
    MDB_val d;
    int rc = mvcc__kv_record(m, t, e, &d);

    return rc ? rc : rec_lease(&d, lease);
}

/* ---- revoke ---------------------------------------------------------------------------- */

/* Deletes key if its live revision is attached to id. */
static int revoke_key(mvcc *m, int64_t id, const ProtobufCBinaryData *key)
{
    Etcdserverpb__DeleteRangeRequest dr = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    int64_t lease;
    idx_ent e;
    int rc = mvcc__idx_at(m, m->wtxn, key, -1, &e);

    if (rc == CE_NOTFOUND || (rc == 0 && e.version == 0))
        return 0;
    if (rc == 0)
        rc = entry_lease(m, m->wtxn, &e, &lease);
    if (rc)
        return rc;
    if (lease != id) {
        log_warn("mvcc: revoking lease %016llx: a key is attached to %016llx; kept",
                 (unsigned long long)id, (unsigned long long)lease);
        return 0;
    }
    dr.key = *key;
    return mvcc__delete_apply(m, &dr, NULL);
}

static int record_delete(mvcc *m, int64_t id)
{
    uint8_t k[8];
    MDB_val key = {sizeof(k), k};
    MDB_dbi dbi;
    int rc = lease_dbi(m->wtxn, false, &dbi);

    if (rc == CE_NOTFOUND)
        return 0;
    put_be64(k, (uint64_t)id);
    if (rc == 0)
        rc = mdb_del(m->wtxn, dbi, &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : mvcc__lmdb_err(rc);
}

static int revoke_response(int64_t rev, Etcdserverpb__LeaseRevokeResponse **out)
{
    Etcdserverpb__LeaseRevokeResponse *resp = malloc(sizeof(*resp));

    if (!resp)
        return CE_NOMEM;
    etcdserverpb__lease_revoke_response__init(resp);
    resp->header = mvcc__header_new(rev);
    if (!resp->header) {
        free(resp);
        return CE_NOMEM;
    }
    *out = resp;
    return 0;
}

int mvcc_lease_revoke(mvcc *m, int64_t id, const ProtobufCBinaryData *keys, size_t n,
                      Etcdserverpb__LeaseRevokeResponse **out)
{
    int rc = 0;

    if (!m->wtxn)
        return CE_INVAL;
    if (m->batch_err)
        return m->batch_err;
    mvcc__request_begin(m);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = revoke_key(m, id, &keys[i]);
    if (rc == 0)
        rc = record_delete(m, id);
    mvcc__request_end(m);
    if (rc == 0 && out)
        rc = revoke_response(m->brev, out);
    if (rc && !m->batch_err)
        m->batch_err = rc;      /* keys may be gone already: the batch must not commit */
    return rc;
}

/* ---- reading back ---------------------------------------------------------------------- */

static int list_txn(MDB_txn *t, mvcc_lease_fn fn, void *arg)
{
    MDB_cursor *c;
    MDB_val k, d;
    MDB_dbi dbi;
    int rc = lease_dbi(t, false, &dbi);

    if (rc)
        return rc == CE_NOTFOUND ? 0 : rc;
    rc = mvcc__lmdb_err(mdb_cursor_open(t, dbi, &c));
    if (rc)
        return rc;
    while ((rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) == 0) {
        mvcc_lease l;
        if (k.mv_size != 8 || d.mv_size != LEASE_VAL_LEN) {
            rc = CE_CORRUPT;
            break;
        }
        l.id = (int64_t)mvcc__be64(k.mv_data);
        l.ttl = (int64_t)mvcc__be64(d.mv_data);
        l.renewed_index = mvcc__be64((const uint8_t *)d.mv_data + 8);
        if ((rc = fn(arg, &l)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : mvcc__lmdb_err(rc);
}

int mvcc_lease_list(mvcc *m, mvcc_lease_fn fn, void *arg)
{
    MDB_txn *t;
    int rc;

    if (m->wtxn)
        return CE_INVAL;
    rc = mvcc__read_begin(m, &t);
    if (rc)
        return rc;
    rc = list_txn(t, fn, arg);
    mvcc__read_end(m, t);
    return rc;
}

static int attached_txn(mvcc *m, MDB_txn *t, mvcc_lease_key_fn fn, void *arg)
{
    MDB_cursor *c;
    MDB_val k, d;
    int rc = mvcc__lmdb_err(mdb_cursor_open(t, m->idx, &c));

    if (rc)
        return rc;
    for (rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &d, MDB_FIRST)); rc == 0;
         rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &d, MDB_NEXT_NODUP))) {
        ProtobufCBinaryData key = {k.mv_size, k.mv_data};
        int64_t lease = 0;
        idx_ent e;
        if ((rc = mvcc__idx_at_cur(c, c, &k, 0, true, &e)) != 0)
            break;
        if (e.version > 0 && (rc = entry_lease(m, t, &e, &lease)) != 0)
            break;
        if (lease && (rc = fn(arg, &key, lease)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == CE_NOTFOUND ? 0 : rc;
}

int mvcc_lease_attached(mvcc *m, mvcc_lease_key_fn fn, void *arg)
{
    MDB_txn *t;
    int rc;

    if (m->wtxn)
        return CE_INVAL;
    rc = mvcc__read_begin(m, &t);
    if (rc)
        return rc;
    rc = attached_txn(m, t, fn, arg);
    mvcc__read_end(m, t);
    return rc;
}
