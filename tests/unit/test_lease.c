/*
 * test_lease.c: unit tests of the lessor (server/lease/) and of the mvcc lease store
 * (server/mvcc/lease_store.c).
 *
 * Lessor: grant/renew/revoke, listing by expiry, expiry order and the retry delay, the
 * expiry rule on renewed_index, promotion grace, key attachment (move, detach, ranges as etcd's), sorted
 * keys, and a randomized run against a plain model (prints its seed; replay with
 * LEASE_SEED=<seed>). Store: lease records persist across reopen (plain and deferred
 * durability, also after an aborted batch), revoke deletes the attached keys in one revision
 * with one DELETE event each and leaves keys attached elsewhere, and the attached keys are
 * read back from the key table. Each store test uses its own mkdtemp directory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "server/lease/lease.h"
#include "mvccfx.h"
#include "tmpdir.h"

static ProtobufCBinaryData B(const char *s)
{
    return (ProtobufCBinaryData){s ? strlen(s) : 0, (uint8_t *)s};
}

static lessor *lessor_make(void)
{
    lessor *l = NULL;

    assert_int_equal(lessor_new(&l), 0);
    return l;
}

static void attach(lessor *l, const char *k, int64_t id)
{
    assert_int_equal(lessor_attach(l, k, strlen(k), id), 0);
}

static int64_t lease_of(lessor *l, const char *k)
{
    return lessor_key_lease(l, k, strlen(k));
}

/* The keys of id joined with ',' into buf. */
static const char *keys_str(lessor *l, int64_t id, char *buf)
{
    ProtobufCBinaryData *keys;
    size_t n, o = 0;

    assert_int_equal(lessor_keys(l, id, &keys, &n), 0);
    buf[0] = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(buf + o, "%s%.*s", i ? "," : "", (int)keys[i].len,
                             (const char *)keys[i].data);
    free(keys);
    return buf;
}

/* ---- lessor ---------------------------------------------------------------------------- */

static void test_grant_renew_revoke(void **state)
{
    lessor *l = lessor_make();
    lessor_info info;

    (void)state;
    assert_int_equal(lessor_grant(l, 7, 10, 100, 1000), 0);
    assert_int_equal(lessor_grant(l, 7, 5, 101, 1000), CE_LEASE_EXISTS);
    assert_int_equal(lessor_grant(l, 0, 5, 101, 1000), CE_LEASE_NOT_FOUND);
    assert_int_equal(lessor_grant(l, -3, 5, 102, 1000), 0);
    assert_true(lessor_exists(l, 7));
    assert_false(lessor_exists(l, 8));
    assert_int_equal(lessor_count(l), 2);
    assert_true(lessor_get(l, 7, &info));
    assert_int_equal(info.ttl, 10);
    assert_int_equal(info.expiry_ms, 11000);
    assert_int_equal(info.renewed_index, 100);

    assert_int_equal(lessor_renew(l, 7, 150, 4000), 0);
    assert_true(lessor_get(l, 7, &info));
    assert_int_equal(info.expiry_ms, 14000);
    assert_int_equal(info.renewed_index, 150);
    assert_int_equal(lessor_renew(l, 8, 151, 4000), CE_LEASE_NOT_FOUND);

    assert_int_equal(lessor_revoke(l, 7), 0);
    assert_int_equal(lessor_revoke(l, 7), CE_LEASE_NOT_FOUND);
    assert_false(lessor_exists(l, 7));
    assert_true(lessor_exists(l, -3));
    assert_int_equal(lessor_count(l), 1);
    lessor_free(l);
}

