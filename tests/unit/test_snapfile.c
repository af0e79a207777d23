/*
 * test_snapfile.c: snapshot file verification (common/snapfile.h) and the read-only status of
 * a cetcd snapshot file (mvcc_stat_file).
 *
 * - The real etcd 3.4 snapshot fixture verifies: kind etcd, hash present and equal to its
 *   trailing 32 bytes, database size 98304.
 * - A cetcd snapshot (a store with keys, a delete and a lease, copied by mvcc_snapshot_fd,
 *   then its SHA-256 appended) verifies as kind cetcd; mvcc_stat_file reports the store's
 *   revision, every entry of every table, a hash that changes with one value, and leaves no
 *   lock file beside the snapshot.
 * - Refusals, each with its message: truncated in the middle of a page ("truncated"), cut at a
 *   page boundary (hash required: "truncated or has no sha256"; not required: "needs N bytes"),
 *   one flipped byte in the data or in the magic ("sha256 checksum mismatch"), a copied db file
 *   without hash (refused only when the hash is required), a text file ("not a snapshot file"),
 *   a missing file (CE_NOTFOUND), a directory. Every single-byte truncation point of the small
 *   cetcd snapshot is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "mvccfx.h"
#include "snapfile.h"
#include "testfile.h"
#include "tmpdir.h"

struct fx {
    char dir[64];
    char path[128];     /* scratch file */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_snapfile.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/snap.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Verifies path and checks the outcome: rc and a message containing want (when not NULL). */
static void expect(const char *path, bool require_hash, int want_rc, const char *want)
{
    struct snapfile_info in;
    char err[512] = "";
    int rc = snapfile_verify(path, require_hash, &in, err, sizeof(err));

    if (rc != want_rc || (want && !strstr(err, want)))
        fail_msg("%s: expected %d with \"%s\", got %d \"%s\"", path, want_rc, want ? want : "",
                 rc, err);
    if (rc)
        assert_true(err[0] != 0);
}

/* ---------------------------------------------------------------- etcd fixture */

static void test_etcd_ok(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *img = testfile_read_data("snapshot/etcd34.db", &len);
    struct snapfile_info in;
    char err[256];

    testfile_write(f->path, img, len);
    assert_int_equal(snapfile_verify(f->path, true, &in, err, sizeof(err)), 0);
    assert_int_equal(in.kind, SNAPFILE_ETCD);
    assert_true(in.has_hash);
    assert_int_equal(in.file_size, len);
    assert_int_equal(in.db_size, 98304);
    assert_memory_equal(in.sha256, img + len - 32, 32);
    assert_int_equal(snapfile_kind_of(img, 64), SNAPFILE_ETCD);
    assert_string_equal(snapfile_kind_name(in.kind), "etcd");
    free(img);
}

static void test_etcd_refused(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *img = testfile_read_data("snapshot/etcd34.db", &len);

    testfile_write(f->path, img, 10000);
    expect(f->path, true, CE_CORRUPT,
           "snapshot file is truncated: 10000 bytes is not whole 4096-byte pages plus a sha256");
    testfile_write(f->path, img, 8192);
    expect(f->path, true, CE_CORRUPT, "truncated or has no sha256");
    expect(f->path, false, CE_CORRUPT, "truncated: the etcd database needs 98304 bytes");
    /* a flipped byte in the data, in the last byte of the hash, in the magic */
    img[50000] ^= 0x20;
    testfile_write(f->path, img, len);
    expect(f->path, true, CE_CORRUPT, "snapshot file is corrupt: sha256 checksum mismatch");
    expect(f->path, false, CE_CORRUPT, "sha256 checksum mismatch");
    img[50000] ^= 0x20;
    img[len - 1] ^= 1;
    testfile_write(f->path, img, len);
    expect(f->path, true, CE_CORRUPT, "sha256 checksum mismatch");
    img[len - 1] ^= 1;
    img[17] ^= 1;
    testfile_write(f->path, img, len);
    expect(f->path, true, CE_CORRUPT, "sha256 checksum mismatch");
    img[17] ^= 1;
    /* a damaged meta checksum field is named by the hash too */
    img[4096 + 72] ^= 1;
    testfile_write(f->path, img, len);
    expect(f->path, true, CE_CORRUPT, "sha256 checksum mismatch");
    img[4096 + 72] ^= 1;
    /* the database without its hash: a copied db file */
    testfile_write(f->path, img, len - 32);
    expect(f->path, true, CE_CORRUPT, "no sha256");
    expect(f->path, false, 0, NULL);
    free(img);
}

static void test_not_snapshot(void **state)
{
    struct fx *f = *state;
    char text[8192 + 32];

    memset(text, 'a', sizeof(text));
    testfile_write(f->path, text, 100);
    expect(f->path, true, CE_CORRUPT, "not a snapshot file");
    testfile_write(f->path, text, 0);
    expect(f->path, true, CE_CORRUPT, "not a snapshot file");
    /* the size of a snapshot with a hash, but neither kind: the hash names the damage */
    testfile_write(f->path, text, sizeof(text));
    expect(f->path, true, CE_CORRUPT, "sha256 checksum mismatch");
    expect(f->dir, true, CE_INVAL, "not a regular file");
    snprintf(f->path, sizeof(f->path), "%s/missing.db", f->dir);
    expect(f->path, true, CE_NOTFOUND, "cannot open snapshot file");
    assert_int_equal(snapfile_verify(f->path, true, NULL, NULL, 0), CE_NOTFOUND);
}

/* ---------------------------------------------------------------- cetcd snapshot */

