/*
 * bbolt_export.c: the store's pinned state (a mvcc_copy, snapcopy.c) written as etcd 3.4's
 * backend: a bbolt file (common/bbolt_write.h) that etcd's own tools read (`etcdctl snapshot
 * status`, `etcdctl snapshot restore`, etcd started on the restored directory), and that
 * `cetcdctl snapshot restore` imports back (bbolt_import.c). What Maintenance.Snapshot streams.
 *
 * Buckets, in bbolt's (name) order, and what each holds (etcd 3.4's schema):
 *   alarm            empty (cetcd keeps no alarm in the store)
 *   auth             "authEnabled" -> 1 byte (1 enabled, 0 disabled), when the store has
 *                    the record; "authRevision" -> 8 bytes, uint64 big-endian, when it has one
 *   authRoles        role name -> authpb.Role (the store's "role/<name>" record, byte for byte)
 *   authUsers        user name -> authpb.User (the store's "user/<name>" record: its password
 *                    field is cetcd's PBKDF2 string, which etcd's bcrypt cannot check: such a
 *                    user needs a new password in etcd; users without a password work as is)
 *   cluster          empty (etcd writes its cluster version there when it starts)
 *   key              the store's table "kv" byte for byte: 17-byte revision keys (main BE, '_',
 *                    sub BE; 18 with the 't' of a tombstone) -> packed mvccpb.KeyValue
 *   lease            lease ID (8 bytes BE) -> leasepb.Lease {ID, TTL} (proto/lease.proto)
 *   members          empty (a restore writes the new members; etcdctl clears the bucket)
 *   members_removed  empty
 *   meta             "consistent_index" -> 8 bytes BE; when the store was compacted,
 *                    "finishedCompactRev" and "scheduledCompactRev" -> the compaction point as a
 *                    17-byte revision (main BE, '_', sub 0)
 * The copy is the store at the pinned revision: a key, lease or user of later batches is not in
 * it. `etcdctl snapshot status` on the file gives revision = the last key's main revision and
 * total keys = the entries of all buckets.
 *
 * Invariants: runs on any thread, reading only through the pinned read transaction while
 * holding the copy's run lock (release_pin takes the lock after setting closing); the stop flags
 * are checked every STOP_EVERY records; an error or a stop leaves the file with no valid meta
 * page (the writer's rule), never a snapshot that looks whole.
 */
#include <stdlib.h>
#include <string.h>

#include "bbolt_write.h"
#include "err.h"
#include "lease.pb-c.h"
#include "mvcc_int.h"

#define STOP_EVERY 1024u
#define LEASE_BUF 32             /* a packed leasepb.Lease: 2 tags + 2 varints of <= 10 bytes */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

struct export {
    mvcc_copy *c;
    struct bbolt_writer *w;
    unsigned since_check;
};

static bool stopping(struct export *x)
{
    if (++x->since_check < STOP_EVERY)
        return false;
    x->since_check = 0;
    return atomic_load(&x->c->stop) || atomic_load(&x->c->closing);
}

/* Puts each record of table dbi whose key starts with prefix, the prefix cut off the key;
 * conv (may be NULL) rewrites the value into buf first. */
typedef int (*conv_fn)(const MDB_val *k, const MDB_val *v, uint8_t *buf, size_t *len);

static int put_table(struct export *x, MDB_dbi dbi, const char *prefix, conv_fn conv)
{
    size_t plen = strlen(prefix);
    MDB_val k = {plen, (void *)prefix}, v;
    MDB_cursor *cur;
    uint8_t buf[LEASE_BUF];
    int rc = mvcc__lmdb_err(mdb_cursor_open(x->c->pin, dbi, &cur));

    if (rc)
        return rc;
    for (rc = mvcc__lmdb_err(mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST));
         rc == 0; rc = mvcc__lmdb_err(mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
        size_t len = v.mv_size;
        const void *val = v.mv_data;
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen))
            break;
        if (k.mv_size == plen)
            continue;                             /* nothing left of the key: not a record */
        if (stopping(x)) {
            rc = CE_STOPPED;
            break;
        }
        if (conv) {
            if ((rc = conv(&k, &v, buf, &len)) != 0)
                break;
            val = buf;
        }
        rc = bbolt_writer_put(x->w, (const uint8_t *)k.mv_data + plen, k.mv_size - plen, val,
                              len);
        if (rc)
            break;
    }
    mdb_cursor_close(cur);
    return rc == CE_NOTFOUND ? 0 : rc;
}

