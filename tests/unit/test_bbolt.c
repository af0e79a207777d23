/*
 * test_bbolt.c: the bbolt reader (common/bbolt.h).
 *
 * - A real etcd 3.4 snapshot (tests/unit/data/snapshot/etcd34.db: 300 keys, a 10000-byte
 *   value on overflow pages, branch pages, deletes, a compaction, a lease) gives exactly what
 *   Debian's `etcdctl snapshot status` printed for it: f3c6ee38, 316, 311, 98 kB
 *   ({"hash":4089900600,"revision":316,"totalKey":311,"totalSize":98304}).
 * - A synthetic image built here byte by byte (meta pages with FNV checksums, an inline
 *   bucket holding a nested bucket, a branch page, an overflow page) is walked in order and
 *   its status computed independently.
 * - Each kind of damage is refused with CE_CORRUPT and a message: cycles, pages out of range,
 *   elements outside their page, overflow past the end, bad meta checksums (one good meta still
 *   suffices), keys out of order, a page header naming another page, short inline buckets.
 * - Fuzz: random byte flips, word overwrites and truncations of both images (meta checksums
 *   repaired half of the time so the damage reaches the tree walk) never crash and return 0 or
 *   CE_CORRUPT. The seed is printed; BBOLT_FUZZ_SEED=<n> replays it, BBOLT_FUZZ_ITERS=<n> sets
 *   the number of rounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bbolt.h"
#include "crc32c.h"
#include "err.h"
#include "fnv1a.h"
#include "lebytes.h"
#include "testfile.h"

#define PS 4096

/* ---------------------------------------------------------------- helpers */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void page_hdr(uint8_t *p, uint64_t id, uint16_t flags, uint16_t count, uint32_t overflow)
{
    le_put64(p, id);
    put16(p + 8, flags);
    put16(p + 10, count);
    le_put32(p + 12, overflow);
}

/* Recomputes the checksum of the meta page at p. */
static void meta_sum(uint8_t *p)
{
    le_put64(p + 72, fnv1a64(p + 16, 56));
}

static void meta_page(uint8_t *p, uint64_t id, uint64_t root, uint64_t hwm, uint64_t txid)
{
    page_hdr(p, id, 0x04, 0, 0);
    le_put32(p + 16, BBOLT_MAGIC);
    le_put32(p + 20, 2);
    le_put32(p + 24, PS);
    le_put32(p + 28, 0);
    le_put64(p + 32, root);
    le_put64(p + 40, 0);
    le_put64(p + 48, ~0ull);
    le_put64(p + 56, hwm);
    le_put64(p + 64, txid);
    meta_sum(p);
}

struct ent {
    uint32_t flags;
    const void *k;
    size_t kl;
    const void *v;
    size_t vl;
};

/* Writes a leaf page (header at p) with the entries; returns the bytes used. */
static size_t leaf(uint8_t *p, uint64_t id, uint32_t overflow, const struct ent *e, int n)
{
    size_t data = 16 + (size_t)n * 16;

    page_hdr(p, id, 0x02, (uint16_t)n, overflow);
    for (int i = 0; i < n; i++) {
        uint8_t *el = p + 16 + i * 16;
        le_put32(el, e[i].flags);
        le_put32(el + 4, (uint32_t)(p + data - el));
        le_put32(el + 8, (uint32_t)e[i].kl);
        le_put32(el + 12, (uint32_t)e[i].vl);
        memcpy(p + data, e[i].k, e[i].kl);
        memcpy(p + data + e[i].kl, e[i].v, e[i].vl);
        data += e[i].kl + e[i].vl;
    }
    return data;
}

static void branch(uint8_t *p, uint64_t id, const uint8_t *const *keys, const size_t *klens,
                   const uint64_t *kids, int n)
{
    size_t data = 16 + (size_t)n * 16;

    page_hdr(p, id, 0x01, (uint16_t)n, 0);
    for (int i = 0; i < n; i++) {
        uint8_t *el = p + 16 + i * 16;
        le_put32(el, (uint32_t)(p + data - el));
        le_put32(el + 4, (uint32_t)klens[i]);
        le_put64(el + 8, kids[i]);
        memcpy(p + data, keys[i], klens[i]);
        data += klens[i];
    }
}

static void revkey(uint8_t k[17], uint64_t main)
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(main >> (56 - 8 * i));
    k[8] = '_';
    memset(k + 9, 0, 8);
}

