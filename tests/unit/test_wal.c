/*
 * test_wal.c: the WAL's contract: round trips across segment cuts and reopen, Raft tail
 * truncation, torn-tail repair at every byte offset of the last record, corruption anywhere
 * else refused with the file named in the log, segment release, and a seeded randomized
 * model check (seed printed; replay with WAL_SEED=<n>). WAL_BENCH=1 also prints sync timings.
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
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "common/crc32c.h"
#include "server/wal/wal.h"

static void write_file(const char *path, const uint8_t *buf, size_t len);

static const uint8_t META[] = "{\"member\":1,\"cluster\":2}";

/* ---------- fixtures and helpers ---------- */

struct fx {
    char root[64];
    char dir[96];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/test_wal.XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/member/wal", f->root);
    *state = f;
    return 0;
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rm_rf(f->root);
    free(f);
    return 0;
}

/* Deterministic payload for entry (index, term). */
static size_t payload_for(uint64_t index, uint64_t term, uint8_t *buf, size_t cap)
{
    size_t len = (size_t)((index * 37 + term * 11) % 200);
    if (len > cap)
        len = cap;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(index * 7 + term + i);
    return len;
}

static int save_range(wal *w, uint64_t from, uint64_t to, uint64_t term)
{
    uint8_t bufs[64][200];
    wal_entry ents[64];
    for (uint64_t i = from; i <= to;) {
        size_t n = 0;
        for (; i <= to && n < 64; i++, n++) {
            ents[n] = (wal_entry){.term = term, .index = i, .type = (uint8_t)(i % 3)};
            ents[n].len = payload_for(i, term, bufs[n], sizeof bufs[n]);
            ents[n].data = bufs[n];
        }
        wal_hardstate hs = {.term = term, .vote = 1, .commit = i - 1};
        int rc = wal_save(w, &hs, ents, n);
        if (rc != 0)
            return rc;
    }
    return wal_sync(w);
}

static void check_entry(const wal_entry *e, uint64_t index, uint64_t term)
{
    uint8_t buf[200];
    size_t len = payload_for(index, term, buf, sizeof buf);
    assert_int_equal(e->index, index);
    assert_int_equal(e->term, term);
    assert_int_equal(e->type, index % 3);
    assert_int_equal(e->len, len);
    if (len)
        assert_memory_equal(e->data, buf, len);
}

/* Entries from..to of rp (contiguous) all have term. */
static void check_range(const wal_replay *rp, size_t pos, uint64_t from, uint64_t to,
                        uint64_t term)
{
    for (uint64_t i = from; i <= to; i++)
        check_entry(&rp->ents[pos + (i - from)], i, term);
}

