/*
 * services_snapshot.c: etcd's Maintenance.Snapshot: a point-in-time copy of this member's store
 * streamed with its SHA-256 (`etcdctl snapshot save`, python-etcd3's snapshot(), the gateway's
 * POST /v3/maintenance/snapshot, `cetcdctl snapshot save`).
 *
 * Stream format: a gRPC server stream of SnapshotResponse {header = 1, remaining_bytes = 2,
 * blob = 3}; the gateway sends each message as one chunk `{"result":{...}}\n` (blob in base64,
 * remaining_bytes as a decimal string, zero fields left out), as etcd 3.4's grpc-gateway does.
 *   1. data messages, in file order: blob = the next SNAP_CHUNK bytes of the copy (32 KiB, etcd's
 *      snapshotSendBufferSize; the last one may be shorter), remaining_bytes = copy size - bytes
 *      sent so far including this blob (so the last data message says 0, as etcd's does);
 *   2. one final message: blob = the 32-byte SHA-256 of all data blobs, remaining_bytes 0;
 *   3. the call ends OK (gRPC status 0; the gateway's chunked body ends).
 * The blobs of all messages, concatenated, are the snapshot file (common/snapfile.h): the copy,
 * then its SHA-256. The copy is an LMDB data file of whole 4096-byte pages (mvcc_copy_*: the
 * store as it was when the request arrived, free pages included), so the file's size % 512 is
 * 32, etcd's own test for "ends with a hash". Every message carries the header {cluster_id,
 * member_id, revision, raft_term} with revision = the store revision of the copy (the file's
 * revision; etcd 3.4 sends no header, its clients ignore it).
 * Errors, before any data and as etcd's stream checks: a learner -> "etcdserver: rpc not
 * supported for learner"; "hasleader=true" metadata and no leader -> "etcdserver: no leader"; an
 * auth token -> "auth: invalid auth token" with gRPC code Unknown (auth is not enabled; etcd
 * 3.4's Snapshot passes its auth store's error on untranslated); more than SNAP_MAX
 * snapshots at once -> "etcdserver: too many requests"; a failed copy -> its error. An i/o error
 * while streaming ends the stream with that error before the hash (the client has no valid file).
 *
 * Non-blocking: the request pins the store's state (mvcc_copy_begin, on the loop: one flush and
 * an LMDB read transaction) and a thread of the job copies it into an unnamed temp file beside
 * the store (mvcc_copy_run: in the kernel, no user-space pass), while the loop goes on serving
 * writes. The thread's end is signalled through an eventfd the loop watches; the loop then
 * unpins and streams the temp file: it reads, hashes and sends chunks while the call's unsent
 * output is below SNAP_QUEUE, then waits for the transport's on_writable (HTTP/2 flow control
 * opened, the socket took bytes). So a stream holds about SNAP_QUEUE of memory whatever the
 * store's size or the client's speed, and each turn of the loop does a bounded amount of it.
 *
 * Lifetimes: a job lives until its call closed and its thread was joined. A client gone during
 * the copy (on_close) stops the copy (mvcc_copy_stop: between two slices) and leaves the job to
 * the copy's end, which frees it; at shutdown svc_snapshot_fini (after the transport closed every
 * call, before the node closes the store) stops and joins the copies still running and frees
 * every job. The temp file has no name: closing it with the job deletes it, whatever happened.
 * Invariants: thread_live while the thread may run (copy_rc is written by the thread and read
 * only after the join); call is NULL once the call closed; copy is non-NULL (pinned) until the
 * thread was joined; sha is non-NULL once streaming began; every job is on s->snaps until freed.
 */
#include "services_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "err.h"
#include "log.h"

#define SNAP_CHUNK (32u * 1024u)   /* bytes of the copy per message (etcd's) */
#define SNAP_QUEUE (512u * 1024u)  /* unsent bytes a stream keeps queued at most (about) */
#define SNAP_MAX 16                /* snapshots served at once */
#define SHA256_LEN 32

