/*
 * test_mvcc.c: unit tests of server/mvcc against etcd 3.4's observable behaviour: revision
 * numbering, history, tombstones, Range options, Put/DeleteRange options, Txn compares and
 * ops, request validation, compaction, persistence, consistent index, events, HashKV, quota.
 * Each test gets its own store in a fresh mkdtemp directory, removed afterwards.
 * The randomized test prints its seed; replay with MVCC_SEED=<seed>.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "server/mvcc/mvcc.h"
#include "server/mvcc/mvcc_int.h"
#include "tmpdir.h"

/* ---- fixture ---- */

typedef struct fx {
    char dir[64];
    mvcc *m;
    uint64_t ci;
} fx;

static mvcc *open_at(const char *dir, uint64_t quota)
{
    mvcc_options o = {.dir = dir, .quota_bytes = quota, .max_txn_ops = 0, .no_sync = true};
    mvcc *m = NULL;

    assert_int_equal(mvcc_open(&o, &m), 0);
    return m;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/test_mvcc.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->m = open_at(f->dir, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;

    mvcc_close(f->m);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ---- request helpers ---- */

static ProtobufCBinaryData B(const char *s)
{
    return (ProtobufCBinaryData){s ? strlen(s) : 0, (uint8_t *)s};
}

static const char ZERO[] = "";     /* with B0: the one-byte "\0" */
static ProtobufCBinaryData B0(void)
{
    return (ProtobufCBinaryData){1, (uint8_t *)ZERO};
}

static void begin(fx *f)
{
    assert_int_equal(mvcc_begin(f->m), 0);
}

static void commit(fx *f)
{
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
}

/* Put in its own batch; returns the response's header revision. */
static int64_t put_lease(fx *f, const char *k, const char *v, int64_t lease)
{
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__PutResponse *resp = NULL;
    int64_t rev;

    r.key = B(k);
    r.value = B(v);
    r.lease = lease;
    begin(f);
    assert_int_equal(mvcc_put(f->m, &r, &resp), 0);
    commit(f);
    rev = resp->header->revision;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return rev;
}

static int64_t put(fx *f, const char *k, const char *v)
{
    return put_lease(f, k, v, 0);
}

/* DeleteRange in its own batch; returns deleted count, *rev the header revision. */
static int64_t del(fx *f, const char *k, const char *end, int64_t *rev)
{
    Etcdserverpb__DeleteRangeRequest r = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    Etcdserverpb__DeleteRangeResponse *resp = NULL;
    int64_t n;

    r.key = B(k);
    r.range_end = B(end);
    begin(f);
    assert_int_equal(mvcc_delete(f->m, &r, &resp), 0);
    commit(f);
    n = resp->deleted;
    if (rev)
        *rev = resp->header->revision;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return n;
}

static Etcdserverpb__RangeRequest rreq(const char *k, const char *end)
{
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;

    r.key = B(k);
    r.range_end = B(end);
    return r;
}

static Etcdserverpb__RangeResponse *range_ok(fx *f, const Etcdserverpb__RangeRequest *r)
{
    Etcdserverpb__RangeResponse *resp = NULL;

    assert_int_equal(mvcc_range(f->m, r, &resp), 0);
    assert_non_null(resp);
    return resp;
}

static void rfree(Etcdserverpb__RangeResponse *r)
{
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static bool kv_is(const Mvccpb__KeyValue *kv, const char *k, const char *v)
{
    return kv->key.len == strlen(k) && memcmp(kv->key.data, k, kv->key.len) == 0 &&
           (!v || (kv->value.len == strlen(v) && memcmp(kv->value.data, v, kv->value.len) == 0));
}

/* Value of key at revision rev (0 = current) into buf, or NULL if absent. */
static const char *get_at(fx *f, const char *k, int64_t rev, char *buf, Mvccpb__KeyValue *meta)
{
    Etcdserverpb__RangeRequest r = rreq(k, NULL);
    Etcdserverpb__RangeResponse *resp;
    const char *out = NULL;

    r.revision = rev;
    resp = range_ok(f, &r);
    assert_true(resp->n_kvs <= 1);
    if (resp->n_kvs) {
        memcpy(buf, resp->kvs[0]->value.data, resp->kvs[0]->value.len);
        buf[resp->kvs[0]->value.len] = 0;
        if (meta) {
            *meta = *resp->kvs[0];
            meta->key = (ProtobufCBinaryData){0, NULL};
            meta->value = (ProtobufCBinaryData){0, NULL};
        }
        out = buf;
    }
    rfree(resp);
    return out;
}

/* Joined keys of a range response, "a,b,c". */
static const char *keys_of(const Etcdserverpb__RangeResponse *r, char *buf)
{
    size_t o = 0;

    buf[0] = 0;
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (i)
            buf[o++] = ',';
        memcpy(buf + o, r->kvs[i]->key.data, r->kvs[i]->key.len);
        o += r->kvs[i]->key.len;
        buf[o] = 0;
    }
    return buf;
}

/* Txn op builders: storage is static per test call site via compound literals. */
static Etcdserverpb__RequestOp op_put(Etcdserverpb__PutRequest *p)
{
    Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;

    o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    o.request_put = p;
    return o;
}

static Etcdserverpb__RequestOp op_del(Etcdserverpb__DeleteRangeRequest *d)
{
    Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;

    o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    o.request_delete_range = d;
    return o;
}

static Etcdserverpb__RequestOp op_range(Etcdserverpb__RangeRequest *r)
{
    Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;

    o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    o.request_range = r;
    return o;
}

static Etcdserverpb__RequestOp op_txn(Etcdserverpb__TxnRequest *t)
{
    Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;

    o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    o.request_txn = t;
    return o;
}

static Etcdserverpb__PutRequest preq(const char *k, const char *v)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;

    p.key = B(k);
    p.value = B(v);
    return p;
}

static Etcdserverpb__DeleteRangeRequest dreq(const char *k, const char *end)
{
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;

    d.key = B(k);
    d.range_end = B(end);
    return d;
}

static Etcdserverpb__Compare cmp_int(const char *k, int target, int result, int64_t v)
{
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;

    c.key = B(k);
    c.target = target;
    c.result = result;
    switch (target) {
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        c.version = v;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        c.create_revision = v;
        break;
    case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        c.mod_revision = v;
        break;
    default:
        c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
        c.lease = v;
        break;
    }
    return c;
}

static Etcdserverpb__Compare cmp_val(const char *k, int result, const char *v)
{
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;

    c.key = B(k);
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    c.result = result;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value = B(v);
    return c;
}

/* Runs a txn in its own batch; returns the CE code, *out the response (caller frees). */
static int txn(fx *f, Etcdserverpb__TxnRequest *t, Etcdserverpb__TxnResponse **out)
{
    int rc;

    begin(f);
    *out = NULL;
    rc = mvcc_txn(f->m, t, out);
    commit(f);
    return rc;
}

/* Evaluates a single compare: does the txn take its success branch? */
static bool compare_holds(fx *f, Etcdserverpb__Compare c)
{
    Etcdserverpb__Compare *cs[1] = {&c};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__TxnResponse *resp;
    bool ok;

    t.n_compare = 1;
    t.compare = cs;
    assert_int_equal(txn(f, &t, &resp), 0);
    ok = resp->succeeded;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return ok;
}

#define VERSION_ ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION
#define CREATE_ ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE
#define MOD_ ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD
#define LEASE_ ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE
#define EQ_ ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL
#define NE_ ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL
#define GT_ ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER
#define LT_ ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS

typedef struct evlog {
    char text[1024];
    int n;
} evlog;

static void sink(void *arg, const Mvccpb__Event *ev)
{
    evlog *l = arg;
    size_t o = strlen(l->text);

    snprintf(l->text + o, sizeof(l->text) - o, "%s%s %.*s@%lld v%lld prev=%.*s;",
             l->n++ ? " " : "", ev->type == MVCCPB__EVENT__EVENT_TYPE__PUT ? "PUT" : "DEL",
             (int)ev->kv->key.len, (const char *)ev->kv->key.data,
             (long long)ev->kv->mod_revision, (long long)ev->kv->version,
             ev->prev_kv ? (int)ev->prev_kv->value.len : 1,
             ev->prev_kv ? (const char *)ev->prev_kv->value.data : "-");
}

/* ---- tests: revisions ---- */

static void test_empty_store(void **state)
{
    fx *f = *state;
    Etcdserverpb__RangeRequest r = rreq("a", NULL);
    Etcdserverpb__RangeResponse *resp;

    assert_int_equal(mvcc_rev(f->m), 1);
    assert_int_equal(mvcc_compact_rev(f->m), 0);
    assert_int_equal(mvcc_consistent_index(f->m), 0);
    resp = range_ok(f, &r);
    assert_int_equal(resp->header->revision, 1);
    assert_int_equal(resp->count, 0);
    assert_int_equal(resp->n_kvs, 0);
    rfree(resp);
}

static void test_revision_numbering(void **state)
{
    fx *f = *state;
    Mvccpb__KeyValue kv;
    char buf[64];
    int64_t rev;

    assert_int_equal(put(f, "a", "1"), 2);
    assert_int_equal(put(f, "b", "1"), 3);
    assert_int_equal(put(f, "a", "2"), 4);
    assert_string_equal(get_at(f, "a", 0, buf, &kv), "2");
    assert_int_equal(kv.create_revision, 2);
    assert_int_equal(kv.mod_revision, 4);
    assert_int_equal(kv.version, 2);
    /* a delete of nothing does not bump the revision and answers the current one */
    assert_int_equal(del(f, "zz", NULL, &rev), 0);
    assert_int_equal(rev, 4);
    assert_int_equal(mvcc_rev(f->m), 4);
    assert_int_equal(del(f, "a", NULL, &rev), 1);
    assert_int_equal(rev, 5);
    assert_null(get_at(f, "a", 0, buf, NULL));
    /* re-creation starts a new generation */
    assert_int_equal(put(f, "a", "3"), 6);
    assert_string_equal(get_at(f, "a", 0, buf, &kv), "3");
    assert_int_equal(kv.create_revision, 6);
    assert_int_equal(kv.version, 1);
    /* several requests in one batch: one revision each */
    {
        Etcdserverpb__PutRequest p1 = preq("c", "1"), p2 = preq("c", "2");
        Etcdserverpb__PutResponse *r1, *r2;
        begin(f);
        assert_int_equal(mvcc_put(f->m, &p1, &r1), 0);
        assert_int_equal(mvcc_put(f->m, &p2, &r2), 0);
        assert_int_equal(mvcc_rev(f->m), 6);      /* not visible before commit */
        commit(f);
        assert_int_equal(r1->header->revision, 7);
        assert_int_equal(r2->header->revision, 8);
        protobuf_c_message_free_unpacked(&r1->base, NULL);
        protobuf_c_message_free_unpacked(&r2->base, NULL);
    }
    assert_int_equal(mvcc_rev(f->m), 8);
    assert_string_equal(get_at(f, "c", 0, buf, &kv), "2");
    assert_int_equal(kv.version, 2);
    assert_int_equal(kv.create_revision, 7);
}

static void test_delete_range_revision(void **state)
{
    fx *f = *state;
    Etcdserverpb__DeleteRangeRequest d = dreq("k", "l");
    Etcdserverpb__DeleteRangeResponse *resp;
    Etcdserverpb__RangeRequest r = rreq("k", "l");
    Etcdserverpb__RangeResponse *rr;

    put(f, "k1", "a");
    put(f, "k2", "b");
    put(f, "k3", "c");
    put(f, "l", "x");
    d.prev_kv = true;
    begin(f);
    assert_int_equal(mvcc_delete(f->m, &d, &resp), 0);
    commit(f);
    assert_int_equal(resp->deleted, 3);
    assert_int_equal(resp->header->revision, 6);    /* one revision for three deletes */
    assert_int_equal(resp->n_prev_kvs, 3);
    assert_true(kv_is(resp->prev_kvs[0], "k1", "a"));
    assert_true(kv_is(resp->prev_kvs[2], "k3", "c"));
    assert_int_equal(resp->prev_kvs[1]->mod_revision, 3);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    rr = range_ok(f, &r);
    assert_int_equal(rr->count, 0);
    rfree(rr);
    /* history still readable */
    r.revision = 5;
    rr = range_ok(f, &r);
    assert_int_equal(rr->count, 3);
    assert_int_equal(rr->header->revision, 6);
    rfree(rr);
}

static void test_history_and_tombstones(void **state)
{
    fx *f = *state;
    char buf[64];
    Mvccpb__KeyValue kv;

    put(f, "a", "v1");          /* 2 */
    put(f, "a", "v2");          /* 3 */
    del(f, "a", NULL, NULL);    /* 4 */
    put(f, "b", "x");           /* 5 */
    put(f, "a", "v3");          /* 6 */
    assert_null(get_at(f, "a", 1, buf, NULL));
    assert_string_equal(get_at(f, "a", 2, buf, &kv), "v1");
    assert_int_equal(kv.version, 1);
    assert_string_equal(get_at(f, "a", 3, buf, &kv), "v2");
    assert_int_equal(kv.version, 2);
    assert_int_equal(kv.create_revision, 2);
    assert_null(get_at(f, "a", 4, buf, NULL));
    assert_null(get_at(f, "a", 5, buf, NULL));
    assert_string_equal(get_at(f, "a", 6, buf, &kv), "v3");
    assert_int_equal(kv.create_revision, 6);
    assert_int_equal(kv.version, 1);
    {
        Etcdserverpb__RangeRequest r = rreq("a", NULL);
        Etcdserverpb__RangeResponse *resp = NULL;
        r.revision = 7;
        assert_int_equal(mvcc_range(f->m, &r, &resp), CE_FUTURE_REV);
        assert_null(resp);
    }
}

/* ---- tests: range ---- */

static void fill10(fx *f)
{
    char k[16], v[16];

    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "v%d", i);
        put(f, k, v);
    }
    put(f, "j", "before");
    put(f, "l", "after");
}

