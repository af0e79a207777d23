/*
 * test_bbolt_write.c: the bbolt writer (common/bbolt_write.h), checked through the bounds-checked
 * reader (common/bbolt.h), which refuses any malformed page.
 *
 * - An empty database, one small (inline) bucket, many buckets (empty, inline and paged), values
 *   spanning overflow pages, 100000 keys (a three-level tree): every entry reads back, in order,
 *   bytes equal; the status counts what was written; the file is exactly pgid pages.
 * - A seeded random case (bucket count, key lengths up to 3000 bytes, value sizes up to 40000):
 *   the seed is printed; BBOLT_WRITE_SEED=<n> replays it.
 * - Refusals: keys out of order, a duplicate key, an empty key, a put before any bucket, bucket
 *   names out of order, a call after finish, and a write error mid-way (the descriptor swapped
 *   for a read-only one) all return CE_*, stay failed, and leave a file with no valid meta page.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bbolt.h"
#include "bbolt_write.h"
#include "err.h"
#include "testfile.h"

/* One expected entry. */
struct kv {
    uint8_t *k, *v;
    size_t kl, vl;
};

struct bucket {
    char name[32];
    struct kv *e;
    size_t n;
};

struct check {
    const struct bucket *b;
    size_t i;
};

static char g_path[64];

static int setup(void **state)
{
    int fd;

    (void)state;
    snprintf(g_path, sizeof(g_path), "/tmp/test_bbolt_write.XXXXXX");
    fd = mkstemp(g_path);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g_path);
    return 0;
}

static int open_file(void)
{
    int fd = open(g_path, O_RDWR | O_TRUNC);

    assert_true(fd >= 0);
    return fd;
}

/* Writes the buckets; returns the writer's finish code. */
static int write_db(const struct bucket *b, size_t nb, uint64_t *size)
{
    struct bbolt_writer *w;
    int fd = open_file(), rc;

    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    for (size_t i = 0; i < nb; i++) {
        assert_int_equal(bbolt_writer_bucket(w, b[i].name, strlen(b[i].name)), 0);
        for (size_t j = 0; j < b[i].n; j++)
            assert_int_equal(bbolt_writer_put(w, b[i].e[j].k, b[i].e[j].kl, b[i].e[j].v,
                                              b[i].e[j].vl), 0);
    }
    rc = bbolt_writer_finish(w, size);
    bbolt_writer_free(w);
    close(fd);
    return rc;
}

static int check_kv(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    bool is_bucket)
{
    struct check *c = arg;
    const struct kv *e;

    assert_false(is_bucket);
    assert_true(c->i < c->b->n);
    e = &c->b->e[c->i++];
    assert_int_equal(kl, e->kl);
    assert_int_equal(vl, e->vl);
    assert_memory_equal(k, e->k, kl);
    if (vl)
        assert_memory_equal(v, e->v, vl);
    return 0;
}

static int check_name(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                      bool is_bucket)
{
    struct check *c = arg;
    const struct bucket *b = &c->b[c->i++];

    (void)v, (void)vl;
    assert_true(is_bucket);
    assert_int_equal(kl, strlen(b->name));
    assert_memory_equal(k, b->name, kl);
    return 0;
}

/* Reads the file back: the same buckets and entries; the status counts them. */
static void verify(const struct bucket *b, size_t nb, uint64_t size)
{
    size_t len, total = 0;
    uint8_t *img = testfile_read(g_path, &len);
    struct bbolt *db;
    struct bbolt_status st;
    struct check names = {b, 0};
    char err[256];

    assert_int_equal(len, size);
    assert_int_equal(size % BBOLT_WRITE_PAGE_SIZE, 0);
    if (bbolt_open(img, len, &db, err, sizeof(err)) != 0)
        fail_msg("open: %s", err);
    assert_int_equal(bbolt_meta_of(db)->pgid * BBOLT_WRITE_PAGE_SIZE, size);
    assert_int_equal(bbolt_foreach(db, NULL, 0, check_name, &names, err, sizeof(err)), 0);
    assert_int_equal(names.i, nb);
    for (size_t i = 0; i < nb; i++) {
        struct bbolt_name n = {(const uint8_t *)b[i].name, strlen(b[i].name)};
        struct check c = {&b[i], 0};
        if (bbolt_foreach(db, &n, 1, check_kv, &c, err, sizeof(err)) != 0)
            fail_msg("bucket %s: %s", b[i].name, err);
        assert_int_equal(c.i, b[i].n);
        total += b[i].n;
    }
    bbolt_close(db);
    if (bbolt_etcd_status(img, len, &st, err, sizeof(err)) != 0)
        fail_msg("status: %s", err);
    assert_int_equal(st.total_keys, total);
    assert_int_equal(st.total_size, (int64_t)size);
    free(img);
}

