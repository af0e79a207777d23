/*
 * bbolt_import.c: a new store built from an etcd 3.4 backend image (a bbolt file: what etcd's
 * Maintenance.Snapshot sends and what cetcd's bbolt_export.c writes; schema documented there),
 * for `cetcdctl snapshot restore` of an etcd or cetcd snapshot (server/node/restore.c).
 *
 * What is read, bucket by bucket (the image is walked by the bounds-checked reader,
 * common/bbolt.h, so a malformed image ends in CE_CORRUPT):
 *   key        each record (17-byte revision key, 18 with the tombstone mark 't') -> table
 *              "kv" byte for byte (MDB_APPEND: the bucket is in revision order) and one index
 *              duplicate (main, sub, create_revision, version; 0, 0 for a tombstone) from the
 *              unpacked mvccpb.KeyValue. So keys keep their create/mod revisions and versions.
 *   meta       consistent_index (8 bytes BE) -> meta "ci"; finishedCompactRev -> "compact";
 *              a scheduledCompactRev above it (etcd had not finished that compaction) is then
 *              carried out here (mvcc_compact), as etcd does when it opens such a backend
 *   lease      leasepb.Lease {ID, TTL} -> table "lease" (renewed index = the consistent index)
 *   auth       authEnabled -> auth "enabled", authRevision -> auth "revision"
 *   authUsers  name -> auth "user/<name>" (authpb.User as is; etcd's bcrypt password hashes
 *              are not cetcd's PBKDF2: such users need a new password, `user passwd`)
 *   authRoles  name -> auth "role/<name>" (authpb.Role as is)
 * Other buckets (alarm, cluster, members, members_removed) are not the store's: a restore
 * writes new membership. Store revision = max(last key's main revision, compaction point, 1).
 *
 * Invariants: the target directory holds no store (a fresh environment is created); records
 * are committed in batches of BATCH_RECORDS; on any error the caller removes the directory (a
 * half import is never used: restore.c builds in a temporary directory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.pb-c.h"
#include "bbolt.h"
#include "err.h"
#include "lease.pb-c.h"
#include "mvcc_int.h"

#define BATCH_RECORDS 20000u

struct import {
    mvcc *m;
    struct bbolt *db;
    uint64_t ci;
    int64_t finished, scheduled;
    size_t in_batch;
    char *err;
    size_t errsz;
};

static const struct bbolt_name *name_of(const char *s, struct bbolt_name *n)
{
    n->p = (const uint8_t *)s;
    n->len = strlen(s);
    return n;
}

/* Walks bucket name (a missing bucket is empty). */
static int walk(struct import *im, const char *name, bbolt_kv_fn fn)
{
    struct bbolt_name n;
    int rc = bbolt_foreach(im->db, name_of(name, &n), 1, fn, im, im->err, im->errsz);

    return rc == CE_NOTFOUND ? 0 : rc;
}

/* Commits the batch every BATCH_RECORDS records and opens the next. */
static int batch_tick(struct import *im)
{
    int rc;

    if (++im->in_batch < BATCH_RECORDS)
        return 0;
    im->in_batch = 0;
    if ((rc = mvcc_commit(im->m, im->ci, 0)) != 0)
        return rc;
    return mvcc_begin(im->m);
}

/* ---- key ---- */

static int bad(struct import *im, const char *what, const uint8_t *k, size_t kl)
{
    (void)k;
    return ce_errf(im->err, im->errsz, CE_CORRUPT, "bbolt import: %s (key of %zu bytes)", what,
                   kl);
}

