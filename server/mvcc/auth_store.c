/*
 * auth_store.c: the auth store's records in the mvcc store (mvcc.h, "Auth table").
 *
 * Table "auth" (plain, a fifth named database of the store's LMDB environment, created by the
 * first auth change; a store without it has auth disabled, no users and no roles). Keys are
 * byte strings chosen by server/auth/ (which documents the records); this file only stores
 * and reads them. Writes happen inside the batch that applies the Raft entry, so the
 * consistent index covers auth changes like every other write, and a Raft snapshot (a copy
 * of the whole environment) carries them.
 *
 * As in lease_store.c the table's handle is opened in each transaction that uses it.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mvcc_int.h"

#define AUTH_DB "auth"

static int auth_dbi(MDB_txn *t, bool create, MDB_dbi *dbi)
{
    return mvcc__lmdb_err(mdb_dbi_open(t, AUTH_DB, create ? MDB_CREATE : 0, dbi));
}

static int write_check(mvcc *m)
{
    if (!m->wtxn)
        return CE_INVAL;
    return m->batch_err;
}

int mvcc_auth_put(mvcc *m, const void *key, size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    MDB_dbi dbi;
    int rc = write_check(m);

    if (rc)
        return rc;
    if (klen == 0 || klen > m->max_key)
        return CE_INVAL;
    rc = auth_dbi(m->wtxn, true, &dbi);
    if (rc == 0)
        rc = mvcc__lmdb_err(mdb_put(m->wtxn, dbi, &k, &v, 0));
    if (rc)
        m->batch_err = rc;
    else
        m->batch_bytes += klen + vlen;
    return rc;
}

int mvcc_auth_del(mvcc *m, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    MDB_dbi dbi;
    int rc = write_check(m);

    if (rc)
        return rc;
    if (klen == 0 || klen > m->max_key)
        return CE_NOTFOUND;
    rc = auth_dbi(m->wtxn, false, &dbi);
    if (rc)
        return rc;
    rc = mvcc__lmdb_err(mdb_del(m->wtxn, dbi, &k, NULL));
    if (rc && rc != CE_NOTFOUND)
        m->batch_err = rc;
    return rc;
}

/* The transaction reads go through: the open batch's, else a read transaction. */
static int reader(mvcc *m, MDB_txn **t)
{
    if (m->wtxn) {
        *t = m->wtxn;
        return 0;
    }
    return mvcc__read_begin(m, t);
}

static void reader_end(mvcc *m, MDB_txn *t)
{
    if (t != m->wtxn)
        mvcc__read_end(m, t);
}

static int get_txn(MDB_txn *t, const void *key, size_t klen, void **val, size_t *vlen)
{
    MDB_val k = {klen, (void *)key}, v;
    MDB_dbi dbi;
    int rc = auth_dbi(t, false, &dbi);

    if (rc == 0)
        rc = mvcc__lmdb_err(mdb_get(t, dbi, &k, &v));
    if (rc)
        return rc;
    *val = malloc(v.mv_size ? v.mv_size : 1);
    if (!*val)
        return CE_NOMEM;
    memcpy(*val, v.mv_data, v.mv_size);
    *vlen = v.mv_size;
    return 0;
}

int mvcc_auth_get(mvcc *m, const void *key, size_t klen, void **val, size_t *vlen)
{
    MDB_txn *t;
    int rc;

    if (klen == 0 || klen > m->max_key)
        return CE_NOTFOUND;
    rc = reader(m, &t);
    if (rc)
        return rc;
    rc = get_txn(t, key, klen, val, vlen);
    reader_end(m, t);
    return rc;
}

static int walk_txn(MDB_txn *t, const void *prefix, size_t plen, mvcc_auth_fn fn, void *arg)
{
    MDB_val k = {plen, (void *)prefix}, v;
    MDB_cursor *c;
    MDB_dbi dbi;
    int rc = auth_dbi(t, false, &dbi);

    if (rc)
        return rc == CE_NOTFOUND ? 0 : rc;
    rc = mvcc__lmdb_err(mdb_cursor_open(t, dbi, &c));
    if (rc)
        return rc;
    for (rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST));
         rc == 0; rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &v, MDB_NEXT))) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen))
            break;
        if ((rc = fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0)
            break;
    }
    mdb_cursor_close(c);
    return rc == CE_NOTFOUND ? 0 : rc;
}

int mvcc_auth_walk(mvcc *m, const void *prefix, size_t plen, mvcc_auth_fn fn, void *arg)
{
    MDB_txn *t;
    int rc = reader(m, &t);

    if (rc)
        return rc;
    rc = walk_txn(t, prefix, plen, fn, arg);
    reader_end(m, t);
    return rc;
}
