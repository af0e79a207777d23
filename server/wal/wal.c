/*
 * wal.c: the write-ahead log: segment files of CRC-framed records, group-committed with one
 * write() and one fdatasync() per wal_sync(), replayed and repaired by wal_open().
 *
 * DIRECTORY. A WAL is a directory of segment files named "<seq:016x>-<first:016x>.wal" (lower-
 * case hex): seq counts segments from 0 with no gaps; first is the index the segment's first new
 * entry was expected to have when the segment was cut (0 for the segment made by wal_create).
 * Only the segment with the highest seq is ever written; older ones are immutable. A new segment
 * is written complete to "<name>.tmp", fsynced, renamed to <name>, and the directory fsynced;
 * so a segment file either does not exist or starts with its whole header. Released segments
 * (wal_release_to) are renamed to "<name>.tmp" and unlinked by a short-lived thread. Leftover .tmp files
 * are deleted by wal_open. Before a new segment is created the previous one is fdatasynced, so
 * damage in any segment but the last cannot come from a crash: it is corruption.
 *
 * RECORD. Every record starts at a file offset that is a multiple of 8. All integers are
 * little-endian.
 *     offset  size  field
 *     0       4     len: payload length in bytes (at most WAL_MAX_PAYLOAD)
 *     4       1     type: 1 segment header, 2 metadata, 3 entry, 4 hard state, 5 snapshot,
 *                     6 installed snapshot
 *     5       3     zero
 *     8       4     hcrc = crc32c(salt, offset as 8 bytes || bytes 0..7 of this record)
 *     12      4     pcrc = crc32c(hcrc, payload)
 *     16      len   payload
 *     16+len  0..7  zero padding to the next multiple of 8
 * where crc32c(c, x) continues the CRC-32C c over x (crc32c.h), and the segment's salt is
 * crc32c(0, "cetcdWAL" || seq as 8 bytes). Binding the CRC to the segment and the offset means
 * a record is valid only where it was written: a stale or copied record never validates.
 * The header check (hcrc) vouches for len and type before the payload is read, so a damaged
 * length can never make the reader skip or misframe data silently.
 *
 * PAYLOADS.
 *     1 segment header (32 bytes, only at offset 0): "cetcdWAL", version u32 = 1, u32 zero,
 *       seq u64, first u64 (both must equal the file name's).
 *     2 metadata (any length, only right after the header): the blob given to wal_create; the
 *       same in every segment.
 *     3 entry (>= 17 bytes): term u64, index u64 (>= 1), type u8, data (the rest).
 *     4 hard state (24 bytes): term u64, vote u64, commit u64.
 *     5 snapshot marker (16 bytes): index u64, term u64.
 *     6 installed-snapshot marker (16 bytes): as 5, for a snapshot received from the leader:
 *       Raft discarded its whole log for it, so entries replayed before it with a higher index
 *       are void and the log restarts right after its index.
 * A segment is: header, metadata, then (in segments after the first) the hard state and the
 * snapshot marker current when it was cut, if any, then records as saved. Because every segment
 * repeats the newest hard state and marker, replay may start at any segment.
 *
 * ZEROED TAIL. The last segment's file is kept longer than its records: the writer extends it
 * ahead of the records, ZERO_AHEAD at a time, with fallocate() (which reads back as zeros; real
 * zero bytes are written where fallocate is unsupported), as etcd preallocates. Most appends
 * then do not change the file size, which saves fdatasync some metadata work. Measured on this
 * machine's ext4 (interleaved 300-byte pwrite+fdatasync): quiet disk, same median (~225 us)
 * and p90 281-312 us against 301-331 us for appends that grow the file; busy disk, medians
 * 250-360 against 310-470 us. A small gain, as etcd also found it worth having. When a segment
 * is finished it is truncated to its records. So, in the last segment only, the log ends at the
 * first offset from which every byte to the end of the file is zero.
 *
 * VALID RECORD at offset X of a file of size S: X + 16 <= S; type in 1..5 and bytes 5..7 zero;
 * hcrc matches; X + 16 + len rounded up to 8 <= S; pcrc matches. A valid record whose payload
 * does not parse (wrong size, index 0, header not first, ...) is corruption.
 *
 * LOG END. Replay and writer track the same number le: a header sets le = first - 1 (if first
 * > 0), an entry sets le = its index, a marker sets le = max(le, its index), an installed-
 * snapshot marker sets le = its index (dropping kept entries above it). An entry must have
 * index <= le + 1 once le > 0 (no gaps); index <= le truncates the log from there. A segment
 * after the first one replayed must have first == le + 1. The writer cuts with first = le + 1.
 *
 * RECOVERY (wal_open). Segments are listed and sorted by seq (a missing seq is corruption).
 * Replay starts at the last segment whose first <= snap_index + 1 (earlier ones hold only
 * entries <= snap_index, and the newer segment repeats hard state and marker), reading one
 * whole segment at a time. Records are parsed in order. At the first invalid record at X:
 *   - in a segment that is not the last, or within the last one's header or metadata: CE_CORRUPT;
 *   - else if all bytes from X to the end of the file are zero: the clean end of the log;
 *   - else every 8-aligned offset after X (after X's whole extent if its header was valid) is
 *     tried as a record; if any is valid, the log was damaged before its end: CE_CORRUPT;
 *   - else it is a torn tail (a short write, a length past EOF, a bad CRC with only zeros or
 *     garbage after it): the file is truncated to X and fdatasynced, with a log_warn.
 * A damaged record is reported with log_error("wal: corrupt record in <file> at offset <n> ...")
 * before CE_CORRUPT; the other inconsistencies (a missing segment; the log ending beyond the
 * entries it holds after snap_index) are logged with their own message, also CE_CORRUPT.
 * Limitation: a power loss that persists a later page of the final, unsynced write but not an
 * earlier one leaves valid data after a hole; this is reported as CE_CORRUPT rather than
 * guessed to be unsynced, so that acknowledged data is never dropped silently. (Unlikely: the
 * writes of one batch are submitted together, in order.)
 *
 * WRITER. wal_save encodes records into w->buf; w->off is the end of the records already
 * written (w->fsize >= w->off is the file size, zeros past off), so a record's offset is
 * w->off + its position in buf. wal_sync writes buf with one pwrite() (plus, once per
 * ZERO_AHEAD bytes, the zeros that extend the file) and calls fdatasync once. After any I/O
 * error w->failed is set and every later call fails.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "hexname.h"
#include "lebytes.h"
#include "err.h"
#include "paths.h"
#include "fdio.h"
#include "log.h"

enum rec_type {
    REC_HEADER = 1,
    REC_METADATA = 2,
    REC_ENTRY = 3,
    REC_HARDSTATE = 4,
    REC_SNAPSHOT = 5,
    REC_INSTALL = 6,
};

#define HDR_SIZE 16
#define SEGHDR_SIZE 32
#define ENTRY_FIXED 17
#define WAL_MAX_PAYLOAD (512u * 1024 * 1024)
#define FLUSH_BYTES (1u << 20)
#define ZERO_AHEAD (1u << 20)
#define NAME_LEN 37 /* 16 hex, '-', 16 hex, ".wal" */
#define MAGIC "cetcdWAL"
#define VERSION 1