/* All with the same expiry: listed by ID. */
static void test_ids_sorted_and_many(void **state)
{
    lessor *l = lessor_make();
    int64_t *ids;
    size_t n;

    (void)state;
    /* enough to grow the hash table several times, removed in an order that exercises the
     * backward shift of probe runs */
    for (int64_t i = 1; i <= 1000; i++)
        assert_int_equal(lessor_grant(l, i * 7919 % 100003, 5, (uint64_t)i, 0), 0);
    for (int64_t i = 1; i <= 1000; i += 3)
        assert_int_equal(lessor_revoke(l, i * 7919 % 100003), 0);
    for (int64_t i = 1; i <= 1000; i++)
        assert_int_equal(lessor_exists(l, i * 7919 % 100003), (i - 1) % 3 != 0);
    assert_int_equal(lessor_ids(l, &ids, &n), 0);
    assert_int_equal(n, lessor_count(l));
    assert_int_equal(n, 666);
    for (size_t i = 1; i < n; i++)
        assert_true(ids[i - 1] < ids[i]);
    free(ids);
    lessor_free(l);
}

static void test_ids_by_expiry(void **state)
{
    lessor *l = lessor_make();
    int64_t *ids;
    size_t n;

    (void)state;
    assert_int_equal(lessor_grant(l, 1, 30, 1, 0), 0);     /* 30000 */
    assert_int_equal(lessor_grant(l, 2, 10, 2, 0), 0);     /* 10000 */
    assert_int_equal(lessor_grant(l, 3, 10, 3, 5000), 0);  /* 15000 */
    assert_int_equal(lessor_grant(l, 4, 10, 4, 0), 0);     /* 10000, after 2 */
    assert_int_equal(lessor_renew(l, 2, 5, 25000), 0);     /* 35000 */
    assert_int_equal(lessor_ids(l, &ids, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 1);
    assert_int_equal(ids[3], 2);
    free(ids);
    lessor_free(l);
}

static void test_expiry_order_and_retry(void **state)
{
    lessor *l = lessor_make();
    lessor_due due[8];

    (void)state;
    assert_int_equal(lessor_grant(l, 1, 30, 10, 0), 0);   /* expires at 30000 */
    assert_int_equal(lessor_grant(l, 2, 10, 11, 0), 0);   /* 10000 */
    assert_int_equal(lessor_grant(l, 3, 20, 12, 0), 0);   /* 20000 */
    assert_int_equal(lessor_grant(l, 4, 10, 13, 0), 0);   /* 10000, after 2 by ID */

    assert_int_equal(lessor_expired(l, 9999, 5000, due, 8), 0);
    assert_int_equal(lessor_expired(l, 20000, 5000, due, 2), 2);  /* capped at max */
    assert_int_equal(due[0].id, 2);
    assert_int_equal(due[0].renewed_index, 11);
    assert_int_equal(due[1].id, 4);
    assert_int_equal(lessor_expired(l, 20000, 5000, due, 8), 1);
    assert_int_equal(due[0].id, 3);
    /* handed out: not again before the retry delay */
    assert_int_equal(lessor_expired(l, 24999, 5000, due, 8), 0);
    assert_int_equal(lessor_expired(l, 25000, 5000, due, 8), 3);  /* all due at 25000: by ID */
    assert_int_equal(due[0].id, 2);
    assert_int_equal(due[1].id, 3);
    assert_int_equal(due[2].id, 4);
    /* a renewal resets the due time to the new expiry */
    assert_int_equal(lessor_renew(l, 4, 40, 26000), 0);          /* 36000 */
    assert_int_equal(lessor_expired(l, 30000, 100000, due, 8), 3);
    assert_int_equal(due[0].id, 1);
    assert_int_equal(due[1].id, 2);
    assert_int_equal(due[2].id, 3);
    assert_int_equal(lessor_expired(l, 35999, 100000, due, 8), 0);
    assert_int_equal(lessor_expired(l, 36000, 100000, due, 8), 1);
    assert_int_equal(due[0].id, 4);
    assert_int_equal(due[0].renewed_index, 40);
    /* a revoked lease is never handed out */
    assert_int_equal(lessor_revoke(l, 4), 0);
    assert_int_equal(lessor_expired(l, 1000000, 1, due, 8), 3);
    lessor_free(l);
}

static void test_expiry_rule(void **state)
{
    lessor *l = lessor_make();
    lessor_due due[1];

    (void)state;
    assert_int_equal(lessor_grant(l, 5, 2, 20, 0), 0);
    assert_int_equal(lessor_expired(l, 2000, 1000, due, 1), 1);
    assert_true(lessor_expiry_applies(l, 5, due[0].renewed_index));
    /* a renewal committed before the expiry entry wins */
    assert_int_equal(lessor_renew(l, 5, 21, 2100), 0);
    assert_false(lessor_expiry_applies(l, 5, due[0].renewed_index));
    assert_true(lessor_expiry_applies(l, 5, 21));
    assert_int_equal(lessor_revoke(l, 5), 0);
    assert_false(lessor_expiry_applies(l, 5, 21));
    lessor_free(l);
}

static void test_promotion_grace(void **state)
{
    lessor *l = lessor_make();
    lessor_due due[4];
    lessor_info info;

    (void)state;
    assert_int_equal(lessor_grant(l, 1, 2, 1, 0), 0);    /* 2000: long past at 50000 */
    assert_int_equal(lessor_grant(l, 2, 60, 2, 0), 0);   /* 60000: beyond the grace */
    assert_int_equal(lessor_expired(l, 50000, 100000, due, 4), 1); /* handed out, as follower */
    lessor_promote(l, 50000, 1000);
    assert_true(lessor_get(l, 1, &info));
    assert_int_equal(info.expiry_ms, 51000);
    assert_true(lessor_get(l, 2, &info));
    assert_int_equal(info.expiry_ms, 60000);
    /* the promotion also resets the retry delay: due again at the new expiry */
    assert_int_equal(lessor_expired(l, 50999, 100000, due, 4), 0);
    assert_int_equal(lessor_expired(l, 51000, 100000, due, 4), 1);
    assert_int_equal(due[0].id, 1);
    assert_int_equal(lessor_expired(l, 60000, 100000, due, 4), 1);
    assert_int_equal(due[0].id, 2);
    lessor_free(l);
}

static void test_attach_move_detach(void **state)
{
    lessor *l = lessor_make();
    ProtobufCBinaryData *views;
    size_t nviews;
    char buf[256];
    lessor_info info;

    (void)state;
    assert_int_equal(lessor_grant(l, 1, 10, 1, 0), 0);
    assert_int_equal(lessor_grant(l, 2, 10, 2, 0), 0);
    attach(l, "k3", 1);
    attach(l, "k1", 1);
    attach(l, "k2", 1);
    assert_string_equal(keys_str(l, 1, buf), "k1,k2,k3");
    assert_int_equal(lessor_attached(l), 3);
    /* a put with another lease moves the key, with none detaches it */
    attach(l, "k2", 2);
    assert_int_equal(lease_of(l, "k2"), 2);
    assert_string_equal(keys_str(l, 1, buf), "k1,k3");
    assert_string_equal(keys_str(l, 2, buf), "k2");
    attach(l, "k2", 2);                       /* the same lease again: no change */
    assert_int_equal(lessor_attached(l), 3);
    attach(l, "k1", 0);
    assert_int_equal(lease_of(l, "k1"), 0);
    attach(l, "nope", 0);                     /* detaching a free key is harmless */
    assert_int_equal(lessor_attached(l), 2);
    /* an unknown lease changes nothing */
    assert_int_equal(lessor_attach(l, "k3", 2, 99), CE_LEASE_NOT_FOUND);
    assert_int_equal(lease_of(l, "k3"), 1);
    assert_true(lessor_get(l, 1, &info));
    assert_int_equal(info.nkeys, 1);
    /* revoke detaches the lease's keys and nothing else */
    assert_int_equal(lessor_revoke(l, 1), 0);
    assert_int_equal(lease_of(l, "k3"), 0);
    assert_int_equal(lease_of(l, "k2"), 2);
    assert_int_equal(lessor_attached(l), 1);
    assert_int_equal(lessor_keys(l, 1, &views, &nviews), CE_LEASE_NOT_FOUND);
    assert_null(views);
    lessor_free(l);
}

static void test_detach_ranges(void **state)
{
    static const char *names[] = {"a", "b", "b\x01", "ba", "c", "d", "e"};
    static const char zero[1] = {0};
    ProtobufCBinaryData end0 = {1, (uint8_t *)zero}, none = B(NULL), b = B("b"), c = B("c");
    ProtobufCBinaryData x = B("x"), z = B("z");
    lessor *l = lessor_make();
    char buf[256];

    (void)state;
    assert_int_equal(lessor_grant(l, 1, 10, 1, 0), 0);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        attach(l, names[i], 1);
    /* a single key (empty end) */
    assert_int_equal(lessor_detach_range(l, &(ProtobufCBinaryData){1, (uint8_t *)"d"}, &none), 0);
    assert_string_equal(keys_str(l, 1, buf), "a,b,b\x01,ba,c,e");
    /* [b, c): b and everything with the prefix b */
    assert_int_equal(lessor_detach_range(l, &b, &c), 0);
    assert_string_equal(keys_str(l, 1, buf), "a,c,e");
    /* "\0" end: every key >= c */
    assert_int_equal(lessor_detach_range(l, &c, &end0), 0);
    assert_string_equal(keys_str(l, 1, buf), "a");
    /* an empty range */
    assert_int_equal(lessor_detach_range(l, &x, &z), 0);
    assert_int_equal(lessor_attached(l), 1);
    /* everything: key "\0", end "\0" */
    assert_int_equal(lessor_detach_range(l, &end0, &end0), 0);
    assert_int_equal(lessor_attached(l), 0);
    lessor_free(l);
}

/* ---- randomized: lessor against a model ------------------------------------------------ */

#define RK 40                   /* keys k00..k39 */
#define RL 8                    /* lease IDs 1..8 */

struct model {
    bool live[RL + 1];
    int64_t ttl[RL + 1];
    uint64_t expiry[RL + 1], check[RL + 1], renewed[RL + 1];
    int64_t key_lease[RK];
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void key_name(int i, char out[4])
{
    out[0] = 'k';
    out[1] = (char)('0' + i / 10 % 10);
    out[2] = (char)('0' + i % 10);
    out[3] = 0;
}

static void model_check(lessor *l, const struct model *m)
{
    size_t attached = 0;

    for (int i = 0; i < RK; i++) {
        char k[4];
        key_name(i, k);
        assert_int_equal(lease_of(l, k), m->key_lease[i]);
        attached += m->key_lease[i] != 0;
    }
    assert_int_equal(lessor_attached(l), attached);
    for (int id = 1; id <= RL; id++) {
        char buf[RK * 4 + 1], want[RK * 4 + 1];
        size_t o = 0;
        lessor_info info;
        assert_int_equal(lessor_get(l, id, &info), m->live[id]);
        if (!m->live[id])
            continue;
        assert_int_equal(info.expiry_ms, m->expiry[id]);
        assert_int_equal(info.renewed_index, m->renewed[id]);
        want[0] = 0;
        for (int i = 0; i < RK; i++)
            if (m->key_lease[i] == id) {
                char k[4];
                key_name(i, k);
                o += (size_t)sprintf(want + o, "%s%s", o ? "," : "", k);
            }
        assert_string_equal(keys_str(l, id, buf), want);
    }
}

/* The model's due leases at now, in (check, id) order, as lessor_expired hands them out. */
static size_t model_expired(struct model *m, uint64_t now, uint64_t retry, lessor_due *out,
                            size_t max)
{
    size_t n = 0;

    while (n < max) {
        int best = 0;
        for (int id = 1; id <= RL; id++)
            if (m->live[id] && m->check[id] <= now && (!best || m->check[id] < m->check[best]))
                best = id;
        if (!best)
            break;
        out[n].id = best;
        out[n++].renewed_index = m->renewed[best];
        m->check[best] = now + retry;
    }
    return n;
}

static void random_step(lessor *l, struct model *m, uint64_t *s, uint64_t *now, uint64_t index)
{
    int id = (int)(rnd(s) % RL) + 1, k = (int)(rnd(s) % RK);
    char key[4];

    key_name(k, key);
    switch (rnd(s) % 8) {
    case 0: {
        int64_t ttl = (int64_t)(rnd(s) % 5) + 1;
        assert_int_equal(lessor_grant(l, id, ttl, index, *now), m->live[id] ? CE_LEASE_EXISTS : 0);
        if (!m->live[id]) {
            m->live[id] = true;
            m->ttl[id] = ttl;
            m->expiry[id] = m->check[id] = *now + (uint64_t)ttl * 1000;
            m->renewed[id] = index;
        }
        break;
    }
    case 1:
        assert_int_equal(lessor_renew(l, id, index, *now), m->live[id] ? 0 : CE_LEASE_NOT_FOUND);
        if (m->live[id]) {
            m->expiry[id] = m->check[id] = *now + (uint64_t)m->ttl[id] * 1000;
            m->renewed[id] = index;
        }
        break;
    case 2:
        assert_int_equal(lessor_revoke(l, id), m->live[id] ? 0 : CE_LEASE_NOT_FOUND);
        m->live[id] = false;
        for (int i = 0; i < RK; i++)
            if (m->key_lease[i] == id)
                m->key_lease[i] = 0;
        break;
    case 3: {
        int64_t to = rnd(s) % 4 == 0 ? 0 : id;
        assert_int_equal(lessor_attach(l, key, 3, to), !to || m->live[to] ? 0 : CE_LEASE_NOT_FOUND);
        if (!to || m->live[to])
            m->key_lease[k] = to;
        break;
    }
    case 4: {
        int k2 = k + (int)(rnd(s) % 6);
        char end[4];
        ProtobufCBinaryData from = {3, (uint8_t *)key}, to = {3, (uint8_t *)end};
        key_name(k2 < RK ? k2 : RK - 1, end);
        assert_int_equal(lessor_detach_range(l, &from, &to), 0);
        for (int i = k; i < k2 && i < RK - 1; i++)
            m->key_lease[i] = 0;
        break;
    }
    case 5: {
        lessor_due got[RL], want[RL];
        size_t n = lessor_expired(l, *now, 2500, got, 3);
        size_t wn = model_expired(m, *now, 2500, want, 3);
        assert_int_equal(n, wn);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(got[i].id, want[i].id);
            assert_int_equal(got[i].renewed_index, want[i].renewed_index);
        }
        break;
    }
    case 6:
        lessor_promote(l, *now, 1000);
        for (int i = 1; i <= RL; i++) {
            if (m->expiry[i] < *now + 1000)
                m->expiry[i] = *now + 1000;
            m->check[i] = m->expiry[i];
        }
        break;
    default:
        *now += rnd(s) % 1500;
        break;
    }
}

static void test_random_against_model(void **state)
{
    const char *env = getenv("LEASE_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL), s, now = 0;
    struct model m;
    lessor *l = lessor_make();

    (void)state;
    printf("# test_random_against_model seed %llu (replay: LEASE_SEED=%llu)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    s = seed ? seed : 1;
    memset(&m, 0, sizeof(m));
    for (uint64_t i = 1; i <= 20000; i++) {
        random_step(l, &m, &s, &now, i);
        if (i % 97 == 0)
            model_check(l, &m);
    }
    model_check(l, &m);
    lessor_free(l);
}

/* ---- mvcc lease store ------------------------------------------------------------------ */

typedef struct fx {
    char dir[64];
    mvcc *m;
    uint64_t ci;
    bool defer;
} fx;

static int setup_with(void **state, bool defer)
{
    fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/test_lease.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->defer = defer;
    f->m = mvccfx_open(f->dir, defer);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, false);
}

static int setup_deferred(void **state)
{
    return setup_with(state, true);
}

static int teardown(void **state)
{
    fx *f = *state;

    mvcc_close(f->m);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void reopen(fx *f)
{
    mvcc_close(f->m);
    f->m = mvccfx_open(f->dir, f->defer);
}

static void lease_put(fx *f, int64_t id, int64_t ttl, uint64_t idx)
{
    mvcc_lease l = {id, ttl, idx};

    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_lease_put(f->m, &l), 0);
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
}

static void put_kv(fx *f, const char *k, int64_t lease)
{
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__PutResponse *resp = NULL;

    r.key = B(k);
    r.value = B("v");
    r.lease = lease;
    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_put(f->m, &r, &resp), 0);
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

struct list {
    char text[512];
    size_t o;
};

static int list_lease(void *arg, const mvcc_lease *l)
{
    struct list *s = arg;

    s->o += (size_t)snprintf(s->text + s->o, sizeof(s->text) - s->o, "%s%lld/%lld/%llu",
                             s->o ? " " : "", (long long)l->id, (long long)l->ttl,
                             (unsigned long long)l->renewed_index);
    return 0;
}

static const char *leases_str(fx *f, struct list *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(mvcc_lease_list(f->m, list_lease, s), 0);
    return s->text;
}

static int list_key(void *arg, const ProtobufCBinaryData *key, int64_t lease)
{
    struct list *s = arg;

    s->o += (size_t)snprintf(s->text + s->o, sizeof(s->text) - s->o, "%s%.*s=%lld",
                             s->o ? " " : "", (int)key->len, (const char *)key->data,
                             (long long)lease);
    return 0;
}

static const char *attached_str(fx *f, struct list *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(mvcc_lease_attached(f->m, list_key, s), 0);
    return s->text;
}

static void test_store_persists(void **state)
{
    fx *f = *state;
    struct list s;

    assert_string_equal(leases_str(f, &s), "");      /* no table yet */
    lease_put(f, 7, 10, 3);
    lease_put(f, 2, 60, 4);
    lease_put(f, -5, 2, 5);
    lease_put(f, 7, 10, 9);                           /* a renewal overwrites */
    assert_string_equal(leases_str(f, &s), "2/60/4 7/10/9 -5/2/5");
    reopen(f);
    assert_string_equal(leases_str(f, &s), "2/60/4 7/10/9 -5/2/5");
    assert_int_equal(mvcc_consistent_index(f->m), f->ci);
    /* outside a batch: refused */
    assert_int_equal(mvcc_lease_put(f->m, &(mvcc_lease){1, 1, 1}), CE_INVAL);
}

static void test_store_aborted_batch(void **state)
{
    fx *f = *state;
    struct list s;

    /* the first batch creating the table is aborted: no trace, and the next one works */
    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_lease_put(f->m, &(mvcc_lease){1, 5, 1}), 0);
    mvcc_abort(f->m);
    assert_string_equal(leases_str(f, &s), "");
    lease_put(f, 3, 5, 2);
    assert_string_equal(leases_str(f, &s), "3/5/2");
    assert_int_equal(mvcc_flush(f->m), 0);
    reopen(f);
    assert_string_equal(leases_str(f, &s), "3/5/2");
}

struct events {
    int n;
    int64_t rev[16];
    char keys[16][8];
    int type[16];
};

static void sink(void *arg, const Mvccpb__Event *ev)
{
    struct events *e = arg;

    if (e->n >= 16)
        return;
    e->rev[e->n] = ev->kv->mod_revision;
    e->type[e->n] = ev->type;
    snprintf(e->keys[e->n], sizeof(e->keys[0]), "%.*s", (int)ev->kv->key.len,
             (const char *)ev->kv->key.data);
    e->n++;
}

static void test_store_revoke(void **state)
{
    fx *f = *state;
    ProtobufCBinaryData keys[] = {B("a"), B("b"), B("c"), B("gone"), B("other")};
    Etcdserverpb__LeaseRevokeResponse *resp = NULL;
    struct events ev = {0};
    struct list s;
    int64_t rev;

    lease_put(f, 9, 30, 1);
    lease_put(f, 4, 30, 2);
    put_kv(f, "a", 9);
    put_kv(f, "b", 9);
    put_kv(f, "c", 9);
    put_kv(f, "free", 0);
    put_kv(f, "other", 4);      /* listed by mistake: attached elsewhere, must stay */
    assert_string_equal(attached_str(f, &s), "a=9 b=9 c=9 other=4");
    rev = mvcc_rev(f->m);
    mvcc_set_event_sink(f->m, sink, &ev);
    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_lease_revoke(f->m, 9, keys, 5, &resp), 0);
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
    /* one revision, one DELETE per key, in the order given */
    assert_int_equal(mvcc_rev(f->m), rev + 1);
    assert_int_equal(resp->header->revision, rev + 1);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_int_equal(ev.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ev.type[i], MVCCPB__EVENT__EVENT_TYPE__DELETE);
        assert_int_equal(ev.rev[i], rev + 1);
        assert_int_equal(ev.keys[i][0], "abc"[i]);
    }
    assert_string_equal(attached_str(f, &s), "other=4");
    assert_string_equal(leases_str(f, &s), "4/30/2");
    reopen(f);
    assert_string_equal(attached_str(f, &s), "other=4");
    assert_string_equal(leases_str(f, &s), "4/30/2");
}

