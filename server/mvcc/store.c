/*
 * store.c: the LMDB backend of the mvcc store: opening the environment, the three tables and
 * their encodings, the meta record, write batches and their commit.
 *
 * Files: <dir>/data.mdb and <dir>/lock.mdb (one LMDB environment, map size
 * max(2 * quota, 8 GiB), sparse; MDB_NOTLS | MDB_NOMETASYNC | MDB_NORDAHEAD (random access: no
 * readahead filling memory with pages nobody asked for), plus MDB_NOSYNC in tests).
 *
 * Table "kv" (plain; key order = revision order; written only with MDB_APPEND):
 *   key   17 bytes  main revision, int64 big-endian (8) | '_' (1) | sub revision, BE (8)
 *         18 bytes  the same followed by 't' (0x74) for a tombstone (a delete)
 *   value a protobuf-packed mvccpb.KeyValue: for a put every non-zero field (key,
 *         create_revision, mod_revision, version, value, lease); for a tombstone only key.
 *   This is byte for byte etcd's "key" bucket, so HashKV equals etcd's for the same history.
 *
 * Table "index" (MDB_DUPSORT | MDB_DUPFIXED): key = the user key (1..511 bytes, LMDB's limit);
 *   one 32-byte duplicate per revision of that key still stored, sorted ascending:
 *   bytes 0-7   main revision, int64 BE
 *   bytes 8-15  sub revision, int64 BE
 *   bytes 16-23 create_revision (main) of the key's generation at that revision, BE; 0 for a
 *               tombstone
 *   bytes 24-31 version of the key at that revision, BE; 0 marks a tombstone
 *   The newest state of a key is its last duplicate; the state at revision R is the last
 *   duplicate with main <= R (found with MDB_GET_BOTH_RANGE on (R+1, 0) then MDB_PREV_DUP).
 *   A current-revision range is one cursor walk over the index plus one kv lookup per key
 *   returned; counting needs no kv lookup at all.
 *
 * Table "meta" (plain): ASCII key -> 8-byte big-endian unsigned value
 *   "rev"      current store revision (1 on a new store)
 *   "compact"  compaction point (0 = never compacted)
 *   "ci"       consistent index (Raft index of the last applied entry)
 *   "term"     term of that entry
 *   All four are rewritten by every batch commit, in the same LMDB transaction as its data.
 *
 * Deferred durability (mvcc_options.defer_durability): a long-lived parent write transaction
 * (ptxn) holds every batch committed since the last mvcc_flush; each batch is a child
 * transaction of it, so aborting a batch never touches earlier ones. mvcc_flush commits the
 * parent: one fsync for all of them. Meta is written in each batch, so the durable consistent
 * index always matches the durable data.
 *
 * Invariants: every kv record has exactly one index duplicate and vice versa; revisions in kv
 * never exceed meta "rev"; compaction leaves, for each key, no revision <= "compact" except
 * the newest one at or below it, and that one only if it is not a tombstone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "log.h"
#include "mvcc_int.h"

#define GIB (1024ull * 1024 * 1024)

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t mvcc__be64(const void *q)
{
    const uint8_t *p = q;
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void mvcc__revkey(uint8_t out[REVKEY_LEN + 1], int64_t main, int64_t sub)
{
    put_be64(out, (uint64_t)main);
    out[8] = '_';
    put_be64(out + 9, (uint64_t)sub);
    out[REVKEY_LEN] = 't';
}

void mvcc__idxent_enc(uint8_t out[IDXENT_LEN], const idx_ent *e)
{
    put_be64(out, (uint64_t)e->main);
    put_be64(out + 8, (uint64_t)e->sub);
    put_be64(out + 16, (uint64_t)e->create);
    put_be64(out + 24, (uint64_t)e->version);
}

void mvcc__idxent_dec(const void *p, idx_ent *e)
{
    const uint8_t *b = p;
    e->main = (int64_t)mvcc__be64(b);
    e->sub = (int64_t)mvcc__be64(b + 8);
    e->create = (int64_t)mvcc__be64(b + 16);
    e->version = (int64_t)mvcc__be64(b + 24);
}

int mvcc__lmdb_err(int rc)
{
    if (rc < 0 && rc > -1000)       /* already a CE_* code */
        return rc;
    switch (rc) {
    case 0: return 0;
    case MDB_NOTFOUND: return CE_NOTFOUND;
    case MDB_MAP_FULL: return CE_NO_SPACE;
    case ENOMEM: return CE_NOMEM;
    case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID: return CE_CORRUPT;
    case MDB_BAD_VALSIZE: return CE_REQ_TOO_LARGE;
    default: return CE_IO;
    }
}

