/*
 * bbolt.c: read-only walk of a bbolt database image (etcd 3.4's backend), see bbolt.h. This file
 * owns the format's description; bbolt_fmt.h holds its constants for this reader and the writer
 * (bbolt_write.c, which documents the layout choices it makes within the format).
 *
 * Format (bbolt 1.3, as etcd 3.4 writes it; all integers little-endian on the platforms etcd
 * ships for, and read here as little-endian):
 *
 *   The file is a sequence of pages of page_size bytes (from the meta page; 4096 on amd64).
 *   Page N starts at N * page_size. Pages 0 and 1 are the two meta pages; the current one is
 *   the valid one with the higher txid. Every page begins with a 16-byte header:
 *     0   u64  id        the page's own number
 *     8   u16  flags     0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
 *     10  u16  count     number of elements
 *     12  u32  overflow  number of further pages this page spans (pages id+1 .. id+overflow)
 *
 *   Meta page (flags 0x04), after the header:
 *     16  u32  magic     0xED0CDAED
 *     20  u32  version   2
 *     24  u32  page_size
 *     28  u32  flags
 *     32  u64  root      root bucket: root page ...
 *     40  u64  sequence  ... and its sequence
 *     48  u64  freelist  freelist page (0xFFFFFFFFFFFFFFFF when not synced, as etcd runs)
 *     56  u64  pgid      high-water mark: number of pages in use
 *     64  u64  txid
 *     72  u64  checksum  64-bit FNV-1a over bytes 16..71
 *
 *   Branch page (0x01): count elements of 16 bytes from offset 16:
 *     0 u32 pos (key offset, from the element's own first byte), 4 u32 ksize, 8 u64 child page.
 *     Element i's key is the smallest key under its child; children are in key order.
 *   Leaf page (0x02): count elements of 16 bytes from offset 16:
 *     0 u32 flags (0x01: the value is a bucket), 4 u32 pos (from the element's first byte),
 *     8 u32 ksize, 12 u32 vsize; the key at element + pos, the value right after it.
 *   Keys and values may lie anywhere in the page's span (header page plus overflow pages).
 *
 *   A bucket value is a 16-byte header: u64 root page, u64 sequence. Root 0 marks an inline
 *   bucket: the rest of the value is a leaf page (header and elements, offsets relative to the
 *   inline page's start) holding the whole bucket. The root bucket of the file is the meta's.
 *
 * Invariants of the walk: a page is read only after id < pgid, its whole span within the image,
 * its header id equal to its number and its flags a branch or leaf have been checked; every
 * element and every key/value it points to lies inside the page's span; each page is visited
 * at most once per walk (the visited bitmap), branches nest at most MAX_DEPTH deep, and keys
 * must come in strictly increasing order. So a malformed image costs at most one pass over its
 * pages and ends in CE_CORRUPT.
 */
#include "bbolt.h"
#include "bbolt_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "err.h"
#include "fnv1a.h"
#include "lebytes.h"

#define PAGE_HDR BBOLT_PAGE_HDR
#define ELEM_SIZE BBOLT_ELEM_SIZE
#define BUCKET_HDR BBOLT_BUCKET_HDR
#define META_CHECKSUM_END BBOLT_META_CHECKSUM_END
#define F_BRANCH BBOLT_F_BRANCH
#define F_LEAF BBOLT_F_LEAF
#define LEAF_BUCKET BBOLT_LEAF_BUCKET
#define MAX_DEPTH 64
#define MIN_PSIZE 512u
#define MAX_PSIZE 65536u

struct bbolt {
    const uint8_t *img;
    size_t len;
    struct bbolt_meta meta;
    uint8_t *seen;      /* visited bitmap, one bit per page below meta.pgid */
};

/* One walk: the reader, the callback (given every entry's raw value, a bucket's header
 * included), the last key reported (for the order check). */
struct walk {
    struct bbolt *db;
    bbolt_kv_fn fn;
    void *arg;
    const uint8_t *last;
    size_t last_len;
    bool have_last;
    char *err;
    size_t errsz;
};

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Every refusal is CE_CORRUPT with its message in err. */
#define fail(err, errsz, ...) ce_errf((err), (errsz), CE_CORRUPT, __VA_ARGS__)

bool bbolt_is_image(const void *head, size_t len)
{
    return len >= 24 && le_get32((const uint8_t *)head + BBOLT_META_MAGIC) == BBOLT_MAGIC;
}