/* ---------------------------------------------------------------- data */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void kv_set(struct kv *e, const void *k, size_t kl, size_t vl, uint8_t fill)
{
    e->k = malloc(kl);
    e->v = malloc(vl ? vl : 1);
    assert_non_null(e->k);
    assert_non_null(e->v);
    memcpy(e->k, k, kl);
    e->kl = kl;
    e->vl = vl;
    for (size_t i = 0; i < vl; i++)
        e->v[i] = (uint8_t)(fill + i * 7);
}

/* Bucket with n revision-like keys (17 bytes, big-endian i) and values of vl(i) bytes. */
static void bucket_fill(struct bucket *b, const char *name, size_t n, size_t (*vl)(size_t))
{
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->n = n;
    b->e = calloc(n ? n : 1, sizeof(*b->e));
    assert_non_null(b->e);
    for (size_t i = 0; i < n; i++) {
        uint8_t k[17] = {0};
        for (int j = 0; j < 8; j++)
            k[j] = (uint8_t)((uint64_t)(i + 1) >> (56 - 8 * j));
        k[8] = '_';
        kv_set(&b->e[i], k, sizeof(k), vl(i), (uint8_t)i);
    }
}

static void buckets_free(struct bucket *b, size_t nb)
{
    for (size_t i = 0; i < nb; i++) {
        for (size_t j = 0; j < b[i].n; j++) {
            free(b[i].e[j].k);
            free(b[i].e[j].v);
        }
        free(b[i].e);
    }
}

static size_t vl_small(size_t i) { return 10 + i % 20; }
static size_t vl_big(size_t i) { return i % 3 == 1 ? 10000 + i * 3000 : i % 50; }
static size_t vl_zero(size_t i) { (void)i; return 0; }

/* ---------------------------------------------------------------- tests */

static void test_empty(void **state)
{
    uint64_t size = 0;

    (void)state;
    assert_int_equal(write_db(NULL, 0, &size), 0);
    assert_int_equal(size, 4 * BBOLT_WRITE_PAGE_SIZE);  /* 2 metas, root leaf, freelist */
    verify(NULL, 0, size);
}

static void test_one_bucket(void **state)
{
    struct bucket b[1];
    uint64_t size = 0;

    (void)state;
    bucket_fill(&b[0], "key", 5, vl_small);   /* inline: fits 1024 bytes */
    assert_int_equal(write_db(b, 1, &size), 0);
    assert_int_equal(size, 4 * BBOLT_WRITE_PAGE_SIZE);   /* the bucket is inline */
    verify(b, 1, size);
    buckets_free(b, 1);
}

static void test_many_buckets(void **state)
{
    static const char *names[] = {"alarm", "auth", "authRoles", "authUsers", "cluster", "key",
                                  "lease", "members", "members_removed", "meta"};
    struct bucket b[10];
    uint64_t size = 0;

    (void)state;
    for (size_t i = 0; i < 10; i++)
        bucket_fill(&b[i], names[i], i % 3 == 0 ? 0 : i * 40, i == 5 ? vl_big : vl_small);
    assert_int_equal(write_db(b, 10, &size), 0);
    verify(b, 10, size);
    buckets_free(b, 10);
}

static void test_overflow(void **state)
{
    struct bucket b[2];
    uint64_t size = 0;

    (void)state;
    bucket_fill(&b[0], "big", 30, vl_big);     /* values up to 97 kB: overflow pages */
    bucket_fill(&b[1], "zero", 300, vl_zero);  /* empty values */
    assert_int_equal(write_db(b, 2, &size), 0);
    verify(b, 2, size);
    buckets_free(b, 2);
}

static void test_100k(void **state)
{
    struct bucket b[1];
    uint64_t size = 0;
    size_t len;
    uint8_t *img;
    struct bbolt_status st;
    char err[256];

    (void)state;
    bucket_fill(&b[0], "key", 100000, vl_small);
    assert_int_equal(write_db(b, 1, &size), 0);
    verify(b, 1, size);
    img = testfile_read(g_path, &len);
    assert_int_equal(bbolt_etcd_status(img, len, &st, err, sizeof(err)), 0);
    assert_int_equal(st.revision, 100000);
    free(img);
    buckets_free(b, 1);
}