/* A lease record (TTL BE, renewed index BE) as leasepb.Lease {ID, TTL}. */
static int lease_conv(const MDB_val *k, const MDB_val *v, uint8_t *buf, size_t *len)
{
    Leasepb__Lease l = LEASEPB__LEASE__INIT;

    if (k->mv_size != 8 || v->mv_size < 8)
        return CE_CORRUPT;
    l.id = (int64_t)mvcc__be64(k->mv_data);
    l.ttl = (int64_t)mvcc__be64(v->mv_data);
    *len = leasepb__lease__pack(&l, buf);
    return 0;
}

static int bucket(struct export *x, const char *name)
{
    return bbolt_writer_bucket(x->w, name, strlen(name));
}

/* "auth": the flag and the revision, under etcd's names, when the store has them. */
static int auth_bucket(struct export *x)
{
    static const struct { const char *ours, *etcds; } recs[] = {
        {"enabled", "authEnabled"}, {"revision", "authRevision"}};
    int rc = bucket(x, "auth");

    for (size_t i = 0; !rc && x->c->has_auth && i < 2; i++) {
        MDB_val k = {strlen(recs[i].ours), (void *)recs[i].ours}, v;
        int g = mdb_get(x->c->pin, x->c->auth, &k, &v);
        if (g == MDB_NOTFOUND)
            continue;
        rc = g ? mvcc__lmdb_err(g)
               : bbolt_writer_put(x->w, recs[i].etcds, strlen(recs[i].etcds), v.mv_data,
                                  v.mv_size);
    }
    return rc;
}

static int auth_records(struct export *x, const char *name, const char *prefix)
{
    int rc = bucket(x, name);

    return rc || !x->c->has_auth ? rc : put_table(x, x->c->auth, prefix, NULL);
}

static int meta_bucket(struct export *x)
{
    uint8_t ci[8], rev[REVKEY_LEN + 1];
    int rc = bucket(x, "meta");

    put_be64(ci, x->c->ci);
    if (!rc)
        rc = bbolt_writer_put(x->w, "consistent_index", 16, ci, sizeof(ci));
    if (rc || x->c->compact <= 0)
        return rc;
    mvcc__revkey(rev, x->c->compact, 0);
    rc = bbolt_writer_put(x->w, "finishedCompactRev", 18, rev, REVKEY_LEN);
    return rc ? rc : bbolt_writer_put(x->w, "scheduledCompactRev", 19, rev, REVKEY_LEN);
}

/* Every bucket, in name order. */
static int export_all(struct export *x)
{
    int rc = bucket(x, "alarm");

    if (!rc)
        rc = auth_bucket(x);
    if (!rc)
        rc = auth_records(x, "authRoles", "role/");
    if (!rc)
        rc = auth_records(x, "authUsers", "user/");
    if (!rc)
        rc = bucket(x, "cluster");
    if (!rc)
        rc = bucket(x, "key");
    if (!rc)
        rc = put_table(x, x->c->kv, "", NULL);
    if (!rc)
        rc = bucket(x, "lease");
    if (!rc && x->c->has_lease)
        rc = put_table(x, x->c->lease, "", lease_conv);
    if (!rc)
        rc = bucket(x, "members");
    if (!rc)
        rc = bucket(x, "members_removed");
    return rc ? rc : meta_bucket(x);
}

int mvcc_copy_export(mvcc_copy *c, int fd, uint64_t *size)
{
    struct export x = {.c = c};
    int rc;

    pthread_mutex_lock(&c->run);
    if (!c->pin || atomic_load(&c->closing)) {
        rc = CE_STOPPED;
        goto out_unlock;
    }
    if ((rc = bbolt_writer_new(fd, &x.w)) != 0)
        goto out_unlock;
    rc = export_all(&x);
    if (!rc)
        rc = bbolt_writer_finish(x.w, &c->size);
    bbolt_writer_free(x.w);
    if (!rc && size)
        *size = c->size;
out_unlock:
    pthread_mutex_unlock(&c->run);
    return rc;
}