static int count_segments(const char *dir, char names[][64], int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && l < 64 && strcmp(de->d_name + l - 4, ".wal") == 0) {
            if (names && n < max)
                memcpy(names[n], de->d_name, l + 1);
            n++;
        }
    }
    if (d)
        closedir(d);
    if (names)
        qsort(names, (size_t)(n < max ? n : max), 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* Path of the newest (or oldest) segment. */
static void segment_path(const char *dir, bool newest, char *out, size_t cap)
{
    char names[64][64];
    int n = count_segments(dir, names, 64);
    assert_true(n > 0 && n <= 64);
    snprintf(out, cap, "%s/%.63s", dir, names[newest ? n - 1 : 0]);
}

/* stderr capture, to check what was logged. */
struct capture {
    int saved;
    char path[64];
};

static void capture_begin(struct capture *c)
{
    snprintf(c->path, sizeof c->path, "/tmp/test_wal_log.XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Returns the captured text (malloc'd, NUL-terminated). */
static char *capture_end(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    size_t len;
    char *s = (char *)read_file(c->path, &len);
    s[len] = '\0';
    unlink(c->path);
    return s;
}

/* Opens, expecting rc; returns the log text. */
static char *open_logged(const char *dir, uint64_t snap_index, int want_rc, wal **w,
                         wal_replay *rp)
{
    struct capture c;
    capture_begin(&c);
    int rc = wal_open(dir, snap_index, w, rp);
    char *log = capture_end(&c);
    if (rc != want_rc)
        fprintf(stderr, "wal_open rc=%d want %d, log:\n%s", rc, want_rc, log);
    assert_int_equal(rc, want_rc);
    return log;
}

/* ---------- tests ---------- */

static void test_crc32c_known_value(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
}

static void test_create_exists_open(void **state)
{
    struct fx *f = *state;
    wal *w;
    assert_false(wal_exists(f->dir));
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    assert_true(wal_exists(f->dir));
    wal_close(w);
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), CE_EXISTS);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s/0000000000000001-0000000000000001.wal.tmp", f->dir);
    write_file(tmp, (const uint8_t *)"partial", 7); /* a crash during a cut */
    wal_replay rp;
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    assert_int_equal(rp.nents, 0);
    assert_false(rp.has_hs);
    assert_false(rp.has_snap);
    assert_int_equal(rp.metadata_len, sizeof META - 1);
    assert_string_equal(rp.metadata, (const char *)META);
    assert_int_equal(access(tmp, F_OK), -1);
    wal_replay_free(&rp);
    wal_close(w);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope", f->root);
    assert_int_equal(wal_open(missing, 0, &w, &rp), CE_NOTFOUND);
}

static void test_round_trip_across_segments(void **state)
{
    struct fx *f = *state;
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_segment_bytes(w, 4096);
    assert_int_equal(save_range(w, 1, 200, 1), 0);
    wal_snapshot s = {.index = 50, .term = 1};
    assert_int_equal(wal_save_snapshot(w, &s), 0);
    assert_int_equal(save_range(w, 201, 300, 2), 0);
    wal_close(w);
    assert_true(count_segments(f->dir, NULL, 0) > 5);

    wal_replay rp;
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    assert_int_equal(rp.nents, 300);
    check_range(&rp, 0, 1, 200, 1);
    check_range(&rp, 200, 201, 300, 2);
    assert_true(rp.has_hs);
    assert_int_equal(rp.hs.term, 2);
    assert_int_equal(rp.hs.commit, 300);
    assert_true(rp.has_snap);
    assert_int_equal(rp.snap.index, 50);
    assert_string_equal(rp.metadata, (const char *)META);
    wal_replay_free(&rp);
    /* append after reopen, then reopen from a snapshot index */
    wal_set_segment_bytes(w, 4096);
    assert_int_equal(wal_last_index(w), 300);
    assert_int_equal(save_range(w, 301, 400, 3), 0);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 250, &w, &rp), 0);
    assert_int_equal(rp.nents, 150);
    check_range(&rp, 0, 251, 300, 2);
    check_range(&rp, 50, 301, 400, 3);
    assert_int_equal(rp.hs.term, 3);
    assert_int_equal(rp.hs.commit, 400);
    assert_int_equal(rp.snap.index, 50); /* the marker is repeated in later segments */
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_large_metadata_segments(void **state)
{
    struct fx *f = *state;
    static uint8_t meta[10000];
    memset(meta, 'm', sizeof meta);
    wal *w;
    assert_int_equal(wal_create(f->dir, meta, sizeof meta, &w), 0);
    wal_set_segment_bytes(w, 4096);
    for (uint64_t i = 1; i <= 200; i++) /* one save per entry: about 25 KB */
        assert_int_equal(save_range(w, i, i, 1), 0);
    wal_close(w);
    int n = count_segments(f->dir, NULL, 0);
    assert_true(n >= 2 && n <= 5);
    wal_replay rp;
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    assert_int_equal(rp.nents, 200);
    assert_int_equal(rp.metadata_len, sizeof meta);
    assert_memory_equal(rp.metadata, meta, sizeof meta);
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_truncation_overwrites_tail(void **state)
{
    struct fx *f = *state;
    wal *w;
    wal_replay rp;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_segment_bytes(w, 4096);
    assert_int_equal(save_range(w, 1, 100, 1), 0);
    assert_int_equal(save_range(w, 60, 80, 2), 0);   /* new leader: 60.. replaced */
    assert_int_equal(wal_last_index(w), 80);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    assert_int_equal(rp.nents, 80);
    check_range(&rp, 0, 1, 59, 1);
    check_range(&rp, 59, 60, 80, 2);
    wal_replay_free(&rp);
    /* truncate again after reopen, into an older segment's range */
    wal_set_segment_bytes(w, 4096);
    assert_int_equal(save_range(w, 10, 30, 3), 0);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 5, &w, &rp), 0);
    assert_int_equal(rp.nents, 25);
    check_range(&rp, 0, 6, 9, 1);
    check_range(&rp, 4, 10, 30, 3);
    wal_replay_free(&rp);
    /* truncating below the snapshot index leaves nothing after it */
    assert_int_equal(save_range(w, 3, 3, 4), 0);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 5, &w, &rp), 0);
    assert_int_equal(rp.nents, 0);
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_save_rejects_bad_indexes(void **state)
{
    struct fx *f = *state;
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    assert_int_equal(save_range(w, 1, 10, 1), 0);
    wal_entry e = {.term = 1, .index = 12};
    assert_int_equal(wal_save(w, NULL, &e, 1), CE_INVAL); /* gap */
    e.index = 0;
    assert_int_equal(wal_save(w, NULL, &e, 1), CE_INVAL);
    wal_entry two[2] = {{.term = 1, .index = 11}, {.term = 1, .index = 13}};
    assert_int_equal(wal_save(w, NULL, two, 2), CE_INVAL); /* nothing of it saved */
    assert_int_equal(wal_last_index(w), 10);
    assert_int_equal(save_range(w, 11, 11, 1), 0);
    wal_close(w);
    wal_replay rp;
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    assert_int_equal(rp.nents, 11);
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_snapshot_marker_then_entries(void **state)
{
    struct fx *f = *state;
    wal *w;
    wal_replay rp;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    assert_int_equal(save_range(w, 1, 5, 1), 0);
    wal_snapshot s = {.index = 100, .term = 3}; /* a snapshot received from the leader */
    assert_int_equal(wal_save_snapshot(w, &s), 0);
    assert_int_equal(save_range(w, 101, 103, 3), 0);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 100, &w, &rp), 0);
    assert_int_equal(rp.nents, 3);
    check_range(&rp, 0, 101, 103, 3);
    assert_int_equal(rp.snap.index, 100);
    assert_int_equal(rp.snap.term, 3);
    wal_replay_free(&rp);
    wal_close(w);
    /* without that snapshot, entries 6..100 are missing */
    char *log = open_logged(f->dir, 0, CE_CORRUPT, &w, &rp);
    assert_non_null(strstr(log, "wal: corrupt record in "));
    free(log);
    assert_int_equal(rp.nents, 0);
}