static void test_range_limit_count(void **state)
{
    fx *f = *state;
    Etcdserverpb__RangeRequest r = rreq("k", "l");
    Etcdserverpb__RangeResponse *resp;
    char buf[256];

    fill10(f);
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 10);
    assert_int_equal(resp->n_kvs, 10);
    assert_false(resp->more);
    assert_true(kv_is(resp->kvs[0], "k00", "v0"));
    rfree(resp);

    r.limit = 3;
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 10);
    assert_true(resp->more);
    assert_string_equal(keys_of(resp, buf), "k00,k01,k02");
    rfree(resp);

    r.limit = 10;
    resp = range_ok(f, &r);
    assert_false(resp->more);
    assert_int_equal(resp->n_kvs, 10);
    rfree(resp);

    r.limit = 0;
    r.count_only = true;
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 10);
    assert_int_equal(resp->n_kvs, 0);
    assert_false(resp->more);
    rfree(resp);
    r.limit = 2;
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 10);
    assert_false(resp->more);
    rfree(resp);

    r = rreq("k05", NULL);
    r.keys_only = true;
    resp = range_ok(f, &r);
    assert_int_equal(resp->n_kvs, 1);
    assert_int_equal(resp->kvs[0]->value.len, 0);
    assert_int_equal(resp->kvs[0]->version, 1);
    rfree(resp);

    r = rreq("k08", NULL);
    r.range_end = B0();         /* every key >= k08 */
    resp = range_ok(f, &r);
    assert_string_equal(keys_of(resp, buf), "k08,k09,l");
    rfree(resp);

    r.key = B0();               /* all keys */
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 12);
    rfree(resp);

    r = rreq("k", "k");         /* empty interval */
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 0);
    rfree(resp);
    r = rreq("k", NULL);        /* the key alone, not a prefix */
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 0);
    rfree(resp);

    r = rreq(NULL, NULL);
    assert_int_equal(mvcc_range(f->m, &r, &resp), CE_KEY_EMPTY);
}

/* Keys whose version / create / mod / value orders all differ, for the sort tests. */
static void fill_sort(fx *f)
{
    put(f, "a", "x");   /* 2 */
    put(f, "b", "a");   /* 3 */
    put(f, "c", "x");   /* 4 */
    put(f, "d", "x");   /* 5 */
    put(f, "c", "y");   /* 6 */
    put(f, "a", "c");   /* 7 */
    put(f, "c", "b");   /* 8 */
    put(f, "d", "d");   /* 9 */
    /* a: create 2 mod 7 ver 2 val c;  b: 3 3 1 a;  c: 4 8 3 b;  d: 5 9 2 d */
}

static const char *sorted(fx *f, int order, int target, int64_t limit, char *buf)
{
    Etcdserverpb__RangeRequest r = rreq("a", "z");
    Etcdserverpb__RangeResponse *resp;

    r.sort_order = order;
    r.sort_target = target;
    r.limit = limit;
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 4);
    assert_int_equal(resp->more, limit > 0 && limit < 4);
    keys_of(resp, buf);
    rfree(resp);
    return buf;
}

