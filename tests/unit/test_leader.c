/*
 * test_leader.c: Lease leader election against an in-memory Lease store (with
 * resourceVersion conflicts and injectable failures) and a fake clock: create, renew,
 * no takeover while renewed, takeover only a full lease duration after the record last
 * changed on the candidate's own clock (remote timestamps ignored), immediate takeover of a
 * released lease, racing candidates (exactly one wins, seeded, replay with LEADER_SEED), and
 * with the real election thread: on_started, release on stop letting a standby in at once,
 * on_lost after the renew deadline or when another holder shows up, and the
 * leader_election_master_status gauge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "runtime/leader.h"
#include "runtime/metrics.h"

/* 2026-11-21T10:00:00Z */
#define T0_US 1795255200000000LL

/* ---- the in-memory Lease ---- */

struct backing {
    pthread_mutex_t mu;
    bool exists;
    struct leader_record rec;
    unsigned long version;
    atomic_int fail;                 /* nonzero: every call returns it */
    pthread_barrier_t *get_barrier;  /* set: get waits here after reading (races) */
    atomic_int gets, updates, creates, conflicts;
};

static int fake_get(void *ctx, struct leader_record *rec, char **version)
{
    struct backing *b = ctx;
    char buf[32];
    int rc = atomic_load(&b->fail);

    atomic_fetch_add(&b->gets, 1);
    if (rc)
        return rc;
    pthread_mutex_lock(&b->mu);
    if (b->exists) {
        *rec = b->rec;
        snprintf(buf, sizeof(buf), "%lu", b->version);
        *version = strdup(buf);
    } else {
        rc = CE_NOTFOUND;
    }
    pthread_mutex_unlock(&b->mu);
    if (b->get_barrier)
        pthread_barrier_wait(b->get_barrier);
    return rc;
}

