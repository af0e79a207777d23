/*
 * test_restore.c: offline restore of a snapshot file (server/node/restore.h) and the
 * restore-from key of the bootstrap entry (common/bootstrap.h).
 *
 * Snapshot files are made here as the server makes them: a store written through mvcc (keys,
 * a lease with an attached key, a consistent index), copied with mvcc_snapshot_fd, followed by
 * the SHA-256 of the copy. Checked: the restored layout opens as a restarted member would open
 * it (snapshot at I = old index + 1 with the new voters, WAL at I, members.json, the store at
 * index I with every key, revision and lease); IDs (member IDs as a new cluster's, one cluster
 * ID for all members of one restore, derived as documented, different for another file);
 * refusals with their messages and nothing created or changed (bad flags, non-empty or
 * non-directory targets, missing, truncated, altered and hashless files); an existing empty
 * directory and crash leftovers; a separate WAL directory; a failure while building (a store
 * LMDB cannot open) removes what it created, parents included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootstrap.h"
#include "err.h"
#include "mvccfx.h"
#include "node/members.h"
#include "node/restore.h"
#include "snap/snap.h"
#include "testfile.h"
#include "tmpdir.h"
#include "wal/wal.h"

#define IC3 "n1=http://127.0.0.1:12381,n2=http://127.0.0.1:12382,n3=http://127.0.0.1:12383"
#define TOKEN "restored-token"
#define SRC_CI 41
#define NKEYS 50

struct fx {
    char root[64];
    char snap[128];     /* a snapshot file with the hash */
    char data[128];     /* a data dir that does not exist yet */
    uint8_t db_sha[32]; /* SHA-256 of the snapshot's database bytes */
    int64_t src_rev;
};

/* ---- helpers ------------------------------------------------------------------------------- */

/* A store in dir with nkeys keys, lease 7 (TTL 60) holding key "leased", consistent index
 * SRC_CI; copied into path followed by its SHA-256 (when with_hash). Returns the revision. */
static int64_t make_snapshot(const char *dir, const char *path, int nkeys, bool with_hash,
                             uint8_t sha[32])
{
    mvcc_lease l = {.id = 7, .ttl = 60, .renewed_index = 3};
    char k[32], v[32];
    int64_t rev;
    mvcc *m = mvccfx_open(dir, false);

    assert_int_equal(mvcc_begin(m), 0);
    assert_int_equal(mvcc_lease_put(m, &l), 0);
    mvccfx_put(m, "leased", "x", 7);
    for (int i = 0; i < nkeys; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(v, sizeof(v), "value-%d", i);
        mvccfx_put(m, k, v, 0);
    }
    assert_int_equal(mvcc_commit(m, SRC_CI, 5), 0);
    rev = mvcc_rev(m);
    mvccfx_snapshot_file(m, path, with_hash, sha);
    mvcc_close(m);
    return rev;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char src[128];

    snprintf(f->root, sizeof(f->root), "/tmp/test_restore.XXXXXX");
    if (!f || !mkdtemp(f->root))
        return -1;
    snprintf(f->snap, sizeof(f->snap), "%s/snap.db", f->root);
    snprintf(f->data, sizeof(f->data), "%s/data", f->root);
    snprintf(src, sizeof(src), "%s/src", f->root);
    f->src_rev = make_snapshot(src, f->snap, NKEYS, true, f->db_sha);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tmpdir_remove(f->root);
    free(f);
    return 0;
}

static const char *const ADV2[] = {"http://127.0.0.1:12382"};

/* Options restoring f->snap as member name (nK's URL) of IC3 into data. */
static struct node_restore_opts opts(const struct fx *f, const char *name, const char *data,
                                     const char *const *adv, struct node_restore_result *r)
{
    struct node_restore_opts o = {0};

    o.snapshot_path = f->snap;
    o.name = name;
    o.data_dir = data;
    o.initial_cluster = IC3;
    o.initial_cluster_token = TOKEN;
    o.advertise_peer_urls = adv;
    o.nadvertise_peer = adv ? 1 : 0;
    o.result = r;
    return o;
}