static int cmp_kv(const void *a, const void *b)
{
    const struct kv *x = a, *y = b;
    int c = memcmp(x->k, y->k, x->kl < y->kl ? x->kl : y->kl);

    return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

/* Random sorted, distinct keys of 1..3000 bytes (mostly short) with values of 0..40000. */
static void bucket_random(struct bucket *b, size_t idx)
{
    size_t n = rnd() % 3000, m = 0;

    snprintf(b->name, sizeof(b->name), "b%03zu", idx);
    b->e = calloc(n ? n : 1, sizeof(*b->e));
    assert_non_null(b->e);
    for (size_t i = 0; i < n; i++) {
        uint8_t k[3000];
        size_t kl = rnd() % 50 == 0 ? 1 + rnd() % 3000 : 1 + rnd() % 24;
        size_t vl = rnd() % 40 == 0 ? rnd() % 40000 : rnd() % 100;
        for (size_t j = 0; j < kl; j++)
            k[j] = (uint8_t)(rnd() % 4 + 'a');
        kv_set(&b->e[i], k, kl, vl, (uint8_t)rnd());
    }
    qsort(b->e, n, sizeof(*b->e), cmp_kv);
    for (size_t i = 0; i < n; i++) {          /* drop duplicates */
        if (m && cmp_kv(&b->e[m - 1], &b->e[i]) == 0) {
            free(b->e[i].k);
            free(b->e[i].v);
            continue;
        }
        b->e[m++] = b->e[i];
    }
    b->n = m;
}

static void test_random(void **state)
{
    const char *env = getenv("BBOLT_WRITE_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    struct bucket b[12];
    size_t nb;
    uint64_t size = 0;

    (void)state;
    printf("test_random: seed %" PRIu64 " (BBOLT_WRITE_SEED=%" PRIu64 " replays it)\n", seed,
           seed);
    rng_state = seed * 2654435761u + 1;
    nb = 1 + rnd() % 12;
    for (size_t i = 0; i < nb; i++)
        bucket_random(&b[i], i);
    assert_int_equal(write_db(b, nb, &size), 0);
    verify(b, nb, size);
    buckets_free(b, nb);
}

/* The file holds no valid meta page. */
static void assert_invalid_file(void)
{
    size_t len;
    uint8_t *img = testfile_read(g_path, &len);
    struct bbolt_meta m;

    assert_int_equal(bbolt_meta_read(img, len, &m, NULL, 0), CE_CORRUPT);
    free(img);
}

static void test_refusals(void **state)
{
    struct bbolt_writer *w;
    int fd;

    (void)state;
    /* keys out of order, then every call fails */
    fd = open_file();
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    assert_int_equal(bbolt_writer_bucket(w, "a", 1), 0);
    assert_int_equal(bbolt_writer_put(w, "b", 1, "", 0), 0);
    assert_int_equal(bbolt_writer_put(w, "a", 1, "", 0), CE_INVAL);
    assert_int_equal(bbolt_writer_put(w, "c", 1, "", 0), CE_INVAL);
    assert_int_equal(bbolt_writer_finish(w, NULL), CE_INVAL);
    bbolt_writer_free(w);
    close(fd);
    assert_invalid_file();

    /* a duplicate key, an empty key, a put before any bucket */
    fd = open_file();
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    assert_int_equal(bbolt_writer_put(w, "a", 1, "", 0), CE_INVAL);
    bbolt_writer_free(w);
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    assert_int_equal(bbolt_writer_bucket(w, "a", 1), 0);
    assert_int_equal(bbolt_writer_put(w, "", 0, "", 0), CE_INVAL);
    bbolt_writer_free(w);
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    assert_int_equal(bbolt_writer_bucket(w, "a", 1), 0);
    assert_int_equal(bbolt_writer_put(w, "k", 1, "1", 1), 0);
    assert_int_equal(bbolt_writer_put(w, "k", 1, "2", 1), CE_INVAL);
    bbolt_writer_free(w);

    /* bucket names out of order or repeated; a call after finish */
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    assert_int_equal(bbolt_writer_bucket(w, "b", 1), 0);
    assert_int_equal(bbolt_writer_bucket(w, "a", 1), CE_INVAL);
    bbolt_writer_free(w);
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    assert_int_equal(bbolt_writer_bucket(w, "b", 1), 0);
    assert_int_equal(bbolt_writer_bucket(w, "b", 1), CE_INVAL);
    bbolt_writer_free(w);
    assert_invalid_file();
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    assert_int_equal(bbolt_writer_finish(w, NULL), 0);
    assert_int_equal(bbolt_writer_bucket(w, "c", 1), CE_INVAL);
    assert_int_equal(bbolt_writer_finish(w, NULL), CE_INVAL);
    bbolt_writer_free(w);

    /* a new writer over a valid file wipes its metas at once */
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    bbolt_writer_free(w);
    close(fd);
    assert_invalid_file();
}

static void test_write_error(void **state)
{
    struct bbolt_writer *w;
    uint8_t v[1000] = {0};
    int fd = open_file(), ro, rc = 0;

    (void)state;
    assert_int_equal(bbolt_writer_new(fd, &w), 0);
    assert_int_equal(bbolt_writer_bucket(w, "key", 3), 0);
    ro = open(g_path, O_RDONLY);
    assert_true(ro >= 0);
    assert_true(dup2(ro, fd) == fd);          /* every later write fails (EBADF) */
    close(ro);
    for (uint32_t i = 0; i < 5000 && !rc; i++) {
        uint8_t k[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        rc = bbolt_writer_put(w, k, sizeof(k), v, sizeof(v));
    }
    if (!rc)
        rc = bbolt_writer_finish(w, NULL);
    assert_true(rc < 0);
    assert_int_equal(bbolt_writer_finish(w, NULL), rc);
    bbolt_writer_free(w);
    close(fd);
    assert_invalid_file();

    /* a descriptor that cannot be written at all */
    fd = open(g_path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(bbolt_writer_new(fd, &w) < 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_100k, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