static int key_rec(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   bool is_bucket)
{
    struct import *im = arg;
    mvcc *m = im->m;
    bool tomb = kl == REVKEY_LEN + 1 && k[REVKEY_LEN] == 't';
    MDB_val key = {kl, (void *)k}, val = {vl, (void *)v}, uk, ent;
    uint8_t ie[IDXENT_LEN];
    idx_ent e;
    Mvccpb__KeyValue *kv;
    int rc;

    if (is_bucket || (kl != REVKEY_LEN && !tomb) || k[8] != '_')
        return bad(im, "bucket \"key\": not a revision", k, kl);
    e.main = (int64_t)mvcc__be64(k);
    e.sub = (int64_t)mvcc__be64(k + 9);
    if (e.main < 1 || e.sub < 0)
        return bad(im, "bucket \"key\": revision out of range", k, kl);
    kv = mvccpb__key_value__unpack(NULL, vl, v);
    if (!kv)
        return bad(im, "bucket \"key\": value is not a mvccpb.KeyValue", k, kl);
    e.create = tomb ? 0 : kv->create_revision;
    e.version = tomb ? 0 : kv->version;
    uk.mv_size = kv->key.len;
    uk.mv_data = kv->key.data;
    if (uk.mv_size == 0 || uk.mv_size > m->max_key || (!tomb && e.version < 1))
        rc = ce_errf(im->err, im->errsz, CE_INVAL, "bbolt import: revision %lld: key of %zu "
                     "bytes (cetcd stores 1..%zu) or version %lld", (long long)e.main,
                     uk.mv_size, m->max_key, (long long)e.version);
    else
        rc = mvcc__lmdb_err(mdb_put(m->wtxn, m->kv, &key, &val, MDB_APPEND));
    if (rc == CE_EXISTS)
        rc = bad(im, "bucket \"key\": revision repeated", k, kl);
    if (!rc) {
        mvcc__idxent_enc(ie, &e);
        ent.mv_size = sizeof(ie);
        ent.mv_data = ie;
        rc = mvcc__lmdb_err(mdb_put(m->wtxn, m->idx, &uk, &ent, 0));
    }
    mvccpb__key_value__free_unpacked(kv, NULL);
    if (rc)
        return rc;
    if (e.main > m->brev)
        m->brev = e.main;
    return batch_tick(im);
}

/* ---- meta ---- */

static int meta_rec(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    bool is_bucket)
{
    struct import *im = arg;

    if (is_bucket)
        return 0;
    if (kl == 16 && !memcmp(k, "consistent_index", 16) && vl == 8)
        im->ci = mvcc__be64(v);
    else if (kl == 18 && !memcmp(k, "finishedCompactRev", 18) && vl >= 8)
        im->finished = (int64_t)mvcc__be64(v);
    else if (kl == 19 && !memcmp(k, "scheduledCompactRev", 19) && vl >= 8)
        im->scheduled = (int64_t)mvcc__be64(v);
    if (im->finished < 0 || im->scheduled < 0)
        return ce_errf(im->err, im->errsz, CE_CORRUPT, "bbolt import: negative compaction "
                       "revision");
    return 0;
}

/* ---- lease ---- */

static int lease_rec(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                     bool is_bucket)
{
    struct import *im = arg;
    Leasepb__Lease *l;
    mvcc_lease ml = {0};
    int rc;

    if (is_bucket || kl != 8 || !(l = leasepb__lease__unpack(NULL, vl, v)))
        return ce_errf(im->err, im->errsz, CE_CORRUPT, "bbolt import: bucket \"lease\": "
                       "a record is not a leasepb.Lease under an 8-byte ID");
    ml.id = (int64_t)mvcc__be64(k);
    ml.ttl = l->ttl;
    ml.renewed_index = im->ci;
    leasepb__lease__free_unpacked(l, NULL);
    rc = mvcc_lease_put(im->m, &ml);
    return rc ? rc : batch_tick(im);
}

/* ---- auth ---- */

static int auth_put(struct import *im, const char *prefix, const uint8_t *k, size_t kl,
                    const uint8_t *v, size_t vl)
{
    size_t pl = strlen(prefix);
    char *key = malloc(pl + kl);
    int rc;

    if (!key)
        return CE_NOMEM;
    memcpy(key, prefix, pl);
    memcpy(key + pl, k, kl);
    rc = mvcc_auth_put(im->m, key, pl + kl, v, vl);
    free(key);
    return rc ? rc : batch_tick(im);
}

