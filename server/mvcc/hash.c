/*
 * hash.c: HashKV, computed as etcd 3.4 computes it so that members (and etcd itself, given
 * the same history) agree: CRC-32C (Castagnoli) over the bytes "key" (etcd's bucket name),
 * then, in revision order, each kv-table record's key (17/18-byte revision) followed by its
 * value (packed mvccpb.KeyValue), for every record with main revision <= rev. A record at or
 * below the compaction point counts only if compaction at rev would keep it (it is the newest
 * revision <= rev of a key alive at rev), unless no key at all is alive at rev, in which case
 * etcd counts them all. compact_rev reports -1 for a store never compacted, like etcd.
 */
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "err.h"
#include "mvcc_int.h"

/* Whether some key is alive at rev (etcd's "keep" set is not empty). */
static int any_alive(mvcc *m, MDB_txn *t, int64_t rev, bool *alive)
{
    MDB_cursor *c, *look;
    MDB_val k, d;
    idx_ent e;
    int rc = mvcc__lmdb_err(mdb_cursor_open(t, m->idx, &c));

    *alive = false;
    if (rc)
        return rc;
    if ((rc = mvcc__lmdb_err(mdb_cursor_open(t, m->idx, &look))) != 0)
        goto out_close_c;
    for (rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &d, MDB_FIRST)); rc == 0 && !*alive;
         rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &d, MDB_NEXT_NODUP))) {
        rc = mvcc__idx_at_cur(c, look, &k, rev, false, &e);
        if (rc == 0 && e.version > 0)
            *alive = true;
        else if (rc && rc != CE_NOTFOUND)
            break;
    }
    mdb_cursor_close(look);
out_close_c:
    mdb_cursor_close(c);
    return rc == CE_NOTFOUND ? 0 : rc;
}

/* Whether the record (k, v) at or below the compaction point is in the keep set of rev. */
static int kept(mvcc *m, MDB_cursor *idx, const MDB_val *k, const MDB_val *v, int64_t rev,
                bool *keep)
{
    MDB_val uk;
    idx_ent e;
    int rc;

    *keep = false;
    if (k->mv_size != REVKEY_LEN)   /* a tombstone is never kept */
        return 0;
    if ((rc = mvcc__kv_rec_key(v, &uk)) != 0)
        return rc;
    rc = mvcc__idx_lookup(m, idx, &(ProtobufCBinaryData){uk.mv_size, uk.mv_data}, rev, &e);
    if (rc == CE_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    *keep = e.version > 0 && e.main == (int64_t)mvcc__be64(k->mv_data) &&
            e.sub == (int64_t)mvcc__be64((const uint8_t *)k->mv_data + 9);
    return 0;
}

static int hash_records(mvcc *m, MDB_txn *t, int64_t rev, int64_t compact, uint32_t *hash)
{
    MDB_cursor *c, *idx;
    MDB_val k, v;
    bool filter, keep;
    uint32_t h = crc32c(0, "key", 3);
    int rc = any_alive(m, t, rev, &filter);

    if (rc)
        return rc;
    if ((rc = mvcc__lmdb_err(mdb_cursor_open(t, m->idx, &idx))) != 0)
        return rc;
    if ((rc = mvcc__lmdb_err(mdb_cursor_open(t, m->kv, &c))) != 0)
        goto out_close_idx;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        int64_t main = (int64_t)mvcc__be64(k.mv_data);
        if (main > rev)
            break;
        if (filter && main <= compact) {
            if ((rc = kept(m, idx, &k, &v, rev, &keep)) != 0)
                break;
            if (!keep)
                continue;
        }
        h = crc32c(h, k.mv_data, k.mv_size);
        h = crc32c(h, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(c);
    *hash = h;
out_close_idx:
    mdb_cursor_close(idx);
    return rc == MDB_NOTFOUND ? 0 : mvcc__lmdb_err(rc);
}

int mvcc_hash_kv(mvcc *m, int64_t rev, uint32_t *hash, int64_t *compact_rev)
{
    int64_t compact = m->compact_rev;
    MDB_txn *t;
    int rc;

    *hash = 0;
    *compact_rev = compact ? compact : -1;
    if (rev > 0 && compact && rev <= compact)
        return CE_COMPACTED;
    if (rev > m->rev)
        return CE_FUTURE_REV;
    if (rev <= 0)
        rev = m->rev;
    if ((rc = mvcc__read_begin(m, &t)) != 0)
        return rc;
    rc = hash_records(m, t, rev, compact, hash);
    mvcc__read_end(m, t);
    return rc;
}