struct seginfo {
    uint64_t seq, first;
};

struct wal {
    char *dir;
    int dirfd;
    int fd;                 /* the last segment, open for writing */
    uint64_t off;           /* end of the records written to the last segment */
    uint64_t fsize;         /* its file size; bytes in [off, fsize) are zero */
    uint64_t written;       /* record bytes written since open (etcd_disk_wal_write_bytes_total) */
    uint32_t salt;          /* of the last segment */
    uint8_t *buf;           /* records encoded but not yet written */
    size_t buflen, bufcap;
    bool dirty;             /* written since the last fdatasync */
    bool failed;            /* an I/O error happened: the handle is dead */
    bool nosync;
    uint64_t seg_bytes;
    uint8_t *meta;
    size_t metalen;
    wal_hardstate hs;
    bool has_hs;
    wal_snapshot snap;
    bool has_snap;
    uint64_t le;            /* log end, see LOG END above */
    struct seginfo *segs;   /* sorted by seq; the last is being written */
    size_t nsegs;
    void (*observer)(void *, double);
    void *observer_arg;
};

/* ---------- little helpers ---------- */


static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static uint32_t segment_salt(uint64_t seq)
{
    uint8_t b[16];
    memcpy(b, MAGIC, 8);
    le_put64(b + 8, seq);
    return crc32c(0, b, sizeof b);
}

static uint32_t header_crc(uint32_t salt, uint64_t off, const uint8_t *hdr)
{
    uint8_t b[16];
    le_put64(b, off);
    memcpy(b + 8, hdr, 8);
    return crc32c(salt, b, sizeof b);
}

static void segment_name(char *out, size_t cap, uint64_t seq, uint64_t first)
{
    snprintf(out, cap, "%016llx-%016llx.wal", (unsigned long long)seq, (unsigned long long)first);
}

/* True if name is exactly "<16 hex>-<16 hex>.wal". */
static bool parse_segment_name(const char *name, struct seginfo *si)
{
    return strlen(name) == NAME_LEN && name[16] == '-' && strcmp(name + 33, ".wal") == 0 &&
           hex16_parse(name, &si->seq) && hex16_parse(name + 17, &si->first);
}

static bool is_tmp_name(const char *name)
{
    size_t n = strlen(name);
    return n == NAME_LEN + 4 && strcmp(name + NAME_LEN, ".tmp") == 0;
}

static int fsync_dir_fd(int dirfd)
{
    return fsync(dirfd) == 0 ? 0 : ce_from_errno(errno);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Reads the whole file into a malloc'd buffer (at least 1 byte allocated). */
static int read_whole(const char *path, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ce_from_errno(errno);
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = ce_from_errno(errno);
        goto out_close;
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        rc = CE_NOMEM;
        goto out_close;
    }
    rc = fd_read_upto(fd, buf, n, &got);
    if (rc) {
        free(buf);
        goto out_close;
    }
    *out = buf;
    *len = got;
out_close:
    close(fd);
    return rc;
}