/*
 * The synthetic image, 7 pages:
 *   0, 1  meta (meta 1 current: txid 2), root bucket at page 2, hwm 7
 *   2     root leaf: "alpha" (inline bucket: a1=v1, a2=v2, "sub" = an inline empty bucket),
 *                    "key" (bucket rooted at page 3)
 *   3     branch: rev 1 -> page 4, rev 5 -> page 5
 *   4     leaf: rev 1 = "x", rev 2 = "yy"
 *   5-6   leaf with one overflow page: rev 5 = 5000 bytes of 'Z'
 */
#define SYN_PAGES 7
#define BIG_LEN 5000
static uint8_t g_rk[3][17];
static uint8_t g_big[BIG_LEN];

static uint8_t *synthetic(size_t *len)
{
    uint8_t *img = calloc(SYN_PAGES, PS);
    uint8_t inl[256], sub[32];
    size_t inl_len;

    assert_non_null(img);
    revkey(g_rk[0], 1);
    revkey(g_rk[1], 2);
    revkey(g_rk[2], 5);
    memset(g_big, 'Z', sizeof(g_big));
    meta_page(img, 0, 2, SYN_PAGES, 1);
    meta_page(img + PS, 1, 2, SYN_PAGES, 2);
    /* "sub": an empty inline bucket (header + empty leaf page) */
    memset(sub, 0, sizeof(sub));
    page_hdr(sub + 16, 0, 0x02, 0, 0);
    /* "alpha": inline bucket */
    memset(inl, 0, 16);
    struct ent ae[] = {
        {0, "a1", 2, "v1", 2},
        {0, "a2", 2, "v2", 2},
        {1, "sub", 3, sub, 32},
    };
    inl_len = 16 + leaf(inl + 16, 0, 0, ae, 3);
    uint8_t keyb[16] = {0};
    le_put64(keyb, 3);
    struct ent re[] = {
        {1, "alpha", 5, inl, inl_len},
        {1, "key", 3, keyb, 16},
    };
    leaf(img + 2 * PS, 2, 0, re, 2);
    const uint8_t *bk[] = {g_rk[0], g_rk[2]};
    size_t bkl[] = {17, 17};
    uint64_t kids[] = {4, 5};
    branch(img + 3 * PS, 3, bk, bkl, kids, 2);
    struct ent k1[] = {{0, g_rk[0], 17, "x", 1}, {0, g_rk[1], 17, "yy", 2}};
    leaf(img + 4 * PS, 4, 0, k1, 2);
    struct ent k2[] = {{0, g_rk[2], 17, g_big, BIG_LEN}};
    leaf(img + 5 * PS, 5, 1, k2, 1);
    *len = SYN_PAGES * PS;
    return img;
}

static uint32_t synthetic_hash(void)
{
    uint32_t h = 0;

    h = crc32c(h, "alpha", 5);
    h = crc32c(h, "a1", 2), h = crc32c(h, "v1", 2);
    h = crc32c(h, "a2", 2), h = crc32c(h, "v2", 2);
    h = crc32c(h, "sub", 3);            /* a nested bucket: its name, no value */
    h = crc32c(h, "key", 3);
    h = crc32c(h, g_rk[0], 17), h = crc32c(h, "x", 1);
    h = crc32c(h, g_rk[1], 17), h = crc32c(h, "yy", 2);
    h = crc32c(h, g_rk[2], 17), h = crc32c(h, g_big, BIG_LEN);
    return h;
}

/* Status of img that must fail with CE_CORRUPT and a message containing want. */
static void expect_corrupt(const uint8_t *img, size_t len, const char *want)
{
    struct bbolt_status st;
    char err[256] = "";
    int rc = bbolt_etcd_status(img, len, &st, err, sizeof(err));

    if (rc != CE_CORRUPT || !strstr(err, want))
        fail_msg("expected CE_CORRUPT with \"%s\", got %d \"%s\"", want, rc, err);
}

/* ---------------------------------------------------------------- the real etcd file */

static void test_fixture_status(void **state)
{
    size_t len;
    uint8_t *f = testfile_read_data("snapshot/etcd34.db", &len);
    struct bbolt_status st;
    char err[256];

    (void)state;
    assert_int_equal(len % 4096, 32);
    assert_int_equal(bbolt_etcd_status(f, len - 32, &st, err, sizeof(err)), 0);
    assert_int_equal(st.hash, 4089900600u);
    assert_int_equal(st.revision, 316);
    assert_int_equal(st.total_keys, 311);
    assert_int_equal(st.total_size, 98304);
    /* the trailing hash does not disturb the reader either */
    assert_int_equal(bbolt_etcd_status(f, len, &st, err, sizeof(err)), 0);
    assert_int_equal(st.hash, 4089900600u);
    free(f);
}

