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
 * then its SHA-256. The copy is etcd 3.4's backend, a bbolt file of whole 4096-byte pages
 * (node_copy kind NODE_COPY_BBOLT, mvcc_copy_export: the store as it was when the request
 * arrived, in etcd's buckets), so etcd's tools read it and the file's size % 512 is 32, etcd's
 * own test for "ends with a hash". Its size is known once the copy is done, before streaming. Every message carries the header {cluster_id,
 * member_id, revision, raft_term} with revision = the store revision of the copy (the file's
 * revision; etcd 3.4 sends no header, its clients ignore it).
 * Errors, before any data and as etcd's stream checks: a learner -> "etcdserver: rpc not
 * supported for learner"; "hasleader=true" metadata and no leader -> "etcdserver: no leader"; an
 * auth token -> "auth: invalid auth token" with gRPC code Unknown (auth is not enabled; etcd
 * 3.4's Snapshot passes its auth store's error on untranslated); more than SNAP_MAX
 * snapshots at once -> "etcdserver: too many requests"; a failed copy -> its error. An i/o error
 * while streaming ends the stream with that error before the hash (the client has no valid file).
 *
 * Non-blocking: the request starts a copy of the store off the loop (node_copy_start: the
 * state pinned on the loop, one flush and an LMDB read transaction, then a thread writes it as a
 * bbolt file into an unnamed temp file beside the store), while the loop goes on serving writes.
 * When the copy is done (copy_done, on the loop) the job streams the temp file: it reads,
 * hashes and sends chunks while the call's unsent output is below SNAP_QUEUE, then waits for
 * the transport's on_writable (HTTP/2 flow control opened, the socket took bytes). So a stream
 * holds about SNAP_QUEUE of memory whatever the store's size or the client's speed, and each
 * turn of the loop does a bounded amount of it.
 *
 * Lifetimes: a job lives until its call closed and its copy ended. A client gone during the
 * copy (on_close) stops the copy (node_copy_stop: between two slices) and leaves the job to
 * copy_done, which frees it; at shutdown svc_snapshot_fini (after the transport closed every
 * call, before the node closes the store) frees every job, node_copy_free stopping and joining
 * the copies still running. The temp file has no name: freeing the copy deletes it.
 * Invariants: copied once copy_done came (until then the copy may be running); call is NULL
 * once the call closed; copy is non-NULL from the start to the job's end; sha is non-NULL once
 * streaming began; every job is on s->snaps until freed.
 */
#include "services_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "err.h"
#include "fdio.h"
#include "log.h"

#define SNAP_CHUNK (32u * 1024u)   /* bytes of the copy per message (etcd's) */
#define SNAP_QUEUE (512u * 1024u)  /* unsent bytes a stream keeps queued at most (about) */
#define SNAP_MAX 16                /* snapshots served at once */
#define SHA256_LEN 32

struct snap_job {
    services *s;
    rpc_call *call;
    node_copy *copy;               /* the copy, then its temp file */
    bool copied;                   /* the copy's thread ended (its done came) */
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

/* Frees a job whose call is closed (a copy still running is stopped and joined). */
static void job_free(struct snap_job *j)
{
    node_copy_free(j->copy);
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
    j->next = s->snaps;
    if (s->snaps)
        s->snaps->prev = j;
    s->snaps = j;
    s->nsnaps++;
    return j;
}

/* ---- the copy (off the loop) ---- */

static void pump(struct snap_job *j);

/* The copy is done: stream it, or report its failure. */
static void copy_done(void *arg, int rc)
{
    struct snap_job *j = arg;

    j->copied = true;
    if (!j->call) {
        job_free(j);
        return;
    }
    if (rc) {
        log_warn("snapshot: copying the store failed: %s", ce_strerror(rc));
        rpc_finish(j->call, rc);
        return;
    }
    j->size = node_copy_size(j->copy);
    j->sha = EVP_MD_CTX_new();
    j->buf = malloc(SNAP_CHUNK);
    if (!j->sha || !j->buf || !EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL)) {
        rpc_finish(j->call, CE_NOMEM);
        return;
    }
    pump(j);
}

/* Pins the store and starts the copy. 0 or CE_*. */
static int copy_start(struct snap_job *j)
{
    int rc = node_copy_start(j->s->node, NODE_COPY_BBOLT, copy_done, j, &j->copy);

    if (rc)
        return rc;
    j->rev = node_copy_rev(j->copy);
    return 0;
}

/* ---- streaming (the loop) ---- */

/* The next data message. 0, or CE_* (CE_STOPPED: the call is over). */
static int send_chunk(struct snap_job *j, Etcdserverpb__ResponseHeader *h)
{
    Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
    size_t n = j->size - j->sent < SNAP_CHUNK ? (size_t)(j->size - j->sent) : SNAP_CHUNK;
    int rc = fd_pread_full(node_copy_fd(j->copy), j->buf, n, j->sent);

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
    if (svc_check_maint(c))
        return CE_AUTH_STORE_DENIED;
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
    if (j->copied)
        job_free(j);
    else
        node_copy_stop(j->copy);  /* copy_done frees it */
}

void svc_snapshot_fini(services *s)
{
    while (s->snaps) {
        s->snaps->call = NULL;
        job_free(s->snaps);
    }
}
