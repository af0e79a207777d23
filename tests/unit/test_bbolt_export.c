/*
 * test_bbolt_export.c: the store written as etcd 3.4's backend (server/mvcc/bbolt_export.c,
 * mvcc_copy_export) and read back (server/mvcc/bbolt_import.c, mvcc_import_bbolt).
 *
 * - Round trip: a store with history (puts, rewrites, deletes, a compaction, leases, auth
 *   records) pinned, then changed further, exported: the file's etcd status says the pinned
 *   revision and counts every bucket entry; imported into a new store: the same revision,
 *   compaction point, consistent index, HashKV, leases and auth records as the pinned state
 *   (the later changes absent).
 * - The real etcd 3.4 snapshot (tests/unit/data/snapshot/etcd34.db, see test_bbolt.c) imports:
 *   revision 316, its scheduled compaction (310) carried out, consistent index 322, two leases
 *   of TTL 1000, key "a" with its revisions.
 * - Damage: random byte flips of the fixture (seeded; BBOLT_EXPORT_SEED=<n> replays) never
 *   crash the importer; it returns 0 or CE_*. A stopped export fails and leaves no valid meta.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bbolt.h"
#include "common/err.h"
#include "mvccfx.h"
#include "tmpdir.h"

struct fx {
    char dir[64], dir2[64], file[64];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    int fd;

    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_bbexp.XXXXXX");
    strcpy(f->dir2, "/tmp/test_bbexp.XXXXXX");
    strcpy(f->file, "/tmp/test_bbexp.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_non_null(mkdtemp(f->dir2));
    fd = mkstemp(f->file);
    assert_true(fd >= 0);
    close(fd);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tmpdir_remove(f->dir);
    tmpdir_remove(f->dir2);
    unlink(f->file);
    free(f);
    return 0;
}

static uint64_t g_ci;

static void commit(mvcc *m)
{
    assert_int_equal(mvcc_commit(m, ++g_ci, 1), 0);
}

/* History: 50 keys, rewrites, deletes, a compaction, two leases, auth records. */
static void history(mvcc *m)
{
    char k[32], v[64];
    mvcc_lease l1 = {.id = 7, .ttl = 100}, l2 = {.id = -5, .ttl = 30};

    for (int i = 0; i < 50; i++) {
        assert_int_equal(mvcc_begin(m), 0);
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(v, sizeof(v), "v%d", i);
        mvccfx_put(m, k, v, 0);
        commit(m);
    }
    assert_int_equal(mvcc_begin(m), 0);
    assert_int_equal(mvcc_lease_put(m, &l1), 0);
    assert_int_equal(mvcc_lease_put(m, &l2), 0);
    mvccfx_put(m, "leased", "x", 7);
    assert_int_equal(mvcc_auth_put(m, "enabled", 7, "\1", 1), 0);
    assert_int_equal(mvcc_auth_put(m, "revision", 8, "\0\0\0\0\0\0\0\3", 8), 0);
    assert_int_equal(mvcc_auth_put(m, "user/root", 9, "\x0a\x04root", 6), 0);
    assert_int_equal(mvcc_auth_put(m, "role/root", 9, "\x0a\x04root", 6), 0);
    commit(m);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(mvcc_begin(m), 0);
        snprintf(k, sizeof(k), "k%03d", i);
        if (i % 3)
            mvccfx_put(m, k, "again", 0);
        else
            mvccfx_del(m, k);
        commit(m);
    }
    assert_int_equal(mvcc_begin(m), 0);
    assert_int_equal(mvcc_compact(m, 40), 0);
    commit(m);
}

struct lease_list {
    mvcc_lease l[8];
    size_t n;
};