/* ---------- segment listing ---------- */

static int cmp_seg(const void *a, const void *b)
{
    const struct seginfo *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int push_seg(struct seginfo **segs, size_t *n, size_t *cap, struct seginfo si)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        struct seginfo *p = realloc(*segs, nc * sizeof *p);
        if (!p)
            return CE_NOMEM;
        *segs = p;
        *cap = nc;
    }
    (*segs)[(*n)++] = si;
    return 0;
}

/* Lists the segments of dir sorted by seq; deletes leftover .tmp files if remove_tmp. */
static int list_segments(const char *dir, bool remove_tmp, struct seginfo **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? CE_NOTFOUND : ce_from_errno(errno);
    struct seginfo *segs = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct seginfo si;
        if (parse_segment_name(de->d_name, &si))
            rc = push_seg(&segs, &cnt, &cap, si);
        else if (remove_tmp && is_tmp_name(de->d_name))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
    if (rc != 0) {
        free(segs);
        return rc;
    }
    if (cnt > 0) /* qsort(NULL, 0) is undefined: an empty directory has no segments */
        qsort(segs, cnt, sizeof *segs, cmp_seg);
    *out = segs;
    *n = cnt;
    return 0;
}

bool wal_exists(const char *dir)
{
    struct seginfo *segs = NULL;
    size_t n = 0;
    if (list_segments(dir, false, &segs, &n) != 0)
        return false;
    free(segs);
    return n > 0;
}

/* ---------- record parsing ---------- */

enum parse_result { REC_OK, REC_BAD_HEADER, REC_BAD_BODY };

struct rec {
    uint8_t type;
    const uint8_t *payload;
    size_t len;
    size_t extent; /* header + padded payload */
};

/* Checks the record at off (8-aligned) of buf[0..size) against the segment salt. */
static enum parse_result parse_record(const uint8_t *buf, size_t size, size_t off, uint32_t salt,
                                      struct rec *r)
{
    if (size < HDR_SIZE || off > size - HDR_SIZE)
        return REC_BAD_HEADER;
    const uint8_t *h = buf + off;
    if (h[4] < REC_HEADER || h[4] > REC_INSTALL || h[5] || h[6] || h[7])
        return REC_BAD_HEADER;
    uint32_t hcrc = le_get32(h + 8);
    if (header_crc(salt, off, h) != hcrc)
        return REC_BAD_HEADER;
    r->type = h[4];
    r->len = le_get32(h);
    r->extent = HDR_SIZE + pad8(r->len);
    r->payload = h + HDR_SIZE;
    if (r->len > WAL_MAX_PAYLOAD || r->extent > size - off)
        return REC_BAD_BODY;
    if (crc32c(hcrc, r->payload, r->len) != le_get32(h + 12))
        return REC_BAD_BODY;
    return REC_OK;
}

/* True if some 8-aligned offset in [from, size) holds a valid record. */
static bool any_valid_after(const uint8_t *buf, size_t size, size_t from, uint32_t salt)
{
    struct rec r;
    for (size_t y = from; size >= HDR_SIZE && y <= size - HDR_SIZE; y += 8)
        if (parse_record(buf, size, y, salt, &r) == REC_OK)
            return true;
    return false;
}

/* ---------- replay ---------- */

struct replay {
    wal_replay *rp;
    size_t cap;             /* of rp->ents */
    uint64_t snap_index;
    uint64_t le;
    bool seen_segment;      /* a segment has been replayed already */
    /* per segment */
    const char *path;
    struct seginfo si;
    int phase;              /* 0 expect header, 1 expect metadata, 2 body */
};

static int corrupt(const char *path, size_t off, const char *why)
{
    log_error("wal: corrupt record in %s at offset %zu (%s)", path, off, why);
    return CE_CORRUPT;
}

static int apply_header(struct replay *st, const struct rec *r)
{
    if (st->phase != 0 || r->len != SEGHDR_SIZE || memcmp(r->payload, MAGIC, 8) != 0 ||
        le_get32(r->payload + 8) != VERSION)
        return CE_CORRUPT;
    uint64_t seq = le_get64(r->payload + 16), first = le_get64(r->payload + 24);
    if (seq != st->si.seq || first != st->si.first)
        return CE_CORRUPT;
    if (st->seen_segment && first != st->le + 1)
        return CE_CORRUPT;
    if (first > 0)
        st->le = first - 1;
    st->phase = 1;
    return 0;
}

static int apply_metadata(struct replay *st, const struct rec *r)
{
    wal_replay *rp = st->rp;
    if (st->phase != 1)
        return CE_CORRUPT;
    st->phase = 2;
    if (rp->metadata)
        return (r->len == rp->metadata_len && memcmp(r->payload, rp->metadata, r->len) == 0)
                   ? 0
                   : CE_CORRUPT;
    rp->metadata = malloc(r->len + 1);
    if (!rp->metadata)
        return CE_NOMEM;
    memcpy(rp->metadata, r->payload, r->len);
    rp->metadata[r->len] = '\0';
    rp->metadata_len = r->len;
    return 0;
}