static void test_store_revoke_no_keys(void **state)
{
    fx *f = *state;
    Etcdserverpb__LeaseRevokeResponse *resp = NULL;
    struct list s;
    int64_t rev;

    put_kv(f, "x", 0);
    lease_put(f, 1, 10, 1);
    rev = mvcc_rev(f->m);
    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_lease_revoke(f->m, 1, NULL, 0, &resp), 0);
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
    assert_int_equal(mvcc_rev(f->m), rev);             /* nothing deleted: no revision */
    assert_int_equal(resp->header->revision, rev);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    assert_string_equal(leases_str(f, &s), "");
    assert_int_equal(mvcc_lease_revoke(f->m, 1, NULL, 0, NULL), CE_INVAL); /* no batch */
}

static void test_store_attached_follows_puts(void **state)
{
    fx *f = *state;
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    Etcdserverpb__DeleteRangeResponse *dresp = NULL;
    struct list s;

    put_kv(f, "k1", 5);
    put_kv(f, "k2", 5);
    put_kv(f, "k3", 6);
    put_kv(f, "k2", 0);         /* detached by a put without lease */
    put_kv(f, "k3", 5);         /* moved */
    d.key = B("k1");
    assert_int_equal(mvcc_begin(f->m), 0);
    assert_int_equal(mvcc_delete(f->m, &d, &dresp), 0);
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
    protobuf_c_message_free_unpacked(&dresp->base, NULL);
    assert_string_equal(attached_str(f, &s), "k3=5");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grant_renew_revoke),
        cmocka_unit_test(test_ids_sorted_and_many),
        cmocka_unit_test(test_ids_by_expiry),
        cmocka_unit_test(test_expiry_order_and_retry),
        cmocka_unit_test(test_expiry_rule),
        cmocka_unit_test(test_promotion_grace),
        cmocka_unit_test(test_attach_move_detach),
        cmocka_unit_test(test_detach_ranges),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test_setup_teardown(test_store_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_persists, setup_deferred, teardown),
        cmocka_unit_test_setup_teardown(test_store_aborted_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_aborted_batch, setup_deferred, teardown),
        cmocka_unit_test_setup_teardown(test_store_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_revoke, setup_deferred, teardown),
        cmocka_unit_test_setup_teardown(test_store_revoke_no_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_attached_follows_puts, setup_deferred, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