/* An installed snapshot voids the entries above its index saved before it: Raft dropped its
 * whole log for it, and a crash before new entries arrive must not bring them back. */
static void test_installed_snapshot_voids_later_entries(void **state)
{
    struct fx *f = *state;
    wal *w;
    wal_replay rp;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    assert_int_equal(save_range(w, 1, 10, 1), 0);
    wal_snapshot s = {.index = 5, .term = 2};
    assert_int_equal(wal_install_snapshot(w, &s), 0);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 5, &w, &rp), 0);
    assert_int_equal(rp.nents, 0);
    assert_int_equal(rp.snap.index, 5);
    wal_replay_free(&rp);
    /* the log goes on right after the snapshot; a plain marker would keep 6..10 */
    assert_int_equal(save_range(w, 6, 7, 2), 0);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 5, &w, &rp), 0);
    assert_int_equal(rp.nents, 2);
    check_range(&rp, 0, 6, 7, 2);
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_marker_beyond_entries_needs_that_snapshot(void **state)
{
    struct fx *f = *state;
    wal *w;
    wal_replay rp;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    assert_int_equal(save_range(w, 1, 5, 1), 0);
    wal_snapshot s = {.index = 100, .term = 3};
    assert_int_equal(wal_save_snapshot(w, &s), 0);
    assert_int_equal(wal_last_index(w), 100);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 100, &w, &rp), 0);
    assert_int_equal(rp.nents, 0);
    wal_replay_free(&rp);
    wal_close(w);
    /* an older snapshot cannot be completed from this log: 6..100 are not in it */
    char *log = open_logged(f->dir, 5, CE_CORRUPT, &w, &rp);
    assert_non_null(strstr(log, "wal: entries missing in "));
    free(log);
}

/* Record offsets of a segment file, up to its zeroed tail (walks the length fields of a
 * known-good file); *end receives the end of the last record. */
static size_t record_offsets(const uint8_t *buf, size_t len, size_t *offs, size_t max,
                             size_t *end)
{
    size_t n = 0, off = 0;
    while (off + 16 <= len && n < max && buf[off + 4] != 0) {
        offs[n++] = off;
        uint32_t l = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8 |
                     (uint32_t)buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;
        off += 16 + ((l + 7) & ~7u);
    }
    if (end)
        *end = off;
    return n;
}