/* Drops kept entries with index >= idx. */
static void truncate_kept(wal_replay *rp, uint64_t idx)
{
    while (rp->nents > 0 && rp->ents[rp->nents - 1].index >= idx)
        free((void *)rp->ents[--rp->nents].data);
}

static int keep_entry(struct replay *st, const wal_entry *e)
{
    wal_replay *rp = st->rp;
    uint64_t want = rp->nents ? rp->ents[rp->nents - 1].index + 1 : st->snap_index + 1;
    if (e->index != want)
        return CE_CORRUPT; /* a gap right after the snapshot the caller named */
    if (rp->nents == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 64;
        wal_entry *p = realloc(rp->ents, nc * sizeof *p);
        if (!p)
            return CE_NOMEM;
        rp->ents = p;
        st->cap = nc;
    }
    wal_entry *dst = &rp->ents[rp->nents];
    *dst = *e;
    dst->data = NULL;
    if (e->len) {
        uint8_t *d = malloc(e->len);
        if (!d)
            return CE_NOMEM;
        memcpy(d, e->data, e->len);
        dst->data = d;
    }
    rp->nents++;
    return 0;
}

static int apply_entry(struct replay *st, const struct rec *r)
{
    if (st->phase != 2 || r->len < ENTRY_FIXED)
        return CE_CORRUPT;
    wal_entry e = {
        .term = le_get64(r->payload),
        .index = le_get64(r->payload + 8),
        .type = r->payload[16],
        .data = r->payload + ENTRY_FIXED,
        .len = r->len - ENTRY_FIXED,
    };
    if (e.index == 0 || (st->le > 0 && e.index > st->le + 1))
        return CE_CORRUPT;
    st->le = e.index;
    truncate_kept(st->rp, e.index);
    if (e.index <= st->snap_index)
        return 0;
    return keep_entry(st, &e);
}

static int apply_hardstate(struct replay *st, const struct rec *r)
{
    if (st->phase != 2 || r->len != 24)
        return CE_CORRUPT;
    st->rp->hs = (wal_hardstate){le_get64(r->payload), le_get64(r->payload + 8),
                                 le_get64(r->payload + 16)};
    st->rp->has_hs = true;
    return 0;
}

static int apply_snapshot(struct replay *st, const struct rec *r)
{
    if (st->phase != 2 || r->len != 16)
        return CE_CORRUPT;
    st->rp->snap = (wal_snapshot){le_get64(r->payload), le_get64(r->payload + 8)};
    st->rp->has_snap = true;
    if (r->type == REC_INSTALL) {
        st->le = st->rp->snap.index;
        truncate_kept(st->rp, st->le + 1);
    } else if (st->rp->snap.index > st->le) {
        st->le = st->rp->snap.index;
    }
    return 0;
}

static int apply_record(struct replay *st, const struct rec *r)
{
    switch (r->type) {
    case REC_HEADER:
        return apply_header(st, r);
    case REC_METADATA:
        return apply_metadata(st, r);
    case REC_ENTRY:
        return apply_entry(st, r);
    case REC_HARDSTATE:
        return apply_hardstate(st, r);
    default:
        return apply_snapshot(st, r);
    }
}

/*
 * Handles the first invalid record at off of the segment: CE_CORRUPT, the zeroed tail (the
 * file is kept whole), or a torn tail (*cut = off: the file is cut there).
 */
static int classify_damage(const struct replay *st, const uint8_t *buf, size_t size, size_t off,
                           enum parse_result pr, const struct rec *r, bool is_last,
                           uint64_t *cut)
{
    if (!is_last)
        return corrupt(st->path, off, "bad record in a non-last segment");
    if (st->phase < 2)
        return corrupt(st->path, off, "bad segment header");
    if (all_zero(buf + off, size - off))
        return 0;
    size_t from = off + 8;
    if (pr == REC_BAD_BODY && r->extent <= size - off)
        from = off + r->extent;
    if (any_valid_after(buf, size, from, segment_salt(st->si.seq)))
        return corrupt(st->path, off, "valid records follow a bad one");
    *cut = off;
    return 0;
}

/*
 * Replays one segment's bytes. *end receives where its records end; *cut the length the file
 * must keep (size, or *end for a torn tail of the last segment).
 */
static int replay_segment(struct replay *st, const uint8_t *buf, size_t size, bool is_last,
                          uint64_t *end, uint64_t *cut)
{
    uint32_t salt = segment_salt(st->si.seq);
    size_t off = 0;
    st->phase = 0;
    *cut = size;
    while (off < size) {
        struct rec r;
        enum parse_result pr = parse_record(buf, size, off, salt, &r);
        *end = off;
        if (pr != REC_OK)
            return classify_damage(st, buf, size, off, pr, &r, is_last, cut);
        int rc = apply_record(st, &r);
        if (rc == CE_NOMEM)
            return rc;
        if (rc != 0)
            return corrupt(st->path, off, "record out of place or out of sequence");
        off += r.extent;
    }
    *end = off;
    if (st->phase < 2)
        return corrupt(st->path, off, "segment ends inside its header");
    return 0;
}