static int auth_rec(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    bool is_bucket)
{
    struct import *im = arg;

    if (is_bucket)
        return 0;
    if (kl == 11 && !memcmp(k, "authEnabled", 11) && vl == 1)
        return auth_put(im, "", (const uint8_t *)"enabled", 7, v, vl);
    if (kl == 12 && !memcmp(k, "authRevision", 12) && vl == 8)
        return auth_put(im, "", (const uint8_t *)"revision", 8, v, vl);
    return 0;
}

/* A record of authUsers or authRoles: it must unpack as message d before it is stored. */
static int auth_msg_rec(struct import *im, const ProtobufCMessageDescriptor *d,
                        const char *bucket, const char *prefix, const uint8_t *k, size_t kl,
                        const uint8_t *v, size_t vl, bool is_bucket)
{
    ProtobufCMessage *msg = is_bucket ? NULL : protobuf_c_message_unpack(d, NULL, vl, v);

    if (!msg)
        return ce_errf(im->err, im->errsz, CE_CORRUPT, "bbolt import: bucket \"%s\": "
                       "a record is not an %s", bucket, d->name);
    protobuf_c_message_free_unpacked(msg, NULL);
    return auth_put(im, prefix, k, kl, v, vl);
}

static int user_rec(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    bool is_bucket)
{
    return auth_msg_rec(arg, &authpb__user__descriptor, "authUsers", "user/", k, kl, v, vl,
                        is_bucket);
}

static int role_rec(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    bool is_bucket)
{
    return auth_msg_rec(arg, &authpb__role__descriptor, "authRoles", "role/", k, kl, v, vl,
                        is_bucket);
}

/* ---- the whole import ---- */

/* Inside the open batch: every bucket; then the revision and the compaction point. */
static int import_all(struct import *im)
{
    mvcc *m = im->m;
    int rc = walk(im, "meta", meta_rec);

    if (!rc)
        rc = walk(im, "key", key_rec);
    if (!rc)
        rc = walk(im, "lease", lease_rec);
    if (!rc)
        rc = walk(im, "auth", auth_rec);
    if (!rc)
        rc = walk(im, "authUsers", user_rec);
    if (!rc)
        rc = walk(im, "authRoles", role_rec);
    if (rc)
        return rc;
    if (m->brev < im->finished)
        m->brev = im->finished;
    if (m->brev < im->scheduled)
        m->brev = im->scheduled;
    m->bcompact = im->finished;
    if ((rc = mvcc_commit(m, im->ci, 0)) != 0 || im->scheduled <= im->finished)
        return rc;
    if ((rc = mvcc_begin(m)) != 0)
        return rc;
    if ((rc = mvcc_compact(m, im->scheduled)) != 0) {
        mvcc_abort(m);
        return rc;
    }
    return mvcc_commit(m, im->ci, 0);
}

int mvcc_import_bbolt(const char *dir, const void *image, size_t len, char *err, size_t errsz)
{
    struct import im = {.err = err, .errsz = errsz};
    mvcc_options mo = {.dir = dir};
    int rc;

    if (err && errsz)
        err[0] = 0;
    rc = bbolt_open(image, len, &im.db, err, errsz);
    if (rc)
        return rc;
    if ((rc = mvcc_open(&mo, &im.m)) != 0) {
        ce_errf(err, errsz, rc, "bbolt import: cannot create the store in %s: %s", dir,
                ce_strerror(rc));
        goto out_close_db;
    }
    if (mvcc_rev(im.m) > 1 || mvcc_consistent_index(im.m) > 0) {
        rc = ce_errf(err, errsz, CE_EXISTS, "bbolt import: %s already holds a store", dir);
        goto out_close_store;
    }
    if ((rc = mvcc_begin(im.m)) != 0)
        goto out_close_store;
    rc = import_all(&im);
    if (rc && im.m->wtxn)
        mvcc_abort(im.m);
    if (rc && err && errsz && !err[0])
        ce_errf(err, errsz, rc, "bbolt import: %s", ce_strerror(rc));
out_close_store:
    mvcc_close(im.m);
out_close_db:
    bbolt_close(im.db);
    return rc;
}
