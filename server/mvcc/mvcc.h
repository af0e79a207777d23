/*
 * mvcc.h: the multi-version key-value store of cetcd, on LMDB.
 *
 * Every change gets a revision (main, sub): main increases by one per applied write request
 * (a Put, a DeleteRange that deleted something, a Txn that changed something), sub numbers the
 * changes inside it. Each key has create_revision, mod_revision and version (1 on creation,
 * +1 per change, reset by a delete, which leaves a tombstone). Reads at a revision see the
 * store as it was then, until compaction removes history below the compaction point.
 *
 * The store applies whole etcd requests (Put, DeleteRange, Txn, Compaction) decoded by
 * protobuf-c, and answers Range reads. Responses are built fully on the heap: every pointer in
 * them (sub-messages, repeated arrays, bytes) is malloc'd, so protobuf_c_message_free_unpacked(
 * msg, NULL) frees one completely. Response headers carry only `revision`; the caller fills
 * cluster_id, member_id and raft_term.
 *
 * Durability: writes are applied in batches (mvcc_begin .. mvcc_commit) that also record the
 * Raft index they cover (the "consistent index"), so a restart knows which log entries are
 * already in the store. Invariant: consistent_index only grows; an entry at or below it is
 * never applied twice.
 *
 * Threading: one writer (the node's thread). Reads may run on the same thread between batches.
 */
#ifndef CETCD_MVCC_H
#define CETCD_MVCC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.pb-c.h"

typedef struct mvcc mvcc;

typedef struct mvcc_options {
    const char *dir;            /* directory holding the LMDB files (created if missing) */
    uint64_t quota_bytes;       /* --quota-backend-bytes; 0 = default 2 GiB */
    uint32_t max_txn_ops;       /* --max-txn-ops; 0 = default 128 */
    bool no_sync;               /* tests only: skip fsync of LMDB commits */
    bool defer_durability;      /* batches become durable at mvcc_flush(), not at commit */
} mvcc_options;

/* Opens (or creates) the store. Returns 0 or CE_*. */
int mvcc_open(const mvcc_options *opt, mvcc **out);
void mvcc_close(mvcc *m);

/* Current store revision (1 on an empty store, like etcd), the compaction point (0 = none). */
int64_t mvcc_rev(const mvcc *m);
int64_t mvcc_compact_rev(const mvcc *m);
/* Raft index of the last applied entry recorded in the store (0 if none), and its term. */
uint64_t mvcc_consistent_index(const mvcc *m);
uint64_t mvcc_consistent_term(const mvcc *m);
/* Size of the database file, and bytes actually in use. */
int64_t mvcc_db_size(const mvcc *m);
int64_t mvcc_db_size_in_use(const mvcc *m);

/* Validation done before a request is proposed (no store access needed): empty key,
 * too many txn ops, duplicate keys in a txn's puts/deletes. Returns 0 or CE_*. */
int mvcc_check_put(const Etcdserverpb__PutRequest *r);
int mvcc_check_delete(const Etcdserverpb__DeleteRangeRequest *r);
int mvcc_check_range(const Etcdserverpb__RangeRequest *r);
int mvcc_check_txn(const mvcc *m, const Etcdserverpb__TxnRequest *r);

/* A write batch: begin, apply any number of requests, commit with the raft index/term of the
 * last entry covered. Nothing is visible to readers before commit. */
int mvcc_begin(mvcc *m);
int mvcc_commit(mvcc *m, uint64_t consistent_index, uint64_t term);
void mvcc_abort(mvcc *m);
/*
 * Deferred durability (mvcc_options.defer_durability; what the node uses, as etcd's backend
 * batches its bbolt commits): mvcc_commit makes a batch visible to every later read and to the
 * event sink at once, but it reaches the disk only at the next mvcc_flush(), which commits all
 * batches since the last flush in one LMDB transaction (one fsync). The WAL holds every entry
 * above the durable consistent index, so a crash loses nothing: the node re-applies them.
 * Reads then go through the held transaction, so they must run on the writer's thread and not
 * while a batch is open (the node never reads inside a batch).
 * mvcc_flush is a no-op without deferral or when nothing is pending. 0 or CE_*.
 */