void wal_replay_free(wal_replay *rp)
{
    if (!rp)
        return;
    for (size_t i = 0; i < rp->nents; i++)
        free((void *)rp->ents[i].data);
    free(rp->ents);
    free(rp->metadata);
    memset(rp, 0, sizeof *rp);
}

/* ---------- writer ---------- */

static int reserve(wal *w, size_t more)
{
    if (w->buflen + more <= w->bufcap)
        return 0;
    size_t nc = w->bufcap ? w->bufcap : 64 * 1024;
    while (nc < w->buflen + more)
        nc *= 2;
    uint8_t *p = realloc(w->buf, nc);
    if (!p)
        return CE_NOMEM;
    w->buf = p;
    w->bufcap = nc;
    return 0;
}

/* Encodes a record of type whose payload is a (alen bytes) followed by b (blen bytes). */
static int append_record(wal *w, uint8_t type, const uint8_t *a, size_t alen, const uint8_t *b,
                         size_t blen)
{
    size_t len = alen + blen, ext = HDR_SIZE + pad8(len);
    int rc = reserve(w, ext);
    if (rc != 0)
        return rc;
    uint8_t *h = w->buf + w->buflen;
    le_put32(h, (uint32_t)len);
    h[4] = type;
    h[5] = h[6] = h[7] = 0;
    uint32_t hcrc = header_crc(w->salt, w->off + w->buflen, h);
    le_put32(h + 8, hcrc);
    if (alen)
        memcpy(h + HDR_SIZE, a, alen);
    if (blen)
        memcpy(h + HDR_SIZE + alen, b, blen);
    memset(h + HDR_SIZE + len, 0, ext - HDR_SIZE - len);
    le_put32(h + 12, crc32c(hcrc, h + HDR_SIZE, len));
    w->buflen += ext;
    return 0;
}

static int append_hardstate(wal *w, const wal_hardstate *hs)
{
    uint8_t p[24];
    le_put64(p, hs->term);
    le_put64(p + 8, hs->vote);
    le_put64(p + 16, hs->commit);
    return append_record(w, REC_HARDSTATE, p, sizeof p, NULL, 0);
}

static int append_snapshot(wal *w, const wal_snapshot *s, enum rec_type type)
{
    uint8_t p[16];
    le_put64(p, s->index);
    le_put64(p + 8, s->term);
    return append_record(w, type, p, sizeof p, NULL, 0);
}

static int append_entry(wal *w, const wal_entry *e)
{
    uint8_t p[ENTRY_FIXED];
    le_put64(p, e->term);
    le_put64(p + 8, e->index);
    p[16] = e->type;
    return append_record(w, REC_ENTRY, p, sizeof p, e->data, e->len);
}

/* Header, metadata, and the current hard state and marker (if any) of a new segment. */
static int append_segment_start(wal *w, uint64_t seq, uint64_t first)
{
    uint8_t p[SEGHDR_SIZE] = {0};
    memcpy(p, MAGIC, 8);
    le_put32(p + 8, VERSION);
    le_put64(p + 16, seq);
    le_put64(p + 24, first);
    int rc = append_record(w, REC_HEADER, p, sizeof p, NULL, 0);
    if (rc == 0)
        rc = append_record(w, REC_METADATA, w->meta, w->metalen, NULL, 0);
    if (rc == 0 && w->has_hs)
        rc = append_hardstate(w, &w->hs);
    if (rc == 0 && w->has_snap) {
        rc = append_snapshot(w, &w->snap, REC_SNAPSHOT);
        if (w->snap.index > w->le) /* as replay will see it */
            w->le = w->snap.index;
    }
    return rc;
}

static int fail(wal *w, int rc)
{
    if (rc != 0 && rc != CE_NOMEM && rc != CE_INVAL)
        w->failed = true;
    return rc;
}

/* Zeros ahead of the records, in bytes: ZERO_AHEAD, less for small test segments. */
static uint64_t zero_ahead(const wal *w)
{
    return w->seg_bytes / 4 < ZERO_AHEAD ? w->seg_bytes / 4 : ZERO_AHEAD;
}

/* Extends the file with zeros to end + zero_ahead (see ZEROED TAIL). Best effort: without
 * the tail (disk full, say) appends simply grow the file. */
static void extend_zeros(wal *w, uint64_t end)
{
    static const uint8_t zeros[64 * 1024];
    uint64_t target = end + zero_ahead(w);
    if (w->fsize >= target)
        return;
    if (fallocate(w->fd, 0, (off_t)w->fsize, (off_t)(target - w->fsize)) == 0) {
        w->fsize = target;
        return;
    }
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
        log_debug("wal: fallocate: %s", strerror(errno));
        return;
    }
    while (w->fsize < target) {
        size_t n = target - w->fsize < sizeof zeros ? (size_t)(target - w->fsize) : sizeof zeros;
        if (fd_pwrite_full(w->fd, zeros, n, w->fsize) != 0)
            return;
        w->fsize += n;
    }
}