static void test_range_sort(void **state)
{
    fx *f = *state;
    char b[64];
    enum { NONE = 0, ASC = 1, DESC = 2 };
    enum { KEY = 0, VER = 1, CRE = 2, MODT = 3, VAL = 4 };

    fill_sort(f);
    assert_string_equal(sorted(f, NONE, KEY, 0, b), "a,b,c,d");
    assert_string_equal(sorted(f, ASC, KEY, 0, b), "a,b,c,d");
    assert_string_equal(sorted(f, DESC, KEY, 0, b), "d,c,b,a");
    assert_string_equal(sorted(f, DESC, KEY, 2, b), "d,c");
    /* ties (a and d both version 2) keep key order */
    assert_string_equal(sorted(f, ASC, VER, 0, b), "b,a,d,c");
    assert_string_equal(sorted(f, NONE, VER, 0, b), "b,a,d,c");
    assert_string_equal(sorted(f, DESC, VER, 0, b), "c,a,d,b");
    assert_string_equal(sorted(f, ASC, CRE, 0, b), "a,b,c,d");
    assert_string_equal(sorted(f, DESC, CRE, 0, b), "d,c,b,a");
    assert_string_equal(sorted(f, NONE, CRE, 0, b), "a,b,c,d");
    assert_string_equal(sorted(f, ASC, MODT, 0, b), "b,a,c,d");
    assert_string_equal(sorted(f, DESC, MODT, 0, b), "d,c,a,b");
    assert_string_equal(sorted(f, NONE, MODT, 0, b), "b,a,c,d");
    assert_string_equal(sorted(f, ASC, VAL, 0, b), "b,c,a,d");
    assert_string_equal(sorted(f, DESC, VAL, 0, b), "d,a,c,b");
    assert_string_equal(sorted(f, NONE, VAL, 0, b), "b,c,a,d");
    /* the limit applies after sorting */
    assert_string_equal(sorted(f, DESC, MODT, 1, b), "d");
    assert_string_equal(sorted(f, ASC, VAL, 2, b), "b,c");
}

static void test_range_filters(void **state)
{
    fx *f = *state;
    Etcdserverpb__RangeRequest r = rreq("a", "z");
    Etcdserverpb__RangeResponse *resp;
    char b[64];

    fill_sort(f);
    r.min_mod_revision = 7;
    resp = range_ok(f, &r);
    assert_string_equal(keys_of(resp, b), "a,c,d");
    assert_int_equal(resp->count, 4);   /* count is before the filters, as etcd */
    rfree(resp);
    r.max_mod_revision = 8;
    resp = range_ok(f, &r);
    assert_string_equal(keys_of(resp, b), "a,c");
    rfree(resp);
    r = rreq("a", "z");
    r.min_create_revision = 3;
    r.max_create_revision = 4;
    resp = range_ok(f, &r);
    assert_string_equal(keys_of(resp, b), "b,c");
    rfree(resp);
    /* limit after filters: more only if filtered results exceed it */
    r.limit = 1;
    resp = range_ok(f, &r);
    assert_string_equal(keys_of(resp, b), "b");
    assert_true(resp->more);
    rfree(resp);
    r.limit = 2;
    resp = range_ok(f, &r);
    assert_false(resp->more);
    rfree(resp);
    /* filters at a past revision use that revision's mod/create */
    r = rreq("a", "z");
    r.revision = 5;
    r.max_mod_revision = 3;
    resp = range_ok(f, &r);
    assert_string_equal(keys_of(resp, b), "a,b");
    assert_int_equal(resp->count, 4);
    rfree(resp);
}

/* ---- tests: put options ---- */

static bool lease_7_only(void *arg, int64_t lease)
{
    (void)arg;
    return lease == 7;
}

static void test_put_options(void **state)
{
    fx *f = *state;
    Etcdserverpb__PutRequest p = preq("a", "1");
    Etcdserverpb__PutResponse *resp = NULL;
    Mvccpb__KeyValue kv;
    char buf[64];

    put_lease(f, "a", "1", 7);  /* 2 */
    p.value = B("2");
    p.prev_kv = true;
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p, &resp), 0);
    commit(f);
    assert_non_null(resp->prev_kv);
    assert_true(kv_is(resp->prev_kv, "a", "1"));
    assert_int_equal(resp->prev_kv->lease, 7);
    assert_int_equal(resp->prev_kv->mod_revision, 2);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_string_equal(get_at(f, "a", 0, buf, &kv), "2");
    assert_int_equal(kv.lease, 0);      /* a put without lease detaches */

    /* prev_kv on a new key: none */
    p = preq("new", "x");
    p.prev_kv = true;
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p, &resp), 0);
    commit(f);
    assert_null(resp->prev_kv);
    protobuf_c_message_free_unpacked(&resp->base, NULL);

    /* ignore_value keeps the value, takes the new lease */
    put_lease(f, "a", "keep", 5);
    p = preq("a", NULL);
    p.ignore_value = true;
    p.lease = 7;
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p, &resp), 0);
    commit(f);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_string_equal(get_at(f, "a", 0, buf, &kv), "keep");
    assert_int_equal(kv.lease, 7);
    /* ignore_lease keeps the lease */
    p = preq("a", "newval");
    p.ignore_lease = true;
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p, &resp), 0);
    commit(f);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_string_equal(get_at(f, "a", 0, buf, &kv), "newval");
    assert_int_equal(kv.lease, 7);

    /* errors change nothing */
    int64_t rev = mvcc_rev(f->m);
    resp = NULL;
    begin(f);
    p = preq("a", "v");
    p.ignore_value = true;
    assert_int_equal(mvcc_put(f->m, &p, &resp), CE_VALUE_PROVIDED);
    p = preq("a", "v");
    p.ignore_lease = true;
    p.lease = 3;
    assert_int_equal(mvcc_put(f->m, &p, &resp), CE_LEASE_PROVIDED);
    p = preq("missing", NULL);
    p.ignore_value = true;
    assert_int_equal(mvcc_put(f->m, &p, &resp), CE_KEY_NOT_FOUND);
    p = preq(NULL, "v");
    assert_int_equal(mvcc_put(f->m, &p, &resp), CE_KEY_EMPTY);
    mvcc_set_lease_checker(f->m, lease_7_only, NULL);
    p = preq("a", "v");
    p.lease = 8;
    assert_int_equal(mvcc_put(f->m, &p, &resp), CE_LEASE_NOT_FOUND);
    commit(f);
    assert_null(resp);
    assert_int_equal(mvcc_rev(f->m), rev);
    assert_string_equal(ce_strerror(CE_KEY_NOT_FOUND), "etcdserver: key not found");
    assert_int_equal(ce_grpc_code(CE_KEY_NOT_FOUND), 3);
}

static void test_long_key(void **state)
{
    fx *f = *state;
    char *k = malloc(2000);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__PutResponse *resp = NULL;
    Etcdserverpb__RangeRequest r;
    Etcdserverpb__RangeResponse *rr;

    memset(k, 'x', 1999);
    k[1999] = 0;
    put(f, "xxxx", "short");
    put(f, "y", "after");
    p.key = B(k);
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p, &resp), CE_REQ_TOO_LARGE);
    commit(f);
    r = rreq(k, NULL);
    rr = range_ok(f, &r);
    assert_int_equal(rr->count, 0);
    rfree(rr);
    r = rreq(k, "z");           /* a range starting at a too-long key still works */
    rr = range_ok(f, &r);
    assert_int_equal(rr->count, 1);
    assert_true(kv_is(rr->kvs[0], "y", "after"));
    rfree(rr);
    free(k);
}

/* ---- tests: txn ---- */

static void test_txn_one_revision(void **state)
{
    fx *f = *state;
    Etcdserverpb__PutRequest p1 = preq("a", "1"), p2 = preq("b", "2"), p3 = preq("c", "3");
    Etcdserverpb__RequestOp o1 = op_put(&p1), o2 = op_put(&p2), o3 = op_put(&p3);
    Etcdserverpb__RequestOp *ops[] = {&o1, &o2, &o3};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__TxnResponse *resp;
    Mvccpb__KeyValue kv;
    char buf[16];

    t.n_success = 3;
    t.success = ops;
    assert_int_equal(txn(f, &t, &resp), 0);
    assert_true(resp->succeeded);
    assert_int_equal(resp->header->revision, 2);
    assert_int_equal(resp->n_responses, 3);
    assert_int_equal(resp->responses[2]->response_case,
                     ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT);
    assert_int_equal(resp->responses[2]->response_put->header->revision, 2);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_int_equal(mvcc_rev(f->m), 2);
    assert_string_equal(get_at(f, "c", 0, buf, &kv), "3");
    assert_int_equal(kv.mod_revision, 2);

    /* a txn that changes nothing does not bump */
    Etcdserverpb__RangeRequest rr = rreq("a", NULL);
    Etcdserverpb__DeleteRangeRequest dd = dreq("nothing", NULL);
    Etcdserverpb__RequestOp r1 = op_range(&rr), r2 = op_del(&dd);
    Etcdserverpb__RequestOp *ro[] = {&r1, &r2};
    t.success = ro;
    t.n_success = 2;
    assert_int_equal(txn(f, &t, &resp), 0);
    assert_int_equal(resp->header->revision, 2);
    assert_int_equal(resp->responses[0]->response_range->count, 1);
    assert_int_equal(resp->responses[1]->response_delete_range->deleted, 0);
    assert_int_equal(resp->responses[1]->response_delete_range->header->revision, 2);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_int_equal(mvcc_rev(f->m), 2);
}