static int fake_create(void *ctx, const struct leader_record *rec)
{
    struct backing *b = ctx;
    int rc = atomic_load(&b->fail);

    if (rc)
        return rc;
    pthread_mutex_lock(&b->mu);
    if (b->exists) {
        rc = CE_EXISTS;
        atomic_fetch_add(&b->conflicts, 1);
    } else {
        b->exists = true;
        b->rec = *rec;
        b->version++;
        atomic_fetch_add(&b->creates, 1);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static int fake_update(void *ctx, const struct leader_record *rec, const char *version)
{
    struct backing *b = ctx;
    int rc = atomic_load(&b->fail);

    if (rc)
        return rc;
    pthread_mutex_lock(&b->mu);
    if (!b->exists) {
        rc = CE_NOTFOUND;
    } else if (strtoul(version, NULL, 10) != b->version) {
        rc = CE_K8S_CONFLICT;
        atomic_fetch_add(&b->conflicts, 1);
    } else {
        b->rec = *rec;
        b->version++;
        atomic_fetch_add(&b->updates, 1);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Writes rec as some other actor would (bumps the version). */
static void backing_put(struct backing *b, const char *holder, int dur, const char *renew,
                        int transitions)
{
    pthread_mutex_lock(&b->mu);
    b->exists = true;
    memset(&b->rec, 0, sizeof(b->rec));
    snprintf(b->rec.holder, sizeof(b->rec.holder), "%s", holder);
    b->rec.lease_duration_s = dur;
    snprintf(b->rec.renew_time, sizeof(b->rec.renew_time), "%s", renew);
    snprintf(b->rec.acquire_time, sizeof(b->rec.acquire_time), "%s", renew);
    b->rec.transitions = transitions;
    b->version++;
    pthread_mutex_unlock(&b->mu);
}

static struct leader_record backing_rec(struct backing *b)
{
    struct leader_record r;

    pthread_mutex_lock(&b->mu);
    r = b->rec;
    pthread_mutex_unlock(&b->mu);
    return r;
}

static struct backing *backing_new(void)
{
    struct backing *b = calloc(1, sizeof(*b));

    assert_non_null(b);
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

static void backing_free(struct backing *b)
{
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* ---- fake clock ---- */

struct fclock {
    _Atomic int64_t mono_ms;
    _Atomic int64_t wall_us;
};

static int64_t f_mono(void *ctx) { return atomic_load(&((struct fclock *)ctx)->mono_ms); }
static int64_t f_wall(void *ctx) { return atomic_load(&((struct fclock *)ctx)->wall_us); }

static void advance(struct fclock *c, int64_t ms)
{
    atomic_fetch_add(&c->mono_ms, ms);
    atomic_fetch_add(&c->wall_us, ms * 1000);
}

/* ---- electors ---- */

struct events {
    atomic_int started, lost, new_leader;
    char last_leader[LEADER_ID_MAX];
};

static void ev_started(void *arg) { atomic_fetch_add(&((struct events *)arg)->started, 1); }
static void ev_lost(void *arg) { atomic_fetch_add(&((struct events *)arg)->lost, 1); }

static void ev_new_leader(void *arg, const char *id)
{
    struct events *e = arg;

    snprintf(e->last_leader, sizeof(e->last_leader), "%s", id);
    atomic_fetch_add(&e->new_leader, 1);
}

static leader *elector(struct backing *b, const char *id, struct fclock *fc, metrics *m,
                       struct events *ev, int lease_ms, int renew_ms, int retry_ms)
{
    struct leader_store st = {.get = fake_get, .create = fake_create, .update = fake_update,
                              .ctx = b};
    struct leader_clock clk = {.mono_ms = f_mono, .wall_us = f_wall, .ctx = fc};
    struct leader_opts o = {.namespace = "cetcd-system", .name = "cetcd-operator",
                            .identity = id, .lease_duration_ms = lease_ms,
                            .renew_deadline_ms = renew_ms, .retry_period_ms = retry_ms,
                            .on_started = ev_started, .on_lost = ev_lost,
                            .on_new_leader = ev_new_leader, .arg = ev, .metrics = m,
                            .clock = fc ? &clk : NULL};
    leader *l;

    assert_int_equal(leader_new_store(&st, &o, &l), 0);
    return l;
}

static leader *fake_elector(struct backing *b, const char *id, struct fclock *fc,
                            struct events *ev)
{
    return elector(b, id, fc, NULL, ev, 0, 0, 0);
}

/* ---- deterministic tests (fake clock, leader_try) ---- */

static void test_format_time(void **state)
{
    char t[LEADER_TIME_MAX];

    (void)state;
    leader_format_time(T0_US, t);
    assert_string_equal(t, "2026-11-21T10:00:00.000000Z");
    leader_format_time(T0_US + 1234567, t);
    assert_string_equal(t, "2026-11-21T10:00:01.234567Z");
}

static void test_acquire_and_renew(void **state)
{
    struct backing *b = backing_new();
    struct fclock fc = {1000, T0_US};
    struct events ev = {0};
    metrics *m;
    leader *a;
    struct leader_record r;
    double v;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    a = elector(b, "op-a", &fc, m, &ev, 0, 0, 0);
    assert_int_equal(metrics_value(m, M_LEADER_STATUS, "name=\"cetcd-operator\"", &v), 0);
    assert_true(v == 0);
    assert_false(leader_is_leader(a));
    assert_true(leader_try(a)); /* no lease: created */
    assert_true(leader_is_leader(a));
    assert_int_equal(atomic_load(&b->creates), 1);
    r = backing_rec(b);
    assert_string_equal(r.holder, "op-a");
    assert_int_equal(r.lease_duration_s, 15);
    assert_string_equal(r.acquire_time, "2026-11-21T10:00:00.000000Z");
    assert_string_equal(r.renew_time, "2026-11-21T10:00:00.000000Z");
    assert_int_equal(r.transitions, 0);
    assert_int_equal(metrics_value(m, M_LEADER_STATUS, "name=\"cetcd-operator\"", &v), 0);
    assert_true(v == 1);
    assert_string_equal(ev.last_leader, "op-a");

    advance(&fc, 2000);
    assert_true(leader_try(a)); /* renew: only renewTime moves */
    r = backing_rec(b);
    assert_string_equal(r.holder, "op-a");
    assert_string_equal(r.acquire_time, "2026-11-21T10:00:00.000000Z");
    assert_string_equal(r.renew_time, "2026-11-21T10:00:02.000000Z");
    assert_int_equal(r.transitions, 0);
    assert_int_equal(atomic_load(&b->updates), 1);
    assert_int_equal(atomic_load(&ev.new_leader), 1);

    /* leadership as reported is bounded by the renew deadline without a renewal */
    advance(&fc, 9999);
    assert_true(leader_is_leader(a));
    advance(&fc, 1);
    assert_false(leader_is_leader(a));
    assert_true(leader_try(a));
    assert_true(leader_is_leader(a));
    leader_free(a);
    metrics_free(m);
    backing_free(b);
}

static void test_no_takeover_while_renewed(void **state)
{
    struct backing *b = backing_new();
    struct fclock fc = {1000, T0_US};
    struct events ea = {0}, eb = {0};
    leader *a = fake_elector(b, "op-a", &fc, &ea);
    leader *c = fake_elector(b, "op-b", &fc, &eb);

    (void)state;
    assert_true(leader_try(a));
    for (int s = 1; s <= 120; s++) {
        advance(&fc, 1000);
        if (s % 2 == 0)
            assert_true(leader_try(a));
        assert_false(leader_try(c));
        assert_false(leader_is_leader(c));
    }
    assert_string_equal(backing_rec(b).holder, "op-a");
    assert_string_equal(eb.last_leader, "op-a");
    leader_free(a);
    leader_free(c);
    backing_free(b);
}

static void test_takeover_after_expiry(void **state)
{
    struct backing *b = backing_new();
    struct fclock fc = {1000, T0_US};
    struct events ea = {0}, eb = {0};
    leader *a = fake_elector(b, "op-a", &fc, &ea);
    leader *c = fake_elector(b, "op-b", &fc, &eb);
    struct leader_record r;

    (void)state;
    assert_true(leader_try(a));
    assert_false(leader_try(c)); /* first sight of the record: valid for 15 s from now */
    advance(&fc, 14999);
    assert_false(leader_try(c));
    advance(&fc, 1);
    assert_true(leader_try(c)); /* a stopped renewing 15 s ago (by c's clock) */
    r = backing_rec(b);
    assert_string_equal(r.holder, "op-b");
    assert_int_equal(r.transitions, 1);
    assert_string_equal(r.acquire_time, "2026-11-21T10:00:15.000000Z");
    assert_string_equal(r.renew_time, "2026-11-21T10:00:15.000000Z");
    /* a comes back: sees b holding, and is no longer leader */
    assert_false(leader_try(a));
    assert_false(leader_is_leader(a));
    assert_string_equal(ea.last_leader, "op-b");
    leader_free(a);
    leader_free(c);
    backing_free(b);
}

static void test_remote_time_not_trusted(void **state)
{
    struct backing *b = backing_new();
    struct fclock fc = {5000, T0_US};
    struct events ev = {0};
    leader *c = fake_elector(b, "op-b", &fc, &ev);

    (void)state;
    /* renewTime in the distant past: still waits a full duration from its own first sight */
    backing_put(b, "op-x", 15, "2000-01-01T00:00:00.000000Z", 7);
    assert_false(leader_try(c));
    advance(&fc, 10000);
    /* the holder renews (the record changes): the wait starts over */
    backing_put(b, "op-x", 15, "2000-01-01T00:00:10.000000Z", 7);
    assert_false(leader_try(c));
    advance(&fc, 14999);
    assert_false(leader_try(c));
    advance(&fc, 1);
    assert_true(leader_try(c));
    assert_int_equal(backing_rec(b).transitions, 8);
    /* the holder's own leaseDurationSeconds rules */
    backing_put(b, "op-y", 3, "2000-01-01T00:00:00.000000Z", 8);
    assert_false(leader_try(c));
    assert_false(leader_is_leader(c));
    advance(&fc, 3000);
    assert_true(leader_try(c));
    leader_free(c);
    backing_free(b);
}

static void test_empty_holder_taken_at_once(void **state)
{
    struct backing *b = backing_new();
    struct fclock fc = {5000, T0_US};
    struct events ev = {0};
    leader *c = fake_elector(b, "op-b", &fc, &ev);

    (void)state;
    backing_put(b, "", 15, "2026-11-21T09:59:59.000000Z", 4);
    assert_true(leader_try(c));
    assert_string_equal(backing_rec(b).holder, "op-b");
    assert_int_equal(backing_rec(b).transitions, 5);
    leader_free(c);
    backing_free(b);
}

static void test_store_errors(void **state)
{
    struct backing *b = backing_new();
    struct fclock fc = {5000, T0_US};
    struct events ev = {0};
    leader *a = fake_elector(b, "op-a", &fc, &ev);

    (void)state;
    atomic_store(&b->fail, CE_UNREACHABLE);
    assert_false(leader_try(a));
    assert_false(leader_is_leader(a));
    atomic_store(&b->fail, 0);
    assert_true(leader_try(a));
    atomic_store(&b->fail, CE_K8S_FORBIDDEN);
    advance(&fc, 2000);
    assert_false(leader_try(a));
    assert_true(leader_is_leader(a)); /* a failed renewal is not yet a loss */
    leader_free(a);
    backing_free(b);
}

static void test_release_on_stop(void **state)
{
    struct backing *b = backing_new();
    struct fclock fc = {1000, T0_US};
    struct events ea = {0}, eb = {0};
    metrics *m;
    leader *a, *c;
    struct leader_record r;
    double v;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    a = elector(b, "op-a", &fc, m, &ea, 0, 0, 0);
    c = fake_elector(b, "op-b", &fc, &eb);
    assert_true(leader_try(a));
    assert_false(leader_try(c));
    advance(&fc, 1000);
    leader_stop(a, true);
    assert_false(leader_is_leader(a));
    assert_int_equal(metrics_value(m, M_LEADER_STATUS, "name=\"cetcd-operator\"", &v), 0);
    assert_true(v == 0);
    r = backing_rec(b);
    assert_string_equal(r.holder, "");
    assert_int_equal(r.lease_duration_s, 1);
    assert_int_equal(r.transitions, 0);
    assert_string_equal(r.renew_time, "2026-11-21T10:00:01.000000Z");
    assert_true(leader_try(c)); /* no waiting for expiry */
    assert_int_equal(backing_rec(b).transitions, 1);
    /* releasing a lease someone else holds changes nothing */
    leader_stop(a, true);
    assert_string_equal(backing_rec(b).holder, "op-b");
    leader_free(a);
    leader_free(c);
    metrics_free(m);
    backing_free(b);
}

/* ---- racing candidates ---- */

struct racer {
    leader *l;
    bool won;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    r->won = leader_try(r->l);
    return NULL;
}

/* Both candidates read the same version before either writes; exactly one must win. */
static void race_round(struct backing *b, leader *x, leader *y)
{
    pthread_barrier_t bar;
    struct racer rx = {x, false}, ry = {y, false};
    pthread_t tx, ty;

    pthread_barrier_init(&bar, NULL, 2);
    b->get_barrier = &bar;
    assert_int_equal(pthread_create(&tx, NULL, race, &rx), 0);
    assert_int_equal(pthread_create(&ty, NULL, race, &ry), 0);
    pthread_join(tx, NULL);
    pthread_join(ty, NULL);
    b->get_barrier = NULL;
    pthread_barrier_destroy(&bar);
    assert_true(rx.won != ry.won);
    assert_string_equal(backing_rec(b).holder, rx.won ? "op-a" : "op-b");
    assert_true(leader_is_leader(rx.won ? x : y));
}

static void test_racing_candidates(void **state)
{
    const char *env = getenv("LEADER_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    unsigned rnd = seed;

    (void)state;
    printf("test_leader race seed %u (replay: LEADER_SEED=%u)\n", seed, seed);
    for (int round = 0; round < 30; round++) {
        struct backing *b = backing_new();
        struct fclock fc = {1000, T0_US};
        struct events ea = {0}, eb = {0};
        leader *a = fake_elector(b, "op-a", &fc, &ea);
        leader *c = fake_elector(b, "op-b", &fc, &eb);
        int kind = (int)(rand_r(&rnd) % 3);
        int conflicts;

        if (kind == 1) { /* an expired lease of a third party, seen by both long ago */
            backing_put(b, "op-x", 15, "2026-11-21T09:00:00.000000Z", 2);
            assert_false(leader_try(a));
            assert_false(leader_try(c));
            advance(&fc, 15000 + (int64_t)(rand_r(&rnd) % 5000));
        } else if (kind == 2) { /* a released lease */
            backing_put(b, "", 1, "2026-11-21T09:00:00.000000Z", 2);
        }
        conflicts = atomic_load(&b->conflicts);
        race_round(b, a, c);
        assert_int_equal(atomic_load(&b->conflicts), conflicts + 1);
        assert_int_equal(backing_rec(b).transitions, kind == 0 ? 0 : 3);
        /* the loser stays out while the winner renews */
        for (int i = 0; i < 10; i++) {
            advance(&fc, 2000);
            assert_true(leader_try(leader_is_leader(a) ? a : c));
            assert_false(leader_try(leader_is_leader(a) ? c : a));
        }
        leader_free(a);
        leader_free(c);
        backing_free(b);
    }
}

static void test_bad_options(void **state)
{
    struct backing *b = backing_new();
    struct leader_store st = {.get = fake_get, .create = fake_create, .update = fake_update,
                              .ctx = b};
    struct leader_opts o = {.name = "n", .identity = "id"};
    char longid[LEADER_ID_MAX + 1];
    leader *l;

    (void)state;
    o.lease_duration_ms = 10000; /* not above the default renew deadline */
    assert_int_equal(leader_new_store(&st, &o, &l), CE_INVAL);
    o.lease_duration_ms = 15000;
    o.retry_period_ms = 9000; /* renew deadline must exceed 1.2 x retry */
    assert_int_equal(leader_new_store(&st, &o, &l), CE_INVAL);
    o.retry_period_ms = 0;
    o.identity = "";
    assert_int_equal(leader_new_store(&st, &o, &l), CE_INVAL);
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    o.identity = longid;
    assert_int_equal(leader_new_store(&st, &o, &l), CE_INVAL);
    o.identity = "id";
    o.name = NULL;
    assert_int_equal(leader_new_store(&st, &o, &l), CE_INVAL);
    o.name = "n";
    assert_int_equal(leader_new_store(&st, &o, &l), 0);
    assert_int_equal(leader_start(l), 0);
    assert_int_equal(leader_start(l), CE_INVAL);
    leader_free(l); /* stops the running thread */
    backing_free(b);
}

/* ---- the election thread (real clock, short periods) ---- */

#define LEASE_MS 1000
#define RENEW_MS 600
#define RETRY_MS 50

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (bounded: 5 s) until *v reaches want; the time it took in ms. */
static int64_t await(atomic_int *v, int want)
{
    int64_t t0 = now_ms();
    struct timespec ts = {0, 1000000};

    while (atomic_load(v) < want && now_ms() - t0 < 5000)
        nanosleep(&ts, NULL);
    assert_true(atomic_load(v) >= want);
    return now_ms() - t0;
}

static void test_thread_started_release_standby(void **state)
{
    struct backing *b = backing_new();
    struct events ea = {0}, eb = {0};
    metrics *m;
    leader *a, *c;
    int64_t took;
    double v;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    a = elector(b, "op-a", NULL, m, &ea, LEASE_MS, RENEW_MS, RETRY_MS);
    c = elector(b, "op-b", NULL, NULL, &eb, LEASE_MS, RENEW_MS, RETRY_MS);
    assert_int_equal(leader_start(a), 0);
    await(&ea.started, 1);
    assert_true(leader_is_leader(a));
    assert_int_equal(metrics_value(m, M_LEADER_STATUS, "name=\"cetcd-operator\"", &v), 0);
    assert_true(v == 1);
    assert_int_equal(leader_start(c), 0);
    /* a renews (updates keep coming) and b stays a standby */
    int updates = atomic_load(&b->updates);
    await(&b->updates, updates + 30); /* ~1.5 s, more than a lease duration */
    assert_int_equal(atomic_load(&eb.started), 0);
    assert_false(leader_is_leader(c));
    assert_string_equal(eb.last_leader, "op-a");
    /* a steps down with release: b takes over within a few retries, not a lease duration */
    leader_stop(a, true);
    took = await(&eb.started, 1);
    assert_true(took < LEASE_MS - 100);
    assert_true(leader_is_leader(c));
    assert_false(leader_is_leader(a));
    assert_int_equal(metrics_value(m, M_LEADER_STATUS, "name=\"cetcd-operator\"", &v), 0);
    assert_true(v == 0);
    assert_int_equal(atomic_load(&ea.lost), 0); /* a stop is not a loss */
    assert_int_equal(backing_rec(b).transitions, 1);
    leader_stop(c, false);
    assert_string_equal(backing_rec(b).holder, "op-b"); /* not released */
    assert_int_equal(atomic_load(&eb.lost), 0);
    leader_free(a);
    leader_free(c);
    metrics_free(m);
    backing_free(b);
}

static void test_thread_lost_on_renew_failure(void **state)
{
    struct backing *b = backing_new();
    struct events ea = {0};
    metrics *m;
    leader *a;
    int64_t took;
    double v;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    a = elector(b, "op-a", NULL, m, &ea, LEASE_MS, RENEW_MS, RETRY_MS);
    assert_int_equal(leader_start(a), 0);
    await(&ea.started, 1);
    atomic_store(&b->fail, CE_UNREACHABLE);
    took = await(&ea.lost, 1);
    /* the last success was at most one retry period before the failures began */
    assert_true(took >= RENEW_MS - RETRY_MS - 10);
    assert_false(leader_is_leader(a));
    assert_int_equal(metrics_value(m, M_LEADER_STATUS, "name=\"cetcd-operator\"", &v), 0);
    assert_true(v == 0);
    atomic_store(&b->fail, 0);
    leader_stop(a, true); /* lost: nothing to release */
    assert_string_equal(backing_rec(b).holder, "op-a");
    assert_int_equal(atomic_load(&ea.lost), 1);
    leader_free(a);
    metrics_free(m);
    backing_free(b);
}

static void test_thread_lost_when_other_holds(void **state)
{
    struct backing *b = backing_new();
    struct events ea = {0};
    leader *a;
    int64_t took;

    (void)state;
    a = elector(b, "op-a", NULL, NULL, &ea, LEASE_MS, RENEW_MS, RETRY_MS);
    assert_int_equal(leader_start(a), 0);
    await(&ea.started, 1);
    backing_put(b, "op-z", 15, "2026-11-21T10:00:00.000000Z", 1);
    took = await(&ea.lost, 1);
    assert_true(took < RENEW_MS - RETRY_MS); /* at the next renewal, not the deadline */
    assert_false(leader_is_leader(a));
    leader_free(a);
    backing_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_acquire_and_renew),
        cmocka_unit_test(test_no_takeover_while_renewed),
        cmocka_unit_test(test_takeover_after_expiry),
        cmocka_unit_test(test_remote_time_not_trusted),
        cmocka_unit_test(test_empty_holder_taken_at_once),
        cmocka_unit_test(test_store_errors),
        cmocka_unit_test(test_release_on_stop),
        cmocka_unit_test(test_racing_candidates),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_thread_started_release_standby),
        cmocka_unit_test(test_thread_lost_on_renew_failure),
        cmocka_unit_test(test_thread_lost_when_other_holds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