static int flush_buf(wal *w)
{
    if (w->buflen == 0)
        return 0;
    int rc = fd_pwrite_full(w->fd, w->buf, w->buflen, w->off);
    if (rc != 0)
        return fail(w, rc);
    w->written += w->buflen;
    w->off += w->buflen;
    if (w->off > w->fsize)
        w->fsize = w->off;
    w->buflen = 0;
    w->dirty = true;
    if (w->fsize - w->off < zero_ahead(w) / 2)
        extend_zeros(w, w->off);
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int sync_fd(wal *w)
{
    if (!w->dirty || w->nosync) {
        w->dirty = false;
        return 0;
    }
    double t0 = now_seconds();
    if (fdatasync(w->fd) != 0)
        return fail(w, ce_from_errno(errno));
    if (w->observer)
        w->observer(w->observer_arg, now_seconds() - t0);
    w->dirty = false;
    return 0;
}

/*
 * Creates segment (seq, first) atomically and makes it the one written. w->buf must be empty.
 */
static int create_segment(wal *w, uint64_t seq, uint64_t first)
{
    char name[NAME_LEN + 5];
    char tmp[NAME_LEN + 16];
    struct seginfo *segs = realloc(w->segs, (w->nsegs + 1) * sizeof *segs);
    if (!segs)
        return CE_NOMEM;
    w->segs = segs;
    segment_name(name, sizeof name, seq, first);
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = openat(w->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ce_from_errno(errno);
    int old_fd = w->fd;
    w->fd = fd;
    w->off = 0;
    w->salt = segment_salt(seq);
    int rc = append_segment_start(w, seq, first);
    if (rc == 0)
        rc = fd_pwrite_full(fd, w->buf, w->buflen, 0);
    w->fsize = w->buflen;
    if (rc == 0)
        extend_zeros(w, w->buflen);
    if (rc == 0 && fsync(fd) != 0)
        rc = ce_from_errno(errno);
    if (rc == 0 && renameat(w->dirfd, tmp, w->dirfd, name) != 0)
        rc = ce_from_errno(errno);
    if (rc == 0)
        rc = fsync_dir_fd(w->dirfd);
    if (rc != 0)
        goto out_unlink_tmp;
    w->off = w->buflen;
    w->buflen = 0;
    if (old_fd >= 0)
        close(old_fd);
    w->segs[w->nsegs++] = (struct seginfo){seq, first};
    return 0;
out_unlink_tmp:
    unlinkat(w->dirfd, tmp, 0);
    close(fd);
    w->fd = old_fd;
    w->buflen = 0;
    return rc;
}

/* Finishes the current segment (write + fdatasync) and starts the next one. Any failure
 * leaves the handle failed (its segment state is no longer known). */
static int cut(wal *w)
{
    int rc = flush_buf(w);
    if (rc == 0 && ftruncate(w->fd, (off_t)w->off) != 0)
        rc = ce_from_errno(errno);
    w->dirty = true;
    if (rc == 0)
        rc = sync_fd(w);
    if (rc == 0)
        rc = create_segment(w, w->segs[w->nsegs - 1].seq + 1, w->le + 1);
    if (rc != 0)
        w->failed = true;
    return rc;
}

/* A segment is cut once it holds seg_bytes, or twice its starting records if those are
 * larger (a huge metadata blob must not make every save cut a new segment). */
static int maybe_flush_or_cut(wal *w)
{
    uint64_t start = HDR_SIZE + SEGHDR_SIZE + HDR_SIZE + pad8(w->metalen);
    uint64_t limit = w->seg_bytes > 2 * start ? w->seg_bytes : 2 * start;
    if (w->off + w->buflen >= limit)
        return cut(w);
    if (w->buflen >= FLUSH_BYTES)
        return flush_buf(w);
    return 0;
}

/* Entries must be numbered from >= 1, each <= previous + 1 (the first <= le + 1 once le > 0). */
static bool entries_valid(const wal *w, const wal_entry *ents, size_t n)
{
    uint64_t le = w->le;
    for (size_t i = 0; i < n; i++) {
        if (ents[i].index == 0 || (le > 0 && ents[i].index > le + 1) ||
            ents[i].len > WAL_MAX_PAYLOAD - ENTRY_FIXED || (ents[i].len && !ents[i].data))
            return false;
        le = ents[i].index;
    }
    return true;
}

int wal_save(wal *w, const wal_hardstate *hs, const wal_entry *ents, size_t n)
{
    if (w->failed)
        return CE_IO;
    if (!entries_valid(w, ents, n))
        return CE_INVAL;
    size_t undo = w->buflen;
    uint64_t undo_le = w->le;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = append_entry(w, &ents[i]);
        w->le = ents[i].index;
    }
    if (rc == 0 && hs)
        rc = append_hardstate(w, hs);
    if (rc != 0) {
        w->buflen = undo; /* only CE_NOMEM gets here: nothing was written */
        w->le = undo_le;
        return rc;
    }
    if (hs) {
        w->hs = *hs;
        w->has_hs = true;
    }
    return maybe_flush_or_cut(w);
}

static int save_marker(wal *w, const wal_snapshot *s, bool installed)
{
    if (w->failed)
        return CE_IO;
    int rc = append_snapshot(w, s, installed ? REC_INSTALL : REC_SNAPSHOT);
    if (rc != 0)
        return rc;
    w->snap = *s;
    w->has_snap = true;
    if (installed || s->index > w->le)
        w->le = s->index;
    rc = wal_sync(w);
    if (rc == 0)
        rc = maybe_flush_or_cut(w);
    return rc;
}

int wal_save_snapshot(wal *w, const wal_snapshot *s)
{
    return save_marker(w, s, false);
}

int wal_install_snapshot(wal *w, const wal_snapshot *s)
{
    return save_marker(w, s, true);
}

int wal_sync(wal *w)
{
    if (w->failed)
        return CE_IO;
    int rc = flush_buf(w);
    if (rc == 0)
        rc = sync_fd(w);
    return rc;
}

/* Deletes a released segment (a malloc'd path) off the caller's thread: unlinking a 64 MiB
 * preallocated file costs tens of milliseconds on ext4, and the WAL's owner is the event loop.
 * Should the process stop first, the file is a leftover .tmp that the next wal_open deletes. */
static void *reap(void *path)
{
    unlink(path);
    free(path);
    return NULL;
}

static void reap_later(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);
    pthread_attr_t attr;
    pthread_t th;

    if (!path)
        return;
    snprintf(path, len, "%s/%s", dir, name);
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, reap, path) == 0) {
            pthread_attr_destroy(&attr);
            return;
        }
        pthread_attr_destroy(&attr);
    }
    reap(path);
}