static void test_txn_sees_own_writes(void **state)
{
    fx *f = *state;
    Etcdserverpb__RangeRequest r0 = rreq("a", "z"), r1 = rreq("a", "z"), r2 = rreq("b", NULL);
    Etcdserverpb__PutRequest p = preq("a", "new");
    Etcdserverpb__DeleteRangeRequest d = dreq("b", NULL);
    Etcdserverpb__RequestOp o0 = op_range(&r0), o1 = op_put(&p), o2 = op_del(&d),
                            o3 = op_range(&r1), o4 = op_range(&r2);
    Etcdserverpb__RequestOp *ops[] = {&o0, &o1, &o2, &o3, &o4};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__TxnResponse *resp;
    char b[64];

    put(f, "a", "old");     /* 2 */
    put(f, "b", "bee");     /* 3 */
    r2.revision = 3;        /* history inside a txn */
    d.prev_kv = true;
    t.success = ops;
    t.n_success = 5;
    assert_int_equal(txn(f, &t, &resp), 0);
    assert_int_equal(resp->header->revision, 4);
    assert_int_equal(resp->responses[0]->response_range->header->revision, 3);
    assert_string_equal(keys_of(resp->responses[0]->response_range, b), "a,b");
    assert_int_equal(resp->responses[1]->response_put->header->revision, 4);
    assert_int_equal(resp->responses[2]->response_delete_range->deleted, 1);
    assert_true(kv_is(resp->responses[2]->response_delete_range->prev_kvs[0], "b", "bee"));
    Etcdserverpb__RangeResponse *after = resp->responses[3]->response_range;
    assert_int_equal(after->header->revision, 4);
    assert_int_equal(after->count, 1);
    assert_true(kv_is(after->kvs[0], "a", "new"));
    assert_int_equal(after->kvs[0]->mod_revision, 4);
    assert_int_equal(after->kvs[0]->version, 2);
    assert_int_equal(resp->responses[4]->response_range->count, 1);
    protobuf_c_message_free_unpacked(&resp->base, NULL);

    /* a range at a future revision inside a txn refuses the whole txn */
    r2.revision = 99;
    assert_int_equal(txn(f, &t, &resp), CE_FUTURE_REV);
    assert_null(resp);
    assert_int_equal(mvcc_rev(f->m), 4);
}

static void test_txn_compare(void **state)
{
    fx *f = *state;

    put_lease(f, "a", "m", 9);  /* 2 */
    put(f, "a", "n");           /* 3 */
    put_lease(f, "a", "o", 9);  /* 4: create 2 mod 4 version 3 lease 9 */
    put(f, "b", "b");           /* 5 */
    assert_true(compare_holds(f, cmp_int("a", VERSION_, EQ_, 3)));
    assert_false(compare_holds(f, cmp_int("a", VERSION_, EQ_, 2)));
    assert_true(compare_holds(f, cmp_int("a", VERSION_, GT_, 2)));
    assert_true(compare_holds(f, cmp_int("a", VERSION_, LT_, 4)));
    assert_true(compare_holds(f, cmp_int("a", VERSION_, NE_, 4)));
    assert_true(compare_holds(f, cmp_int("a", CREATE_, EQ_, 2)));
    assert_true(compare_holds(f, cmp_int("a", MOD_, EQ_, 4)));
    assert_false(compare_holds(f, cmp_int("a", MOD_, LT_, 4)));
    assert_true(compare_holds(f, cmp_int("a", LEASE_, EQ_, 9)));
    assert_true(compare_holds(f, cmp_val("a", EQ_, "o")));
    assert_true(compare_holds(f, cmp_val("a", GT_, "n")));
    assert_true(compare_holds(f, cmp_val("a", LT_, "oo")));
    assert_true(compare_holds(f, cmp_val("a", NE_, "x")));
    /* a missing key compares as zero, except its value, which always fails */
    assert_true(compare_holds(f, cmp_int("zz", VERSION_, EQ_, 0)));
    assert_true(compare_holds(f, cmp_int("zz", CREATE_, EQ_, 0)));
    assert_true(compare_holds(f, cmp_int("zz", MOD_, LT_, 1)));
    assert_true(compare_holds(f, cmp_int("zz", LEASE_, EQ_, 0)));
    assert_false(compare_holds(f, cmp_val("zz", EQ_, "")));
    assert_false(compare_holds(f, cmp_val("zz", NE_, "x")));
    /* a deleted key is missing */
    del(f, "b", NULL, NULL);
    assert_true(compare_holds(f, cmp_int("b", VERSION_, EQ_, 0)));
    /* a compare with a target value of another type compares against 0 */
    Etcdserverpb__Compare c = cmp_int("a", VERSION_, GT_, 0);
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 100;
    assert_true(compare_holds(f, c));
    /* ranges: every live key must satisfy */
    put(f, "r1", "x");
    put(f, "r2", "x");
    put(f, "r3", "y");
    c = cmp_val("r", EQ_, "x");
    c.range_end = B("s");
    assert_false(compare_holds(f, c));
    c.range_end = B("r3");
    assert_true(compare_holds(f, c));
    c = cmp_int("r", VERSION_, GT_, 0);
    c.range_end = B("s");
    assert_true(compare_holds(f, c));
    c = cmp_int("q", VERSION_, EQ_, 0);     /* an empty range compares as a missing key */
    c.range_end = B("r");
    assert_true(compare_holds(f, c));
    c = cmp_val("q", NE_, "z");
    c.range_end = B("r");
    assert_false(compare_holds(f, c));
}

static void test_txn_failure_branch_and_nested(void **state)
{
    fx *f = *state;
    /* outer: if a.version == 5 (false) then put t=1 else [put x=1; txn{ if x.version == 0
     * then put y=1 else put z=1 }] -- the nested compare sees the state before the txn */
    Etcdserverpb__Compare oc = cmp_int("a", VERSION_, EQ_, 5), ic = cmp_int("x", VERSION_, EQ_, 0);
    Etcdserverpb__Compare *ocs[] = {&oc}, *ics[] = {&ic};
    Etcdserverpb__PutRequest pt = preq("t", "1"), px = preq("x", "1"), py = preq("y", "1"),
                             pz = preq("z", "1");
    Etcdserverpb__RangeRequest rx = rreq("x", NULL);
    Etcdserverpb__RequestOp ot = op_put(&pt), ox = op_put(&px), oy = op_put(&py),
                            oz = op_put(&pz), orx = op_range(&rx);
    Etcdserverpb__RequestOp *isucc[] = {&oy, &orx}, *ifail[] = {&oz};
    Etcdserverpb__TxnRequest inner = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp oi = op_txn(&inner);
    Etcdserverpb__RequestOp *succ[] = {&ot}, *fail[] = {&ox, &oi};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__TxnResponse *resp;
    char buf[16];

    put(f, "a", "1");   /* 2 */
    inner.compare = ics;
    inner.n_compare = 1;
    inner.success = isucc;
    inner.n_success = 2;
    inner.failure = ifail;
    inner.n_failure = 1;
    t.compare = ocs;
    t.n_compare = 1;
    t.success = succ;
    t.n_success = 1;
    t.failure = fail;
    t.n_failure = 2;
    assert_int_equal(mvcc_check_txn(f->m, &t), 0);
    assert_int_equal(txn(f, &t, &resp), 0);
    assert_false(resp->succeeded);
    assert_int_equal(resp->header->revision, 3);
    assert_int_equal(resp->n_responses, 2);
    Etcdserverpb__TxnResponse *in = resp->responses[1]->response_txn;
    assert_int_equal(resp->responses[1]->response_case,
                     ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN);
    assert_true(in->succeeded);
    assert_int_equal(in->header->revision, 0);  /* etcd leaves nested headers empty */
    assert_int_equal(in->n_responses, 2);
    assert_int_equal(in->responses[0]->response_put->header->revision, 3);
    assert_int_equal(in->responses[1]->response_range->count, 1);   /* sees x=1 */
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_null(get_at(f, "t", 0, buf, NULL));
    assert_null(get_at(f, "z", 0, buf, NULL));
    assert_string_equal(get_at(f, "y", 0, buf, NULL), "1");
    assert_string_equal(get_at(f, "x", 0, buf, NULL), "1");

    /* ignore_value on a key missing before the txn refuses the whole txn */
    Etcdserverpb__PutRequest pi = preq("nokey", NULL);
    pi.ignore_value = true;
    Etcdserverpb__RequestOp opi = op_put(&pi);
    Etcdserverpb__RequestOp *s2[] = {&ot, &opi};
    Etcdserverpb__TxnRequest t2 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t2.success = s2;
    t2.n_success = 2;
    assert_int_equal(txn(f, &t2, &resp), CE_KEY_NOT_FOUND);
    assert_null(get_at(f, "t", 0, buf, NULL));
    assert_int_equal(mvcc_rev(f->m), 3);
}