int mvcc_flush(mvcc *m);
/* True when committed batches await mvcc_flush(). */
bool mvcc_has_unflushed(const mvcc *m);
/* Makes every committed batch durable (flush, then fsync of the data file); used before a
 * snapshot lets the WAL be trimmed. */
int mvcc_sync(mvcc *m);
/* Only advance the consistent index (for entries that change no key: empty, conf changes). */
void mvcc_set_consistent_index(mvcc *m, uint64_t index, uint64_t term);

/* Apply inside a batch. On success *out is a heap response (header->revision set). A request
 * that fails validation against the store (e.g. compacted revision in a txn range) returns
 * CE_* and changes nothing. */
int mvcc_put(mvcc *m, const Etcdserverpb__PutRequest *r, Etcdserverpb__PutResponse **out);
/* True when bytes more (etcd's cost estimate of a request) keep the store within its quota:
 * pages in use up to the high-water mark plus the open batch. Asked before a write is
 * proposed, never while applying: the answer depends on this member's file, and applying must
 * give the same result on every member. */
bool mvcc_has_room(mvcc *m, uint64_t bytes);
int mvcc_delete(mvcc *m, const Etcdserverpb__DeleteRangeRequest *r,
                Etcdserverpb__DeleteRangeResponse **out);
int mvcc_txn(mvcc *m, const Etcdserverpb__TxnRequest *r, Etcdserverpb__TxnResponse **out);
/* Compaction to rev: CE_COMPACTED if rev <= compact point, CE_FUTURE_REV if rev > current. */
int mvcc_compact(mvcc *m, int64_t rev);

/* Reads (outside a batch, in an LMDB read transaction). */
int mvcc_range(mvcc *m, const Etcdserverpb__RangeRequest *r, Etcdserverpb__RangeResponse **out);
/* HashKV: CRC-32C of every key-value revision <= rev (rev 0 = current), above the compaction
 * point, in revision order, as etcd computes it; also returns the compaction revision. */
int mvcc_hash_kv(mvcc *m, int64_t rev, uint32_t *hash, int64_t *compact_rev);

/* Change feed for watchers: after a batch commits, fn gets each of its events in revision
 * order (each valid only during the call), then done(arg) once, if the batch had any, so the
 * receiver can act on the batch as a whole. Without a feed (fn NULL) writes keep no events at
 * all (no prev_kv lookups, no copies). Set or change it only between batches (the receiver
 * may do so from done). */
typedef void (*mvcc_event_fn)(void *arg, const Mvccpb__Event *ev);
typedef void (*mvcc_batch_fn)(void *arg);
void mvcc_set_event_feed(mvcc *m, mvcc_event_fn fn, mvcc_batch_fn done, void *arg);
/* The same without the batch hook. */
void mvcc_set_event_sink(mvcc *m, mvcc_event_fn fn, void *arg);

/* Writes a consistent copy of the whole database (an LMDB file, free pages left out) to fd, on
 * the writer's thread and blocking it until done (the server copies with mvcc_copy_* below;
 * this compacting copy serves tests and tools); outside a batch. A store opened on a directory
 * holding that file as data.mdb is the same store (revision, compaction point, consistent
 * index included). Returns 0 or CE_*. */
int mvcc_snapshot_fd(mvcc *m, int fd);

/*
 * Point-in-time copies written off the writer's thread (snapcopy.c; driven by the node's
 * node_copy_* for Maintenance.Snapshot and Raft snapshot data):
 * a copy of a store of any size without stalling its writer. mvcc_copy_begin (writer's thread,
 * outside a batch) makes committed batches durable and pins the state they form: its pages are
 * not reused while pinned. mvcc_copy_run (any thread, once) writes the copy to fd at offset 0:
 * exactly mvcc_copy_size bytes, an LMDB data file (free pages included, not compacted) that,
 * opened as data.mdb, is the store at revision mvcc_copy_rev. mvcc_copy_stop (any thread) makes
 * a run in progress return CE_STOPPED soon. mvcc_copy_end (writer's thread, after run returned,
 * or instead of it) unpins and frees. mvcc_close releases the pins of copies still open; their
 * runs still succeed and mvcc_copy_end is still due. 0 or CE_*.
 */
