/*
 * snapcopy.c: point-in-time copies of the store, written off the writer's thread, so a large
 * store can be copied (Maintenance.Snapshot) while writes go on.
 *
 * mvcc_copy_begin, on the writer's thread outside a batch and before it can commit again:
 *   1. makes every committed batch durable (mvcc_flush), so the file holds the state readers see;
 *   2. pins that state: an LMDB read transaction. LMDB never overwrites a page that a live reader
 *      can reach (copy-on-write; freed pages are reused only once no reader is older than the
 *      transaction that freed them), so the pages of this state stay as they are in data.mdb,
 *      however many batches follow, until the pin is released;
 *   3. reads the two meta pages (pages 0 and 1, the only pages rewritten in place) into memory,
 *      and notes the extent the state uses: (last page number + 1) x page size, clamped to the
 *      file size as LMDB's own copy does.
 * mvcc_copy_run, on any thread, writes the copy to the caller's file: bytes [0, 2 x page size)
 * from the saved meta pages, then bytes [2 x page size, extent) of data.mdb through a descriptor
 * of its own (copy_file_range, so the bytes stay in the kernel; pread/pwrite where the file
 * systems do not allow it), in slices of COPY_SLICE, checking its stop flag between slices.
 * The result is what LMDB's plain copy (mdb_env_copyfd) writes: a valid LMDB data file, free
 * pages included (not compacted, like etcd's bbolt snapshot), whose newest meta page is the
 * pinned state. Opened as data.mdb it is the store at mvcc_copy_rev: revision, compaction point,
 * consistent index and leases included. Pages that were free in the pinned state may hold later
 * bytes in the copy; no page reachable from its meta does.
 *
 * mvcc_copy_export (bbolt_export.c) is the other way to use a pin: instead of the file's bytes it
 * reads the pinned state through the read transaction (pin) and writes etcd's bbolt format.
 * It holds the copy's run lock meanwhile; release_pin sets closing and takes that lock before
 * aborting the transaction, so a store closed during an export waits for it to stop (it looks
 * at the flags every 1024 records) and the transaction is never aborted under it. begin also
 * notes the pinned compaction point and consistent index and opens the handles of the optional
 * tables "lease" and "auth" in the pin (on the writer's thread, as LMDB requires).
 *
 * Invariants: begin, end, mvcc_tmpfile and mvcc_close run on the writer's thread, and only they
 * touch a copy's pin and its links on m->copies; run and stop touch only the copy's descriptors,
 * its immutable fields and the atomic stop flag. Every copy on m->copies holds a read
 * transaction of m's environment: mvcc_close aborts them first (mvcc__copies_release). A copy
 * whose store was closed stays consistent: its descriptor keeps the old data.mdb, which nobody
 * writes any more (a replaced store is renamed over, never rewritten).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fdio.h"
#include "mvcc_int.h"

#define COPY_SLICE (8u << 20)      /* bytes copied between two looks at the stop flag */
#define COPY_BUF (1u << 20)        /* the pread/pwrite fallback's buffer */

static void unlink_copy(mvcc_copy *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->m->copies = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* Unpins: an export reading through the pin (another thread) is told to stop and awaited
 * first, so the read transaction is never aborted under it. */
static void release_pin(mvcc_copy *c)
{
    if (!c->m)
        return;
    unlink_copy(c);
    atomic_store(&c->closing, true);
    pthread_mutex_lock(&c->run);
    mdb_txn_abort(c->pin);
    c->pin = NULL;
    pthread_mutex_unlock(&c->run);
    c->m = NULL;
}

void mvcc__copies_release(mvcc *m)
{
    while (m->copies)
        release_pin(m->copies);
}

/* The state right now, as described in the file comment (steps 2 and 3); the flush is done. */
static int pin_state(mvcc *m, mvcc_copy *c)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fs;
    int fd, rc;

    rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &c->pin);
    if (rc) {
        c->pin = NULL;
        return mvcc__lmdb_err(rc);
    }
    if ((rc = mdb_env_info(m->env, &info)) != 0 || (rc = mdb_env_stat(m->env, &st)) != 0 ||
        (rc = mdb_env_get_fd(m->env, &fd)) != 0)
        return mvcc__lmdb_err(rc);
    c->has_lease = mdb_dbi_open(c->pin, "lease", 0, &c->lease) == 0;
    c->has_auth = mdb_dbi_open(c->pin, "auth", 0, &c->auth) == 0;
    c->src = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (c->src < 0 || fstat(c->src, &fs) != 0)
        return ce_from_errno(errno);
    c->meta_len = 2 * (size_t)st.ms_psize;
    c->size = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if (c->size > (uint64_t)fs.st_size)
        c->size = (uint64_t)fs.st_size;
    if (c->size < c->meta_len)
        return CE_CORRUPT;
    c->meta = malloc(c->meta_len);
    if (!c->meta)
        return CE_NOMEM;
    return fd_pread_full(c->src, c->meta, c->meta_len, 0);
}