int wal_release_to(wal *w, uint64_t index)
{
    if (w->failed)
        return CE_IO;
    size_t k = 0; /* the last segment whose first <= index */
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->segs[i].first <= index)
            k = i;
    if (k == 0)
        return 0;
    for (size_t i = 0; i < k; i++) {
        char name[NAME_LEN + 1], gone[NAME_LEN + 5];
        segment_name(name, sizeof name, w->segs[i].seq, w->segs[i].first);
        snprintf(gone, sizeof gone, "%s.tmp", name);
        if (renameat(w->dirfd, name, w->dirfd, gone) != 0) {
            if (errno == ENOENT)
                continue;
            int rc = ce_from_errno(errno);
            memmove(w->segs, w->segs + i, (w->nsegs - i) * sizeof *w->segs);
            w->nsegs -= i;
            return rc;
        }
        reap_later(w->dir, gone);
    }
    memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof *w->segs);
    w->nsegs -= k;
    return fsync_dir_fd(w->dirfd);
}

uint64_t wal_bytes_written(const wal *w)
{
    return w->written;
}

void wal_set_sync_observer(wal *w, void (*fn)(void *arg, double seconds), void *arg)
{
    w->observer = fn;
    w->observer_arg = arg;
}

void wal_set_segment_bytes(wal *w, uint64_t bytes)
{
    w->seg_bytes = bytes < 4096 ? 4096 : bytes;
}

void wal_set_unsafe_no_fsync(wal *w, bool on)
{
    w->nosync = on;
}

uint64_t wal_last_index(const wal *w)
{
    return w->le;
}

/* ---------- open / create / close ---------- */

static wal *wal_alloc(const char *dir)
{
    wal *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fd = -1;
    w->dirfd = -1;
    w->seg_bytes = WAL_SEGMENT_BYTES;
    w->dir = strdup(dir);
    if (!w->dir) {
        free(w);
        return NULL;
    }
    return w;
}

static void wal_free(wal *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    free(w->buf);
    free(w->meta);
    free(w->segs);
    free(w->dir);
    free(w);
}

static int open_dirfd(wal *w)
{
    w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return w->dirfd < 0 ? ce_from_errno(errno) : 0;
}

static void fsync_parent(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return;
    char *slash = strrchr(p, '/');
    const char *parent = ".";
    if (slash == p)
        parent = "/";
    else if (slash) {
        *slash = '\0';
        parent = p;
    }
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(p);
}

int wal_create(const char *dir, const uint8_t *metadata, size_t len, wal **out)
{
    if (len > WAL_MAX_PAYLOAD || (len && !metadata))
        return CE_INVAL;
    if (wal_exists(dir))
        return CE_EXISTS;
    int rc = path_mkdirs(dir);
    if (rc != 0)
        return rc;
    wal *w = wal_alloc(dir);
    if (!w)
        return CE_NOMEM;
    w->meta = malloc(len ? len : 1);
    if (!w->meta) {
        rc = CE_NOMEM;
        goto out_free_wal;
    }
    if (len)
        memcpy(w->meta, metadata, len);
    w->metalen = len;
    rc = open_dirfd(w);
    if (rc == 0)
        rc = create_segment(w, 0, 0);
    if (rc != 0)
        goto out_free_wal;
    fsync_parent(dir);
    *out = w;
    return 0;
out_free_wal:
    wal_free(w);
    return rc;
}