/* A txn failing midway (a case etcd itself would panic on: its duplicate check lets a delete
 * with range_end "\0" pass, which then removes the key an ignore_value put needs) is rolled
 * back whole, events included, and the batch stays usable. */
static void test_txn_rollback_midway(void **state)
{
    fx *f = *state;
    evlog l = {{0}, 0};
    Etcdserverpb__DeleteRangeRequest d = dreq("a", NULL);
    Etcdserverpb__PutRequest pb = preq("b", NULL), pc = preq("c", "1");
    Etcdserverpb__RequestOp od = op_del(&d), opb = op_put(&pb), opc = op_put(&pc);
    Etcdserverpb__RequestOp *ops[] = {&od, &opb};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__TxnResponse *tr = NULL;
    Etcdserverpb__PutResponse *pr;
    char buf[16];

    put(f, "a", "1");           /* 2 */
    put(f, "b", "1");           /* 3 */
    mvcc_set_event_sink(f->m, sink, &l);
    d.range_end = B0();
    pb.ignore_value = true;
    t.success = ops;
    t.n_success = 2;
    assert_int_equal(mvcc_check_txn(f->m, &t), 0);
    begin(f);
    assert_int_equal(mvcc_put(f->m, opc.request_put, &pr), 0);     /* 4 */
    protobuf_c_message_free_unpacked(&pr->base, NULL);
    assert_int_equal(mvcc_txn(f->m, &t, &tr), CE_KEY_NOT_FOUND);
    assert_null(tr);
    assert_int_equal(mvcc_put(f->m, opc.request_put, &pr), 0);     /* 5 */
    assert_int_equal(pr->header->revision, 5);
    protobuf_c_message_free_unpacked(&pr->base, NULL);
    commit(f);
    assert_int_equal(mvcc_rev(f->m), 5);
    assert_string_equal(get_at(f, "a", 0, buf, NULL), "1");
    assert_string_equal(get_at(f, "b", 0, buf, NULL), "1");
    assert_string_equal(l.text, "PUT c@4 v1 prev=-; PUT c@5 v2 prev=1;");
}

static void test_txn_check(void **state)
{
    fx *f = *state;
    Etcdserverpb__PutRequest pa = preq("a", "1"), pa2 = preq("a", "2"), pb = preq("b", "1");
    Etcdserverpb__DeleteRangeRequest da = dreq("a", NULL), dr = dreq("0", "c"),
                                     dinf = dreq("0", NULL);
    Etcdserverpb__RequestOp opa = op_put(&pa), opa2 = op_put(&pa2), opb = op_put(&pb),
                            oda = op_del(&da), odr = op_del(&dr);
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;

    /* two puts of one key */
    Etcdserverpb__RequestOp *s1[] = {&opa, &opa2};
    t.success = s1;
    t.n_success = 2;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_DUP_KEY);
    /* same key in success and failure is fine */
    Etcdserverpb__RequestOp *s2[] = {&opa}, *f2[] = {&opa2};
    t.success = s2;
    t.n_success = 1;
    t.failure = f2;
    t.n_failure = 1;
    assert_int_equal(mvcc_check_txn(f->m, &t), 0);
    /* put and delete of one key, either order; a delete range covering a put */
    Etcdserverpb__RequestOp *s3[] = {&oda, &opa};
    t.success = s3;
    t.n_success = 2;
    t.n_failure = 0;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_DUP_KEY);
    Etcdserverpb__RequestOp *s4[] = {&opb, &odr};
    t.success = s4;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_DUP_KEY);
    /* two deletes of one key are fine; so is a delete with range_end "\0" (etcd's interval
     * [key, "\0") is empty for its duplicate check) */
    Etcdserverpb__RequestOp *s5[] = {&oda, &oda};
    t.success = s5;
    assert_int_equal(mvcc_check_txn(f->m, &t), 0);
    dinf.range_end = B0();
    Etcdserverpb__RequestOp odinf = op_del(&dinf);
    Etcdserverpb__RequestOp *s6[] = {&odinf, &opb};
    t.success = s6;
    assert_int_equal(mvcc_check_txn(f->m, &t), 0);
    /* nested: a put in a nested txn and the same put outside */
    Etcdserverpb__TxnRequest in = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp *ins[] = {&opa}, *inf[] = {&opa2};
    in.success = ins;
    in.n_success = 1;
    Etcdserverpb__RequestOp oin = op_txn(&in);
    Etcdserverpb__RequestOp *s7[] = {&oin, &opa2};
    t.success = s7;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_DUP_KEY);
    /* nested then/else with the same key: fine; with an outer delete of it: refused */
    in.failure = inf;
    in.n_failure = 1;
    Etcdserverpb__RequestOp *s8[] = {&oin, &opb};
    t.success = s8;
    assert_int_equal(mvcc_check_txn(f->m, &t), 0);
    Etcdserverpb__RequestOp *s9[] = {&oin, &oda};
    t.success = s9;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_DUP_KEY);
    /* an empty op, an empty key */
    Etcdserverpb__RequestOp empty = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *s10[] = {&empty};
    t.success = s10;
    t.n_success = 1;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_KEY_NOT_FOUND);
    Etcdserverpb__Compare c = cmp_int("", VERSION_, EQ_, 0);
    Etcdserverpb__Compare *cs[] = {&c};
    t.compare = cs;
    t.n_compare = 1;
    t.n_success = 0;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_KEY_EMPTY);
}

static void test_txn_too_many_ops(void **state)
{
    fx *f = *state;
    enum { N = 130 };
    Etcdserverpb__RangeRequest r = rreq("a", NULL);
    Etcdserverpb__RequestOp o = op_range(&r);
    Etcdserverpb__RequestOp *ops[N];
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT, in = t;
    Etcdserverpb__RequestOp oin = op_txn(&in);

    for (int i = 0; i < N; i++)
        ops[i] = &o;
    t.success = ops;
    t.n_success = 128;
    assert_int_equal(mvcc_check_txn(f->m, &t), 0);
    t.n_success = 129;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_TOO_MANY_OPS);
    /* a nested txn gets what its parent leaves: 2 outer ops leave 126 */
    Etcdserverpb__RequestOp *outer[] = {&oin, &o};
    in.success = ops;
    in.n_success = 126;
    t.success = outer;
    t.n_success = 2;
    assert_int_equal(mvcc_check_txn(f->m, &t), 0);
    in.n_success = 127;
    assert_int_equal(mvcc_check_txn(f->m, &t), CE_TOO_MANY_OPS);
}

/* ---- tests: compaction ---- */