static int collect_lease(void *arg, const mvcc_lease *l)
{
    struct lease_list *ll = arg;

    assert_true(ll->n < 8);
    ll->l[ll->n++] = *l;
    return 0;
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    mvcc *m = mvccfx_open(f->dir, true), *r;
    mvcc_copy *c;
    int fd = open(f->file, O_RDWR);
    uint64_t size = 0, ci;
    int64_t rev, compact, crev1, crev2;
    uint32_t h1, h2;
    size_t len, vlen;
    uint8_t *img;
    void *val;
    struct bbolt_status st;
    struct lease_list a = {0}, b = {0};
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeResponse *resp = NULL;
    char err[256];

    g_ci = 0;
    history(m);
    assert_int_equal(mvcc_flush(m), 0);
    rev = mvcc_rev(m);
    compact = mvcc_compact_rev(m);
    ci = mvcc_consistent_index(m);
    assert_int_equal(mvcc_hash_kv(m, 0, &h1, &crev1), 0);
    assert_int_equal(mvcc_lease_list(m, collect_lease, &a), 0);
    assert_int_equal(mvcc_copy_begin(m, &c), 0);
    assert_int_equal(mvcc_copy_rev(c), rev);
    /* changes after the pin are not in the copy */
    assert_int_equal(mvcc_begin(m), 0);
    mvccfx_put(m, "later", "y", 0);
    commit(m);
    assert_int_equal(mvcc_flush(m), 0);
    assert_true(fd >= 0);
    assert_int_equal(mvcc_copy_export(c, fd, &size), 0);
    mvcc_copy_end(c);
    close(fd);
    mvcc_close(m);

    img = testfile_read(f->file, &len);
    assert_int_equal(len, size);
    if (bbolt_etcd_status(img, len, &st, err, sizeof(err)) != 0)
        fail_msg("status: %s", err);
    assert_int_equal(st.revision, rev);
    if (mvcc_import_bbolt(f->dir2, img, len, err, sizeof(err)) != 0)
        fail_msg("import: %s", err);
    free(img);

    r = mvccfx_open(f->dir2, false);
    assert_int_equal(mvcc_rev(r), rev);
    assert_int_equal(mvcc_compact_rev(r), compact);
    assert_int_equal(mvcc_consistent_index(r), ci);
    assert_int_equal(mvcc_hash_kv(r, 0, &h2, &crev2), 0);
    assert_int_equal(h1, h2);
    assert_int_equal(crev1, crev2);
    assert_int_equal(mvcc_lease_list(r, collect_lease, &b), 0);
    assert_int_equal(a.n, 2);
    assert_int_equal(b.n, a.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.l[i].id, b.l[i].id);
        assert_int_equal(a.l[i].ttl, b.l[i].ttl);
    }
    assert_int_equal(mvcc_auth_get(r, "enabled", 7, &val, &vlen), 0);
    assert_int_equal(vlen, 1);
    assert_int_equal(*(uint8_t *)val, 1);
    free(val);
    assert_int_equal(mvcc_auth_get(r, "user/root", 9, &val, &vlen), 0);
    assert_int_equal(vlen, 6);
    assert_memory_equal(val, "\x0a\x04root", 6);
    free(val);
    assert_int_equal(mvcc_auth_get(r, "role/root", 9, &val, &vlen), 0);
    free(val);
    q.key = (ProtobufCBinaryData){5, (uint8_t *)"later"};
    assert_int_equal(mvcc_range(r, &q, &resp), 0);
    assert_int_equal(resp->n_kvs, 0);               /* written after the pin */
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    mvcc_close(r);
}

/* The real etcd 3.4 snapshot. */
static void test_import_etcd(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *img = testfile_read_data("snapshot/etcd34.db", &len);
    struct lease_list ll = {0};
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeResponse *resp = NULL;
    char err[256];
    mvcc *r;

    if (mvcc_import_bbolt(f->dir2, img, len, err, sizeof(err)) != 0)
        fail_msg("import: %s", err);
    free(img);
    r = mvccfx_open(f->dir2, false);
    assert_int_equal(mvcc_rev(r), 316);
    assert_int_equal(mvcc_compact_rev(r), 310);
    assert_int_equal(mvcc_consistent_index(r), 322);
    assert_int_equal(mvcc_lease_list(r, collect_lease, &ll), 0);
    assert_int_equal(ll.n, 2);
    assert_int_equal(ll.l[0].ttl, 1000);
    q.key = (ProtobufCBinaryData){1, (uint8_t *)"a"};
    assert_int_equal(mvcc_range(r, &q, &resp), 0);
    assert_int_equal(resp->n_kvs, 1);
    assert_int_equal(resp->kvs[0]->create_revision, 2);
    assert_int_equal(resp->kvs[0]->mod_revision, 2);
    assert_int_equal(resp->kvs[0]->version, 1);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    mvcc_close(r);
}

static void test_import_damage(void **state)
{
    struct fx *f = *state;
    const char *env = getenv("BBOLT_EXPORT_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    size_t len;
    uint8_t *img = testfile_read_data("snapshot/etcd34.db", &len);
    uint8_t *bad = malloc(len);
    char err[256], dir[80];

    assert_non_null(bad);
    printf("test_import_damage: seed %u (BBOLT_EXPORT_SEED=%u replays it)\n", seed, seed);
    srand(seed);
    for (int round = 0; round < 30; round++) {
        int rc;
        memcpy(bad, img, len);
        for (int i = 0; i < 1 + rand() % 8; i++)
            bad[8192 + (size_t)rand() % (len - 8192)] ^= (uint8_t)(1 + rand() % 255);
        snprintf(dir, sizeof(dir), "%s/r%d", f->dir2, round);
        rc = mvcc_import_bbolt(dir, bad, len, err, sizeof(err));
        assert_true(rc == 0 || rc < 0);
    }
    free(bad);
    free(img);
}

static void test_stopped_export(void **state)
{
    struct fx *f = *state;
    mvcc *m = mvccfx_open(f->dir, true);
    mvcc_copy *c;
    int fd = open(f->file, O_RDWR);
    size_t len;
    uint8_t *img;
    struct bbolt_meta meta;
    char k[16];

    g_ci = 0;
    assert_int_equal(mvcc_begin(m), 0);
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "s%05d", i);
        mvccfx_put(m, k, "v", 0);
    }
    commit(m);
    assert_int_equal(mvcc_copy_begin(m, &c), 0);
    mvcc_copy_stop(c);
    assert_int_equal(mvcc_copy_export(c, fd, NULL), CE_STOPPED);
    mvcc_copy_end(c);
    close(fd);
    mvcc_close(m);
    img = testfile_read(f->file, &len);
    assert_int_equal(bbolt_meta_read(img, len, &meta, NULL, 0), CE_CORRUPT);
    free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_etcd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_export, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
