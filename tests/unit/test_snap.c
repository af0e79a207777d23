/*
 * test_snap.c: snapshot metadata files: save/load round trip, newest selection, damaged files
 * skipped and renamed to .broken (every byte flipped, every truncation), purge keeps the
 * newest N, and bad arguments refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "server/snap/snap.h"

struct fx {
    char root[64];
    char dir[96];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/test_snap.XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/snap", f->root);
    *state = f;
    return 0;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rm_dir(f->dir);
    rmdir(f->root);
    free(f);
    return 0;
}

static int save(const char *dir, uint64_t term, uint64_t index, const char *blob)
{
    uint64_t voters[3] = {0x1111, 0x2222, index};
    uint64_t learners[1] = {0x9999};
    snap_meta m = {.index = index, .term = term, .voters = voters, .nvoters = 3,
                   .learners = learners, .nlearners = 1, .data = (uint8_t *)blob,
                   .len = blob ? strlen(blob) : 0};
    return snap_save(dir, &m);
}

static void check_loaded(const snap_meta *m, uint64_t term, uint64_t index, const char *blob)
{
    assert_int_equal(m->index, index);
    assert_int_equal(m->term, term);
    assert_int_equal(m->nvoters, 3);
    assert_int_equal(m->voters[0], 0x1111);
    assert_int_equal(m->voters[1], 0x2222);
    assert_int_equal(m->voters[2], index);
    assert_int_equal(m->nlearners, 1);
    assert_int_equal(m->learners[0], 0x9999);
    assert_int_equal(m->len, strlen(blob));
    assert_memory_equal(m->data, blob, m->len);
}

static int count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    size_t sl = strlen(suffix);
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void snap_path(const struct fx *f, uint64_t term, uint64_t index, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016llx-%016llx.snap", f->dir, (unsigned long long)term,
             (unsigned long long)index);
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(*len);
    assert_int_equal(fread(buf, 1, *len, fp), *len);
    fclose(fp);
    return buf;
}

static void write_all(const char *path, const uint8_t *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    snap_meta m;
    assert_int_equal(snap_load_newest(f->dir, &m), CE_NOTFOUND); /* no dir */
    assert_int_equal(save(f->dir, 2, 100, "[{\"id\":1}]"), 0);
    char p[256];
    snap_path(f, 2, 100, p, sizeof p);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(count_suffix(f->dir, ".tmp"), 0);
    assert_int_equal(snap_load_newest(f->dir, &m), 0);
    check_loaded(&m, 2, 100, "[{\"id\":1}]");
    snap_meta_free(&m);
    snap_meta_free(&m); /* zeroed: harmless */
}

static void test_empty_conf_and_blob(void **state)
{
    struct fx *f = *state;
    snap_meta in = {.index = 7, .term = 1};
    assert_int_equal(snap_save(f->dir, &in), 0);
    snap_meta m;
    assert_int_equal(snap_load_newest(f->dir, &m), 0);
    assert_int_equal(m.index, 7);
    assert_int_equal(m.nvoters + m.nlearners + m.len, 0);
    assert_null(m.voters);
    assert_null(m.data);
    snap_meta_free(&m);
}

static void test_newest_and_upto(void **state)
{
    struct fx *f = *state;
    assert_int_equal(save(f->dir, 1, 10, "a"), 0);
    assert_int_equal(save(f->dir, 3, 300, "c"), 0);
    assert_int_equal(save(f->dir, 2, 200, "b"), 0);
    snap_meta m;
    assert_int_equal(snap_load_newest(f->dir, &m), 0);
    check_loaded(&m, 3, 300, "c");
    snap_meta_free(&m);
    assert_int_equal(snap_load_newest_upto(f->dir, 299, &m), 0);
    check_loaded(&m, 2, 200, "b");
    snap_meta_free(&m);
    assert_int_equal(snap_load_newest_upto(f->dir, 9, &m), CE_NOTFOUND);
}

