/*
 * mvcc_int.h: what the files of server/mvcc/ share and nobody else sees: the store struct,
 * the encodings of store.c (revision keys, index entries, meta values) and the internal
 * functions each file offers the others (prefix mvcc__).
 *
 * Invariants of struct mvcc:
 *   - rev/compact_rev/ci/term mirror the committed meta table;
 *   - while a batch is open (wtxn != NULL), brev >= rev is the revision the batch has reached
 *     and bcompact >= compact_rev its compaction point; both are adopted on commit;
 *   - while a request is being applied, sub counts its changes: every change gets revision
 *     (brev + 1, sub) and, once the request ends with sub > 0, brev grows by exactly one.
 */
#ifndef CETCD_MVCC_INT_H
#define CETCD_MVCC_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "kv.pb-c.h"
#include "mvcc.h"

#define REVKEY_LEN 17           /* main(8) '_' sub(8); a tombstone adds 't' */
#define IDXENT_LEN 32           /* main(8) sub(8) create_main(8) version(8) */

/* One index entry: a revision of a user key. version == 0 marks a tombstone. */
typedef struct idx_ent {
    int64_t main, sub, create, version;
} idx_ent;

struct mvcc {
    MDB_env *env;
    MDB_dbi kv, idx, meta;
    char *data_path;            /* <dir>/data.mdb, for mvcc_db_size */
    uint64_t quota;
    uint32_t max_txn_ops;
    size_t max_key;             /* LMDB's key size limit */

    int64_t rev, compact_rev;   /* committed */
    uint64_t ci, term;          /* committed */

    bool defer;                 /* deferred durability: batches are children of ptxn */
    MDB_txn *ptxn;              /* deferred mode: committed batches not yet flushed, or NULL */
    MDB_txn *wtxn;              /* open batch, or NULL */
    int64_t brev, bcompact;
    uint64_t bci, bterm;        /* set by mvcc_set_consistent_index inside a batch */
    int batch_err;              /* first failure after writes began: the batch cannot commit */
    int64_t sub;                /* changes made by the request being applied */
    uint64_t batch_bytes;       /* bytes written in the batch, for the quota estimate */
    Mvccpb__Event **evs;        /* events of the batch, in revision order */
    size_t nevs, capevs;

    mvcc_event_fn sink;
    mvcc_batch_fn sink_done;
    void *sink_arg;
    mvcc_lease_exists_fn lease_exists;
    void *lease_arg;
    struct mvcc_copy *copies;   /* copies still pinned (snapcopy.c) */
};

/* store.c: encodings */
uint64_t mvcc__be64(const void *p);
void mvcc__revkey(uint8_t out[REVKEY_LEN + 1], int64_t main, int64_t sub);
void mvcc__idxent_enc(uint8_t out[IDXENT_LEN], const idx_ent *e);
void mvcc__idxent_dec(const void *p, idx_ent *e);
/* CE_* for an LMDB (or errno) code; a CE_* code passes through. */
int mvcc__lmdb_err(int rc);

/* store.c: a transaction for reading everything committed: the held parent transaction in
 * deferred mode (no batch open), else a fresh read-only one. Release with mvcc__read_end. */
int mvcc__read_begin(mvcc *m, MDB_txn **t);
void mvcc__read_end(mvcc *m, MDB_txn *t);

/* store.c: index and kv access, in txn t */
/* The entry of key visible at rev (rev < 0: the newest). 0, CE_NOTFOUND or CE_*. */
int mvcc__idx_at(mvcc *m, MDB_txn *t, const ProtobufCBinaryData *key, int64_t rev, idx_ent *e);
/* The same with an index cursor of the caller's (repositioned). */
int mvcc__idx_lookup(mvcc *m, MDB_cursor *c, const ProtobufCBinaryData *key, int64_t rev,
                     idx_ent *e);
/* Entry at revision of the scan cursor's current key; cursor stays usable for NEXT_NODUP. */
int mvcc__idx_at_cur(MDB_cursor *scan, MDB_cursor *look, MDB_val *key, int64_t rev, bool newest,
                     idx_ent *e);
/* Positions scan at the first index key >= key; 0 or CE_NOTFOUND. */
int mvcc__idx_seek(mvcc *m, MDB_cursor *scan, const ProtobufCBinaryData *key, MDB_val *k);
/* Whether index key k lies in the etcd range [key, end) ("\0" end = no upper bound). */
bool mvcc__in_range(const MDB_val *k, const ProtobufCBinaryData *key,
                    const ProtobufCBinaryData *end);
/* The kv record of index entry e, unpacked on the heap. */
/* The stored record (a packed KeyValue) of revision e, valid until t ends. 0 or CE_*. */
int mvcc__kv_record(mvcc *m, MDB_txn *t, const idx_ent *e, MDB_val *d);
int mvcc__kv_load(mvcc *m, MDB_txn *t, const idx_ent *e, Mvccpb__KeyValue **out);
/* The user key inside a packed kv record (field 1 comes first), without unpacking. */
int mvcc__kv_rec_key(const MDB_val *rec, MDB_val *key);

/* snapcopy.c: a point-in-time copy (see its file comment). Shared with bbolt_export.c, which
 * reads the pinned state through pin while holding run. */
struct mvcc_copy {
    mvcc *m;                       /* NULL once released (end, or the store closed) */
    MDB_txn *pin;                  /* the read transaction; NULL once released */
    struct mvcc_copy *next, *prev; /* on m->copies while pinned */
    int src;                       /* our descriptor of data.mdb */
    uint8_t *meta;                 /* pages 0 and 1 as they were at begin */
    size_t meta_len;
    uint64_t size;                 /* bytes of the copy (an export's once it ended) */
    int64_t rev, compact;          /* the pinned state's revision and compaction point */
    uint64_t ci;                   /* ... and its consistent index */
    MDB_dbi kv, lease, auth;       /* tables of the pinned state (lease, auth if present) */
    bool has_lease, has_auth;
    atomic_bool stop;
    atomic_bool closing;           /* the pin is being released: an export stops */
    pthread_mutex_t run;           /* held while an export reads through pin */
};

/* snapcopy.c: releases every copy's pin (mvcc_close, before the environment closes). */
void mvcc__copies_release(mvcc *m);

/* resp.c: heap message helpers */
Mvccpb__KeyValue *mvcc__kv_new(const void *key, size_t klen, const void *val, size_t vlen);
Etcdserverpb__ResponseHeader *mvcc__header_new(int64_t rev);
int mvcc__bytes_dup(ProtobufCBinaryData *dst, const void *src, size_t len);

/* write.c: changes inside a batch (m->wtxn) */
int mvcc__put_apply(mvcc *m, const Etcdserverpb__PutRequest *r,
                    Etcdserverpb__PutResponse **out);
int mvcc__delete_apply(mvcc *m, const Etcdserverpb__DeleteRangeRequest *r,
                       Etcdserverpb__DeleteRangeResponse **out);
void mvcc__request_begin(mvcc *m);
void mvcc__request_end(mvcc *m);
void mvcc__events_free(mvcc *m);

/* range.c: a Range in txn t, where cur is the revision reads see and compact the point. */
int mvcc__range_txn(mvcc *m, MDB_txn *t, int64_t cur, int64_t compact,
                    const Etcdserverpb__RangeRequest *r, Etcdserverpb__RangeResponse **out);


#endif
