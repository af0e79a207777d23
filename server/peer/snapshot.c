/*
 * snapshot.c: snapshot transfer on a connection of its own (frames in wire.c).
 *
 * Sender: HELLO (kind snapshot) and SNAP_HEADER are queued when the connection is created;
 * after HELLO_OK the data file is read in 1 MiB chunks, only while less than PUMP_LOW bytes
 * wait in the output buffer, so memory stays bounded and the loop never blocks on a large
 * file; SNAP_END carries the length and CRC of all data; SNAP_ACK from the receiver ends it.
 * Any failure, or 30 s without progress, reports false; no retry here (Raft asks again).
 *
 * Receiver: SNAP_HEADER opens "<snap_dir>/peer-<from:016x>-<index:016x>.XXXXXX" (a name the
 * snapshot store's purge never touches), chunks are written as they arrive (writeback started
 * every SYNC_EVERY bytes so the final fsync is short), SNAP_END checks length and CRC, the
 * file is fsynced and handed to on_snapshot, then SNAP_ACK (0) is sent. Until the hand-over
 * the file is the connection's: any failure unlinks it.
 *
 * Invariants: c->so (sender) holds the data fd until snap_out_free; c->si (receiver) owns its
 * file path until it is handed over; so->left + bytes queued or sent == so->total.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"
#include "fdio.h"
#include "lebytes.h"
#include "log.h"
#include "peer_int.h"

#define PUMP_LOW (256u << 10)
#define SYNC_EVERY (16u << 20)

struct snap_out {
    int fd;
    uint64_t total, left;
    uint32_t crc;
    bool end_queued;
};

struct snap_in {
    raft_msg m;
    bool have_msg;
    uint8_t *extra;
    size_t extra_len;
    int fd;
    char *path;               /* owned (unlinked on failure) until handed over */
    uint64_t expect, got, synced;
    uint32_t crc;
};

/* ---- sending ---- */

static int queue_header(conn *c, const raft_msg *m, const uint8_t *extra, size_t extra_len,
                        uint64_t len)
{
    uint8_t *enc, *p;
    size_t elen;
    int rc = raft_msg_encode(m, &enc, &elen);

    if (rc)
        return rc;
    if (elen > PEER_MAX_FRAME - SNAP_HEADER_FIXED - extra_len) {
        free(enc);
        return CE_INVAL;
    }
    p = frame_reserve(&c->out, SNAP_HEADER_FIXED + extra_len + elen);
    if (!p) {
        free(enc);
        return CE_NOMEM;
    }
    le_put64(p, len);
    le_put32(p + 8, (uint32_t)extra_len);
    if (extra_len)
        memcpy(p + SNAP_HEADER_FIXED, extra, extra_len);
    memcpy(p + SNAP_HEADER_FIXED + extra_len, enc, elen);
    frame_commit(&c->out, FR_SNAP_HEADER, SNAP_HEADER_FIXED + extra_len + elen);
    free(enc);
    return 0;
}

static int queue_hello(conn *c, uint64_t to)
{
    peer_transport *t = c->t;
    hello h = {PEER_VERSION, HK_SNAP, t->member_id, to, t->cluster_id};
    uint8_t hb[HELLO_LEN];

    hello_encode(hb, &h);
    c->gate = FRAME_HDR + HELLO_LEN;
    return frame_put(&c->out, FR_HELLO, hb, sizeof(hb), NULL, 0);
}

int snap_out_start(peer_transport *t, peer *p, const raft_msg *m, const uint8_t *extra,
                   size_t extra_len, int data_fd, uint64_t len)
{
    conn *c = conn_new(t, CK_SNAP_OUT);
    const char *url;
    int rc;

    if (!c) {
        close(data_fd);
        return CE_NOMEM;
    }
    c->so = calloc(1, sizeof(*c->so));
    if (!c->so) {
        close(data_fd);
        conn_close(c);
        return CE_NOMEM;
    }
    c->so->fd = data_fd;
    c->so->total = c->so->left = len;
    c->remote_id = p->id;
    rc = queue_hello(c, p->id);
    if (!rc)
        rc = queue_header(c, m, extra, extra_len, len);
    if (rc) {
        conn_close(c); /* closes data_fd */
        return rc;
    }
    /* The URL the stream connection uses works: take it. */
    url = p->out && p->out->state == CS_READY ? p->out->url
                                              : p->urls[p->url_next % (unsigned)p->nurls];
    log_info("peer: sending snapshot index %" PRIu64 " (%" PRIu64 " bytes) to %016" PRIx64,
             m->snapshot.index, len, p->id);
    rc = conn_dial(c, url);
    if (rc) /* accepted: the failure is reported like any other */
        conn_fail(c, rc == CE_UNREACHABLE ? strerror(errno) : ce_strerror(rc));
    return 0;
}