/* ---- index access ---- */

static int idx_entry_get(MDB_cursor *c, MDB_val *k, MDB_cursor_op op, idx_ent *e)
{
    MDB_val d;
    int rc = mdb_cursor_get(c, k, &d, op);

    if (rc)
        return mvcc__lmdb_err(rc);
    if (d.mv_size != IDXENT_LEN)
        return CE_CORRUPT;
    mvcc__idxent_dec(d.mv_data, e);
    return 0;
}

/* With c's key known to exist: its last duplicate with main <= rev, via look. */
static int idx_before(MDB_cursor *c, MDB_cursor *look, MDB_val *k, int64_t rev, idx_ent *e)
{
    uint8_t probe[IDXENT_LEN] = {0};
    MDB_val kk = *k, d = {IDXENT_LEN, probe};
    int rc;

    put_be64(probe, (uint64_t)rev + 1);
    rc = mdb_cursor_get(look, &kk, &d, MDB_GET_BOTH_RANGE);
    if (rc == MDB_NOTFOUND) {       /* every revision of the key is <= rev */
        if (look == c && (rc = mdb_cursor_get(c, k, &d, MDB_SET)) != 0)
            return mvcc__lmdb_err(rc);
        return idx_entry_get(c, k, MDB_LAST_DUP, e);
    }
    if (rc)
        return mvcc__lmdb_err(rc);
    return idx_entry_get(look, &kk, MDB_PREV_DUP, e);
}

int mvcc__idx_at_cur(MDB_cursor *scan, MDB_cursor *look, MDB_val *key, int64_t rev, bool newest,
                     idx_ent *e)
{
    if (newest)
        return idx_entry_get(scan, key, MDB_LAST_DUP, e);
    return idx_before(scan, look, key, rev, e);
}

int mvcc__idx_lookup(mvcc *m, MDB_cursor *c, const ProtobufCBinaryData *key, int64_t rev,
                     idx_ent *e)
{
    MDB_val k = {key->len, key->data}, d;
    int rc;

    if (key->len == 0 || key->len > m->max_key)
        return CE_NOTFOUND;
    rc = mvcc__lmdb_err(mdb_cursor_get(c, &k, &d, MDB_SET));
    if (rc == 0)
        rc = rev < 0 ? idx_entry_get(c, &k, MDB_LAST_DUP, e) : idx_before(c, c, &k, rev, e);
    return rc;
}

int mvcc__idx_at(mvcc *m, MDB_txn *t, const ProtobufCBinaryData *key, int64_t rev, idx_ent *e)
{
    MDB_cursor *c;
    int rc;

    if (key->len == 0 || key->len > m->max_key)
        return CE_NOTFOUND;
    rc = mdb_cursor_open(t, m->idx, &c);
    if (rc)
        return mvcc__lmdb_err(rc);
    rc = mvcc__idx_lookup(m, c, key, rev, e);
    mdb_cursor_close(c);
    return rc;
}

static int bytes_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

int mvcc__idx_seek(mvcc *m, MDB_cursor *scan, const ProtobufCBinaryData *key, MDB_val *k)
{
    MDB_val d;
    int rc;

    /* A key longer than LMDB allows cannot be stored; seek its prefix, skip what is below. */
    k->mv_size = key->len > m->max_key ? m->max_key : key->len;
    k->mv_data = key->data;
    if (k->mv_size == 0) {
        rc = mdb_cursor_get(scan, k, &d, MDB_FIRST);
        return mvcc__lmdb_err(rc);
    }
    rc = mdb_cursor_get(scan, k, &d, MDB_SET_RANGE);
    while (rc == 0 && bytes_cmp(k->mv_data, k->mv_size, key->data, key->len) < 0)
        rc = mdb_cursor_get(scan, k, &d, MDB_NEXT_NODUP);
    return mvcc__lmdb_err(rc);
}

bool mvcc__in_range(const MDB_val *k, const ProtobufCBinaryData *key,
                    const ProtobufCBinaryData *end)
{
    if (end->len == 0)
        return bytes_cmp(k->mv_data, k->mv_size, key->data, key->len) == 0;
    if (bytes_cmp(k->mv_data, k->mv_size, key->data, key->len) < 0)
        return false;
    if (end->len == 1 && end->data[0] == 0)
        return true;
    return bytes_cmp(k->mv_data, k->mv_size, end->data, end->len) < 0;
}

