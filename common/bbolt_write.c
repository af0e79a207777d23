/*
 * bbolt_write.c: bulk load of a bbolt database file from sorted input (bbolt_write.h). The
 * format is bbolt.c's (page headers, elements, meta pages); what this writer chooses:
 *
 *   Page size 4096. Pages are numbered in the order they are written: 0 and 1 the metas (zeros
 *   until the end), then from 2 on every bucket's pages as they fill, bottom up, then the root
 *   bucket's pages, then one empty freelist page (flags 0x10, count 0), so the file is exactly
 *   pgid x 4096 bytes and has no free page.
 *   A bucket is a B+tree built level by level: leaf elements are collected until the next one
 *   would make the page exceed 4096 bytes (16 header + 16 per element + keys and values), then
 *   the leaf is written and (its first key, its page number) becomes an element of the level
 *   above, which fills and spills the same way (a branch page holds at least two elements, so
 *   the tree's height is logarithmic whatever the key sizes). An element larger than a page gets
 *   a leaf of its own spanning overflow pages (header overflow = pages - 1). At the end of the
 *   bucket each level is written from the bottom up; the single element left at the top names
 *   the root page. A bucket whose whole content fits one leaf of at most 1024 bytes (page size /
 *   4, bbolt's rule) is stored inline in its value (bucket header root 0, then the leaf page
 *   image with page id 0), as bbolt stores small and empty buckets.
 *   The root bucket holds (bucket name -> bucket value) with leaf element flag 0x01; it is
 *   always a page tree (the meta's root). Both metas are written last, in one write: identical
 *   but for their page id and txid (page 0 txid 0, page 1 txid 1, so page 1 is current), version
 *   2, flags 0, root sequence 0, freelist = its page, pgid = pages written, FNV-1a checksum.
 *
 * Invariants: next_pgid is the number of pages allocated; out holds the pages from out_pgid to
 * next_pgid - 1 not yet written, back to back (pages are written in allocation order); each
 * level's pending elements fit one page except a leaf of a single big element; err, once set,
 * is returned by every call and the metas are never written.
 */
#include "bbolt_write.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bbolt_fmt.h"
#include "err.h"
#include "fdio.h"
#include "fnv1a.h"
#include "lebytes.h"

#define PS BBOLT_WRITE_PAGE_SIZE
#define MAX_LEVELS 64
#define OUT_FLUSH (1u << 20)          /* bytes of pages buffered before a write */
#define INLINE_MAX (PS / BBOLT_INLINE_DIV)

/* A pending element: its key at data + off, then (leaves) its value. */
struct elem {
    size_t off;
    uint32_t ksize, vsize;
    uint32_t flags;                   /* leaf element flags */
    uint64_t child;                   /* branch element's page */
};

/* The pending elements of one level of a tree (level 0: the leaf). */
struct level {
    uint8_t *data;                    /* keys (and values) back to back, as in the page */
    size_t len, cap;
    struct elem *el;
    size_t n, ncap;
};

/* A bucket being built. */
struct tree {
    struct level lv[MAX_LEVELS];
    int nlv;                          /* levels in use (>= 1) */
    uint8_t *last;                    /* the last key put, for the order check */
    size_t last_len, last_cap;
    bool have_last;
};

struct bbolt_writer {
    int fd;
    int err;
    bool finished;
    uint64_t next_pgid;
    uint8_t *out;                     /* pages out_pgid .. next_pgid - 1 */
    size_t out_len, out_cap;
    uint64_t out_pgid;
    struct tree root, bucket;
    bool in_bucket;
    uint8_t *name;                    /* the current bucket's name */
    size_t name_len, name_cap;
};

/* ---------------------------------------------------------------- buffers */

static int grow(uint8_t **p, size_t *cap, size_t need)
{
    size_t c = *cap ? *cap : 256;
    uint8_t *q;

    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    q = realloc(*p, c);
    if (!q)
        return CE_NOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int set_bytes(uint8_t **p, size_t *len, size_t *cap, const void *src, size_t n)
{
    int rc = grow(p, cap, n ? n : 1);

    if (!rc) {
        memcpy(*p, src, n);
        *len = n;
    }
    return rc;
}

static int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    return c ? c : (al > bl) - (al < bl);
}

static void tree_free(struct tree *t)
{
    for (int i = 0; i < MAX_LEVELS; i++) {
        free(t->lv[i].data);
        free(t->lv[i].el);
    }
    free(t->last);
    memset(t, 0, sizeof(*t));
}