/* A store with n keys (value of key 0 given), a delete, a lease; its snapshot plus hash at
 * path. Returns the store's revision. */
static int64_t make_cetcd_snapshot(const char *dir, const char *path, int n, const char *v0)
{
    char sdir[256], k[32], v[64];
    mvcc_lease l = {.id = 7, .ttl = 100, .renewed_index = 3};
    mvcc *m;
    int64_t rev;

    snprintf(sdir, sizeof(sdir), "%s/store", dir);
    tmpdir_remove(sdir);
    m = mvccfx_open(sdir, false);
    assert_int_equal(mvcc_begin(m), 0);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key%04d", i);
        snprintf(v, sizeof(v), "value-%d", i);
        mvccfx_put(m, k, i == 0 ? v0 : v, 0);
    }
    mvccfx_del(m, "key0001");
    assert_int_equal(mvcc_lease_put(m, &l), 0);
    assert_int_equal(mvcc_commit(m, 5, 2), 0);
    rev = mvcc_rev(m);
    mvccfx_snapshot_file(m, path, true, NULL);
    mvcc_close(m);
    tmpdir_remove(sdir);
    return rev;
}

static void test_cetcd_ok(void **state)
{
    struct fx *f = *state;
    struct snapfile_info in;
    mvcc_file_stat st, st2;
    char err[256];
    int64_t rev = make_cetcd_snapshot(f->dir, f->path, 50, "first");
    DIR *d;
    struct dirent *e;
    int files = 0;

    assert_int_equal(snapfile_verify(f->path, true, &in, err, sizeof(err)), 0);
    assert_int_equal(in.kind, SNAPFILE_CETCD);
    assert_true(in.has_hash);
    assert_int_equal(in.db_size % 4096, 0);
    assert_int_equal(mvcc_stat_file(f->path, &st, err, sizeof(err)), 0);
    assert_int_equal(st.revision, rev);
    assert_int_equal(st.revision, 52);              /* 50 puts and a delete after rev 1 */
    assert_int_equal(st.consistent_index, 5);
    /* kv: 50 puts + 1 tombstone; index: the same 51 revisions; meta: 4; lease: 1 */
    assert_int_equal(st.total_keys, 51 + 51 + 4 + 1);
    assert_int_equal((uint64_t)st.total_size, in.db_size);
    /* the same store state gives the same hash; one value changed gives another */
    make_cetcd_snapshot(f->dir, f->path, 50, "first");
    assert_int_equal(mvcc_stat_file(f->path, &st2, err, sizeof(err)), 0);
    assert_int_equal(st2.hash, st.hash);
    make_cetcd_snapshot(f->dir, f->path, 50, "firsT");
    assert_int_equal(mvcc_stat_file(f->path, &st2, err, sizeof(err)), 0);
    assert_int_not_equal(st2.hash, st.hash);
    assert_int_equal(st2.total_keys, st.total_keys);
    /* read in place: nothing but the snapshot in its directory (no lock file) */
    d = opendir(f->dir);
    assert_non_null(d);
    while ((e = readdir(d)))
        files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);
}

static void test_cetcd_refused(void **state)
{
    struct fx *f = *state;
    size_t len;
    uint8_t *img;
    mvcc_file_stat st;
    char err[256];

    make_cetcd_snapshot(f->dir, f->path, 20, "v");
    img = testfile_read(f->path, &len);
    assert_int_equal(snapfile_kind_of(img, len), SNAPFILE_CETCD);
    /* flipped byte in the data */
    img[len / 2] ^= 0x40;
    testfile_write(f->path, img, len);
    expect(f->path, true, CE_CORRUPT, "sha256 checksum mismatch");
    img[len / 2] ^= 0x40;
    /* flipped byte in the LMDB magic */
    img[16] ^= 0x40;
    testfile_write(f->path, img, len);
    expect(f->path, true, CE_CORRUPT, "sha256 checksum mismatch");
    img[16] ^= 0x40;
    /* truncated in the middle */
    testfile_write(f->path, img, len - 100);
    expect(f->path, true, CE_CORRUPT, "truncated");
    /* cut to its first page plus a hash of it: the meta needs more pages */
    {
        uint8_t head[4096 + 32];
        memcpy(head, img, 4096);
        testfile_sha256(head, 4096, head + 4096);
        testfile_write(f->path, head, sizeof(head));
        expect(f->path, true, CE_CORRUPT, "truncated: the cetcd database needs");
        /* mvcc_stat_file on its own refuses a short file too, before reading pages */
        testfile_write(f->path, img, 8192);
        assert_int_equal(mvcc_stat_file(f->path, &st, err, sizeof(err)) != 0, true);
    }
    /* every truncation point is refused */
    for (size_t cut = 0; cut < len; cut += cut < 200 ? 1 : 509) {
        char msg[64];
        testfile_write(f->path, img, cut);
        snprintf(msg, sizeof(msg), "cut at %zu", cut);
        if (snapfile_verify(f->path, true, NULL, err, sizeof(err)) == 0)
            fail_msg("%s accepted", msg);
    }
    /* without the hash: accepted only when not required, and readable */
    testfile_write(f->path, img, len - 32);
    expect(f->path, true, CE_CORRUPT, "no sha256");
    expect(f->path, false, 0, NULL);
    assert_int_equal(mvcc_stat_file(f->path, &st, err, sizeof(err)), 0);
    assert_int_equal(st.revision, 22);
    free(img);
    snprintf(f->path, sizeof(f->path), "%s/missing.db", f->dir);
    assert_int_equal(mvcc_stat_file(f->path, &st, err, sizeof(err)), CE_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_etcd_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etcd_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cetcd_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cetcd_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
