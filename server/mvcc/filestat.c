/*
 * filestat.c: mvcc_stat_file, the statistics `cetcdctl snapshot status` prints for a cetcd
 * snapshot file (see mvcc.h for the numbers and how the hash is defined).
 *
 * The file is opened as an LMDB environment in place: MDB_NOSUBDIR (the path is the data file
 * itself), MDB_RDONLY (opened O_RDONLY, mapped read-only), MDB_NOLOCK (no lock file beside
 * it: a backup directory or a read-only mount stays untouched), MDB_NOTLS. A trailing SHA-256
 * after the last page does not disturb LMDB (it only maps pages up to the meta's last page).
 * Before the first read transaction the file size is compared with the meta's last page, so a
 * short file is refused instead of faulting on a page past its end.
 *
 * Invariant: the walk is read-only and visits every entry of every table exactly once, in
 * key order; one pass, no copy of the file.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "err.h"
#include "mvcc.h"

#define MAX_TABLES 64
#define NAME_MAX_LEN 511

static uint64_t be64(const void *q)
{
    const uint8_t *p = q;
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Picks the store's counters out of table "meta" as the walk passes them. */
static void meta_entry(const MDB_val *k, const MDB_val *v, mvcc_file_stat *out)
{
    if (v->mv_size != 8)
        return;
    if (k->mv_size == 3 && !memcmp(k->mv_data, "rev", 3))
        out->revision = (int64_t)be64(v->mv_data);
    else if (k->mv_size == 7 && !memcmp(k->mv_data, "compact", 7))
        out->compact_revision = (int64_t)be64(v->mv_data);
    else if (k->mv_size == 2 && !memcmp(k->mv_data, "ci", 2))
        out->consistent_index = be64(v->mv_data);
}

/* Hashes and counts every pair of one named table. */
static int table_walk(MDB_txn *t, MDB_dbi dbi, bool is_meta, mvcc_file_stat *out)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(t, dbi, &c);

    if (rc)
        return rc;
    while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
        out->hash = crc32c(out->hash, k.mv_data, k.mv_size);
        out->hash = crc32c(out->hash, v.mv_data, v.mv_size);
        out->total_keys++;
        if (is_meta)
            meta_entry(&k, &v, out);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* One entry of the main database: a named table (walked), or a plain pair. */
static int main_entry(MDB_txn *t, const MDB_val *k, const MDB_val *v, mvcc_file_stat *out)
{
    char name[NAME_MAX_LEN + 1];
    MDB_dbi dbi;
    int rc;

    out->hash = crc32c(out->hash, k->mv_data, k->mv_size);
    if (k->mv_size > NAME_MAX_LEN || memchr(k->mv_data, 0, k->mv_size))
        goto plain;
    memcpy(name, k->mv_data, k->mv_size);
    name[k->mv_size] = 0;
    rc = mdb_dbi_open(t, name, 0, &dbi);
    if (rc == MDB_INCOMPATIBLE || rc == MDB_NOTFOUND)
        goto plain;
    if (rc)
        return rc;
    return table_walk(t, dbi, !strcmp(name, "meta"), out);
plain:
    out->hash = crc32c(out->hash, v->mv_data, v->mv_size);
    out->total_keys++;
    return 0;
}

static int walk_all(MDB_env *env, mvcc_file_stat *out)
{
    MDB_txn *t;
    MDB_cursor *c;
    MDB_dbi main_dbi;
    MDB_val k, v;
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t);

    if (rc)
        return rc;
    if ((rc = mdb_dbi_open(t, NULL, 0, &main_dbi)) || (rc = mdb_cursor_open(t, main_dbi, &c)))
        goto out_abort;
    while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0)
        if ((rc = main_entry(t, &k, &v, out)))
            break;
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        rc = 0;
out_abort:
    mdb_txn_abort(t);
    return rc;
}

/* The file must hold every page up to the meta's last one. */
static int check_size(MDB_env *env, const char *path, mvcc_file_stat *out, char *err,
                      size_t errsz)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    uint64_t need;

    if (mdb_env_info(env, &info) || mdb_env_stat(env, &st))
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file %s: cannot read its LMDB meta", path);
    if (stat(path, &fst) != 0)
        return ce_errf(err, errsz, ce_from_errno(errno), "cannot stat %s: %s", path,
                       strerror(errno));
    need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)fst.st_size < need)
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is truncated: the database needs "
                       "%llu bytes, the file has %llu", (unsigned long long)need,
                       (unsigned long long)fst.st_size);
    out->total_size = (int64_t)need;
    return 0;
}

int mvcc_stat_file(const char *path, mvcc_file_stat *out, char *err, size_t errsz)
{
    mvcc_file_stat s = {.revision = 1};
    MDB_env *env;
    int rc;

    if ((rc = mdb_env_create(&env)))
        return ce_errf(err, errsz, CE_NOMEM, "lmdb: %s", mdb_strerror(rc));
    rc = mdb_env_set_maxdbs(env, MAX_TABLES);
    if (rc == 0)
        rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS, 0400);
    if (rc) {
        rc = ce_errf(err, errsz, rc == ENOENT ? CE_NOTFOUND : rc == EACCES ? CE_IO : CE_CORRUPT,
                     "cannot open snapshot file %s as a cetcd database: %s", path,
                     mdb_strerror(rc));
        goto out_close;
    }
    if ((rc = check_size(env, path, &s, err, errsz)))
        goto out_close;
    if ((rc = walk_all(env, &s))) {
        rc = ce_errf(err, errsz, CE_CORRUPT, "snapshot file %s: reading the cetcd database "
                     "failed: %s", path, mdb_strerror(rc));
        goto out_close;
    }
    *out = s;
out_close:
    mdb_env_close(env);
    return rc;
}
