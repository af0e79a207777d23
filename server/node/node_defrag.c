/*
 * node_defrag.c: Maintenance.Defragment for this member's store, as etcd's defrag: the data
 * file is rewritten without its free pages, so the space a compaction freed goes back to the
 * file system, and etcd_mvcc_db_total_size_in_bytes (and the quota check, which counts the
 * file's used extent) drop.
 *
 * Steps, all on the loop's thread (nothing is applied meanwhile, as etcd blocks every request
 * during a defrag):
 *   1. the store's committed batches are made durable (node_store_flush);
 *   2. LMDB writes a compacted copy (MDB_CP_COMPACT) into <db_dir>/data.mdb.defrag, which is
 *      fsynced (unless --unsafe-no-fsync);
 *   3. the store is closed, the copy renamed over data.mdb, the directory fsynced, and the
 *      store reopened (same content: revision, compaction point, consistent index, leases,
 *      auth); the lessor keeps its leases and deadlines, the store listener learns the new
 *      handle.
 * Crash safety: until the rename, data.mdb is untouched (a leftover data.mdb.defrag is removed
 * by the next defrag); the rename is atomic, and the copy was durable before it, so after a
 * crash data.mdb is either the old file or the complete copy, each holding the same state.
 * A failure in step 2 leaves the store open and unchanged; a failure in step 3 stops the member
 * (node_fatal), which restarts from whichever file is in place.
 */
#include "atomicfile.h"
#include "err.h"
#include "log.h"
#include "node_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

/* Step 2: the compacted copy in tmp, durable. The store stays open. */
static int write_copy(node *n, const char *tmp)
{
    int fd, rc;

    if (unlink(tmp) && errno != ENOENT)
        return ce_from_errno(errno);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return ce_from_errno(errno);
    rc = mvcc_copy_compact(n->store, fd);
    if (!rc && !n->cfg.unsafe_no_fsync && fsync(fd))
        rc = ce_from_errno(errno);
    if (close(fd) && !rc)
        rc = ce_from_errno(errno);
    if (rc)
        unlink(tmp);
    return rc;
}

/* Step 3: the copy replaces the data file; the store comes back with the same content. */
static int swap_in(node *n, const char *tmp)
{
    char dst[1200];
    int rc;

    mvcc_close(n->store);
    n->store = NULL;
    snprintf(dst, sizeof(dst), "%s/data.mdb", n->db_dir);
    if (rename(tmp, dst))
        return ce_from_errno(errno);
    if ((rc = atomic_sync_dir(n->db_dir)) != 0)
        return rc;
    if ((rc = node_open_store_file(n)) != 0)
        return rc;
    node_lease_attach_store(n);
    if (n->store_fn)
        n->store_fn(n->store_arg, n->store);
    return 0;
}

int node_defrag(node *n)
{
    char tmp[1200];
    int64_t before = mvcc_db_size(n->store);
    double t0 = histo_now();
    int rc;

    if (n->in_flush)
        return CE_AGAIN;
    n->metrics.defrag_inflight = true;
    if (mvcc_has_unflushed(n->store))
        node_store_flush(n);
    snprintf(tmp, sizeof(tmp), "%s/data.mdb.defrag", n->db_dir);
    rc = write_copy(n, tmp);
    if (rc) {
        n->metrics.defrag_inflight = false;
        log_warn("node: defragmentation failed: %s (the store is unchanged)", ce_strerror(rc));
        return rc;
    }
    rc = swap_in(n, tmp);
    if (rc)
        node_fatal("swapping in the defragmented store", rc);
    n->metrics.defrag_inflight = false;
    histo_observe(&n->metrics.defrag, histo_now() - t0);
    log_info("node: defragmented the store: %" PRId64 " -> %" PRId64 " bytes in %.3f s", before,
             mvcc_db_size(n->store), histo_now() - t0);
    return 0;
}