struct collect {
    int n, buckets, big;
    uint8_t last[64];
    size_t last_len;
    char names[16][32];
};

static int collect_kv(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                      bool is_bucket)
{
    struct collect *c = arg;

    if (c->n > 0) {
        size_t m = kl < c->last_len ? kl : c->last_len;
        int cmp = memcmp(c->last, k, m);
        assert_true(cmp < 0 || (cmp == 0 && c->last_len < kl));
    }
    if (is_bucket) {
        assert_null(v);
        assert_int_equal(vl, 0);
        if (c->buckets < 16)
            snprintf(c->names[c->buckets], 32, "%.*s", (int)kl, (const char *)k);
        c->buckets++;
    }
    if (vl > 10000)
        c->big++;
    c->last_len = kl < sizeof(c->last) ? kl : sizeof(c->last);
    memcpy(c->last, k, c->last_len);
    c->n++;
    return 0;
}

static void test_fixture_walk(void **state)
{
    size_t len;
    uint8_t *f = testfile_read_data("snapshot/etcd34.db", &len);
    struct bbolt *db;
    struct collect root = {0}, keys = {0};
    struct bbolt_name key = {(const uint8_t *)"key", 3}, nope = {(const uint8_t *)"nope", 4};
    char err[256];
    bool saw_key = false, saw_meta = false;

    (void)state;
    assert_int_equal(bbolt_open(f, len, &db, err, sizeof(err)), 0);
    assert_int_equal(bbolt_meta_of(db)->page_size, 4096);
    assert_int_equal(bbolt_meta_of(db)->pgid, 24);
    assert_int_equal(bbolt_foreach(db, NULL, 0, collect_kv, &root, err, sizeof(err)), 0);
    assert_int_equal(root.n, root.buckets);
    for (int i = 0; i < root.buckets && i < 16; i++) {
        saw_key |= !strcmp(root.names[i], "key");
        saw_meta |= !strcmp(root.names[i], "meta");
    }
    assert_true(saw_key && saw_meta);
    /* bucket "key": 300 puts + big + 10 deletes + 1 change + last, minus what the compaction
     * removed; the 10000-byte value (overflow pages) is among them */
    assert_int_equal(bbolt_foreach(db, &key, 1, collect_kv, &keys, err, sizeof(err)), 0);
    assert_true(keys.n > 290);
    assert_int_equal(keys.big, 1);
    assert_int_equal(keys.buckets, 0);
    assert_int_equal(bbolt_foreach(db, &nope, 1, collect_kv, &keys, err, sizeof(err)),
                     CE_NOTFOUND);
    /* walking twice works (visited marks are per walk) */
    memset(&keys, 0, sizeof(keys));
    assert_int_equal(bbolt_foreach(db, &key, 1, collect_kv, &keys, err, sizeof(err)), 0);
    bbolt_close(db);
    free(f);
}

/* ---------------------------------------------------------------- synthetic image */

static void test_synthetic_status(void **state)
{
    size_t len;
    uint8_t *img = synthetic(&len);
    struct bbolt_status st;
    char err[256] = "";

    (void)state;
    assert_int_equal(bbolt_etcd_status(img, len, &st, err, sizeof(err)), 0);
    assert_int_equal(st.total_keys, 6);
    assert_int_equal(st.revision, 5);
    assert_int_equal(st.total_size, SYN_PAGES * PS);
    assert_int_equal(st.hash, synthetic_hash());
    free(img);
}