/* Index of the segment replay starts from: the last whose first <= snap_index + 1. */
static int start_segment(const struct seginfo *segs, size_t n, uint64_t snap_index, size_t *k)
{
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && segs[i].seq != segs[i - 1].seq + 1) {
            log_error("wal: missing segment before seq %016llx", (unsigned long long)segs[i].seq);
            return CE_CORRUPT;
        }
        if (segs[i].first <= snap_index + 1) {
            *k = i;
            found = true;
        }
    }
    if (!found) {
        log_error("wal: no segment holds index %llu", (unsigned long long)snap_index + 1);
        return CE_CORRUPT;
    }
    return 0;
}

/* Where the last segment's records end, and the file length to keep. */
struct tail {
    uint64_t end, keep;
};

/* Replays the segment st->si; fills *t. */
static int replay_file(wal *w, struct replay *st, bool is_last, struct tail *t)
{
    char name[NAME_LEN + 1];
    segment_name(name, sizeof name, st->si.seq, st->si.first);
    char *path = path_join(w->dir, name);
    if (!path)
        return CE_NOMEM;
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = read_whole(path, &buf, &size);
    if (rc != 0)
        goto out_free_path;
    st->path = path;
    rc = replay_segment(st, buf, size, is_last, &t->end, &t->keep);
    st->seen_segment = true;
    if (rc == 0 && t->keep < size)
        log_warn("wal: cut torn tail file=%s offset=%llu dropped=%zu bytes", path,
                 (unsigned long long)t->keep, size - (size_t)t->keep);
    free(buf);
out_free_path:
    free(path);
    return rc;
}

/* Opens the last segment for appending at t->end, first truncating it durably to t->keep. */
static int open_last(wal *w, const struct tail *t)
{
    const struct seginfo *si = &w->segs[w->nsegs - 1];
    char name[NAME_LEN + 1];
    segment_name(name, sizeof name, si->seq, si->first);
    w->fd = openat(w->dirfd, name, O_WRONLY | O_CLOEXEC);
    if (w->fd < 0)
        return ce_from_errno(errno);
    struct stat st;
    if (fstat(w->fd, &st) != 0)
        return ce_from_errno(errno);
    if ((uint64_t)st.st_size != t->keep &&
        (ftruncate(w->fd, (off_t)t->keep) != 0 || fdatasync(w->fd) != 0))
        return ce_from_errno(errno);
    w->off = t->end;
    w->fsize = t->keep;
    w->salt = segment_salt(si->seq);
    return 0;
}

/* Copies what replay found into the writer's state. */
static int adopt_replay(wal *w, const wal_replay *rp, uint64_t le)
{
    w->metalen = rp->metadata_len;
    w->meta = malloc(w->metalen ? w->metalen : 1);
    if (!w->meta)
        return CE_NOMEM;
    memcpy(w->meta, rp->metadata, w->metalen);
    w->hs = rp->hs;
    w->has_hs = rp->has_hs;
    w->snap = rp->snap;
    w->has_snap = rp->has_snap;
    w->le = le;
    return 0;
}

/* The log must hold every entry from snap_index + 1 to its end (when the end is beyond). */
static int check_coverage(const wal *w, const struct replay *st)
{
    if (st->le <= st->snap_index || st->le - st->snap_index == st->rp->nents)
        return 0;
    log_error("wal: entries missing in %s: the log ends at %llu but holds %zu entries after "
              "snapshot index %llu",
              w->dir, (unsigned long long)st->le, st->rp->nents,
              (unsigned long long)st->snap_index);
    return CE_CORRUPT;
}

static int replay_all(wal *w, uint64_t snap_index, wal_replay *rp, struct tail *t)
{
    size_t k = 0;
    int rc = start_segment(w->segs, w->nsegs, snap_index, &k);
    struct replay st = {.rp = rp, .snap_index = snap_index};
    for (size_t i = k; rc == 0 && i < w->nsegs; i++) {
        st.si = w->segs[i];
        rc = replay_file(w, &st, i == w->nsegs - 1, t);
    }
    if (rc == 0)
        rc = check_coverage(w, &st);
    if (rc == 0)
        rc = adopt_replay(w, rp, st.le);
    return rc;
}

int wal_open(const char *dir, uint64_t snap_index, wal **out, wal_replay *rp)
{
    memset(rp, 0, sizeof *rp);
    wal *w = wal_alloc(dir);
    if (!w)
        return CE_NOMEM;
    int rc = list_segments(dir, true, &w->segs, &w->nsegs);
    if (rc == 0 && w->nsegs == 0)
        rc = CE_NOTFOUND;
    if (rc != 0)
        goto out_free_wal;
    struct tail t = {0, 0};
    rc = open_dirfd(w);
    if (rc == 0)
        rc = replay_all(w, snap_index, rp, &t);
    if (rc == 0)
        rc = open_last(w, &t);
    if (rc != 0)
        goto out_free_replay;
    *out = w;
    return 0;
out_free_replay:
    wal_replay_free(rp);
out_free_wal:
    wal_free(w);
    return rc;
}

void wal_close(wal *w)
{
    if (!w)
        return;
    if (!w->failed && wal_sync(w) != 0)
        log_error("wal: sync on close failed in %s", w->dir);
    wal_free(w);
}