typedef struct mvcc_copy mvcc_copy;
int mvcc_copy_begin(mvcc *m, mvcc_copy **out);
int64_t mvcc_copy_rev(const mvcc_copy *c);
uint64_t mvcc_copy_size(const mvcc_copy *c);
int mvcc_copy_run(mvcc_copy *c, int fd);
void mvcc_copy_stop(mvcc_copy *c);
void mvcc_copy_end(mvcc_copy *c);
/* Instead of mvcc_copy_run (any thread, once): writes the pinned state to fd as an etcd 3.4
 * backend (a bbolt file, bbolt_export.c documents its buckets), what Maintenance.Snapshot
 * streams; *size gets the file's size. CE_STOPPED after mvcc_copy_stop or when the store closed
 * meanwhile (mvcc_close waits for the export to notice). 0 or CE_*. */
int mvcc_copy_export(mvcc_copy *c, int fd, uint64_t *size);
/* Creates a store in dir (which must hold none) from image[0..len), an etcd 3.4 backend (bbolt)
 * file such as etcd's or cetcd's Maintenance.Snapshot sends, without its trailing hash
 * (bbolt_import.c lists what is carried over): keys with their revisions and versions, the
 * compaction point, the consistent index, leases, auth. The image is not trusted (CE_CORRUPT).
 * 0 or CE_* with a one-line message in err; on failure the caller removes dir. */
int mvcc_import_bbolt(const char *dir, const void *image, size_t len, char *err, size_t errsz);
/* An unnamed read-write file beside the store's data file (O_TMPFILE, or a name unlinked at
 * once): same file system, so a copy into it stays in the kernel; gone when closed. */
int mvcc_tmpfile(const mvcc *m, int *fd);
/* Defragmentation: writes a compacted copy of the store (free pages dropped, pages renumbered:
 * LMDB's MDB_CP_COMPACT) to fd, which the caller fsyncs and swaps in for data.mdb with the
 * store closed. On the writer's thread, outside a batch; flushes first. Blocks until done. */
int mvcc_copy_compact(mvcc *m, int fd);

/*
 * Read-only statistics of a cetcd snapshot file (an LMDB data file as mvcc_copy_run or
 * mvcc_snapshot_fd writes it, optionally followed by its 32-byte SHA-256; or a store's data.mdb), what `cetcdctl
 * snapshot status` prints. The file is opened read-only in place (no lock file, no copy); its
 * size is checked against the LMDB meta before any page is read. Verify an untrusted file with
 * snapfile_verify first: LMDB does not check the pages it reads.
 *   hash        CRC-32C (Castagnoli) over the entries of the main database in name order: for
 *               a named table, its name, then each of its key/value pairs in order (key, then
 *               value; every duplicate of a DUPSORT table); for a plain entry, key then value
 *   revision    meta "rev" (1 when absent, as a new store)
 *   total_keys  key/value pairs counted in the hash (plain main-database entries included)
 *   total_size  (last page + 1) * page size: the bytes the database occupies
 */
typedef struct mvcc_file_stat {
    uint32_t hash;
    int64_t revision;
    int64_t compact_revision;
    uint64_t consistent_index;
    uint64_t total_keys;
    int64_t total_size;
} mvcc_file_stat;
/* 0, or CE_NOTFOUND / CE_IO / CE_CORRUPT with a one-line message in err. */
int mvcc_stat_file(const char *path, mvcc_file_stat *out, char *err, size_t errsz);

/* History for watchers catching up: the events of revisions >= from_rev (main revisions, up
 * to the current one) whose key lies in [key, range_end) (etcd's range rules: empty range_end =
 * the key alone, "\0" = every key >= key), in revision order, each handed to fn (valid only
 * during the call; DELETE events carry key and mod_revision only, like etcd's; prev_kv is
 * filled when want_prev). Stops after the revision in which `max` events were reached
 * (0 = no limit), never inside a revision. *next_rev gets the revision to continue from.
 * CE_COMPACTED if from_rev < the compaction point (etcd cancels such a watch). */