static void test_synthetic_walk(void **state)
{
    size_t len;
    uint8_t *img = synthetic(&len);
    struct bbolt *db;
    struct collect c = {0};
    struct bbolt_name alpha = {(const uint8_t *)"alpha", 5}, sub = {(const uint8_t *)"sub", 3};
    struct bbolt_name path[2] = {alpha, sub};
    char err[256];

    (void)state;
    assert_int_equal(bbolt_open(img, len, &db, err, sizeof(err)), 0);
    assert_int_equal(bbolt_meta_of(db)->txid, 2);
    assert_int_equal(bbolt_foreach(db, &alpha, 1, collect_kv, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.buckets, 1);
    assert_string_equal(c.names[0], "sub");
    memset(&c, 0, sizeof(c));
    assert_int_equal(bbolt_foreach(db, path, 2, collect_kv, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 0);
    bbolt_close(db);
    free(img);
}

static int stop_at_two(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                       bool is_bucket)
{
    int *n = arg;

    (void)k, (void)kl, (void)v, (void)vl, (void)is_bucket;
    return ++*n == 2 ? 42 : 0;
}

static void test_callback_stops(void **state)
{
    size_t len;
    uint8_t *img = synthetic(&len);
    struct bbolt *db;
    struct bbolt_name key = {(const uint8_t *)"key", 3};
    int n = 0;

    (void)state;
    assert_int_equal(bbolt_open(img, len, &db, NULL, 0), 0);
    assert_int_equal(bbolt_foreach(db, &key, 1, stop_at_two, &n, NULL, 0), 42);
    assert_int_equal(n, 2);
    bbolt_close(db);
    free(img);
}

static void test_meta_choice(void **state)
{
    size_t len;
    uint8_t *img = synthetic(&len);
    struct bbolt_meta m;
    struct bbolt_status st;

    (void)state;
    /* meta 1 (newer) damaged: meta 0 is used */
    img[PS + 30] ^= 1;
    assert_int_equal(bbolt_meta_read(img, len, &m, NULL, 0), 0);
    assert_int_equal(m.txid, 1);
    assert_int_equal(bbolt_etcd_status(img, len, &st, NULL, 0), 0);
    /* meta 0 damaged too: nothing valid */
    img[30] ^= 1;
    expect_corrupt(img, len, "no valid meta");
    /* meta 0 alone damaged: meta 1 found at the page size by probing */
    img[PS + 30] ^= 1;
    assert_int_equal(bbolt_meta_read(img, len, &m, NULL, 0), 0);
    assert_int_equal(m.txid, 2);
    /* a wrong version is refused even with a good checksum */
    img[30] ^= 1;
    le_put32(img + 20, 3), meta_sum(img);
    le_put32(img + PS + 20, 3), meta_sum(img + PS);
    expect_corrupt(img, len, "no valid meta");
    free(img);
}

static void fix_metas(uint8_t *img)
{
    meta_sum(img);
    meta_sum(img + PS);
}

/* A fresh synthetic image whose little-endian field of width bytes at off is set to v is
 * refused with a message containing want. */
static void patched_refused(size_t off, int width, uint64_t v, const char *want)
{
    size_t len;
    uint8_t *img = synthetic(&len);

    if (width == 2)
        put16(img + off, (uint16_t)v);
    else if (width == 4)
        le_put32(img + off, (uint32_t)v);
    else
        le_put64(img + off, v);
    expect_corrupt(img, len, want);
    free(img);
}

static void test_damage(void **state)
{
    size_t len;
    uint8_t *img;

    (void)state;
    /* branch child pointing back at the branch: a cycle */
    patched_refused(3 * PS + 16 + 8, 8, 3, "reached twice");
    /* child past the high-water mark, child pointing at a meta page */
    patched_refused(3 * PS + 32 + 8, 8, 99, "out of range");
    patched_refused(3 * PS + 32 + 8, 8, 1, "out of range");
    /* an element's key outside its page */
    patched_refused(4 * PS + 16 + 4, 4, 0x7fffffff, "out of the page");
    /* value size past the page span */
    patched_refused(4 * PS + 16 + 12, 4, 9000, "out of the page");
    /* overflow past the last page */
    patched_refused(5 * PS + 12, 4, 2, "past the last page");
    /* page header naming another page */
    patched_refused(4 * PS, 8, 6, "header says page 6");
    /* a meta, freelist or unknown page inside the tree */
    patched_refused(4 * PS + 8, 2, 0x10, "not a branch or leaf");
    /* too many elements for the page */
    patched_refused(4 * PS + 10, 2, 300, "do not fit");
    /* keys out of order across leaves: swap the branch's children */
    img = synthetic(&len);
    le_put64(img + 3 * PS + 16 + 8, 5);
    le_put64(img + 3 * PS + 32 + 8, 4);
    expect_corrupt(img, len, "out of order");
    free(img);
    /* empty branch */
    patched_refused(3 * PS + 10, 2, 0, "empty branch");
    /* a top-level entry that is not a bucket */
    patched_refused(2 * PS + 16, 4, 0, "cannot get hash of bucket alpha");
    /* inline bucket too short for its page header */
    patched_refused(2 * PS + 16 + 12, 4, 20, "too short");
    /* inline bucket whose page is not a leaf */
    img = synthetic(&len);
    {
        uint8_t *el = img + 2 * PS + 16;
        uint8_t *val = el + le_get32(el + 4) + le_get32(el + 8);
        put16(val + 16 + 8, 0x01);
    }
    expect_corrupt(img, len, "not a leaf");
    free(img);
    /* a "key" bucket key shorter than a revision */
    patched_refused(4 * PS + 16 + 8, 4, 4, "not a revision");
    /* high-water mark beyond the image, root out of range */
    img = synthetic(&len);
    le_put64(img + PS + 56, 100), le_put64(img + 56, 100), fix_metas(img);
    expect_corrupt(img, len, "the image has");
    free(img);
    img = synthetic(&len);
    le_put64(img + PS + 32, 7), le_put64(img + 32, 7), fix_metas(img);
    expect_corrupt(img, len, "root bucket page");
    free(img);
    /* an image shorter than a meta page */
    img = synthetic(&len);
    expect_corrupt(img, 40, "no valid meta");
    free(img);
}

/* ---------------------------------------------------------------- fuzz */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int fuzz_kv(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   bool is_bucket)
{
    uint64_t *sum = arg;

    /* touch every byte handed out, so ASan sees any out-of-bounds span */
    for (size_t i = 0; i < kl; i++)
        *sum += k[i];
    for (size_t i = 0; i < vl; i++)
        *sum += v[i];
    *sum += is_bucket;
    return 0;
}

static void mutate(uint8_t *img, size_t *len)
{
    int kind = (int)(rnd() % 4), n = 1 + (int)(rnd() % 8);

    for (int i = 0; i < n; i++) {
        size_t at = (size_t)(rnd() % *len);
        switch (kind) {
        case 0:     /* flip a byte */
            img[at] ^= (uint8_t)(1 + rnd() % 255);
            break;
        case 1:     /* overwrite a header-ish word with a small or huge number */
            at -= at % 4;
            if (at + 4 <= *len)
                le_put32(img + at, (uint32_t)(rnd() & 1 ? rnd() % 64 : rnd()));
            break;
        case 2:     /* a page header field */
            at = (size_t)(rnd() % (*len / PS)) * PS + (size_t)(rnd() % 16);
            img[at] = (uint8_t)rnd();
            break;
        default:    /* truncate */
            *len = (size_t)(rnd() % *len) + 1;
            return;
        }
    }
}

static void fuzz_one(const uint8_t *orig, size_t olen)
{
    size_t len = olen;
    uint8_t *img = malloc(olen);
    struct bbolt_status st;
    struct bbolt *db;
    struct bbolt_name key = {(const uint8_t *)"key", 3};
    uint64_t sum = 0;
    char err[256];
    int rc;

    assert_non_null(img);
    memcpy(img, orig, olen);
    mutate(img, &len);
    if (rnd() & 1 && len >= 2 * PS)
        fix_metas(img);
    /* an exact-size copy: ASan flags any read past the image */
    uint8_t *exact = malloc(len);
    assert_non_null(exact);
    memcpy(exact, img, len);
    free(img);
    rc = bbolt_etcd_status(exact, len, &st, err, sizeof(err));
    assert_true(rc == 0 || rc == CE_CORRUPT);
    if (bbolt_open(exact, len, &db, err, sizeof(err)) == 0) {
        rc = bbolt_foreach(db, NULL, 0, fuzz_kv, &sum, err, sizeof(err));
        assert_true(rc == 0 || rc == CE_CORRUPT);
        rc = bbolt_foreach(db, &key, 1, fuzz_kv, &sum, err, sizeof(err));
        assert_true(rc == 0 || rc == CE_CORRUPT || rc == CE_NOTFOUND);
        bbolt_close(db);
    }
    free(exact);
}

static void test_fuzz(void **state)
{
    const char *s = getenv("BBOLT_FUZZ_SEED"), *it = getenv("BBOLT_FUZZ_ITERS");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    int iters = it ? atoi(it) : 3000;
    size_t slen, flen;
    uint8_t *syn = synthetic(&slen), *fix = testfile_read_data("snapshot/etcd34.db", &flen);

    (void)state;
    print_message("bbolt fuzz seed: %" PRIu64 " (replay: BBOLT_FUZZ_SEED=%" PRIu64 ")\n", seed,
                  seed);
    rng_state = seed ? seed : 1;
    for (int i = 0; i < iters; i++) {
        if (i % 4 == 3)
            fuzz_one(fix, flen - 32);
        else
            fuzz_one(syn, slen);
    }
    free(syn);
    free(fix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_status),
        cmocka_unit_test(test_fixture_walk),
        cmocka_unit_test(test_synthetic_status),
        cmocka_unit_test(test_synthetic_walk),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_meta_choice),
        cmocka_unit_test(test_damage),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