struct snap_job {
    services *s;
    rpc_call *call;
    mvcc_copy *copy;
    int fd;                        /* the temp file */
    int efd;                       /* the thread's "done" */
    ev_io done_io;
    pthread_t thread;
    bool thread_live;
    int copy_rc;
    int64_t rev;
    uint64_t size, sent;
    EVP_MD_CTX *sha;
    uint8_t *buf;                  /* one chunk */
    struct snap_job *next, *prev;
};

/* ---- jobs ---- */

static void job_unlink(struct snap_job *j)
{
    services *s = j->s;

    if (j->prev)
        j->prev->next = j->next;
    else
        s->snaps = j->next;
    if (j->next)
        j->next->prev = j->prev;
    s->nsnaps--;
}

/* Frees a job whose thread was joined (or never started) and whose call is closed. */
static void job_free(struct snap_job *j)
{
    evloop_io_stop(j->s->loop, &j->done_io);
    if (j->efd >= 0)
        close(j->efd);
    mvcc_copy_end(j->copy);
    if (j->fd >= 0)
        close(j->fd);
    EVP_MD_CTX_free(j->sha);
    free(j->buf);
    job_unlink(j);
    free(j);
}

static struct snap_job *job_new(services *s)
{
    struct snap_job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    j->s = s;
    j->fd = j->efd = -1;
    j->next = s->snaps;
    if (s->snaps)
        s->snaps->prev = j;
    s->snaps = j;
    s->nsnaps++;
    return j;
}

/* ---- the copy (its own thread) ---- */

static void *copy_thread(void *arg)
{
    struct snap_job *j = arg;
    uint64_t one = 1;

    j->copy_rc = mvcc_copy_run(j->copy, j->fd);
    while (write(j->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    return NULL;
}

/* Ends the thread and unpins; true when the job lives on (its call is still open). */
static bool copy_reap(struct snap_job *j)
{
    pthread_join(j->thread, NULL);
    j->thread_live = false;
    mvcc_copy_end(j->copy);
    j->copy = NULL;
    if (j->call)
        return true;
    job_free(j);
    return false;
}

static void pump(struct snap_job *j);

/* The copy is done: stream it, or report its failure. */
static void copy_done(evloop *l, ev_io *w, int events)
{
    struct snap_job *j = w->data;
    uint64_t v;

    (void)l;
    (void)events;
    if (read(j->efd, &v, sizeof(v)) < 0 && errno == EAGAIN)
        return;                   /* not yet */
    evloop_io_stop(j->s->loop, &j->done_io);
    if (!copy_reap(j))
        return;
    if (j->copy_rc) {
        log_warn("snapshot: copying the store failed: %s", ce_strerror(j->copy_rc));
        rpc_finish(j->call, j->copy_rc);
        return;
    }
    j->sha = EVP_MD_CTX_new();
    j->buf = malloc(SNAP_CHUNK);
    if (!j->sha || !j->buf || !EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL)) {
        rpc_finish(j->call, CE_NOMEM);
        return;
    }
    pump(j);
}

/* Pins the store, makes the temp file, starts the thread. 0 or CE_*. */
static int copy_start(struct snap_job *j)
{
    mvcc *store = node_store(j->s->node);
    int rc;

    if ((rc = mvcc_tmpfile(store, &j->fd)) != 0)
        return rc;
    if ((rc = mvcc_copy_begin(store, &j->copy)) != 0) {
        j->copy = NULL;
        return rc;
    }
    j->rev = mvcc_copy_rev(j->copy);
    j->size = mvcc_copy_size(j->copy);
    j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (j->efd < 0)
        return ce_from_errno(errno);
    rc = evloop_io_start(j->s->loop, &j->done_io, j->efd, EV_READ, copy_done, j);
    if (rc)
        return rc;
    if (pthread_create(&j->thread, NULL, copy_thread, j))
        return CE_NOMEM;
    j->thread_live = true;
    return 0;
}

/* ---- streaming (the loop) ---- */

static int pread_all(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? ce_from_errno(errno) : CE_IO;
        got += (size_t)n;
    }
    return 0;
}