static bool psize_ok(uint32_t ps)
{
    return ps >= MIN_PSIZE && ps <= MAX_PSIZE && (ps & (ps - 1)) == 0;
}

/* Parses and validates the meta page at p (len bytes available from p). */
static bool meta_parse(const uint8_t *p, size_t len, struct bbolt_meta *m)
{
    if (len < META_CHECKSUM_END + 8)
        return false;
    if (le_get32(p + BBOLT_META_MAGIC) != BBOLT_MAGIC ||
        le_get32(p + BBOLT_META_VERSION) != BBOLT_VERSION)
        return false;
    if (fnv1a64(p + BBOLT_META_MAGIC, META_CHECKSUM_END - BBOLT_META_MAGIC) !=
        le_get64(p + META_CHECKSUM_END))
        return false;
    m->page_size = le_get32(p + BBOLT_META_PSIZE);
    m->root = le_get64(p + BBOLT_META_ROOT);
    m->freelist = le_get64(p + BBOLT_META_FREELIST);
    m->pgid = le_get64(p + BBOLT_META_PGID);
    m->txid = le_get64(p + BBOLT_META_TXID);
    return psize_ok(m->page_size);
}

/* The page size the image was written with: meta 0's if valid, else the first power of two at
 * which a valid meta 1 sits (bbolt falls back the same way). 0 if none. */
static uint32_t find_page_size(const uint8_t *h, size_t len)
{
    struct bbolt_meta m;

    if (meta_parse(h, len, &m))
        return m.page_size;
    for (uint32_t ps = MIN_PSIZE; ps <= MAX_PSIZE; ps *= 2)
        if (ps < len && meta_parse(h + ps, len - ps, &m) && m.page_size == ps)
            return ps;
    return 0;
}

int bbolt_meta_read(const void *head, size_t len, struct bbolt_meta *out, char *err,
                    size_t errsz)
{
    const uint8_t *h = head;
    struct bbolt_meta m0, m1;
    uint32_t ps = find_page_size(h, len);
    bool ok0, ok1;

    if (!ps)
        return fail(err, errsz, "bbolt: no valid meta page (bad magic, version or checksum)");
    ok0 = meta_parse(h, len, &m0) && m0.page_size == ps;
    ok1 = ps < len && meta_parse(h + ps, len - ps, &m1) && m1.page_size == ps;
    if (ok0 && (!ok1 || m0.txid >= m1.txid))
        *out = m0;
    else if (ok1)
        *out = m1;
    else
        return fail(err, errsz, "bbolt: no valid meta page");
    return 0;
}

int bbolt_open(const void *image, size_t len, struct bbolt **out, char *err, size_t errsz)
{
    struct bbolt *db;
    struct bbolt_meta m;
    int rc = bbolt_meta_read(image, len, &m, err, errsz);

    if (rc)
        return rc;
    if (m.pgid < 2 || m.pgid > len / m.page_size)
        return fail(err, errsz, "bbolt: meta says %llu pages of %u bytes, the image has %zu bytes",
                    (unsigned long long)m.pgid, m.page_size, len);
    if (m.root < 2 || m.root >= m.pgid)
        return fail(err, errsz, "bbolt: root bucket page %llu out of range",
                    (unsigned long long)m.root);
    db = calloc(1, sizeof(*db));
    if (!db)
        return CE_NOMEM;
    db->seen = calloc(1, (size_t)(m.pgid + 7) / 8);
    if (!db->seen) {
        free(db);
        return CE_NOMEM;
    }
    db->img = image;
    db->len = len;
    db->meta = m;
    *out = db;
    return 0;
}

void bbolt_close(struct bbolt *db)
{
    if (!db)
        return;
    free(db->seen);
    free(db);
}

const struct bbolt_meta *bbolt_meta_of(const struct bbolt *db) { return &db->meta; }

/* ---------------------------------------------------------------- pages */

/* A page (or an inline page) as a bounded byte span. */
struct page {
    const uint8_t *p;
    size_t span;
    uint64_t id;        /* for messages; ~0 for an inline page */
    uint16_t flags, count;
};

/* The page pgid, after every check the file-top comment lists; marks its span visited when
 * mark is set. */