static void test_compaction(void **state)
{
    fx *f = *state;
    char buf[64];
    Mvccpb__KeyValue kv;
    Etcdserverpb__RangeRequest r = rreq("a", "z");
    Etcdserverpb__RangeResponse *resp = NULL;

    put(f, "a", "a1");          /* 2 */
    put(f, "b", "b1");          /* 3 */
    put(f, "a", "a2");          /* 4 */
    del(f, "b", NULL, NULL);    /* 5 */
    put(f, "c", "c1");          /* 6 */
    put(f, "a", "a3");          /* 7 */
    begin(f);
    assert_int_equal(mvcc_compact(f->m, 8), CE_FUTURE_REV);
    assert_int_equal(mvcc_compact(f->m, 5), 0);
    assert_int_equal(mvcc_compact(f->m, 5), CE_COMPACTED);
    assert_int_equal(mvcc_compact(f->m, 4), CE_COMPACTED);
    commit(f);
    assert_int_equal(mvcc_compact_rev(f->m), 5);
    assert_int_equal(mvcc_rev(f->m), 7);
    /* below the point: compacted; at it: the state as it was */
    r.revision = 4;
    assert_int_equal(mvcc_range(f->m, &r, &resp), CE_COMPACTED);
    assert_null(resp);
    r.revision = 5;
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 1);
    assert_true(kv_is(resp->kvs[0], "a", "a2"));
    assert_int_equal(resp->kvs[0]->version, 2);
    assert_int_equal(resp->kvs[0]->create_revision, 2);
    rfree(resp);
    assert_string_equal(get_at(f, "a", 6, buf, &kv), "a2");
    assert_string_equal(get_at(f, "c", 6, buf, NULL), "c1");
    assert_string_equal(get_at(f, "a", 0, buf, &kv), "a3");
    assert_int_equal(kv.version, 3);
    assert_int_equal(kv.create_revision, 2);
    assert_null(get_at(f, "b", 0, buf, NULL));
    /* b's tombstone is gone: re-creating b starts fresh */
    put(f, "b", "b2");          /* 8 */
    assert_string_equal(get_at(f, "b", 0, buf, &kv), "b2");
    assert_int_equal(kv.version, 1);
    assert_int_equal(kv.create_revision, 8);
    /* compact at the current revision; history of every key collapses to its newest */
    begin(f);
    assert_int_equal(mvcc_compact(f->m, 8), 0);
    commit(f);
    r.revision = 8;
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 3);
    rfree(resp);
    r.revision = 7;
    assert_int_equal(mvcc_range(f->m, &r, &resp), CE_COMPACTED);
    {   /* inside a txn too, refusing the whole txn */
        Etcdserverpb__PutRequest p = preq("t", "1");
        Etcdserverpb__RequestOp o1 = op_put(&p), o2 = op_range(&r);
        Etcdserverpb__RequestOp *ops[] = {&o1, &o2};
        Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
        Etcdserverpb__TxnResponse *tr;
        t.success = ops;
        t.n_success = 2;
        assert_int_equal(txn(f, &t, &tr), CE_COMPACTED);
        assert_null(get_at(f, "t", 0, buf, NULL));
        r.revision = 8;
        assert_int_equal(txn(f, &t, &tr), 0);
        assert_int_equal(tr->responses[1]->response_range->count, 3);
        protobuf_c_message_free_unpacked(&tr->base, NULL);
        del(f, "t", NULL, NULL);
    }
    /* keys deleted before the point vanish entirely */
    del(f, "c", NULL, NULL);    /* 11 (9: txn put t, 10: delete t) */
    put(f, "d", "d");           /* 12 */
    begin(f);
    assert_int_equal(mvcc_compact(f->m, 12), 0);
    commit(f);
    r = rreq("c", NULL);
    r.revision = 12;
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 0);
    rfree(resp);
    assert_true(compare_holds(f, cmp_int("c", VERSION_, EQ_, 0)));
}

static void test_compaction_many_keys(void **state)
{
    fx *f = *state;
    char k[16], v[16];
    Etcdserverpb__RangeRequest r = rreq("k", "l");
    Etcdserverpb__RangeResponse *resp;

    /* more keys than one compaction chunk, three revisions each, every third deleted */
    begin(f);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 1500; i++) {
            snprintf(k, sizeof(k), "k%05d", i);
            snprintf(v, sizeof(v), "%d", round);
            Etcdserverpb__PutRequest p = preq(k, v);
            assert_int_equal(mvcc_put(f->m, &p, NULL), 0);
        }
    for (int i = 0; i < 1500; i += 3) {
        snprintf(k, sizeof(k), "k%05d", i);
        Etcdserverpb__DeleteRangeRequest d = dreq(k, NULL);
        assert_int_equal(mvcc_delete(f->m, &d, NULL), 0);
    }
    commit(f);
    int64_t rev = mvcc_rev(f->m);
    assert_int_equal(rev, 1 + 4500 + 500);
    int64_t before = mvcc_db_size_in_use(f->m);
    begin(f);
    assert_int_equal(mvcc_compact(f->m, rev), 0);
    commit(f);
    resp = range_ok(f, &r);
    assert_int_equal(resp->count, 1000);
    assert_true(kv_is(resp->kvs[0], "k00001", "2"));
    assert_int_equal(resp->kvs[0]->version, 3);
    rfree(resp);
    assert_true(mvcc_db_size_in_use(f->m) <= before);
    assert_true(mvcc_db_size(f->m) >= mvcc_db_size_in_use(f->m));
}

/* ---- tests: persistence, consistent index, abort ---- */

static void test_persistence(void **state)
{
    fx *f = *state;
    char buf[64];
    Mvccpb__KeyValue kv;

    put(f, "a", "1");   /* 2 */
    put(f, "a", "2");   /* 3 */
    put(f, "b", "1");   /* 4 */
    del(f, "b", NULL, NULL);    /* 5 */
    begin(f);
    assert_int_equal(mvcc_compact(f->m, 3), 0);
    assert_int_equal(mvcc_commit(f->m, 42, 7), 0);
    uint32_t h1, h2;
    int64_t c1, c2;
    assert_int_equal(mvcc_hash_kv(f->m, 0, &h1, &c1), 0);
    mvcc_close(f->m);
    f->m = open_at(f->dir, 0);
    assert_int_equal(mvcc_rev(f->m), 5);
    assert_int_equal(mvcc_compact_rev(f->m), 3);
    assert_int_equal(mvcc_consistent_index(f->m), 42);
    assert_int_equal(mvcc_consistent_term(f->m), 7);
    assert_string_equal(get_at(f, "a", 0, buf, &kv), "2");
    assert_int_equal(kv.version, 2);
    assert_string_equal(get_at(f, "b", 4, buf, NULL), "1");
    assert_null(get_at(f, "b", 5, buf, NULL));
    assert_int_equal(mvcc_hash_kv(f->m, 0, &h2, &c2), 0);
    assert_int_equal(h1, h2);
    assert_int_equal(c2, 3);
    /* the next write continues the numbering */
    f->ci = 42;
    assert_int_equal(put(f, "c", "1"), 6);
}

static void test_snapshot(void **state)
{
    fx *f = *state;
    fx g = {.ci = 0};
    char path[128], buf[16];
    Mvccpb__KeyValue kv;
    int fd;

    put(f, "a", "1");
    put(f, "a", "2");
    put(f, "b", "1");
    begin(f);
    assert_int_equal(mvcc_compact(f->m, 3), 0);
    assert_int_equal(mvcc_commit(f->m, 77, 4), 0);
    strcpy(g.dir, "/tmp/test_mvcc.XXXXXX");
    assert_non_null(mkdtemp(g.dir));
    snprintf(path, sizeof(path), "%s/data.mdb", g.dir);
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    begin(f);
    assert_int_equal(mvcc_snapshot_fd(f->m, fd), CE_INVAL);     /* not inside a batch */
    mvcc_abort(f->m);
    assert_int_equal(mvcc_snapshot_fd(f->m, fd), 0);
    close(fd);
    g.m = open_at(g.dir, 0);
    assert_int_equal(mvcc_rev(g.m), 4);
    assert_int_equal(mvcc_compact_rev(g.m), 3);
    assert_int_equal(mvcc_consistent_index(g.m), 77);
    assert_string_equal(get_at(&g, "a", 3, buf, &kv), "2");
    assert_string_equal(get_at(&g, "b", 0, buf, NULL), "1");
    mvcc_close(g.m);
    tmpdir_remove(g.dir);
}

static void test_consistent_index(void **state)
{
    fx *f = *state;

    mvcc_set_consistent_index(f->m, 5, 2);
    assert_int_equal(mvcc_consistent_index(f->m), 5);
    mvcc_set_consistent_index(f->m, 3, 2);      /* never goes back */
    assert_int_equal(mvcc_consistent_index(f->m), 5);
    begin(f);
    mvcc_set_consistent_index(f->m, 9, 3);
    assert_int_equal(mvcc_consistent_index(f->m), 5);   /* not before commit */
    assert_int_equal(mvcc_commit(f->m, 8, 3), 0);
    assert_int_equal(mvcc_consistent_index(f->m), 9);
    begin(f);
    mvcc_abort(f->m);
    assert_int_equal(mvcc_consistent_index(f->m), 9);
    mvcc_close(f->m);
    f->m = open_at(f->dir, 0);
    assert_int_equal(mvcc_consistent_index(f->m), 9);
    assert_int_equal(mvcc_rev(f->m), 1);
}

static void test_abort(void **state)
{
    fx *f = *state;
    Etcdserverpb__PutRequest p = preq("a", "1");
    Etcdserverpb__PutResponse *resp;
    char buf[8];

    put(f, "x", "1");
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p, &resp), 0);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_null(get_at(f, "a", 0, buf, NULL));  /* reads see committed state only */
    assert_int_equal(mvcc_compact(f->m, 2), 0);
    mvcc_abort(f->m);
    assert_int_equal(mvcc_rev(f->m), 2);
    assert_int_equal(mvcc_compact_rev(f->m), 0);
    assert_null(get_at(f, "a", 0, buf, NULL));
    assert_int_equal(put(f, "a", "2"), 3);
    /* apply outside a batch is refused */
    assert_int_equal(mvcc_put(f->m, &p, &resp), CE_INVAL);
}