int mvcc_copy_begin(mvcc *m, mvcc_copy **out)
{
    mvcc_copy *c;
    int rc;

    if (m->wtxn)
        return CE_INVAL;
    if ((rc = mvcc_flush(m)) != 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (!c)
        return CE_NOMEM;
    c->src = -1;
    atomic_init(&c->stop, false);
    atomic_init(&c->closing, false);
    pthread_mutex_init(&c->run, NULL);
    c->rev = m->rev;
    c->compact = m->compact_rev;
    c->ci = m->ci;
    c->kv = m->kv;
    rc = pin_state(m, c);
    if (rc) {
        if (c->pin)
            mdb_txn_abort(c->pin);
        c->pin = NULL;
        mvcc_copy_end(c);
        return rc;
    }
    c->m = m;
    c->next = m->copies;
    if (m->copies)
        m->copies->prev = c;
    m->copies = c;
    *out = c;
    return 0;
}

int64_t mvcc_copy_rev(const mvcc_copy *c) { return c->rev; }
uint64_t mvcc_copy_size(const mvcc_copy *c) { return c->size; }

void mvcc_copy_stop(mvcc_copy *c)
{
    atomic_store(&c->stop, true);
}

/* Bytes [off, off + len) of data.mdb to the same offsets of fd, without copy_file_range. */
static int copy_by_hand(mvcc_copy *c, int fd, off_t off, size_t len)
{
    size_t bl = len < COPY_BUF ? len : COPY_BUF;
    uint8_t *buf = malloc(bl);
    int rc = buf ? 0 : CE_NOMEM;

    for (size_t done = 0; !rc && done < len;) {
        size_t n = len - done < bl ? len - done : bl;
        rc = fd_pread_full(c->src, buf, n, (uint64_t)off + done);
        if (!rc)
            rc = fd_pwrite_full(fd, buf, n, (uint64_t)off + done);
        done += n;
    }
    free(buf);
    return rc;
}

/* One slice; falls back to copy_by_hand where the kernel cannot copy between the two files. */
static int copy_slice(mvcc_copy *c, int fd, off_t off, size_t len)
{
    loff_t in = off, outo = off;
    size_t left = len;

    while (left > 0) {
        ssize_t n = copy_file_range(c->src, &in, fd, &outo, left, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP ||
                      errno == EINVAL))
            return copy_by_hand(c, fd, (off_t)in, left);
        if (n <= 0)
            return n < 0 ? ce_from_errno(errno) : CE_IO;
        left -= (size_t)n;
    }
    return 0;
}

int mvcc_copy_run(mvcc_copy *c, int fd)
{
    int rc = fd_pwrite_full(fd, c->meta, c->meta_len, 0);

    for (uint64_t at = c->meta_len; !rc && at < c->size;) {
        size_t n = c->size - at < COPY_SLICE ? (size_t)(c->size - at) : COPY_SLICE;
        if (atomic_load(&c->stop))
            return CE_STOPPED;
        rc = copy_slice(c, fd, (off_t)at, n);
        at += n;
    }
    return rc;
}

void mvcc_copy_end(mvcc_copy *c)
{
    if (!c)
        return;
    release_pin(c);
    if (c->src >= 0)
        close(c->src);
    free(c->meta);
    pthread_mutex_destroy(&c->run);
    free(c);
}

int mvcc_tmpfile(const mvcc *m, int *out)
{
    const char *slash = strrchr(m->data_path, '/');
    size_t dl = slash ? (size_t)(slash - m->data_path) : 0;
    char dir[1024], tmpl[1100];
    int fd;

    if (dl == 0 || dl >= sizeof(dir))
        return CE_INVAL;
    memcpy(dir, m->data_path, dl);
    dir[dl] = 0;
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* no O_TMPFILE on this file system: a named file, unlinked at once */
        snprintf(tmpl, sizeof(tmpl), "%s/.copy-XXXXXX", dir);
        fd = mkostemp(tmpl, O_CLOEXEC);
        if (fd >= 0)
            unlink(tmpl);
    }
    if (fd < 0)
        return ce_from_errno(errno);
    *out = fd;
    return 0;
}

int mvcc_copy_compact(mvcc *m, int fd)
{
    int rc;

    if (m->wtxn)
        return CE_INVAL;
    if ((rc = mvcc_flush(m)) != 0)
        return rc;
    rc = mdb_env_copyfd2(m->env, fd, MDB_CP_COMPACT);
    return rc ? mvcc__lmdb_err(rc) : 0;
}