/* The next data message. 0, or CE_* (CE_STOPPED: the call is over). */
static int send_chunk(struct snap_job *j, Etcdserverpb__ResponseHeader *h)
{
    Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
    size_t n = j->size - j->sent < SNAP_CHUNK ? (size_t)(j->size - j->sent) : SNAP_CHUNK;
    int rc = pread_all(j->fd, j->buf, n, j->sent);

    if (rc)
        return rc;
    if (!EVP_DigestUpdate(j->sha, j->buf, n))
        return CE_NOMEM;
    j->sent += n;
    r.header = h;
    r.remaining_bytes = j->size - j->sent;
    r.blob.data = j->buf;
    r.blob.len = n;
    return rpc_send(j->call, &r.base);
}

static int send_hash(struct snap_job *j, Etcdserverpb__ResponseHeader *h)
{
    Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;

    if (!EVP_DigestFinal_ex(j->sha, md, &len) || len != SHA256_LEN)
        return CE_NOMEM;
    r.header = h;
    r.blob.data = md;
    r.blob.len = len;
    return rpc_send(j->call, &r.base);
}

/* Sends while the call's queue has room; then the hash and the end, or a wait for room. */
static void pump(struct snap_job *j)
{
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    int rc = 0;

    node_fill_header(j->s->node, &h);
    h.revision = j->rev;
    while (!rc && j->sent < j->size && rpc_call_pending(j->call) < SNAP_QUEUE)
        rc = send_chunk(j, &h);
    if (!rc && j->sent == j->size) {
        rc = send_hash(j, &h);
        if (!rc)
            rc = rpc_finish(j->call, 0);
    } else if (!rc) {
        rpc_call_want_writable(j->call);
    }
    if (rc && rc != CE_STOPPED) {
        log_warn("snapshot: streaming failed: %s", ce_strerror(rc));
        rpc_finish(j->call, rc);
    }
}

/* ---- the method ---- */

static int refusal(rpc_call *c)
{
    services *s = svc_of(c);
    const char *v = rpc_call_metadata(c, "hasleader");
    node_status st;

    if (node_is_learner(s->node))
        return CE_LEARNER_NOT_SUPPORTED;
    if (v && strcmp(v, "true") == 0) {
        node_get_status(s->node, &st);
        if (!st.leader)
            return CE_NO_LEADER;
    }
    if (svc_token_error(c))
        return CE_AUTH_STORE_TOKEN;   /* etcd 3.4's Snapshot does not translate it */
    return s->nsnaps >= SNAP_MAX ? CE_TOO_MANY_REQS : 0;
}

void svc_snapshot(rpc_call *c, ProtobufCMessage *m)
{
    struct snap_job *j;
    int rc = refusal(c);

    svc_free_msg(m);
    if (rc) {
        rpc_finish(c, rc);
        return;
    }
    j = job_new(svc_of(c));
    if (!j) {
        rpc_finish(c, CE_NOMEM);
        return;
    }
    rc = copy_start(j);
    if (rc) {
        log_warn("snapshot: cannot start a copy of the store: %s", ce_strerror(rc));
        job_free(j);
        rpc_finish(c, rc);
        return;
    }
    j->call = c;
    rpc_call_set_data(c, j);
}

void svc_snapshot_writable(rpc_call *c)
{
    struct snap_job *j = rpc_call_data(c);

    if (j && j->sha)
        pump(j);
}

void svc_snapshot_close(rpc_call *c)
{
    struct snap_job *j = rpc_call_data(c);

    if (!j)
        return;
    rpc_call_set_data(c, NULL);
    j->call = NULL;
    if (j->thread_live)
        mvcc_copy_stop(j->copy);  /* copy_done frees it */
    else
        job_free(j);
}

void svc_snapshot_fini(services *s)
{
    while (s->snaps) {
        struct snap_job *j = s->snaps;
        j->call = NULL;
        if (!j->thread_live) {
            job_free(j);
            continue;
        }
        mvcc_copy_stop(j->copy);
        copy_reap(j);
    }
}