/* ---- tests: events ---- */

static void test_events(void **state)
{
    fx *f = *state;
    evlog l = {{0}, 0};
    Etcdserverpb__PutRequest p1 = preq("a", "2"), p2 = preq("b", "1");
    Etcdserverpb__DeleteRangeRequest d = dreq("a", "c");
    Etcdserverpb__RequestOp o1 = op_put(&p1), o2 = op_put(&p2);
    Etcdserverpb__RequestOp *ops[] = {&o1, &o2};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__TxnResponse *tr;

    put(f, "a", "1");           /* 2, before the sink: not reported */
    mvcc_set_event_sink(f->m, sink, &l);
    t.success = ops;
    t.n_success = 2;
    begin(f);
    assert_int_equal(mvcc_txn(f->m, &t, &tr), 0);
    protobuf_c_message_free_unpacked(&tr->base, NULL);
    assert_int_equal(mvcc_delete(f->m, &d, NULL), 0);
    assert_int_equal(l.n, 0);   /* nothing before commit */
    commit(f);
    assert_string_equal(l.text, "PUT a@3 v2 prev=1; PUT b@3 v1 prev=-; "
                                "DEL a@4 v0 prev=2; DEL b@4 v0 prev=1;");
    /* an aborted batch reports nothing */
    l.text[0] = 0;
    l.n = 0;
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p1, NULL), 0);
    mvcc_abort(f->m);
    assert_int_equal(l.n, 0);
    /* a put answering prev_kv still reports its own copy */
    p1.prev_kv = true;
    Etcdserverpb__PutResponse *pr;
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p1, &pr), 0);
    assert_int_equal(mvcc_put(f->m, &p1, NULL), 0);
    commit(f);
    assert_null(pr->prev_kv);
    protobuf_c_message_free_unpacked(&pr->base, NULL);
    assert_string_equal(l.text, "PUT a@5 v1 prev=-; PUT a@6 v2 prev=2;");
}

static void test_events_since(void **state)
{
    fx *f = *state;
    evlog l = {{0}, 0};
    ProtobufCBinaryData a = B("a"), c = B("c"), zero = B0(), none = B(NULL);
    Etcdserverpb__PutRequest p1 = preq("a", "3"), p2 = preq("c", "1");
    Etcdserverpb__RequestOp o1 = op_put(&p1), o2 = op_put(&p2);
    Etcdserverpb__RequestOp *ops[] = {&o1, &o2};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__TxnResponse *tr;
    int64_t next;

    put(f, "a", "1");           /* 2 */
    put(f, "b", "1");           /* 3 */
    put(f, "a", "2");           /* 4 */
    del(f, "a", NULL, NULL);    /* 5 */
    t.success = ops;
    t.n_success = 2;
    assert_int_equal(txn(f, &t, &tr), 0);      /* 6: a and c */
    protobuf_c_message_free_unpacked(&tr->base, NULL);
    assert_int_equal(mvcc_events_since(f->m, &a, &c, 3, true, 0, sink, &l, &next), 0);
    assert_string_equal(l.text, "PUT b@3 v1 prev=-; PUT a@4 v2 prev=1; DEL a@5 v0 prev=2; "
                                "PUT a@6 v1 prev=-;");
    assert_int_equal(next, 7);
    /* the key alone, without prev */
    l.text[0] = 0;
    l.n = 0;
    assert_int_equal(mvcc_events_since(f->m, &a, &none, 0, false, 0, sink, &l, &next), 0);
    assert_string_equal(l.text, "PUT a@2 v1 prev=-; PUT a@4 v2 prev=-; DEL a@5 v0 prev=-; "
                                "PUT a@6 v1 prev=-;");
    /* a limit stops after a whole revision: 2 events wanted, revision 6 has two */
    l.text[0] = 0;
    l.n = 0;
    assert_int_equal(mvcc_events_since(f->m, &a, &zero, 5, false, 2, sink, &l, &next), 0);
    assert_string_equal(l.text, "DEL a@5 v0 prev=-; PUT a@6 v1 prev=-; PUT c@6 v1 prev=-;");
    assert_int_equal(next, 7);
    l.text[0] = 0;
    l.n = 0;
    assert_int_equal(mvcc_events_since(f->m, &a, &zero, 2, false, 1, sink, &l, &next), 0);
    assert_string_equal(l.text, "PUT a@2 v1 prev=-;");
    assert_int_equal(next, 3);
    /* from the future: nothing, continue at the next revision */
    l.n = 0;
    assert_int_equal(mvcc_events_since(f->m, &a, &zero, 9, false, 0, sink, &l, &next), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(next, 7);
    begin(f);
    assert_int_equal(mvcc_compact(f->m, 5), 0);
    commit(f);
    assert_int_equal(mvcc_events_since(f->m, &a, &zero, 4, false, 0, sink, &l, &next),
                     CE_COMPACTED);
    l.text[0] = 0;
    l.n = 0;
    assert_int_equal(mvcc_events_since(f->m, &a, &zero, 5, false, 0, sink, &l, &next), 0);
    assert_string_equal(l.text, "PUT a@6 v1 prev=-; PUT c@6 v1 prev=-;");
}

/* ---- tests: hash ---- */

static void hash_history(fx *f)
{
    put(f, "foo", "bar");
    put(f, "foo", "baz");
    put(f, "k1", "v1");
    del(f, "foo", NULL, NULL);
    put(f, "foo", "again");
}

static void test_hash_kv(void **state)
{
    fx *f = *state;
    fx g = {.ci = 0};
    uint32_t h1, h2, h3;
    int64_t c;

    hash_history(f);
    strcpy(g.dir, "/tmp/test_mvcc.XXXXXX");
    assert_non_null(mkdtemp(g.dir));
    g.m = open_at(g.dir, 0);
    hash_history(&g);
    assert_int_equal(mvcc_hash_kv(f->m, 0, &h1, &c), 0);
    assert_int_equal(c, -1);
    assert_int_equal(mvcc_hash_kv(g.m, 0, &h2, &c), 0);
    assert_int_equal(h1, h2);
    /* the same history run on etcd 3.4.23 (etcdctl put/del, single member; values read with
     * `etcdctl endpoint hashkv [--rev 4]`) */
    assert_int_equal(h1, 3430088792u);
    assert_int_equal(mvcc_hash_kv(f->m, 4, &h3, &c), 0);
    assert_int_equal(h3, 2942447078u);
    put(&g, "x", "y");
    assert_int_equal(mvcc_hash_kv(g.m, 6, &h2, &c), 0);
    assert_int_equal(h1, h2);   /* a hash at a revision ignores later writes */
    assert_int_equal(mvcc_hash_kv(g.m, 99, &h2, &c), CE_FUTURE_REV);
    begin(&g);
    assert_int_equal(mvcc_compact(g.m, 4), 0);
    commit(&g);
    assert_int_equal(mvcc_hash_kv(g.m, 3, &h2, &c), CE_COMPACTED);
    assert_int_equal(c, 4);
    assert_int_equal(mvcc_hash_kv(g.m, 6, &h2, &c), 0);
    assert_int_equal(c, 4);
    assert_int_equal(h2, 1155386226u);     /* etcd after `compact 4`, put x y, hashkv --rev 6 */
    mvcc_close(g.m);
    tmpdir_remove(g.dir);
}

static void test_crc32c(void **state)
{
    char buf[1000];

    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);    /* the check value */
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)(i * 7 + 3);
    for (size_t len = 0; len < sizeof(buf); len += 37)     /* hardware path = table path */
        assert_int_equal(crc32c(0x1234, buf + 1, len), crc32c_sw(0x1234, buf + 1, len));
    /* chained updates equal one update over the concatenation */
    assert_int_equal(crc32c(crc32c(0, buf, 100), buf + 100, 900),
                     crc32c(0, buf, 1000));
}

/* ---- tests: quota ---- */

/* The quota is asked before a write is proposed (mvcc_has_room), never while applying: a put
 * past the quota still applies, since a member with a larger file may have applied it too. */
static void test_quota(void **state)
{
    fx *f = *state;
    enum { QUOTA = 1 << 20 };
    char *big = malloc(QUOTA);
    Etcdserverpb__PutRequest p = preq("big", NULL);
    Etcdserverpb__PutResponse *resp = NULL;

    mvcc_close(f->m);
    f->m = open_at(f->dir, QUOTA);
    assert_true(mvcc_has_room(f->m, 1000));
    assert_false(mvcc_has_room(f->m, QUOTA));
    memset(big, 'x', QUOTA - 1);
    big[QUOTA - 1] = 0;
    p.value = B(big);
    begin(f);
    assert_int_equal(mvcc_put(f->m, &p, &resp), 0);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_false(mvcc_has_room(f->m, 1000)); /* the open batch counts */
    commit(f);
    assert_false(mvcc_has_room(f->m, 1000));
    assert_int_equal(put(f, "small", "ok"), 3);
    free(big);
}