int snap_out_ready(conn *c, const char **why)
{
    conn_set_deadline(c, PEER_SNAP_IDLE);
    return snap_out_pump(c, why);
}

/* Appends one SNAP_CHUNK read from the data file. */
static int read_chunk(conn *c, const char **why)
{
    snap_out *so = c->so;
    size_t want = so->left < PEER_SNAP_CHUNK ? (size_t)so->left : PEER_SNAP_CHUNK;
    uint8_t *p = frame_reserve(&c->out, want);
    ssize_t n;

    if (!p) {
        *why = "out of memory";
        return CE_NOMEM;
    }
    do
        n = read(so->fd, p, want);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        *why = n == 0 ? "the data file is shorter than announced" : "cannot read the data file";
        return CE_IO;
    }
    so->crc = crc32c(so->crc, p, (size_t)n);
    so->left -= (uint64_t)n;
    frame_commit(&c->out, FR_SNAP_CHUNK, (size_t)n);
    return 0;
}

int snap_out_pump(conn *c, const char **why)
{
    snap_out *so = c->so;
    uint8_t end[SNAP_END_LEN];

    for (;;) {
        if (conn_write(c)) {
            *why = "write failed";
            return CE_IO;
        }
        if (bytebuf_size(&c->out) >= PUMP_LOW || so->end_queued)
            return 0;
        if (so->left == 0) {
            le_put64(end, so->total);
            le_put32(end + 8, so->crc);
            if (frame_put(&c->out, FR_SNAP_END, end, sizeof(end), NULL, 0)) {
                *why = "out of memory";
                return CE_NOMEM;
            }
            so->end_queued = true;
            continue;
        }
        if (read_chunk(c, why))
            return CE_IO;
    }
}

int snap_out_frame(conn *c, const frame *f, const char **why)
{
    if (f->type != FR_SNAP_ACK || f->len < 1 || !c->so->end_queued) {
        *why = "unexpected frame";
        return CE_CORRUPT;
    }
    if (f->data[0] != 0) {
        *why = "the receiver could not store it";
        return CE_IO;
    }
    log_info("peer: snapshot (%" PRIu64 " bytes) sent to %016" PRIx64, c->so->total,
             c->remote_id);
    snap_out_end(c, true);
    conn_close(c);
    return 0;
}

void snap_out_free(conn *c)
{
    close(c->so->fd);
    free(c->so);
    c->so = NULL;
}

void snap_out_end(conn *c, bool ok)
{
    peer_transport *t = c->t;

    if (t->nresults == t->results_cap) {
        size_t cap = t->results_cap ? t->results_cap * 2 : 4;
        snap_result *v = realloc(t->results, cap * sizeof(*v));
        if (!v) {
            log_error("peer: out of memory reporting a snapshot result");
            snap_out_free(c);
            return;
        }
        t->results = v;
        t->results_cap = cap;
    }
    t->results[t->nresults++] = (snap_result){c->remote_id, ok};
    transport_schedule(t);
    snap_out_free(c);
}

/* ---- receiving ---- */

void snap_in_free(conn *c)
{
    snap_in *si = c->si;

    if (si->fd >= 0)
        close(si->fd);
    if (si->path) {
        unlink(si->path);
        free(si->path);
    }
    if (si->have_msg)
        raft_msg_free(&si->m);
    free(si->extra);
    free(si);
    c->si = NULL;
}

/* Sends SNAP_ACK and closes once it is written. */
static int ack(conn *c, uint8_t status, const char *text)
{
    int rc = frame_put(&c->out, FR_SNAP_ACK, &status, 1, text, strlen(text));

    if (!rc)
        conn_finish(c);
    return rc;
}

/* The receiver cannot store the snapshot (not the sender's fault): say so, drop the file. */
static int store_failed(conn *c, const char *what)
{
    log_error("peer: cannot store the snapshot from %016" PRIx64 ": %s: %s", c->remote_id, what,
              strerror(errno));
    snap_in_free(c);
    return ack(c, 1, what);
}