static int page_get(struct walk *w, uint64_t pgid, bool mark, struct page *pg)
{
    struct bbolt *db = w->db;
    uint64_t ps = db->meta.page_size, over, off;
    const uint8_t *p;

    if (pgid < 2 || pgid >= db->meta.pgid)
        return fail(w->err, w->errsz, "bbolt: page %llu out of range (%llu pages)",
                    (unsigned long long)pgid, (unsigned long long)db->meta.pgid);
    off = pgid * ps;
    p = db->img + off;
    over = le_get32(p + 12);
    if (over >= db->meta.pgid - pgid)
        return fail(w->err, w->errsz, "bbolt: page %llu: overflow %llu past the last page",
                    (unsigned long long)pgid, (unsigned long long)over);
    if (le_get64(p) != pgid)
        return fail(w->err, w->errsz, "bbolt: page %llu: header says page %llu",
                    (unsigned long long)pgid, (unsigned long long)le_get64(p));
    pg->p = p;
    pg->span = (size_t)((over + 1) * ps);
    pg->id = pgid;
    pg->flags = get16(p + 8);
    pg->count = get16(p + 10);
    if (pg->flags != F_BRANCH && pg->flags != F_LEAF)
        return fail(w->err, w->errsz, "bbolt: page %llu: flags 0x%x is not a branch or leaf",
                    (unsigned long long)pgid, pg->flags);
    if (PAGE_HDR + (size_t)pg->count * ELEM_SIZE > pg->span)
        return fail(w->err, w->errsz, "bbolt: page %llu: %u elements do not fit",
                    (unsigned long long)pgid, pg->count);
    if (!mark)
        return 0;
    for (uint64_t i = pgid; i <= pgid + over; i++) {
        if (db->seen[i / 8] & (1u << (i % 8)))
            return fail(w->err, w->errsz, "bbolt: page %llu reached twice",
                        (unsigned long long)i);
        db->seen[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    return 0;
}

/* The inline page inside a bucket value (after its 16-byte header). */
static int inline_page(struct walk *w, const uint8_t *v, size_t vlen, struct page *pg)
{
    if (vlen < BUCKET_HDR + PAGE_HDR)
        return fail(w->err, w->errsz, "bbolt: inline bucket value of %zu bytes too short", vlen);
    pg->p = v + BUCKET_HDR;
    pg->span = vlen - BUCKET_HDR;
    pg->id = ~0ull;
    pg->flags = get16(pg->p + 8);
    pg->count = get16(pg->p + 10);
    if (pg->flags != F_LEAF)
        return fail(w->err, w->errsz, "bbolt: inline bucket page is not a leaf");
    if (PAGE_HDR + (size_t)pg->count * ELEM_SIZE > pg->span)
        return fail(w->err, w->errsz, "bbolt: inline bucket: %u elements do not fit",
                    pg->count);
    return 0;
}

/* Leaf element i: its flags, key and value, all within the page's span. */
static int leaf_elem(struct walk *w, const struct page *pg, unsigned i, uint32_t *flags,
                     const uint8_t **k, size_t *kl, const uint8_t **v, size_t *vl)
{
    size_t eo = PAGE_HDR + (size_t)i * ELEM_SIZE;
    const uint8_t *e = pg->p + eo;
    uint64_t pos = le_get32(e + 4), ks = le_get32(e + 8), vs = le_get32(e + 12);

    if (eo + pos + ks + vs > pg->span)
        return fail(w->err, w->errsz, "bbolt: page %llu: element %u out of the page",
                    (unsigned long long)pg->id, i);
    *flags = le_get32(e);
    *k = e + pos;
    *kl = (size_t)ks;
    *v = e + pos + ks;
    *vl = (size_t)vs;
    return 0;
}

/* Branch element i: its child page and its key (the smallest key under the child). */
static int branch_elem(struct walk *w, const struct page *pg, unsigned i, uint64_t *child,
                       const uint8_t **k, size_t *kl)
{
    size_t eo = PAGE_HDR + (size_t)i * ELEM_SIZE;
    const uint8_t *e = pg->p + eo;
    uint64_t pos = le_get32(e), ks = le_get32(e + 4);

    if (eo + pos + ks > pg->span)
        return fail(w->err, w->errsz, "bbolt: page %llu: element %u out of the page",
                    (unsigned long long)pg->id, i);
    *child = le_get64(e + 8);
    *k = e + pos;
    *kl = (size_t)ks;
    return 0;
}

static int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    return c ? c : (al > bl) - (al < bl);
}

static int leaf_walk(struct walk *w, const struct page *pg)
{
    for (unsigned i = 0; i < pg->count; i++) {
        const uint8_t *k, *v;
        size_t kl, vl;
        uint32_t fl;
        int rc = leaf_elem(w, pg, i, &fl, &k, &kl, &v, &vl);

        if (rc)
            return rc;
        if (w->have_last && keycmp(w->last, w->last_len, k, kl) >= 0)
            return fail(w->err, w->errsz, "bbolt: page %llu: keys out of order",
                        (unsigned long long)pg->id);
        w->last = k;
        w->last_len = kl;
        w->have_last = true;
        if ((rc = w->fn(w->arg, k, kl, v, vl, fl & LEAF_BUCKET)))
            return rc;
    }
    return 0;
}

static int tree_walk(struct walk *w, uint64_t pgid, int depth)
{
    struct page pg;
    int rc;

    if (depth > MAX_DEPTH)
        return fail(w->err, w->errsz, "bbolt: tree deeper than %d levels", MAX_DEPTH);
    if ((rc = page_get(w, pgid, true, &pg)))
        return rc;
    if (pg.flags == F_LEAF)
        return leaf_walk(w, &pg);
    if (pg.count == 0)
        return fail(w->err, w->errsz, "bbolt: page %llu: empty branch",
                    (unsigned long long)pgid);
    for (unsigned i = 0; i < pg.count; i++) {
        const uint8_t *k;
        size_t kl;
        uint64_t child;
        if ((rc = branch_elem(w, &pg, i, &child, &k, &kl)) || (rc = tree_walk(w, child, depth + 1)))
            return rc;
    }
    return 0;
}

/* Walks the bucket whose value (16-byte header, maybe an inline page) is v[0..vlen). */
static int bucket_walk(struct walk *w, const uint8_t *v, size_t vlen)
{
    struct page pg;
    uint64_t root;
    int rc;

    if (vlen < BUCKET_HDR)
        return fail(w->err, w->errsz, "bbolt: bucket value of %zu bytes too short", vlen);
    w->have_last = false;
    root = le_get64(v);
    if (root)
        return tree_walk(w, root, 0);
    if ((rc = inline_page(w, v, vlen, &pg)))
        return rc;
    return leaf_walk(w, &pg);
}

/* ---------------------------------------------------------------- lookup */

/* Finds key in the bucket whose value is v and returns its value (must be a bucket). A lookup
 * descends one path of at most MAX_DEPTH pages, so it needs no visited marks. */
static int bucket_find(struct walk *w, const uint8_t *v, size_t vlen, const struct bbolt_name *key,
                       const uint8_t **out, size_t *outlen)
{
    struct page pg;
    uint64_t pgid;
    int rc;

    if (vlen < BUCKET_HDR)
        return fail(w->err, w->errsz, "bbolt: bucket value of %zu bytes too short", vlen);
    pgid = le_get64(v);
    if (pgid == 0) {
        if ((rc = inline_page(w, v, vlen, &pg)))
            return rc;
    }
    for (int depth = 0; pgid; depth++) {
        if (depth > MAX_DEPTH)
            return fail(w->err, w->errsz, "bbolt: tree deeper than %d levels", MAX_DEPTH);
        if ((rc = page_get(w, pgid, false, &pg)))
            return rc;
        if (pg.flags == F_LEAF)
            break;
        uint64_t next = 0;
        for (unsigned i = 0; i < pg.count; i++) {
            const uint8_t *k;
            size_t kl;
            uint64_t child;
            if ((rc = branch_elem(w, &pg, i, &child, &k, &kl)))
                return rc;
            if (i > 0 && keycmp(k, kl, key->p, key->len) > 0)
                break;
            next = child;
        }
        if (!next)
            return fail(w->err, w->errsz, "bbolt: page %llu: empty branch",
                        (unsigned long long)pgid);
        pgid = next;
    }
    for (unsigned i = 0; i < pg.count; i++) {
        const uint8_t *k, *val;
        size_t kl, vl;
        uint32_t fl;
        if ((rc = leaf_elem(w, &pg, i, &fl, &k, &kl, &val, &vl)))
            return rc;
        if (keycmp(k, kl, key->p, key->len) == 0) {
            if (!(fl & LEAF_BUCKET))
                return CE_NOTFOUND;
            *out = val;
            *outlen = vl;
            return 0;
        }
    }
    return CE_NOTFOUND;
}

/* The public callback sees a bucket entry as bbolt's ForEach shows it: no value. */
struct user_cb {
    bbolt_kv_fn fn;
    void *arg;
};

static int user_kv(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   bool is_bucket)
{
    struct user_cb *u = arg;

    return is_bucket ? u->fn(u->arg, k, kl, NULL, 0, true) : u->fn(u->arg, k, kl, v, vl, false);
}

int bbolt_foreach(struct bbolt *db, const struct bbolt_name *path, size_t depth,
                  bbolt_kv_fn fn, void *arg, char *err, size_t errsz)
{
    struct user_cb u = {fn, arg};
    struct walk w = {.db = db, .fn = user_kv, .arg = &u, .err = err, .errsz = errsz};
    uint8_t rootv[BUCKET_HDR] = {0};
    const uint8_t *v = rootv;
    size_t vlen = sizeof(rootv);
    int rc;

    le_put64(rootv, db->meta.root);
    for (size_t i = 0; i < depth; i++)
        if ((rc = bucket_find(&w, v, vlen, &path[i], &v, &vlen)))
            return rc;
    memset(db->seen, 0, (size_t)(db->meta.pgid + 7) / 8);
    return bucket_walk(&w, v, vlen);
}

/* ---------------------------------------------------------------- etcd's status */

struct status_ctx {
    struct walk *outer;     /* the root walk: its reader, error buffer */
    struct bbolt_status *st;
    bool key_bucket;
};

/* An entry of a top-level bucket; a nested bucket counts with no value, as in ForEach. */
static int status_kv(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                     bool is_bucket)
{
    struct status_ctx *s = arg;
    struct walk *w = s->outer;

    s->st->hash = crc32c(s->st->hash, k, kl);
    if (vl && !is_bucket)
        s->st->hash = crc32c(s->st->hash, v, vl);
    if (s->key_bucket) {
        if (kl < 8)
            return fail(w->err, w->errsz, "bbolt: bucket \"key\": key of %zu bytes is not a "
                        "revision", kl);
        s->st->revision = (int64_t)(((uint64_t)k[0] << 56) | ((uint64_t)k[1] << 48) |
                                    ((uint64_t)k[2] << 40) | ((uint64_t)k[3] << 32) |
                                    ((uint64_t)k[4] << 24) | ((uint64_t)k[5] << 16) |
                                    ((uint64_t)k[6] << 8) | k[7]);
    }
    s->st->total_keys++;
    return 0;
}

/* One top-level bucket: its name into the hash, then its entries (sharing the visited marks
 * of the whole walk, so the status costs one pass over the pages at most). */
static int status_bucket(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                         bool is_bucket)
{
    struct status_ctx *s = arg;
    struct walk *w = s->outer;
    struct status_ctx inner = {.outer = w, .st = s->st};
    struct walk sub = {.db = w->db, .fn = status_kv, .arg = &inner, .err = w->err,
                       .errsz = w->errsz};

    if (!is_bucket)
        return fail(w->err, w->errsz, "cannot get hash of bucket %.*s", (int)kl, (const char *)k);
    s->st->hash = crc32c(s->st->hash, k, kl);
    inner.key_bucket = kl == 3 && !memcmp(k, "key", 3);
    return bucket_walk(&sub, v, vl);
}

int bbolt_etcd_status(const void *image, size_t len, struct bbolt_status *out, char *err,
                      size_t errsz)
{
    struct bbolt *db;
    struct bbolt_status st = {0};
    struct status_ctx s = {.st = &st};
    struct walk w = {.fn = status_bucket, .arg = &s, .err = err, .errsz = errsz};
    uint8_t rootv[BUCKET_HDR] = {0};
    int rc = bbolt_open(image, len, &db, err, errsz);

    if (rc)
        return rc;
    w.db = db;
    s.outer = &w;
    le_put64(rootv, db->meta.root);
    rc = bucket_walk(&w, rootv, sizeof(rootv));
    if (rc == 0) {
        st.total_size = (int64_t)(db->meta.pgid * db->meta.page_size);
        *out = st;
    }
    bbolt_close(db);
    return rc;
}