/* ---- randomized: the store against a model, at every revision still readable ---- */

enum { RKEYS = 20, ROPS = 400 };

typedef struct mkey {
    int alive;
    int64_t create, mod, ver;
    char val[16];
} mkey;

/* Compares a range over all model keys at rev with the model's state then. */
static void check_model_at(fx *f, const mkey *snap, int64_t rev)
{
    Etcdserverpb__RangeRequest r = rreq("r", "s");
    Etcdserverpb__RangeResponse *resp;
    size_t j = 0;
    int64_t alive = 0;
    char k[16];

    r.revision = rev;
    resp = range_ok(f, &r);
    for (int key = 0; key < RKEYS; key++) {
        if (!snap[key].alive)
            continue;
        alive++;
        snprintf(k, sizeof(k), "r%02d", key);
        assert_true(j < resp->n_kvs);
        assert_true(kv_is(resp->kvs[j], k, snap[key].val));
        assert_int_equal(resp->kvs[j]->create_revision, snap[key].create);
        assert_int_equal(resp->kvs[j]->mod_revision, snap[key].mod);
        assert_int_equal(resp->kvs[j]->version, snap[key].ver);
        j++;
    }
    assert_int_equal(resp->count, alive);
    assert_int_equal(resp->n_kvs, j);
    rfree(resp);
}

static void test_random_vs_model(void **state)
{
    fx *f = *state;
    mkey (*hist)[RKEYS] = calloc(ROPS + 2, sizeof(*hist));    /* state at each revision */
    unsigned seed = getenv("MVCC_SEED") ? (unsigned)strtoul(getenv("MVCC_SEED"), NULL, 10)
                                        : (unsigned)time(NULL);
    int64_t rev = 1, compact = 0;
    char k[16], v[16];

    printf("test_random_vs_model: seed %u (MVCC_SEED=%u to replay)\n", seed, seed);
    srand(seed);
    for (int i = 0; i < ROPS; i++) {
        int key = rand() % RKEYS, op = rand() % 3;
        mkey *m;
        snprintf(k, sizeof(k), "r%02d", key);
        if (op < 2) {
            snprintf(v, sizeof(v), "v%d", rand() % 100);
            assert_int_equal(put(f, k, v), ++rev);
            memcpy(hist[rev], hist[rev - 1], sizeof(hist[rev]));
            m = &hist[rev][key];
            if (!m->alive) {
                *m = (mkey){.alive = 1, .create = rev};
            }
            m->mod = rev;
            m->ver++;
            strcpy(m->val, v);
        } else {
            int64_t n = del(f, k, NULL, NULL);
            assert_int_equal(n, hist[rev][key].alive);
            if (n) {
                rev++;
                memcpy(hist[rev], hist[rev - 1], sizeof(hist[rev]));
                hist[rev][key].alive = 0;
            }
        }
        if (i % 50 == 49 && rev - 3 > compact) {
            compact = rev - rand() % 3;
            begin(f);
            assert_int_equal(mvcc_compact(f->m, compact), 0);
            commit(f);
        }
    }
    assert_int_equal(mvcc_rev(f->m), rev);
    for (int64_t r = compact ? compact : 1; r <= rev; r++)
        check_model_at(f, hist[r], r);
    free(hist);
}

/* ---- timing (printed, not asserted) ---- */

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_timing(void **state)
{
    fx *f = *state;
    char k[32], v[257];
    Etcdserverpb__RangeRequest r = rreq("key/", "key0");
    Etcdserverpb__RangeResponse *resp;
    double t0, t1, t2, t3;

    memset(v, 'v', 256);
    v[256] = 0;
    for (int round = 0; round < 3; round++) {
        t0 = now_ms();
        begin(f);
        for (int i = 0; i < 1000; i++) {
            snprintf(k, sizeof(k), "key/%06d", round * 1000 + i);
            Etcdserverpb__PutRequest p = preq(k, v);
            Etcdserverpb__PutResponse *pr;
            assert_int_equal(mvcc_put(f->m, &p, &pr), 0);
            protobuf_c_message_free_unpacked(&pr->base, NULL);
        }
        commit(f);
        t1 = now_ms();
        printf("timing: batch of 1000 puts (256 B values, no fsync): %.2f ms\n", t1 - t0);
    }
    r.limit = 1000;
    t2 = now_ms();
    resp = range_ok(f, &r);
    t3 = now_ms();
    assert_int_equal(resp->n_kvs, 1000);
    assert_int_equal(resp->count, 3000);
    printf("timing: range of 1000 keys (count 3000): %.2f ms\n", t3 - t2);
    rfree(resp);
    r.limit = 0;
    r.count_only = true;
    t2 = now_ms();
    resp = range_ok(f, &r);
    t3 = now_ms();
    printf("timing: count_only over 3000 keys: %.2f ms\n", t3 - t2);
    rfree(resp);
    /* the same with a watcher sink (prev_kv loads) and with fsync */
    evlog l = {{0}, 0};
    (void)l;
    mvcc_close(f->m);
    mvcc_options o = {.dir = f->dir, .no_sync = false};
    assert_int_equal(mvcc_open(&o, &f->m), 0);
    t0 = now_ms();
    begin(f);
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "key/%06d", i);
        Etcdserverpb__PutRequest p = preq(k, v);
        assert_int_equal(mvcc_put(f->m, &p, NULL), 0);
    }
    commit(f);
    t1 = now_ms();
    printf("timing: batch of 1000 overwrites with fsync: %.2f ms\n", t1 - t0);
    t0 = now_ms();
    put(f, "single", "x");
    t1 = now_ms();
    printf("timing: one put in its own fsynced batch: %.2f ms\n", t1 - t0);
}

/* Deferred durability: batches are visible at once, durable only at mvcc_flush; a crash
 * (a child process exiting without flush) leaves exactly the flushed state, whose
 * consistent index says which entries to apply again. */
static void test_deferred_durability(void **state)
{
    fx *f = *state;
    mvcc_options o = {.dir = f->dir, .no_sync = false, .defer_durability = true};
    char buf[64];
    pid_t pid;
    int status;

    mvcc_close(f->m);
    assert_int_equal(mvcc_open(&o, &f->m), 0);
    put(f, "a", "1");
    put(f, "b", "2");
    assert_true(mvcc_has_unflushed(f->m));
    assert_string_equal(get_at(f, "b", 0, buf, NULL), "2");   /* visible before flush */
    assert_int_equal(mvcc_flush(f->m), 0);
    assert_false(mvcc_has_unflushed(f->m));
    assert_int_equal(mvcc_consistent_index(f->m), 2);
    /* an aborted batch does not take the unflushed ones with it */
    put(f, "c", "3");
    begin(f);
    mvcc_abort(f->m);
    assert_string_equal(get_at(f, "c", 0, buf, NULL), "3");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        put(f, "d", "4");        /* ci 4, never flushed */
        _exit(0);                /* crash: no close, no flush */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(mvcc_flush(f->m), 0);   /* the parent's "c" (ci 3) */
    mvcc_close(f->m);
    assert_int_equal(mvcc_open(&o, &f->m), 0);
    assert_int_equal(mvcc_consistent_index(f->m), 3);
    assert_string_equal(get_at(f, "c", 0, buf, NULL), "3");
    assert_null(get_at(f, "d", 0, buf, NULL));
    assert_int_equal(mvcc_rev(f->m), 4);
    f->ci = 3;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_empty_store),
        T(test_revision_numbering),
        T(test_delete_range_revision),
        T(test_history_and_tombstones),
        T(test_range_limit_count),
        T(test_range_sort),
        T(test_range_filters),
        T(test_put_options),
        T(test_long_key),
        T(test_txn_one_revision),
        T(test_txn_sees_own_writes),
        T(test_txn_compare),
        T(test_txn_failure_branch_and_nested),
        T(test_txn_rollback_midway),
        T(test_txn_check),
        T(test_txn_too_many_ops),
        T(test_compaction),
        T(test_compaction_many_keys),
        T(test_persistence),
        T(test_snapshot),
        T(test_consistent_index),
        T(test_abort),
        T(test_events),
        T(test_events_since),
        T(test_hash_kv),
        T(test_quota),
        cmocka_unit_test(test_crc32c),
        T(test_random_vs_model),
        T(test_timing),
        T(test_deferred_durability),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