/* Empties t for a new bucket, keeping its buffers. */
static void tree_reset(struct tree *t)
{
    for (int i = 0; i < MAX_LEVELS; i++)
        t->lv[i].len = t->lv[i].n = 0;
    t->nlv = 1;
    t->have_last = false;
}

/* ---------------------------------------------------------------- output */

static int out_flush(struct bbolt_writer *w)
{
    int rc;

    if (!w->out_len)
        return 0;
    rc = fd_pwrite_full(w->fd, w->out, w->out_len, w->out_pgid * PS);
    w->out_pgid += w->out_len / PS;
    w->out_len = 0;
    return rc;
}

/* Allocates npages pages at the end of the file; *p points at their zeroed bytes in out. */
static int out_alloc(struct bbolt_writer *w, size_t npages, uint64_t *pgid, uint8_t **p)
{
    size_t bytes = npages * PS;
    int rc;

    if (w->out_len && w->out_len + bytes > OUT_FLUSH && (rc = out_flush(w)) != 0)
        return rc;
    if ((rc = grow(&w->out, &w->out_cap, w->out_len + bytes)) != 0)
        return rc;
    *p = w->out + w->out_len;
    memset(*p, 0, bytes);
    w->out_len += bytes;
    *pgid = w->next_pgid;
    w->next_pgid += npages;
    return 0;
}

/* ---------------------------------------------------------------- nodes */

/* Bytes of a page holding the elements of lv. */
static size_t level_size(const struct level *lv)
{
    return BBOLT_PAGE_HDR + lv->n * BBOLT_ELEM_SIZE + lv->len;
}

/* The page image of lv (leaf or branch) at p, with page id id and span pages. */
static void node_render(const struct level *lv, bool leaf, uint8_t *p, uint64_t id,
                        size_t span)
{
    size_t data = BBOLT_PAGE_HDR + lv->n * BBOLT_ELEM_SIZE;

    le_put64(p, id);
    p[8] = leaf ? BBOLT_F_LEAF : BBOLT_F_BRANCH;
    p[9] = 0;
    p[10] = (uint8_t)lv->n;
    p[11] = (uint8_t)(lv->n >> 8);
    le_put32(p + 12, (uint32_t)(span - 1));
    for (size_t i = 0; i < lv->n; i++) {
        const struct elem *e = &lv->el[i];
        size_t eo = BBOLT_PAGE_HDR + i * BBOLT_ELEM_SIZE;
        uint32_t pos = (uint32_t)(data + e->off - eo);
        uint8_t *q = p + eo;
        if (leaf) {
            le_put32(q, e->flags);
            le_put32(q + 4, pos);
            le_put32(q + 8, e->ksize);
            le_put32(q + 12, e->vsize);
        } else {
            le_put32(q, pos);
            le_put32(q + 4, e->ksize);
            le_put64(q + 8, e->child);
        }
    }
    if (lv->len)
        memcpy(p + data, lv->data, lv->len);
}

/* Appends an element (key k, value v for a leaf) to lv. */
static int level_add(struct level *lv, const void *k, size_t kl, const void *v, size_t vl,
                     uint32_t flags, uint64_t child)
{
    struct elem *e;
    int rc;

    if (lv->n == lv->ncap) {
        size_t nc = lv->ncap ? lv->ncap * 2 : 64;
        struct elem *ne = realloc(lv->el, nc * sizeof(*ne));
        if (!ne)
            return CE_NOMEM;
        lv->el = ne;
        lv->ncap = nc;
    }
    if ((rc = grow(&lv->data, &lv->cap, lv->len + kl + vl)) != 0)
        return rc;
    e = &lv->el[lv->n++];
    e->off = lv->len;
    e->ksize = (uint32_t)kl;
    e->vsize = (uint32_t)vl;
    e->flags = flags;
    e->child = child;
    memcpy(lv->data + lv->len, k, kl);
    if (vl)
        memcpy(lv->data + lv->len + kl, v, vl);
    lv->len += kl + vl;
    return 0;
}

static int tree_add(struct bbolt_writer *w, struct tree *t, int level, const void *k,
                    size_t kl, const void *v, size_t vl, uint32_t flags, uint64_t child);