int mvcc__kv_record(mvcc *m, MDB_txn *t, const idx_ent *e, MDB_val *d)
{
    uint8_t rk[REVKEY_LEN + 1];
    MDB_val k = {REVKEY_LEN, rk};
    int rc;

    mvcc__revkey(rk, e->main, e->sub);
    rc = mdb_get(t, m->kv, &k, d);
    if (rc)
        return rc == MDB_NOTFOUND ? CE_CORRUPT : mvcc__lmdb_err(rc);
    return 0;
}

int mvcc__kv_load(mvcc *m, MDB_txn *t, const idx_ent *e, Mvccpb__KeyValue **out)
{
    MDB_val d;
    int rc = mvcc__kv_record(m, t, e, &d);

    if (rc)
        return rc;
    *out = mvccpb__key_value__unpack(NULL, d.mv_size, d.mv_data);
    return *out ? 0 : CE_CORRUPT;
}

int mvcc__kv_rec_key(const MDB_val *rec, MDB_val *key)
{
    const uint8_t *p = rec->mv_data;
    size_t n = rec->mv_size, i = 1;
    uint64_t len = 0;

    if (n < 2 || p[0] != 0x0a)      /* field 1, wire type 2 */
        return CE_CORRUPT;
    for (int shift = 0; i < n && shift < 64; shift += 7) {
        len |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i++] & 0x80))
            break;
    }
    if (len > n - i)
        return CE_CORRUPT;
    key->mv_data = (void *)(p + i);
    key->mv_size = (size_t)len;
    return 0;
}

/* ---- meta ---- */

static int meta_get(mvcc *m, MDB_txn *t, const char *name, uint64_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    int rc = mdb_get(t, m->meta, &k, &d);

    if (rc == MDB_NOTFOUND)
        return CE_NOTFOUND;
    if (rc)
        return mvcc__lmdb_err(rc);
    if (d.mv_size != 8)
        return CE_CORRUPT;
    *v = mvcc__be64(d.mv_data);
    return 0;
}

static int meta_put(mvcc *m, MDB_txn *t, const char *name, uint64_t v)
{
    uint8_t b[8];
    MDB_val k = {strlen(name), (void *)name}, d = {8, b};

    put_be64(b, v);
    return mvcc__lmdb_err(mdb_put(t, m->meta, &k, &d, 0));
}

static int meta_load(mvcc *m, MDB_txn *t)
{
    uint64_t v;
    int rc;

    rc = meta_get(m, t, "rev", &v);
    if (rc == CE_NOTFOUND) {    /* new store: etcd starts at revision 1 */
        m->rev = 1;
        return 0;
    }
    if (rc)
        return rc;
    m->rev = (int64_t)v;
    if ((rc = meta_get(m, t, "compact", &v)) != 0)
        return rc;
    m->compact_rev = (int64_t)v;
    if ((rc = meta_get(m, t, "ci", &m->ci)) != 0)
        return rc;
    return meta_get(m, t, "term", &m->term);
}

static int meta_store(mvcc *m, MDB_txn *t)
{
    int rc;

    if ((rc = meta_put(m, t, "rev", (uint64_t)m->brev)) != 0)
        return rc;
    if ((rc = meta_put(m, t, "compact", (uint64_t)m->bcompact)) != 0)
        return rc;
    if ((rc = meta_put(m, t, "ci", m->bci)) != 0)
        return rc;
    return meta_put(m, t, "term", m->bterm);
}

/* ---- open / close ---- */

static int env_open(mvcc *m, const mvcc_options *opt)
{
    uint64_t quota = opt->quota_bytes ? opt->quota_bytes : 2 * GIB;
    uint64_t map = quota * 2 > 8 * GIB ? quota * 2 : 8 * GIB;
    unsigned flags = MDB_NOTLS | MDB_NOMETASYNC | MDB_NORDAHEAD | (opt->no_sync ? MDB_NOSYNC : 0);
    int rc;

    m->quota = quota;
    m->defer = opt->defer_durability;
    if ((rc = mdb_env_create(&m->env)) != 0)
        return mvcc__lmdb_err(rc);
    rc = mdb_env_set_maxdbs(m->env, 5); /* kv idx meta lease auth */
    if (rc == 0)
        rc = mdb_env_set_mapsize(m->env, (size_t)map);
    if (rc == 0)
        rc = mdb_env_open(m->env, opt->dir, flags, 0600);
    if (rc) {
        log_error("mvcc: cannot open %s: %s", opt->dir, mdb_strerror(rc));
        mdb_env_close(m->env);
        m->env = NULL;
        return rc == ENOENT || rc == EACCES ? ce_from_errno(rc) : mvcc__lmdb_err(rc);
    }
    m->max_key = (size_t)mdb_env_get_maxkeysize(m->env);
    return 0;
}

