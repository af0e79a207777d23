/*
 * test_snapcopy.c: unit tests of server/mvcc/snapcopy.c, the point-in-time copies written off
 * the writer's thread. Each copy is checked by opening it as a store of its own: its revision,
 * compaction point, consistent index, HashKV and every value must be those of the state at
 * mvcc_copy_begin, although the writer rewrote every key, compacted and flushed many times in
 * between (so LMDB had pages to reuse: only the pin keeps the copied ones intact). The writer
 * runs in the deferred-durability mode the node uses. The churn is randomized: the seed is
 * printed; replay with SNAPCOPY_SEED=<seed>.
 * Run: hack/unit.sh tests/unit/test_snapcopy.c server/mvcc/<every .c file>
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "mvccfx.h"
#include "tmpdir.h"

#define NKEYS 300
#define VLEN 1500

typedef struct fx {
    char dir[64];
    char copy_dir[64];
    mvcc *m;
    uint64_t ci;
    unsigned seed;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    const char *s = getenv("SNAPCOPY_SEED");

    strcpy(f->dir, "/tmp/test_snapcopy.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    strcpy(f->copy_dir, "/tmp/test_snapcopy.XXXXXX");
    assert_non_null(mkdtemp(f->copy_dir));
    f->m = mvccfx_open(f->dir, true);
    f->seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;

    mvcc_close(f->m);
    tmpdir_remove(f->dir);
    tmpdir_remove(f->copy_dir);
    free(f);
    return 0;
}

/* ---- writes ---- */

/* The value of key i in generation g: VLEN bytes, recognisable. */
static void value_of(int i, int g, char *out)
{
    int n = snprintf(out, VLEN + 1, "k%d-g%d-", i, g);

    memset(out + n, 'a' + (char)((i + g) % 26), (size_t)(VLEN - n));
    out[VLEN] = 0;
}

static void put_gen(fx *f, int i, int g)
{
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__PutResponse *resp = NULL;
    char key[16], val[VLEN + 1];

    snprintf(key, sizeof(key), "key%04d", i);
    value_of(i, g, val);
    r.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    r.value = (ProtobufCBinaryData){VLEN, (uint8_t *)val};
    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_put(f->m, &r, &resp), 0);
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void fill(fx *f, int g)
{
    for (int i = 0; i < NKEYS; i++)
        put_gen(f, i, g);
    assert_int_equal(mvcc_flush(f->m), 0);
}

static void compact_now(fx *f)
{
    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_compact(f->m, mvcc_rev(f->m)), 0);
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
    assert_int_equal(mvcc_flush(f->m), 0);
}

/* Rewrites random keys in generations from g, compacting and flushing as it goes, so that
 * LMDB frees pages and reuses every page it may. */
static void churn(fx *f, int g, int rounds, unsigned *seed)
{
    for (int r = 0; r < rounds; r++) {
        for (int n = 0; n < NKEYS; n++)
            put_gen(f, rand_r(seed) % NKEYS, g + r);
        compact_now(f);
    }
}

/* ---- checking a copy ---- */

struct expect {
    int64_t rev, compact;
    uint64_t ci;
    uint32_t hash;
    int gen;
};

static void expect_now(fx *f, int gen, struct expect *e)
{
    int64_t crev;

    e->rev = mvcc_rev(f->m);
    e->compact = mvcc_compact_rev(f->m);
    e->ci = mvcc_consistent_index(f->m);
    e->gen = gen;
    assert_int_equal(mvcc_hash_kv(f->m, 0, &e->hash, &crev), 0);
}

/* The copy in fd (size bytes) as copy_dir/data.mdb, opened, must be the expected state. */
static void check_copy(fx *f, int fd, uint64_t size, const struct expect *e)
{
    char path[128], val[VLEN + 1];
    uint8_t *buf = malloc(size);
    struct stat st;
    uint32_t hash, magic;
    int64_t crev;
    int out;
    mvcc *c;

    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, size);
    assert_int_equal(size % 4096, 0);
    assert_int_equal(pread(fd, buf, size, 0), (ssize_t)size);
    memcpy(&magic, buf + 16, 4);
    assert_int_equal(magic, 0xBEEFC0DE);          /* LMDB's meta page */
    snprintf(path, sizeof(path), "%s/data.mdb", f->copy_dir);
    out = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(out >= 0);
    assert_int_equal(write(out, buf, size), (ssize_t)size);
    close(out);
    free(buf);
    c = mvccfx_open(f->copy_dir, false);
    assert_int_equal(mvcc_rev(c), e->rev);
    assert_int_equal(mvcc_compact_rev(c), e->compact);
    assert_int_equal(mvcc_consistent_index(c), e->ci);
    assert_int_equal(mvcc_hash_kv(c, 0, &hash, &crev), 0);
    assert_int_equal(hash, e->hash);
    for (int i = 0; e->gen >= 0 && i < NKEYS; i++) {
        Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
        Etcdserverpb__RangeResponse *resp = NULL;
        char key[16];
        snprintf(key, sizeof(key), "key%04d", i);
        r.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
        assert_int_equal(mvcc_range(c, &r, &resp), 0);
        assert_int_equal(resp->n_kvs, 1);
        value_of(i, e->gen, val);
        assert_int_equal(resp->kvs[0]->value.len, VLEN);
        assert_memory_equal(resp->kvs[0]->value.data, val, VLEN);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    mvcc_close(c);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", f->copy_dir);
    unlink(path);
}