/* Builds a WAL of entries 1..5 then 6 (the last record, ending at *rec_end, zeros after it);
 * returns the last record's offset. */
static size_t build_with_last(struct fx *f, char *path, size_t cap, uint8_t **orig,
                              size_t *orig_len, size_t *rec_end)
{
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    assert_int_equal(save_range(w, 1, 5, 1), 0);
    wal_close(w);
    segment_path(f->dir, true, path, cap);
    uint8_t data[40];
    memset(data, 0xab, sizeof data);
    wal_entry e = {.term = 1, .index = 6, .data = data, .len = sizeof data};
    wal_replay rp;
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    wal_replay_free(&rp);
    assert_int_equal(wal_save(w, NULL, &e, 1), 0);
    wal_close(w);
    *orig = read_file(path, orig_len);
    size_t offs[64];
    size_t n = record_offsets(*orig, *orig_len, offs, 64, rec_end);
    assert_true(n >= 8 && *rec_end < *orig_len); /* zeros follow the records */
    return offs[n - 1];
}

static void check_first_five_then_append(struct fx *f)
{
    wal *w;
    wal_replay rp;
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    assert_int_equal(rp.nents, 5);
    check_range(&rp, 0, 1, 5, 1);
    assert_int_equal(rp.hs.commit, 5);
    wal_replay_free(&rp);
    /* the repaired file takes appends */
    assert_int_equal(save_range(w, 6, 7, 2), 0);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    assert_int_equal(rp.nents, 7);
    check_range(&rp, 5, 6, 7, 2);
    wal_replay_free(&rp);
    wal_close(w);
}

/* Opens a WAL whose last segment is torn at last: 5 entries, a warning naming the file and
 * offset (unless want_warn is false), the file cut to last. */
static void expect_torn(struct fx *f, const char *path, size_t last, bool want_warn)
{
    wal *w;
    wal_replay rp;
    char *log = open_logged(f->dir, 0, 0, &w, &rp);
    assert_int_equal(rp.nents, 5);
    char want[320];
    snprintf(want, sizeof want, "file=%s offset=%zu", path, last);
    if (want_warn != (strstr(log, want) != NULL))
        fail_msg("warning \"%s\" expected %d in: %s", want, want_warn, log);
    free(log);
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_torn_tail_every_offset(void **state)
{
    struct fx *f = *state;
    char path[256];
    uint8_t *orig;
    size_t len, end;
    size_t last = build_with_last(f, path, sizeof path, &orig, &len, &end);
    uint8_t *zeroed = calloc(1, len);
    size_t payload_end = last + 16 + orig[last]; /* entry 6: 57 bytes */
    struct stat st;
    for (size_t cut = last; cut < end; cut++) {
        /* the file ends inside the record */
        write_file(path, orig, cut);
        expect_torn(f, path, last, cut > last);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, last);
        /* the record is cut short and zeros follow (the zeroed tail); cut only in its
         * padding it is whole, as the padding is zeros */
        memcpy(zeroed, orig, cut);
        write_file(path, zeroed, len);
        if (cut >= payload_end) {
            wal *w;
            wal_replay rp;
            char *log = open_logged(f->dir, 0, 0, &w, &rp);
            assert_int_equal(rp.nents, 6);
            assert_null(strstr(log, "torn"));
            free(log);
            wal_replay_free(&rp);
            wal_close(w);
        } else {
            expect_torn(f, path, last, cut > last);
        }
        assert_int_equal(stat(path, &st), 0);
        /* zeros only after whole records: the file is kept, zeroed tail and all */
        assert_int_equal(st.st_size, cut > last && cut < payload_end ? last : len);
    }
    write_file(path, orig, end - 3);
    check_first_five_then_append(f);
    free(zeroed);
    free(orig);
}