static bool exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* Names in dir, sorted and joined with ' ' into out (dot files included, . and .. not). */
static void listing(const char *dir, char *out, size_t cap)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    size_t len = 0;

    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, ".."))
            len += (size_t)snprintf(out + len, cap - len, "%s ", ents[i]->d_name);
        free(ents[i]);
    }
    if (n >= 0)
        free(ents);
}

static void restore_ok(const struct node_restore_opts *o)
{
    char err[512];
    int rc = node_restore(o, err, sizeof(err));

    if (rc)
        print_error("node_restore: %d %s\n", rc, err);
    assert_int_equal(rc, 0);
}

/* node_restore refused with rc and a message containing want. */
static void refused(const struct node_restore_opts *o, int rc, const char *want)
{
    char err[512];

    assert_int_equal(node_restore(o, err, sizeof(err)), rc);
    if (!strstr(err, want))
        print_error("message \"%s\" lacks \"%s\"\n", err, want);
    assert_non_null(strstr(err, want));
}

/* ---- the restored layout ------------------------------------------------------------------ */

static void check_members_file(const char *data, const struct node_restore_result *r)
{
    char path[256], *json;
    node_member *ms = NULL, *want = NULL;
    size_t n = 0, nwant = 0, len;
    uint64_t cid = 0;
    char err[128];

    snprintf(path, sizeof(path), "%s/member/members.json", data);
    json = (char *)testfile_read(path, &len);
    json[len] = 0;
    assert_int_equal(members_from_json(json, &ms, &n, &cid), 0);
    assert_int_equal(members_parse_initial(IC3, TOKEN, &want, &nwant, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_true(cid == r->cluster_id);
    for (size_t i = 0; i < n; i++) {
        assert_true(ms[i].id == want[i].id);
        assert_string_equal(ms[i].name, want[i].name);
        assert_string_equal(ms[i].peer_urls[0], want[i].peer_urls[0]);
        assert_false(ms[i].is_learner);
        if (!strcmp(ms[i].name, "n2"))
            assert_true(ms[i].id == r->member_id);
    }
    free(ms);
    free(want);
    free(json);
}

static void check_snap_and_wal(const char *data, const char *wal_dir,
                               const struct node_restore_result *r)
{
    char dir[256], meta[128];
    snap_meta sm = {0};
    wal_replay rp;
    wal *w;

    snprintf(dir, sizeof(dir), "%s/member/snap", data);
    assert_int_equal(snap_load_newest(dir, &sm), 0);
    assert_true(sm.index == SRC_CI + 1 && sm.index == r->index);
    assert_true(sm.term == 1);
    assert_int_equal(sm.nvoters, 3);
    assert_int_equal(sm.nlearners, 0);
    snap_meta_free(&sm);
    assert_int_equal(wal_open(wal_dir, r->index, &w, &rp), 0);
    snprintf(meta, sizeof(meta), "member_id=%016" PRIx64 " cluster_id=%016" PRIx64, r->member_id,
             r->cluster_id);
    assert_string_equal(rp.metadata, meta);
    assert_true(rp.has_hs && rp.hs.term == 1 && rp.hs.vote == 0 && rp.hs.commit == r->index);
    assert_true(rp.has_snap && rp.snap.index == r->index && rp.snap.term == 1);
    assert_int_equal(rp.nents, 0);
    wal_replay_free(&rp);
    wal_close(w);
}

static int count_lease(void *arg, const mvcc_lease *l)
{
    int *n = arg;

    if (l->id == 7 && l->ttl == 60)
        (*n)++;
    return 0;
}

static void check_store(const struct fx *f, const char *data, const struct node_restore_result *r)
{
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeResponse *resp = NULL;
    char dir[256];
    mvcc_options mo = {.dir = dir, .no_sync = true};
    int leases = 0;
    mvcc *m;

    snprintf(dir, sizeof(dir), "%s/member/db", data);
    assert_int_equal(mvcc_open(&mo, &m), 0);
    assert_true(mvcc_consistent_index(m) == r->index);
    assert_true(mvcc_consistent_term(m) == 1);
    assert_int_equal(mvcc_rev(m), f->src_rev);
    assert_int_equal(r->revision, f->src_rev);
    q.key = (ProtobufCBinaryData){1, (uint8_t *)"\0"};
    q.range_end = (ProtobufCBinaryData){1, (uint8_t *)"\0"};
    assert_int_equal(mvcc_range(m, &q, &resp), 0);
    assert_int_equal(resp->count, NKEYS + 1);
    assert_int_equal(resp->kvs[0]->key.len, 4);
    assert_memory_equal(resp->kvs[0]->key.data, "k000", 4);
    assert_int_equal(resp->kvs[0]->value.len, strlen("value-0"));
    assert_memory_equal(resp->kvs[0]->value.data, "value-0", strlen("value-0"));
    assert_int_equal(resp->kvs[NKEYS]->lease, 7);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_int_equal(mvcc_lease_list(m, count_lease, &leases), 0);
    assert_int_equal(leases, 1);
    mvcc_close(m);
}

static void test_layout(void **state)
{
    struct fx *f = *state;
    struct node_restore_result r;
    struct node_restore_opts o = opts(f, "n2", f->data, ADV2, &r);
    char wal_dir[256], list[256];

    restore_ok(&o);
    assert_int_equal(r.nmembers, 3);
    check_members_file(f->data, &r);
    snprintf(wal_dir, sizeof(wal_dir), "%s/member/wal", f->data);
    check_snap_and_wal(f->data, wal_dir, &r);
    check_store(f, f->data, &r);
    listing(f->data, list, sizeof(list));
    assert_string_equal(list, "member ");
}

/* ---- IDs ---------------------------------------------------------------------------------- */

/* The documented derivation: SHA-256(BE64(new-cluster ID) || SHA-256(db)), first 8 bytes. */
static uint64_t expected_cluster_id(const uint8_t db_sha[32])
{
    node_member *ms = NULL;
    size_t n = 0;
    uint8_t in[40], md[32];
    uint64_t base, cid = 0;
    char err[128];

    assert_int_equal(members_parse_initial(IC3, TOKEN, &ms, &n, err, sizeof(err)), 0);
    base = members_cluster_id(ms, n);
    free(ms);
    for (int i = 0; i < 8; i++)
        in[i] = (uint8_t)(base >> (56 - 8 * i));
    memcpy(in + 8, db_sha, 32);
    testfile_sha256(in, sizeof(in), md);
    for (int i = 0; i < 8; i++)
        cid = (cid << 8) | md[i];
    assert_true(cid != base);
    return cid;
}

static void test_ids(void **state)
{
    struct fx *f = *state;
    static const char *const names[3] = {"n1", "n2", "n3"};
    static const char *const urls[3] = {"http://127.0.0.1:12381", "http://127.0.0.1:12382",
                                        "http://127.0.0.1:12383"};
    struct node_restore_result r[3], other;
    char data[3][192], src2[192], snap2[192], data2[192];
    uint8_t sha2[32];

    for (int i = 0; i < 3; i++) {
        const char *adv[1] = {urls[i]};
        struct node_restore_opts o = opts(f, names[i], data[i], adv, &r[i]);
        snprintf(data[i], sizeof(data[i]), "%s/d-%s", f->root, names[i]);
        restore_ok(&o);
    }
    assert_true(r[0].cluster_id == r[1].cluster_id && r[1].cluster_id == r[2].cluster_id);
    assert_true(r[0].cluster_id == expected_cluster_id(f->db_sha));
    assert_true(r[0].member_id != r[1].member_id && r[1].member_id != r[2].member_id &&
                r[0].member_id != r[2].member_id);
    assert_true(r[0].index == r[1].index && r[1].index == r[2].index);

    /* another file (one key more), same flags: another cluster ID, same member IDs */
    snprintf(src2, sizeof(src2), "%s/src2", f->root);
    snprintf(snap2, sizeof(snap2), "%s/snap2.db", f->root);
    snprintf(data2, sizeof(data2), "%s/d2", f->root);
    make_snapshot(src2, snap2, NKEYS + 1, true, sha2);
    {
        struct node_restore_opts o = opts(f, "n2", data2, ADV2, &other);
        o.snapshot_path = snap2;
        restore_ok(&o);
    }
    assert_true(other.cluster_id != r[1].cluster_id);
    assert_true(other.cluster_id == expected_cluster_id(sha2));
    assert_true(other.member_id == r[1].member_id);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void test_bad_flags(void **state)
{
    struct fx *f = *state;
    static const char *const wrong[] = {"http://127.0.0.1:9999"};
    struct node_restore_opts o = opts(f, "zz", f->data, ADV2, NULL);

    refused(&o, CE_INVAL, "couldn't find local name \"zz\" in the initial cluster configuration");
    o = opts(f, "n2", f->data, wrong, NULL);
    refused(&o, CE_INVAL, "--initial-cluster has n2=http://127.0.0.1:12382 but missing from "
            "--initial-advertise-peer-urls=http://127.0.0.1:9999 (resolved urls: "
            "\"http://127.0.0.1:9999\" != \"http://127.0.0.1:12382\")");
    o = opts(f, "n2", f->data, ADV2, NULL);
    o.initial_cluster = "n1=http://127.0.0.1:12382,n2=http://127.0.0.1:12382";
    refused(&o, CE_INVAL, "duplicate peer URL http://127.0.0.1:12382");
    o.initial_cluster = "n2";
    refused(&o, CE_INVAL, "invalid --initial-cluster entry \"n2\"");
    assert_false(exists(f->data));
}

static void test_targets_not_empty(void **state)
{
    struct fx *f = *state;
    struct node_restore_opts o = opts(f, "n2", f->data, ADV2, NULL);
    char path[256], before[256], after[256], wal[192], msg[320];

    /* a data dir holding a file */
    assert_int_equal(mkdir(f->data, 0700), 0);
    snprintf(path, sizeof(path), "%s/keep.txt", f->data);
    testfile_write(path, "keep", 4);
    listing(f->data, before, sizeof(before));
    snprintf(msg, sizeof(msg), "data-dir \"%s\" exists and is not empty", f->data);
    refused(&o, CE_EXISTS, msg);
    listing(f->data, after, sizeof(after));
    assert_string_equal(before, after);
    assert_string_equal(after, "keep.txt ");

    /* a data dir that is a file */
    o.data_dir = path;
    snprintf(msg, sizeof(msg), "data-dir \"%s\" exists and is not a directory", path);
    refused(&o, CE_EXISTS, msg);

    /* a separate WAL dir holding a file: the (absent) data dir is not created */
    snprintf(wal, sizeof(wal), "%s/nd", f->root);
    o.data_dir = wal;
    o.wal_dir = f->data;
    snprintf(msg, sizeof(msg), "wal-dir \"%s\" exists and is not empty", f->data);
    refused(&o, CE_EXISTS, msg);
    assert_false(exists(wal));
}

/* A copy of f->snap with len bytes, one byte at flip_at XORed (if flip_at >= 0). */
static void damaged_copy(const struct fx *f, const char *path, size_t len, long flip_at)
{
    size_t n;
    uint8_t *b = testfile_read(f->snap, &n);

    assert_true(len <= n);
    if (flip_at >= 0)
        b[flip_at] ^= 0x40;
    testfile_write(path, b, len);
    free(b);
}

static void test_bad_files(void **state)
{
    struct fx *f = *state;
    struct node_restore_opts o = opts(f, "n2", f->data, ADV2, NULL);
    char path[192];
    size_t n;

    free(testfile_read(f->snap, &n));
    snprintf(path, sizeof(path), "%s/bad.db", f->root);
    o.snapshot_path = path;

    damaged_copy(f, path, n - 100, -1);
    refused(&o, CE_CORRUPT, "snapshot file is truncated");
    damaged_copy(f, path, n, (long)n / 2);
    refused(&o, CE_CORRUPT, "sha256 checksum mismatch");
    damaged_copy(f, path, n - 32, -1); /* the database alone: only with skip_hash_check */
    refused(&o, CE_CORRUPT, "without the trailing sha256");
    testfile_write(path, "hello, not a snapshot\n", 22);
    refused(&o, CE_CORRUPT, "not a snapshot file");
    unlink(path);
    refused(&o, CE_NOTFOUND, "cannot open snapshot file");
    assert_false(exists(f->data));

    damaged_copy(f, path, n - 32, -1);
    o.skip_hash_check = true;
    restore_ok(&o);
    assert_true(exists(f->data));
}

/* ---- directories ------------------------------------------------------------------------ */

static void test_empty_dir_and_leftovers(void **state)
{
    struct fx *f = *state;
    struct node_restore_result r;
    struct node_restore_opts o = opts(f, "n2", f->data, ADV2, &r);
    char left[192], junk[256], list[256];

    assert_int_equal(mkdir(f->data, 0700), 0);
    snprintf(left, sizeof(left), "%s/.cetcd-restore.AbC123", f->data);
    assert_int_equal(mkdir(left, 0700), 0);
    snprintf(junk, sizeof(junk), "%s/half-copied", left);
    testfile_write(junk, "x", 1);
    restore_ok(&o);
    listing(f->data, list, sizeof(list));
    assert_string_equal(list, "member ");
    check_store(f, f->data, &r);
}

static void test_separate_wal_dir(void **state)
{
    struct fx *f = *state;
    struct node_restore_result r;
    struct node_restore_opts o = opts(f, "n2", f->data, ADV2, &r);
    char wal[192], list[256], inner[256];

    snprintf(wal, sizeof(wal), "%s/wal/deep", f->root);
    o.wal_dir = wal;
    restore_ok(&o);
    check_snap_and_wal(f->data, wal, &r);
    listing(wal, list, sizeof(list));
    assert_string_equal(list, "0000000000000000-0000000000000000.wal ");
    snprintf(inner, sizeof(inner), "%s/member/wal", f->data);
    assert_false(exists(inner));

    /* a --wal-dir inside the member directory is built there, in the same rename */
    snprintf(inner, sizeof(inner), "%s/d3", f->root);
    snprintf(wal, sizeof(wal), "%s/d3/member/mywal", f->root);
    o.data_dir = inner;
    o.wal_dir = wal;
    restore_ok(&o);
    assert_true(wal_exists(wal));
    check_snap_and_wal(inner, wal, &r);

    /* --wal-dir equal to --data-dir (an existing empty one): the segment beside member/ */
    snprintf(inner, sizeof(inner), "%s/d4", f->root);
    assert_int_equal(mkdir(inner, 0700), 0);
    o.data_dir = inner;
    o.wal_dir = inner;
    restore_ok(&o);
    listing(inner, list, sizeof(list));
    assert_string_equal(list, "0000000000000000-0000000000000000.wal member ");
    check_snap_and_wal(inner, inner, &r);
}

/* A hashless file whose meta pages are fine but whose other pages are zero: verification
 * passes (skip_hash_check), LMDB cannot open the store, and everything made is removed. */
static void test_failure_while_building(void **state)
{
    struct fx *f = *state;
    struct node_restore_opts o = opts(f, "n2", NULL, ADV2, NULL);
    char path[192], data[192], wal[192], top[192];
    size_t n;
    uint8_t *b = testfile_read(f->snap, &n);

    n -= 32;
    memset(b + 2 * 4096, 0, n - 2 * 4096);
    snprintf(path, sizeof(path), "%s/zeroed.db", f->root);
    testfile_write(path, b, n);
    free(b);
    snprintf(top, sizeof(top), "%s/a", f->root);
    snprintf(data, sizeof(data), "%s/a/b/data", f->root);
    snprintf(wal, sizeof(wal), "%s/w/x", f->root);
    o.snapshot_path = path;
    o.skip_hash_check = true;
    o.data_dir = data;
    o.wal_dir = wal;
    refused(&o, CE_CORRUPT, "the store in it cannot be opened");
    assert_false(exists(top));
    snprintf(top, sizeof(top), "%s/w", f->root);
    assert_false(exists(top));
}

/* ---- the bootstrap entry's restore-from ----------------------------------------------------- */

static void test_bootstrap_restore_from(void **state)
{
    struct bootstrap_entry e = {0}, back;
    char err[256], *text;
    static const char ok[] = "initial-cluster-state=new\ninitial-cluster=" IC3 "\n"
                             "restore-from=/restore/c-20260101T000000Z-r5.db\n";

    (void)state;
    assert_int_equal(bootstrap_entry_parse(ok, strlen(ok), &e, err, sizeof(err)), 0);
    assert_string_equal(e.restore_from, "/restore/c-20260101T000000Z-r5.db");
    assert_int_equal(bootstrap_entry_format(&e, &text), 0);
    assert_string_equal(text, "initial-cluster-state=new\ninitial-cluster=" IC3 "\n"
                              "joined=false\nrestore-from=/restore/c-20260101T000000Z-r5.db\n");
    assert_int_equal(bootstrap_entry_parse(text, strlen(text), &back, err, sizeof(err)), 0);
    assert_string_equal(back.restore_from, e.restore_from);
    free(text);
    bootstrap_entry_clear(&back);

    /* only with state new, in parse and in format */
    e.state_new = false;
    assert_int_equal(bootstrap_entry_format(&e, &text), CE_INVAL);
    bootstrap_entry_clear(&e);
    static const char existing[] = "restore-from=/r/x.db\ninitial-cluster-state=existing\n"
                                   "initial-cluster=" IC3 "\n";
    assert_int_equal(bootstrap_entry_parse(existing, strlen(existing), &e, err, sizeof(err)),
                     CE_INVAL);
    assert_string_equal(err, "line 1: restore-from needs initial-cluster-state=new (a member "
                             "that joins an existing cluster gets its data from the leader)");
    assert_null(e.restore_from);

    static const char relative[] = "initial-cluster-state=new\ninitial-cluster=" IC3 "\n"
                                   "restore-from=backup/x.db\n";
    assert_int_equal(bootstrap_entry_parse(relative, strlen(relative), &e, err, sizeof(err)),
                     CE_INVAL);
    assert_non_null(strstr(err, "line 3: invalid restore-from \"backup/x.db\": want an absolute"));
    static const char twice[] = "initial-cluster-state=new\ninitial-cluster=" IC3 "\n"
                                "restore-from=/a\nrestore-from=/b\n";
    assert_int_equal(bootstrap_entry_parse(twice, strlen(twice), &e, err, sizeof(err)), CE_INVAL);
    assert_string_equal(err, "line 4: restore-from given twice");
    static const char ctl[] = "initial-cluster-state=new\ninitial-cluster=" IC3 "\n"
                              "restore-from=/a\x01x\n";
    assert_int_equal(bootstrap_entry_parse(ctl, strlen(ctl), &e, err, sizeof(err)), CE_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_targets_not_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_dir_and_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_separate_wal_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_while_building, setup, teardown),
        cmocka_unit_test(test_bootstrap_restore_from),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