/* ---- tests ---- */

/* The copy is the state at begin although every key was rewritten and compacted away (and
 * pages reused) before the copy ran. */
static void test_copy_is_pinned_state(void **state)
{
    fx *f = *state;
    unsigned seed = f->seed;
    struct expect e;
    mvcc_copy *cp;
    int fd;

    print_message("seed %u (SNAPCOPY_SEED)\n", f->seed);
    fill(f, 0);
    churn(f, 1, 2, &seed);
    fill(f, 10);
    expect_now(f, 10, &e);
    assert_int_equal(mvcc_copy_begin(f->m, &cp), 0);
    assert_int_equal(mvcc_copy_rev(cp), e.rev);
    fill(f, 20);
    churn(f, 21, 4, &seed);
    assert_int_equal(mvcc_tmpfile(f->m, &fd), 0);
    assert_int_equal(mvcc_copy_run(cp, fd), 0);
    check_copy(f, fd, mvcc_copy_size(cp), &e);
    mvcc_copy_end(cp);
    close(fd);
}

struct runner {
    mvcc_copy *cp;
    int fd;
    int rc;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;

    r->rc = mvcc_copy_run(r->cp, r->fd);
    return NULL;
}

/* The copy runs on another thread while the writer rewrites and compacts. */
static void test_copy_concurrent_with_writer(void **state)
{
    fx *f = *state;
    unsigned seed = f->seed + 1;
    struct runner r = {0};
    struct expect e;
    pthread_t th;

    fill(f, 0);
    churn(f, 1, 1, &seed);
    fill(f, 5);
    expect_now(f, 5, &e);
    assert_int_equal(mvcc_copy_begin(f->m, &r.cp), 0);
    assert_int_equal(mvcc_tmpfile(f->m, &r.fd), 0);
    assert_int_equal(pthread_create(&th, NULL, run_thread, &r), 0);
    churn(f, 6, 3, &seed);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.rc, 0);
    check_copy(f, r.fd, mvcc_copy_size(r.cp), &e);
    mvcc_copy_end(r.cp);
    close(r.fd);
}

/* Batches committed but not flushed at begin are in the copy (begin makes them durable). */
static void test_copy_includes_unflushed(void **state)
{
    fx *f = *state;
    struct expect e;
    mvcc_copy *cp;
    int fd;

    fill(f, 0);
    for (int i = 0; i < NKEYS; i++)
        put_gen(f, i, 1);
    assert_true(mvcc_has_unflushed(f->m));
    expect_now(f, 1, &e);
    assert_int_equal(mvcc_copy_begin(f->m, &cp), 0);
    assert_false(mvcc_has_unflushed(f->m));
    assert_int_equal(mvcc_tmpfile(f->m, &fd), 0);
    assert_int_equal(mvcc_copy_run(cp, fd), 0);
    check_copy(f, fd, mvcc_copy_size(cp), &e);
    mvcc_copy_end(cp);
    close(fd);
}

/* Closing the store releases the pin; the copy still runs and is still the pinned state. */
static void test_copy_survives_close(void **state)
{
    fx *f = *state;
    struct expect e;
    mvcc_copy *cp;
    int fd;

    fill(f, 0);
    expect_now(f, 0, &e);
    assert_int_equal(mvcc_copy_begin(f->m, &cp), 0);
    assert_int_equal(mvcc_tmpfile(f->m, &fd), 0);
    mvcc_close(f->m);
    f->m = mvccfx_open(f->dir, true);   /* reopened: writes go on in the same file */
    fill(f, 3);
    assert_int_equal(mvcc_copy_run(cp, fd), 0);
    check_copy(f, fd, mvcc_copy_size(cp), &e);
    mvcc_copy_end(cp);
    close(fd);
}

static void test_copy_stop_and_end_without_run(void **state)
{
    fx *f = *state;
    mvcc_copy *cp, *cp2;
    int fd;

    fill(f, 0);
    assert_int_equal(mvcc_copy_begin(f->m, &cp), 0);
    assert_int_equal(mvcc_copy_begin(f->m, &cp2), 0);
    assert_int_equal(mvcc_tmpfile(f->m, &fd), 0);
    mvcc_copy_stop(cp);
    assert_int_equal(mvcc_copy_run(cp, fd), CE_STOPPED);
    mvcc_copy_end(cp);
    mvcc_copy_end(cp2);                  /* never run */
    mvcc_copy_end(NULL);
    close(fd);
}

static void test_copy_refused_inside_batch(void **state)
{
    fx *f = *state;
    mvcc_copy *cp = NULL;

    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_copy_begin(f->m, &cp), CE_INVAL);
    assert_null(cp);
    mvcc_abort(f->m);
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;

    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* The temp file has no name in the store's directory and works for reading and writing. */
static void test_tmpfile_is_unnamed(void **state)
{
    fx *f = *state;
    int before = entries(f->dir), fd;
    char buf[6] = {0};

    assert_int_equal(mvcc_tmpfile(f->m, &fd), 0);
    assert_int_equal(entries(f->dir), before);
    assert_int_equal(pwrite(fd, "hello", 5, 0), 5);
    assert_int_equal(pread(fd, buf, 5, 0), 5);
    assert_string_equal(buf, "hello");
    close(fd);
    assert_int_equal(entries(f->dir), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy_is_pinned_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_concurrent_with_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_includes_unflushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_survives_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_stop_and_end_without_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_refused_inside_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tmpfile_is_unnamed, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