static int dbs_open(mvcc *m)
{
    MDB_txn *t;
    int rc = mdb_txn_begin(m->env, NULL, 0, &t);

    if (rc)
        return mvcc__lmdb_err(rc);
    rc = mdb_dbi_open(t, "kv", MDB_CREATE, &m->kv);
    if (rc == 0)
        rc = mdb_dbi_open(t, "index", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &m->idx);
    if (rc == 0)
        rc = mdb_dbi_open(t, "meta", MDB_CREATE, &m->meta);
    rc = mvcc__lmdb_err(rc);
    if (rc == 0)
        rc = meta_load(m, t);
    if (rc == 0)
        return mvcc__lmdb_err(mdb_txn_commit(t));
    mdb_txn_abort(t);
    return rc;
}

int mvcc_open(const mvcc_options *opt, mvcc **out)
{
    mvcc *m;
    int rc;

    if (!opt || !opt->dir || !*opt->dir)
        return CE_INVAL;
    if (mkdir(opt->dir, 0700) != 0 && errno != EEXIST)
        return ce_from_errno(errno);
    m = calloc(1, sizeof(*m));
    if (!m)
        return CE_NOMEM;
    m->max_txn_ops = opt->max_txn_ops ? opt->max_txn_ops : 128;
    m->data_path = malloc(strlen(opt->dir) + sizeof("/data.mdb"));
    if (!m->data_path) {
        rc = CE_NOMEM;
        goto out_free_m;
    }
    strcpy(m->data_path, opt->dir);
    strcat(m->data_path, "/data.mdb");
    if ((rc = env_open(m, opt)) != 0)
        goto out_free_m;
    if ((rc = dbs_open(m)) != 0)
        goto out_close_env;
    *out = m;
    return 0;
out_close_env:
    mdb_env_close(m->env);
out_free_m:
    free(m->data_path);
    free(m);
    return rc;
}

void mvcc_close(mvcc *m)
{
    if (!m)
        return;
    if (m->wtxn)
        mvcc_abort(m);
    if (mvcc_flush(m))
        log_error("mvcc: flushing the store at close failed");
    mvcc__copies_release(m);
    mdb_env_close(m->env);
    free(m->data_path);
    free(m);
}

int64_t mvcc_rev(const mvcc *m) { return m->rev; }
int64_t mvcc_compact_rev(const mvcc *m) { return m->compact_rev; }
uint64_t mvcc_consistent_index(const mvcc *m) { return m->ci; }
uint64_t mvcc_consistent_term(const mvcc *m) { return m->term; }

int64_t mvcc_db_size(const mvcc *m)
{
    struct stat st;

    return stat(m->data_path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* Pages on LMDB's free list (reusable), summed from the free-list table (dbi 0). */
static int64_t free_pages(MDB_txn *t)
{
    MDB_cursor *c;
    MDB_val k, d;
    int64_t n = 0;

    if (mdb_cursor_open(t, 0, &c) != 0)
        return 0;
    while (mdb_cursor_get(c, &k, &d, MDB_NEXT) == 0)
        if (d.mv_size >= sizeof(size_t))
            n += (int64_t)*(const size_t *)d.mv_data;
    mdb_cursor_close(c);
    return n;
}

int64_t mvcc_db_size_in_use(const mvcc *m)
{
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *t;
    int64_t used;

    if (mdb_env_info(m->env, &info) != 0 || mdb_env_stat(m->env, &st) != 0)
        return 0;
    used = (int64_t)info.me_last_pgno + 1;
    if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &t) == 0) {
        used -= free_pages(t);
        mdb_txn_abort(t);
    }
    return used * (int64_t)st.ms_psize;
}

int mvcc_snapshot_fd(mvcc *m, int fd)
{
    int rc;

    if (m->wtxn)
        return CE_INVAL;
    if ((rc = mvcc_flush(m)) != 0)
        return rc;
    return mvcc__lmdb_err(mdb_env_copyfd2(m->env, fd, MDB_CP_COMPACT));
}

/* ---- batches ---- */