static void test_torn_tail_garbage_and_bad_crc(void **state)
{
    struct fx *f = *state;
    char path[256];
    uint8_t *orig;
    size_t len, end;
    size_t last = build_with_last(f, path, sizeof path, &orig, &len, &end);
    /* a bad CRC in the final record, then zeros: torn */
    uint8_t *buf = calloc(1, len + 4096);
    memcpy(buf, orig, len);
    buf[last + 30] ^= 0x01;
    write_file(path, buf, len + 4096);
    wal *w;
    wal_replay rp;
    char *log = open_logged(f->dir, 0, 0, &w, &rp);
    assert_non_null(strstr(log, "torn tail"));
    free(log);
    assert_int_equal(rp.nents, 5);
    wal_replay_free(&rp);
    wal_close(w);
    /* a partial record followed by garbage that is not a record: torn */
    memcpy(buf, orig, len);
    for (size_t i = last + 20; i < len + 4096; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    write_file(path, buf, len + 4096);
    check_first_five_then_append(f);
    free(buf);
    free(orig);
}

static void expect_corrupt_at(struct fx *f, const char *path, size_t off)
{
    wal *w = NULL;
    wal_replay rp;
    char *log = open_logged(f->dir, 0, CE_CORRUPT, &w, &rp);
    char want[320];
    snprintf(want, sizeof want, "wal: corrupt record in %s at offset %zu", path, off);
    if (!strstr(log, want))
        fail_msg("expected \"%s\" in: %s", want, log);
    free(log);
    assert_null(w);
    assert_int_equal(rp.nents, 0);
}

static void test_flipped_byte_in_earlier_record(void **state)
{
    struct fx *f = *state;
    char path[256];
    uint8_t *orig;
    size_t len, end;
    build_with_last(f, path, sizeof path, &orig, &len, &end);
    size_t offs[64];
    size_t n = record_offsets(orig, len, offs, 64, NULL);
    assert_true(n >= 8); /* header, metadata, 5 entries + hard state, entry 6 */
    /* every covered byte of every record but the last one */
    for (size_t r = 0; r + 1 < n; r++) {
        uint32_t plen = (uint32_t)orig[offs[r]] | (uint32_t)orig[offs[r] + 1] << 8;
        for (size_t b = offs[r]; b < offs[r] + 16 + plen; b++) {
            orig[b] ^= 0x40;
            write_file(path, orig, len);
            expect_corrupt_at(f, path, offs[r]);
            orig[b] ^= 0x40;
        }
    }
    write_file(path, orig, len);
    free(orig);
}

static void test_corruption_in_older_segment(void **state)
{
    struct fx *f = *state;
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_segment_bytes(w, 4096);
    assert_int_equal(save_range(w, 1, 100, 1), 0);
    wal_close(w);
    char path[256];
    segment_path(f->dir, false, path, sizeof path);
    size_t len;
    uint8_t *buf = read_file(path, &len);
    size_t offs[256];
    size_t n = record_offsets(buf, len, offs, 256, NULL);
    /* the very last record of a non-last segment is not a torn tail */
    buf[offs[n - 1] + 17] ^= 0x01;
    write_file(path, buf, len);
    expect_corrupt_at(f, path, offs[n - 1]);
    buf[offs[n - 1] + 17] ^= 0x01;
    /* nor is a short non-last segment */
    write_file(path, buf, offs[n - 1] + 5);
    expect_corrupt_at(f, path, offs[n - 1]);
    write_file(path, buf, len);
    free(buf);
    wal_replay rp;
    assert_int_equal(wal_open(f->dir, 0, &w, &rp), 0);
    assert_int_equal(rp.nents, 100);
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_damaged_header_of_last_segment(void **state)
{
    struct fx *f = *state;
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_close(w);
    char path[256];
    segment_path(f->dir, true, path, sizeof path);
    size_t len;
    uint8_t *buf = read_file(path, &len);
    size_t offs[4], end;
    assert_int_equal(record_offsets(buf, len, offs, 4, &end), 2);
    /* segments are created whole: a short or damaged header is corruption, not a torn tail */
    for (size_t cut = 0; cut < end; cut += 3) {
        write_file(path, buf, cut);
        expect_corrupt_at(f, path, cut < 48 ? 0 : 48);
    }
    buf[50] ^= 1;
    write_file(path, buf, len);
    expect_corrupt_at(f, path, 48);
    free(buf);
}

static void test_zeroed_tail_is_a_clean_end(void **state)
{
    struct fx *f = *state;
    wal *w;
    wal_replay rp;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_segment_bytes(w, 8192);
    assert_int_equal(save_range(w, 1, 150, 1), 0);
    wal_close(w);
    char names[64][64];
    int n = count_segments(f->dir, names, 64);
    assert_true(n >= 3 && n < 64);
    for (int i = 0; i < n; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%.63s", f->dir, names[i]);
        size_t len, end, offs[256];
        uint8_t *buf = read_file(p, &len);
        record_offsets(buf, len, offs, 256, &end);
        if (i < n - 1)
            assert_int_equal(len, end); /* finished segments are cut to their records */
        else
            assert_true(len > end); /* the last one has its zeroed tail */
        free(buf);
    }
    char *log = open_logged(f->dir, 0, 0, &w, &rp);
    assert_null(strstr(log, "torn"));
    free(log);
    assert_int_equal(rp.nents, 150);
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_missing_middle_segment(void **state)
{
    struct fx *f = *state;
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_segment_bytes(w, 4096);
    assert_int_equal(save_range(w, 1, 100, 1), 0);
    wal_close(w);
    char names[64][64];
    int n = count_segments(f->dir, names, 64);
    assert_true(n >= 3);
    char p[256];
    snprintf(p, sizeof p, "%s/%.63s", f->dir, names[1]);
    unlink(p);
    wal_replay rp;
    char *log = open_logged(f->dir, 0, CE_CORRUPT, &w, &rp);
    assert_non_null(strstr(log, "wal: missing segment before seq 0000000000000002"));
    free(log);
}

static void test_release_to(void **state)
{
    struct fx *f = *state;
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_segment_bytes(w, 4096);
    assert_int_equal(save_range(w, 1, 300, 1), 0);
    char names[128][64];
    int before = count_segments(f->dir, names, 128);
    assert_true(before > 5 && before < 128);
    /* which segment holds 150: the last one whose first index <= 150 */
    int holder = 0;
    for (int i = 0; i < before; i++) {
        unsigned long long first = strtoull(names[i] + 17, NULL, 16);
        if (first <= 150)
            holder = i;
    }
    assert_true(holder > 0);
    assert_int_equal(wal_release_to(w, 150), 0);
    char after[128][64];
    int n = count_segments(f->dir, after, 128);
    assert_int_equal(n, before - holder);
    assert_string_equal(after[0], names[holder]);
    /* releasing everything keeps the segment being written */
    assert_int_equal(wal_release_to(w, 1000000), 0);
    assert_int_equal(count_segments(f->dir, NULL, 0), 1);
    wal_close(w);
    wal_replay rp;
    assert_int_equal(wal_open(f->dir, 300, &w, &rp), 0);
    assert_int_equal(rp.nents, 0);
    assert_int_equal(rp.hs.commit, 300);
    wal_replay_free(&rp);
    wal_close(w);
}

static void test_release_then_replay_from_snapshot(void **state)
{
    struct fx *f = *state;
    wal *w;
    wal_replay rp;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_segment_bytes(w, 4096);
    assert_int_equal(save_range(w, 1, 300, 1), 0);
    wal_snapshot s = {.index = 150, .term = 1};
    assert_int_equal(wal_save_snapshot(w, &s), 0);
    assert_int_equal(wal_release_to(w, 150), 0);
    wal_close(w);
    assert_int_equal(wal_open(f->dir, 150, &w, &rp), 0);
    assert_int_equal(rp.nents, 150);
    check_range(&rp, 0, 151, 300, 1);
    assert_int_equal(rp.snap.index, 150);
    wal_replay_free(&rp);
    wal_close(w);
    /* the entries before 150 are gone: replay from 0 cannot be satisfied */
    char *log = open_logged(f->dir, 0, CE_CORRUPT, &w, &rp);
    free(log);
}

static int nsyncs;
static void observe(void *arg, double seconds)
{
    (void)arg;
    assert_true(seconds >= 0 && seconds < 10);
    nsyncs++;
}

static void test_sync_observer_and_group_commit(void **state)
{
    struct fx *f = *state;
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_sync_observer(w, observe, NULL);
    nsyncs = 0;
    assert_int_equal(save_range(w, 1, 10, 1), 0);
    assert_int_equal(nsyncs, 1);
    assert_int_equal(wal_sync(w), 0); /* nothing new: no fdatasync */
    assert_int_equal(nsyncs, 1);
    wal_set_unsafe_no_fsync(w, true);
    assert_int_equal(save_range(w, 11, 20, 1), 0);
    assert_int_equal(nsyncs, 1);
    wal_close(w);
}

/* ---------- randomized model check ---------- */

static uint64_t rng;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

struct model {
    uint64_t terms[2048]; /* term of entry i, for snap < i <= last */
    uint64_t last, term, snap;
};

/* Reopens (from the model's snapshot index) and compares everything with the model. */
static void model_reopen(struct fx *f, wal **w, const struct model *m)
{
    wal_replay rp;
    wal_close(*w);
    assert_int_equal(wal_open(f->dir, m->snap, w, &rp), 0);
    wal_set_segment_bytes(*w, 4096);
    wal_set_unsafe_no_fsync(*w, true);
    assert_int_equal(rp.nents, m->last - m->snap);
    for (uint64_t i = m->snap + 1; i <= m->last; i++)
        check_entry(&rp.ents[i - m->snap - 1], i, m->terms[i]);
    assert_int_equal(rp.hs.commit, m->last);
    wal_replay_free(&rp);
}

/* Saves from..to with a new term into WAL and model. */
static void model_save(wal *w, struct model *m, uint64_t from, uint64_t to)
{
    assert_int_equal(save_range(w, from, to, m->term), 0);
    for (uint64_t i = from; i <= to; i++)
        m->terms[i] = m->term;
    m->last = to;
}

static void test_random_model(void **state)
{
    struct fx *f = *state;
    const char *env = getenv("WAL_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    printf("test_random_model: WAL_SEED=%llu\n", (unsigned long long)seed);
    rng = seed * 2654435761u + 1;
    struct model m = {.term = 1};
    wal *w;
    assert_int_equal(wal_create(f->dir, META, sizeof META - 1, &w), 0);
    wal_set_segment_bytes(w, 4096);
    wal_set_unsafe_no_fsync(w, true);
    for (int step = 0; step < 300 && m.last < 2000; step++) {
        uint64_t r = next_rand() % 10;
        if (r < 5 || m.last == m.snap) {          /* append */
            model_save(w, &m, m.last + 1, m.last + 1 + next_rand() % 20);
        } else if (r < 7) {                       /* a new leader truncates (never below snap) */
            uint64_t from = m.snap + 1 + next_rand() % (m.last - m.snap);
            m.term++;
            model_save(w, &m, from, from + next_rand() % 10);
        } else if (r < 8) {                       /* snapshot + release */
            m.snap += next_rand() % (m.last - m.snap + 1);
            wal_snapshot s = {.index = m.snap, .term = m.terms[m.snap]};
            assert_int_equal(wal_save_snapshot(w, &s), 0);
            assert_int_equal(wal_release_to(w, m.snap), 0);
        } else {
            model_reopen(f, &w, &m);
        }
    }
    model_reopen(f, &w, &m);
    wal_close(w);
}

/* ---------- timings (WAL_BENCH=1) ---------- */

static double bench_batch(wal *w, uint64_t *next, size_t n, int rounds)
{
    static uint8_t data[256];
    wal_entry ents[100];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < n; i++)
            ents[i] = (wal_entry){.term = 1, .index = (*next)++, .data = data, .len = sizeof data};
        wal_hardstate hs = {1, 1, *next - 1};
        assert_int_equal(wal_save(w, &hs, ents, n), 0);
        assert_int_equal(wal_sync(w), 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3) / rounds;
}

static void test_bench(void **state)
{
    struct fx *f = *state;
    if (!getenv("WAL_BENCH"))
        skip();
    char dir[256];
    snprintf(dir, sizeof dir, "%s/bench", getenv("WAL_BENCH_DIR") ? getenv("WAL_BENCH_DIR") : f->root);
    wal *w;
    assert_int_equal(wal_create(dir, META, sizeof META - 1, &w), 0);
    uint64_t next = 1;
    bench_batch(w, &next, 1, 50); /* warm up */
    double one = bench_batch(w, &next, 1, 500);
    double hundred = bench_batch(w, &next, 100, 200);
    printf("wal bench: save+sync 1 entry (256 B): %.1f us; 100 entries: %.1f us\n", one,
           hundred);
    wal_set_unsafe_no_fsync(w, true); /* the WAL's own cost: encode + CRC + write() */
    one = bench_batch(w, &next, 1, 2000);
    hundred = bench_batch(w, &next, 100, 500);
    printf("wal bench (no fdatasync): save+write 1 entry: %.1f us; 100 entries: %.1f us\n", one,
           hundred);
    wal_close(w);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_value),
        cmocka_unit_test_setup_teardown(test_create_exists_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_across_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_metadata_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_overwrites_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_rejects_bad_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_marker_then_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_installed_snapshot_voids_later_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marker_beyond_entries_needs_that_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_garbage_and_bad_crc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte_in_earlier_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption_in_older_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_header_of_last_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_tail_is_a_clean_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_middle_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_to, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_then_replay_from_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_observer_and_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bench, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