/* Writes level L of t as a page and hands (its first key, its page) to level L + 1. */
static int level_spill(struct bbolt_writer *w, struct tree *t, int level)
{
    struct level *lv = &t->lv[level];
    size_t bytes = level_size(lv), span = (bytes + PS - 1) / PS;
    uint64_t pgid;
    uint8_t *p;
    int rc;

    if ((rc = out_alloc(w, span, &pgid, &p)) != 0)
        return rc;
    node_render(lv, level == 0, p, pgid, span);
    if (level + 1 == t->nlv) {
        if (t->nlv == MAX_LEVELS)
            return CE_INVAL;
        t->nlv++;
    }
    rc = tree_add(w, t, level + 1, lv->data + lv->el[0].off, lv->el[0].ksize, NULL, 0, 0, pgid);
    lv->n = lv->len = 0;
    return rc;
}

/* Adds an element to level L of t, first spilling the level if the element would not fit
 * (a leaf keeps at least one element, a branch at least two). */
static int tree_add(struct bbolt_writer *w, struct tree *t, int level, const void *k,
                    size_t kl, const void *v, size_t vl, uint32_t flags, uint64_t child)
{
    struct level *lv = &t->lv[level];
    size_t min = level == 0 ? 1 : 2;
    int rc;

    if (lv->n >= min && level_size(lv) + BBOLT_ELEM_SIZE + kl + vl > PS &&
        (rc = level_spill(w, t, level)) != 0)
        return rc;
    return level_add(lv, k, kl, v, vl, flags, child);
}

/* A put into t with the order check against its last key. */
static int tree_put(struct bbolt_writer *w, struct tree *t, const void *k, size_t kl,
                    const void *v, size_t vl, uint32_t flags)
{
    int rc;

    if (kl == 0 || kl > BBOLT_MAX_KEY || vl > BBOLT_MAX_VALUE)
        return CE_INVAL;
    if (t->have_last && keycmp(t->last, t->last_len, k, kl) >= 0)
        return CE_INVAL;
    if ((rc = set_bytes(&t->last, &t->last_len, &t->last_cap, k, kl)) != 0)
        return rc;
    t->have_last = true;
    return tree_add(w, t, 0, k, kl, v, vl, flags, 0);
}

/* The value of a bucket whose tree is complete: a 16-byte header naming its root page, or the
 * header (root 0) and the inline leaf when allow_inline and the bucket is small. val must have
 * room for BBOLT_BUCKET_HDR + INLINE_MAX bytes. */
static int tree_end(struct bbolt_writer *w, struct tree *t, bool allow_inline, uint8_t *val,
                    size_t *vlen, uint64_t *root)
{
    int rc;

    memset(val, 0, BBOLT_BUCKET_HDR);
    if (allow_inline && t->nlv == 1 && level_size(&t->lv[0]) <= INLINE_MAX) {
        node_render(&t->lv[0], true, val + BBOLT_BUCKET_HDR, 0, 1);
        *vlen = BBOLT_BUCKET_HDR + level_size(&t->lv[0]);
        *root = 0;
        return 0;
    }
    if (t->nlv == 1 && t->lv[0].n == 0) {                /* an empty tree: one empty leaf */
        uint8_t *p;
        if ((rc = out_alloc(w, 1, root, &p)) != 0)
            return rc;
        node_render(&t->lv[0], true, p, *root, 1);
        le_put64(val, *root);
        *vlen = BBOLT_BUCKET_HDR;
        return 0;
    }
    for (int l = 0;; l++) {
        if (l == t->nlv - 1 && (l == 0 || t->lv[l].n >= 2)) {
            if ((rc = level_spill(w, t, l)) != 0)    /* the root page; adds level l + 1 */
                return rc;
        } else if (l == t->nlv - 1) {
            *root = t->lv[l].el[0].child;             /* one element left at the top */
            break;
        } else if (t->lv[l].n && (rc = level_spill(w, t, l)) != 0) {
            return rc;
        }
    }
    le_put64(val, *root);
    *vlen = BBOLT_BUCKET_HDR;
    return 0;
}

/* ---------------------------------------------------------------- buckets */

/* Ends the current bucket: its pages written, its value an entry of the root bucket. */
static int bucket_end(struct bbolt_writer *w)
{
    uint8_t val[BBOLT_BUCKET_HDR + INLINE_MAX];
    size_t vlen;
    uint64_t root;
    int rc;

    if (!w->in_bucket)
        return 0;
    w->in_bucket = false;
    if ((rc = tree_end(w, &w->bucket, true, val, &vlen, &root)) != 0)
        return rc;
    return tree_put(w, &w->root, w->name, w->name_len, val, vlen, BBOLT_LEAF_BUCKET);
}