int mvcc_begin(mvcc *m)
{
    int rc;

    if (m->wtxn)
        return CE_INVAL;
    if (m->defer && !m->ptxn) {
        rc = mdb_txn_begin(m->env, NULL, 0, &m->ptxn);
        if (rc) {
            m->ptxn = NULL;
            return mvcc__lmdb_err(rc);
        }
    }
    rc = mdb_txn_begin(m->env, m->ptxn, 0, &m->wtxn);
    if (rc) {
        m->wtxn = NULL;
        return mvcc__lmdb_err(rc);
    }
    m->brev = m->rev;
    m->bcompact = m->compact_rev;
    m->bci = m->ci;
    m->bterm = m->term;
    m->batch_err = 0;
    m->batch_bytes = 0;
    m->sub = 0;
    return 0;
}

/* Hands the committed batch's events to the sink, then says the batch is done; they are
 * detached first, so the sink may even open the next batch. */
static void emit_events(mvcc *m)
{
    Mvccpb__Event **evs = m->evs;
    size_t n = m->nevs;

    m->evs = NULL;
    m->nevs = m->capevs = 0;
    for (size_t i = 0; i < n; i++) {
        if (m->sink)
            m->sink(m->sink_arg, evs[i]);
        protobuf_c_message_free_unpacked(&evs[i]->base, NULL);
    }
    free(evs);
    if (n && m->sink && m->sink_done)
        m->sink_done(m->sink_arg);
}

int mvcc_commit(mvcc *m, uint64_t consistent_index, uint64_t term)
{
    int rc;

    if (!m->wtxn)
        return CE_INVAL;
    if (m->batch_err) {
        rc = m->batch_err;
        mvcc_abort(m);
        return rc;
    }
    if (consistent_index > m->bci) {
        m->bci = consistent_index;
        m->bterm = term;
    }
    rc = meta_store(m, m->wtxn);
    if (rc) {
        mvcc_abort(m);
        return rc;
    }
    rc = mdb_txn_commit(m->wtxn);
    m->wtxn = NULL;
    if (rc) {
        mvcc__events_free(m);
        return mvcc__lmdb_err(rc);
    }
    m->rev = m->brev;
    m->compact_rev = m->bcompact;
    m->ci = m->bci;
    m->term = m->bterm;
    emit_events(m);
    return 0;
}

int mvcc_flush(mvcc *m)
{
    int rc;

    if (!m->ptxn || m->wtxn)
        return m->wtxn ? CE_INVAL : 0;
    rc = mdb_txn_commit(m->ptxn);
    m->ptxn = NULL;
    return rc ? mvcc__lmdb_err(rc) : 0;
}

bool mvcc_has_unflushed(const mvcc *m)
{
    return m->ptxn != NULL;
}

int mvcc_sync(mvcc *m)
{
    int rc = mvcc_flush(m);

    if (rc)
        return rc;
    rc = mdb_env_sync(m->env, 1);
    return rc ? mvcc__lmdb_err(rc) : 0;
}

int mvcc__read_begin(mvcc *m, MDB_txn **t)
{
    int rc;

    if (m->ptxn && !m->wtxn) {
        *t = m->ptxn;
        return 0;
    }
    rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, t);
    return rc ? mvcc__lmdb_err(rc) : 0;
}

void mvcc__read_end(mvcc *m, MDB_txn *t)
{
    if (t != m->ptxn)
        mdb_txn_abort(t);
}

void mvcc_abort(mvcc *m)
{
    if (!m->wtxn)
        return;
    mdb_txn_abort(m->wtxn);
    m->wtxn = NULL;
    mvcc__events_free(m);
}

void mvcc_set_consistent_index(mvcc *m, uint64_t index, uint64_t term)
{
    int rc;

    if (m->wtxn) {
        if (index > m->bci) {
            m->bci = index;
            m->bterm = term;
        }
        return;
    }
    if (index <= m->ci)
        return;
    rc = mvcc_begin(m);
    if (rc == 0)
        rc = mvcc_commit(m, index, term);
    if (rc)
        log_error("mvcc: cannot record consistent index %llu: %s",
                  (unsigned long long)index, ce_strerror(rc));
}

void mvcc_set_event_feed(mvcc *m, mvcc_event_fn fn, mvcc_batch_fn done, void *arg)
{
    m->sink = fn;
    m->sink_done = fn ? done : NULL;
    m->sink_arg = arg;
}

void mvcc_set_event_sink(mvcc *m, mvcc_event_fn fn, void *arg)
{
    mvcc_set_event_feed(m, fn, NULL, arg);
}

void mvcc_set_lease_checker(mvcc *m, mvcc_lease_exists_fn fn, void *arg)
{
    m->lease_exists = fn;
    m->lease_arg = arg;
}