int mvcc_events_since(mvcc *m, const ProtobufCBinaryData *key,
                      const ProtobufCBinaryData *range_end, int64_t from_rev, bool want_prev,
                      size_t max, mvcc_event_fn fn, void *arg, int64_t *next_rev);
/* The same with every bound a catch-up needs (each 0 = none; all are checked only between
 * revisions, so a call stops after the revision in which one was reached): max_events events
 * reported, max_bytes bytes of their stored records, max_scan records examined in range or
 * not (so a narrow range over a long history costs a bounded walk per call). */
typedef struct mvcc_events_limits {
    size_t max_events;
    size_t max_bytes;
    size_t max_scan;
} mvcc_events_limits;
int mvcc_events_read(mvcc *m, const ProtobufCBinaryData *key,
                     const ProtobufCBinaryData *range_end, int64_t from_rev, bool want_prev,
                     const mvcc_events_limits *lim, mvcc_event_fn fn, void *arg,
                     int64_t *next_rev);

/* Lease hook (the node wires it to its lessor): when set, a put (alone or in a txn) naming a
 * lease for which fn returns false fails with CE_LEASE_NOT_FOUND and changes nothing.
 * Lease attachment can be followed from the event sink (kv.lease / prev_kv.lease). */
typedef bool (*mvcc_lease_exists_fn)(void *arg, int64_t lease);
void mvcc_set_lease_checker(mvcc *m, mvcc_lease_exists_fn fn, void *arg);

/*
 * Leases (lease_store.c): the table "lease" of the same LMDB environment, written in the
 * batch that applies the change, so the consistent index covers leases too. The keys
 * attached to a lease are not stored apart: they are the live keys whose KeyValue.lease
 * names it (mvcc_lease_attached reads them back at start).
 */
typedef struct mvcc_lease {
    int64_t id;
    int64_t ttl;                /* granted TTL, seconds */
    uint64_t renewed_index;     /* Raft index of the entry that last granted or renewed it */
} mvcc_lease;
/* Inside a batch: records a granted or renewed lease (insert or overwrite). 0 or CE_*. */
int mvcc_lease_put(mvcc *m, const mvcc_lease *l);
/* Inside a batch: deletes, in one revision, every key of keys[0..n) still attached to lease
 * id (a key whose lease is another is left alone), in the order given (DELETE events to the
 * sink as for any delete), then the lease record. *out (if out) gets the response, header
 * revision set. 0 or CE_*. */
int mvcc_lease_revoke(mvcc *m, int64_t id, const ProtobufCBinaryData *keys, size_t n,
                      Etcdserverpb__LeaseRevokeResponse **out);
/* Outside a batch: every stored lease, in ID byte order (unsigned); fn's error stops the walk
 * and is returned. */
typedef int (*mvcc_lease_fn)(void *arg, const mvcc_lease *l);
int mvcc_lease_list(mvcc *m, mvcc_lease_fn fn, void *arg);
/* Outside a batch: every live key that names a lease, in key order, with that lease. */
typedef int (*mvcc_lease_key_fn)(void *arg, const ProtobufCBinaryData *key, int64_t lease);
int mvcc_lease_attached(mvcc *m, mvcc_lease_key_fn fn, void *arg);

/*
 * Auth table (auth_store.c): opaque records of the auth store (server/auth/ owns their
 * format), in the table "auth" of the same environment, written in the batch that applies
 * the change. put and del only inside a batch; get and walk inside (seeing the batch) or
 * outside one. get returns a malloc'd copy (caller frees) or CE_NOTFOUND; del returns
 * CE_NOTFOUND for a missing key (and the batch stays good). walk calls fn for every record
 * whose key starts with prefix, in key order; fn's error stops it and is returned (the
 * pointers are valid only during the call).
 */
int mvcc_auth_put(mvcc *m, const void *key, size_t klen, const void *val, size_t vlen);
int mvcc_auth_del(mvcc *m, const void *key, size_t klen);
int mvcc_auth_get(mvcc *m, const void *key, size_t klen, void **val, size_t *vlen);
typedef int (*mvcc_auth_fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);
int mvcc_auth_walk(mvcc *m, const void *prefix, size_t plen, mvcc_auth_fn fn, void *arg);

#endif