static int open_file(conn *c)
{
    peer_transport *t = c->t;
    snap_in *si = c->si;
    int n;

    if (!t->snap_dir) {
        errno = ENOENT;
        return store_failed(c, "no snapshot directory");
    }
    n = snprintf(NULL, 0, "%s/peer-%016" PRIx64 "-%016" PRIx64 ".XXXXXX", t->snap_dir,
                 si->m.from, si->m.snapshot.index);
    si->path = malloc((size_t)n + 1);
    if (!si->path)
        return CE_NOMEM;
    snprintf(si->path, (size_t)n + 1, "%s/peer-%016" PRIx64 "-%016" PRIx64 ".XXXXXX",
             t->snap_dir, si->m.from, si->m.snapshot.index);
    si->fd = mkostemp(si->path, O_CLOEXEC);
    if (si->fd < 0) {
        free(si->path);
        si->path = NULL;
        return store_failed(c, "cannot create the file");
    }
    return 0;
}

static int snap_begin(conn *c, const frame *f)
{
    peer_transport *t = c->t;
    snap_in *si;
    uint32_t elen;

    if (f->type != FR_SNAP_HEADER || f->len < SNAP_HEADER_FIXED)
        return CE_CORRUPT;
    elen = le_get32(f->data + 8);
    if (elen > f->len - SNAP_HEADER_FIXED)
        return CE_CORRUPT;
    si = c->si = calloc(1, sizeof(*si));
    if (!si)
        return CE_NOMEM;
    si->fd = -1;
    si->expect = le_get64(f->data);
    if (raft_msg_decode(f->data + SNAP_HEADER_FIXED + elen, f->len - SNAP_HEADER_FIXED - elen,
                        &si->m))
        return CE_CORRUPT;
    si->have_msg = true;
    if (si->m.type != RAFT_MSG_SNAP || si->m.from != c->remote_id || si->m.to != t->member_id)
        return CE_CORRUPT;
    si->extra_len = elen;
    si->extra = malloc(elen ? elen : 1);
    if (!si->extra)
        return CE_NOMEM;
    memcpy(si->extra, f->data + SNAP_HEADER_FIXED, elen);
    log_info("peer: receiving snapshot index %" PRIu64 " (%" PRIu64 " bytes) from %016" PRIx64,
             si->m.snapshot.index, si->expect, c->remote_id);
    return open_file(c);
}

static int snap_chunk(conn *c, const frame *f)
{
    snap_in *si = c->si;

    if (f->len == 0 || f->len > PEER_SNAP_CHUNK || f->len > si->expect - si->got)
        return CE_CORRUPT;
    if (fd_write_full(si->fd, f->data, f->len))
        return store_failed(c, "write failed");
    si->crc = crc32c(si->crc, f->data, f->len);
    si->got += f->len;
    if (si->got - si->synced >= SYNC_EVERY) {
        /* Start writeback now so the final fsync does not stall the loop for long. */
        (void)sync_file_range(si->fd, (off_t)si->synced, (off_t)(si->got - si->synced),
                              SYNC_FILE_RANGE_WRITE);
        si->synced = si->got;
    }
    conn_set_deadline(c, PEER_SNAP_IDLE);
    return 0;
}

static int snap_end(conn *c, const frame *f)
{
    peer_transport *t = c->t;
    snap_in *si = c->si;
    raft_msg m;
    uint8_t *extra;
    size_t extra_len;
    char *path;

    if (f->len != SNAP_END_LEN || le_get64(f->data) != si->expect || si->got != si->expect ||
        le_get32(f->data + 8) != si->crc)
        return CE_CORRUPT;
    if (fsync(si->fd))
        return store_failed(c, "fsync failed");
    close(si->fd);
    si->fd = -1;
    /* Hand over: from here the message, extra and file are the handler's business, so a
     * handler that closes this connection (peer_remove) cannot pull them from under it. */
    m = si->m;
    extra = si->extra;
    extra_len = si->extra_len;
    path = si->path;
    si->have_msg = false;
    si->extra = NULL;
    si->path = NULL;
    snap_in_free(c);
    log_info("peer: snapshot index %" PRIu64 " from %016" PRIx64 " stored in %s",
             m.snapshot.index, m.from, path);
    if (t->h.on_snapshot)
        t->h.on_snapshot(t->h.ctx, &m, extra, extra_len, path);
    else
        unlink(path);
    raft_msg_free(&m);
    free(extra);
    free(path);
    if (c->dead)
        return 0;
    return ack(c, 0, "");
}

int snap_in_frame(conn *c, const frame *f)
{
    if (!c->si)
        return snap_begin(c, f);
    switch (f->type) {
    case FR_SNAP_CHUNK:
        return snap_chunk(c, f);
    case FR_SNAP_END:
        return snap_end(c, f);
    default:
        return CE_CORRUPT;
    }
}