static void test_damaged_newest_skipped(void **state)
{
    struct fx *f = *state;
    log_set_level(LOG_ERROR); /* the warnings are expected, by the hundred */
    assert_int_equal(save(f->dir, 1, 10, "older"), 0);
    assert_int_equal(save(f->dir, 2, 20, "newer-blob"), 0);
    char p[256], broken[300];
    snap_path(f, 2, 20, p, sizeof p);
    snprintf(broken, sizeof broken, "%s.broken", p);
    size_t len;
    uint8_t *orig = read_all(p, &len);
    /* every flipped byte and every truncation is detected */
    for (size_t i = 0; i < 2 * len; i++) {
        if (i < len) {
            orig[i] ^= 0x10;
            write_all(p, orig, len);
            orig[i] ^= 0x10;
        } else {
            write_all(p, orig, i - len);
        }
        snap_meta m;
        assert_int_equal(snap_load_newest(f->dir, &m), 0);
        check_loaded(&m, 1, 10, "older");
        snap_meta_free(&m);
        assert_int_equal(access(p, F_OK), -1);
        assert_int_equal(access(broken, F_OK), 0);
        unlink(broken);
    }
    log_set_level(LOG_INFO);
    /* a valid file under the wrong name is damage too */
    write_all(p, orig, len);
    char wrong[256];
    snap_path(f, 2, 21, wrong, sizeof wrong);
    assert_int_equal(rename(p, wrong), 0);
    snap_meta m;
    assert_int_equal(snap_load_newest(f->dir, &m), 0);
    assert_int_equal(m.index, 10);
    snap_meta_free(&m);
    free(orig);
    /* all damaged: not found, and the damaged file is named in the log */
    snap_path(f, 1, 10, p, sizeof p);
    write_all(p, (const uint8_t *)"junk", 4);
    char logpath[] = "/tmp/test_snap_log.XXXXXX";
    int lfd = mkstemp(logpath);
    assert_true(lfd >= 0);
    int saved = dup(2);
    dup2(lfd, 2);
    int rc = snap_load_newest(f->dir, &m);
    dup2(saved, 2);
    close(saved);
    close(lfd);
    assert_int_equal(rc, CE_NOTFOUND);
    assert_int_equal(count_suffix(f->dir, ".broken"), 2);
    size_t loglen;
    char *log = (char *)read_all(logpath, &loglen);
    unlink(logpath);
    char want[300];
    snprintf(want, sizeof want, "snap: damaged snapshot file=%s", p);
    assert_non_null(memmem(log, loglen, want, strlen(want)));
    free(log);
}

static void test_purge_keeps_newest(void **state)
{
    struct fx *f = *state;
    for (uint64_t i = 1; i <= 7; i++)
        assert_int_equal(save(f->dir, 1 + i / 3, i * 10, "x"), 0);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/0000000000000001-0000000000000999.snap.tmp", f->dir);
    write_all(tmp, (const uint8_t *)"partial", 7);
    assert_int_equal(snap_purge(f->dir, 3), 0);
    assert_int_equal(count_suffix(f->dir, ".snap"), 3);
    assert_int_equal(count_suffix(f->dir, ".tmp"), 0);
    char p[256];
    for (uint64_t i = 5; i <= 7; i++) {
        snap_path(f, 1 + i / 3, i * 10, p, sizeof p);
        assert_int_equal(access(p, F_OK), 0);
    }
    assert_int_equal(snap_purge(f->dir, 5), 0);
    assert_int_equal(count_suffix(f->dir, ".snap"), 3);
    assert_int_equal(snap_purge(f->dir, 0), 0);
    assert_int_equal(count_suffix(f->dir, ".snap"), 0);
}

static void test_bad_arguments(void **state)
{
    struct fx *f = *state;
    snap_meta m = {.index = 0, .term = 1};
    assert_int_equal(snap_save(f->dir, &m), CE_INVAL);
    m = (snap_meta){.index = 1, .term = 1, .nvoters = 2, .voters = NULL};
    assert_int_equal(snap_save(f->dir, &m), CE_INVAL);
    m = (snap_meta){.index = 1, .term = 1, .len = 3, .data = NULL};
    assert_int_equal(snap_save(f->dir, &m), CE_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_conf_and_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newest_and_upto, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_newest_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