/* A sticky error: the first one is kept. */
static int latch(struct bbolt_writer *w, int rc)
{
    if (rc && !w->err)
        w->err = rc;
    return w->err ? w->err : rc;
}

int bbolt_writer_new(int fd, struct bbolt_writer **out)
{
    struct bbolt_writer *w = calloc(1, sizeof(*w));
    uint8_t zero[2 * PS] = {0};
    int rc;

    if (!w)
        return CE_NOMEM;
    w->fd = fd;
    w->next_pgid = w->out_pgid = 2;
    tree_reset(&w->root);
    tree_reset(&w->bucket);
    /* no stale meta may survive: the file starts empty with two zero pages */
    rc = ftruncate(fd, 0) != 0 ? ce_from_errno(errno) : fd_pwrite_full(fd, zero, sizeof(zero), 0);
    if (rc) {
        bbolt_writer_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int bbolt_writer_bucket(struct bbolt_writer *w, const void *name, size_t len)
{
    int rc;

    if (w->err || w->finished)
        return latch(w, CE_INVAL);
    if (len == 0 || len > BBOLT_MAX_KEY ||
        (w->name_len && keycmp(w->name, w->name_len, name, len) >= 0))
        return latch(w, CE_INVAL);
    if ((rc = bucket_end(w)) != 0)
        return latch(w, rc);
    if ((rc = set_bytes(&w->name, &w->name_len, &w->name_cap, name, len)) != 0)
        return latch(w, rc);
    tree_reset(&w->bucket);
    w->in_bucket = true;
    return 0;
}

int bbolt_writer_put(struct bbolt_writer *w, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    if (w->err || w->finished || !w->in_bucket)
        return latch(w, CE_INVAL);
    return latch(w, tree_put(w, &w->bucket, key, klen, val, vlen, 0));
}

/* The two meta pages into m (2 pages). */
static void metas_render(uint8_t *m, uint64_t root, uint64_t freelist, uint64_t pgid)
{
    for (uint64_t i = 0; i < 2; i++) {
        uint8_t *p = m + i * PS;
        le_put64(p, i);
        p[8] = BBOLT_F_META;
        le_put32(p + BBOLT_META_MAGIC, BBOLT_MAGIC);
        le_put32(p + BBOLT_META_VERSION, BBOLT_VERSION);
        le_put32(p + BBOLT_META_PSIZE, PS);
        le_put32(p + BBOLT_META_FLAGS, 0);
        le_put64(p + BBOLT_META_ROOT, root);
        le_put64(p + BBOLT_META_SEQ, 0);
        le_put64(p + BBOLT_META_FREELIST, freelist);
        le_put64(p + BBOLT_META_PGID, pgid);
        le_put64(p + BBOLT_META_TXID, i);
        le_put64(p + BBOLT_META_CHECKSUM_END,
                 fnv1a64(p + BBOLT_META_MAGIC, BBOLT_META_CHECKSUM_END - BBOLT_META_MAGIC));
    }
}

/* Root bucket, freelist, the data made durable in order, then the metas. */
static int finish(struct bbolt_writer *w, uint64_t *size)
{
    uint8_t val[BBOLT_BUCKET_HDR + INLINE_MAX], *p, *metas;
    size_t vlen;
    uint64_t root, freelist;
    int rc;

    if ((rc = bucket_end(w)) != 0 || (rc = tree_end(w, &w->root, false, val, &vlen, &root)) != 0)
        return rc;
    if ((rc = out_alloc(w, 1, &freelist, &p)) != 0)
        return rc;
    le_put64(p, freelist);
    p[8] = BBOLT_F_FREELIST;
    if ((rc = out_flush(w)) != 0)
        return rc;
    metas = calloc(2, PS);
    if (!metas)
        return CE_NOMEM;
    metas_render(metas, root, freelist, w->next_pgid);
    rc = fd_pwrite_full(w->fd, metas, 2 * PS, 0);
    free(metas);
    if (!rc && size)
        *size = w->next_pgid * PS;
    return rc;
}

int bbolt_writer_finish(struct bbolt_writer *w, uint64_t *size)
{
    int rc;

    if (w->err || w->finished)
        return latch(w, CE_INVAL);
    rc = finish(w, size);
    w->finished = true;
    return latch(w, rc);
}

void bbolt_writer_free(struct bbolt_writer *w)
{
    if (!w)
        return;
    tree_free(&w->root);
    tree_free(&w->bucket);
    free(w->out);
    free(w->name);
    free(w);
}
