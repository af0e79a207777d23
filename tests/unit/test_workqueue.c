/*
 * test_workqueue.c: the rate-limited work queue: dedup, re-queue of a key added while it is
 * processed, delayed adds in deadline order (earlier deadline wins), exponential backoff and
 * forget, shutdown waking blocked workers, the metrics it exports, and a seeded stress run
 * checking that no key is ever processed by two workers at once and that every add is
 * followed by a processing of its key. Replay the stress with WQ_SEED=<seed> (printed).
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
#include "runtime/workqueue.h"

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* wq_get that must return key */
static void get_expect(wq *q, const char *want)
{
    char *key;

    assert_int_equal(wq_get(q, &key), 0);
    assert_string_equal(key, want);
    wq_done(q, key);
    free(key);
}

static void test_dedup(void **state)
{
    wq *q;

    (void)state;
    assert_int_equal(wq_new(NULL, &q), 0);
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_add(q, "ns/b"), 0);
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_len(q), 2);
    get_expect(q, "ns/a");
    get_expect(q, "ns/b");
    assert_int_equal(wq_len(q), 0);
    assert_int_equal(wq_add(q, ""), CE_INVAL);
    assert_int_equal(wq_add(q, NULL), CE_INVAL);
    wq_free(q);
}

static void test_dirty_while_processing(void **state)
{
    wq *q;
    char *key;

    (void)state;
    assert_int_equal(wq_new(NULL, &q), 0);
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_get(q, &key), 0);
    assert_string_equal(key, "ns/a");
    /* added twice while processing: not handed out again until done, then once */
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_add(q, "ns/a"), 0);
    assert_int_equal(wq_len(q), 0);
    assert_int_equal(wq_add(q, "ns/b"), 0);
    get_expect(q, "ns/b");
    wq_done(q, key);
    free(key);
    assert_int_equal(wq_len(q), 1);
    get_expect(q, "ns/a");
    assert_int_equal(wq_len(q), 0);
    wq_done(q, "ns/never-got"); /* harmless */
    wq_free(q);
}

static void test_delayed_ordering(void **state)
{
    wq *q;
    int64_t t0;

    (void)state;
    assert_int_equal(wq_new(NULL, &q), 0);
    t0 = mono_ms();
    assert_int_equal(wq_add_after(q, "c", 90), 0);
    assert_int_equal(wq_add_after(q, "a", 30), 0);
    assert_int_equal(wq_add_after(q, "b", 60), 0);
    assert_int_equal(wq_add_after(q, "a", 5000), 0); /* later deadline: ignored */
    assert_int_equal(wq_add_after(q, "b", 10), 0);   /* earlier deadline: wins */
    assert_int_equal(wq_len(q), 0);
    get_expect(q, "b");
    assert_true(mono_ms() - t0 >= 10);
    get_expect(q, "a");
    assert_true(mono_ms() - t0 >= 30);
    get_expect(q, "c");
    assert_true(mono_ms() - t0 >= 90);
    assert_true(mono_ms() - t0 < 4000); /* the 5 s deadline of "a" was not kept */
    /* keys due together leave in deadline order even when fetched late; the deadlines are
     * 100 ms apart so that a loaded machine pausing between the calls cannot reorder them */
    assert_int_equal(wq_add_after(q, "z", 300), 0);
    assert_int_equal(wq_add_after(q, "y", 200), 0);
    assert_int_equal(wq_add_after(q, "x", 100), 0);
    for (int i = 0; i < 500 && wq_len(q) < 3; i++) /* bounded: at most 5 s */
        sleep_ms(10);
    assert_int_equal(wq_len(q), 3);
    get_expect(q, "x");
    get_expect(q, "y");
    get_expect(q, "z");
    /* ms <= 0 is an immediate add */
    assert_int_equal(wq_add_after(q, "now", 0), 0);
    assert_int_equal(wq_len(q), 1);
    get_expect(q, "now");
    wq_free(q);
}

static void test_backoff_and_forget(void **state)
{
    wq *q;
    struct wq_opts o = {.base_delay_ms = 20, .max_delay_ms = 80};
    const int64_t want[] = {20, 40, 80, 80, 80};
    int64_t t0;

    (void)state;
    assert_int_equal(wq_new(&o, &q), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(wq_num_requeues(q, "k"), i);
        assert_int_equal(wq_next_backoff_ms(q, "k"), want[i]);
        t0 = mono_ms();
        assert_int_equal(wq_add_rate_limited(q, "k"), 0);
        get_expect(q, "k");
        assert_true(mono_ms() - t0 >= want[i]);
    }
    assert_int_equal(wq_num_requeues(q, "k"), 5);
    assert_int_equal(wq_num_requeues(q, "other"), 0);
    wq_forget(q, "k");
    assert_int_equal(wq_num_requeues(q, "k"), 0);
    assert_int_equal(wq_next_backoff_ms(q, "k"), 20);
    wq_free(q);

    /* defaults: 200 ms doubling to 60 s */
    assert_int_equal(wq_new(NULL, &q), 0);
    assert_int_equal(wq_next_backoff_ms(q, "k"), 200);
    for (int i = 0; i < 9; i++)
        assert_int_equal(wq_add_rate_limited(q, "k"), 0);
    assert_int_equal(wq_next_backoff_ms(q, "k"), 60000); /* 200 * 2^9 = 102400 capped */
    for (int i = 0; i < 100; i++)
        assert_int_equal(wq_add_rate_limited(q, "k"), 0);
    assert_int_equal(wq_next_backoff_ms(q, "k"), 60000);
    wq_free(q); /* frees the pending delayed key */

    o.base_delay_ms = 100;
    o.max_delay_ms = 10;
    assert_int_equal(wq_new(&o, &q), CE_INVAL);
}

struct waiter {
    wq *q;
    atomic_int entered;
    atomic_int stopped;
};

static void *wait_get(void *arg)
{
    struct waiter *w = arg;
    char *key;

    atomic_fetch_add(&w->entered, 1);
    if (wq_get(w->q, &key) == CE_STOPPED && key == NULL)
        atomic_fetch_add(&w->stopped, 1);
    free(key);
    return NULL;
}

static void test_shutdown_wakes_waiters(void **state)
{
    struct waiter w = {0};
    pthread_t th[3];
    char *key;

    (void)state;
    assert_int_equal(wq_new(NULL, &w.q), 0);
    assert_int_equal(wq_add_after(w.q, "far", 600000), 0); /* waiters use a timed wait */
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, wait_get, &w), 0);
    while (atomic_load(&w.entered) < 3)
        sleep_ms(1);
    sleep_ms(20); /* let them block (the result does not depend on it) */
    assert_int_equal(atomic_load(&w.stopped), 0);
    assert_false(wq_shutting_down(w.q));
    wq_shutdown(w.q);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&w.stopped), 3);
    assert_true(wq_shutting_down(w.q));
    assert_int_equal(wq_add(w.q, "late"), 0); /* ignored */
    assert_int_equal(wq_len(w.q), 0);
    assert_int_equal(wq_get(w.q, &key), CE_STOPPED);
    assert_null(key);
    wq_free(w.q);
}

static void test_metrics(void **state)
{
    metrics *m;
    wq *q;
    struct wq_opts o = {.name = "etcdcluster", .base_delay_ms = 1, .max_delay_ms = 2};
    double v;
    char *key;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    o.metrics = m;
    assert_int_equal(wq_new(&o, &q), 0);
    assert_int_equal(metrics_value(m, M_WQ_DEPTH, "name=\"etcdcluster\"", &v), 0);
    assert_true(v == 0);
    assert_int_equal(wq_add(q, "a"), 0);
    assert_int_equal(wq_add(q, "a"), 0); /* deduplicated: not counted */
    assert_int_equal(wq_add(q, "b"), 0);
    assert_int_equal(metrics_value(m, M_WQ_DEPTH, "name=\"etcdcluster\"", &v), 0);
    assert_true(v == 2);
    assert_int_equal(wq_get(q, &key), 0);
    assert_int_equal(metrics_value(m, M_WQ_DEPTH, "name=\"etcdcluster\"", &v), 0);
    assert_true(v == 1);
    assert_int_equal(wq_add_rate_limited(q, key), 0);
    wq_done(q, key);
    free(key);
    assert_int_equal(metrics_value(m, M_WQ_ADDS, "name=\"etcdcluster\"", &v), 0);
    assert_true(v == 2);
    assert_int_equal(metrics_value(m, M_WQ_RETRIES, "name=\"etcdcluster\"", &v), 0);
    assert_true(v == 1);
    get_expect(q, "b");
    get_expect(q, "a"); /* the rate-limited add */
    assert_int_equal(metrics_value(m, M_WQ_ADDS, "name=\"etcdcluster\"", &v), 0);
    assert_true(v == 3);
    wq_free(q);
    metrics_free(m);
}

/* ---- stress ---- */

#define NKEYS 16
#define NWORKERS 4
#define NADDS 20000

struct stress {
    wq *q;
    atomic_int busy[NKEYS];
    atomic_uint add_gen[NKEYS];  /* bumped before each add of the key */
    atomic_uint seen_gen[NKEYS]; /* add_gen read at the start of a processing */
    atomic_int overlaps, processed, bad_keys;
    unsigned seed;
};

static void *stress_worker(void *arg)
{
    struct stress *s = arg;
    unsigned rnd = s->seed ^ (unsigned)(uintptr_t)pthread_self();
    char *key;

    while (wq_get(s->q, &key) == 0) {
        int k = atoi(key + 1);

        if (key[0] != 'k' || k < 0 || k >= NKEYS) {
            atomic_fetch_add(&s->bad_keys, 1);
        } else {
            if (atomic_exchange(&s->busy[k], 1) != 0)
                atomic_fetch_add(&s->overlaps, 1);
            atomic_store(&s->seen_gen[k], atomic_load(&s->add_gen[k]));
            for (int i = 0; i < (int)(rand_r(&rnd) % 64); i++)
                sched_yield();
            atomic_store(&s->busy[k], 0);
            if (rand_r(&rnd) % 10 == 0)
                wq_add_rate_limited(s->q, key);
            else
                wq_forget(s->q, key);
        }
        atomic_fetch_add(&s->processed, 1);
        wq_done(s->q, key);
        free(key);
    }
    return NULL;
}

static bool all_seen(struct stress *s)
{
    for (int k = 0; k < NKEYS; k++)
        if (atomic_load(&s->seen_gen[k]) != atomic_load(&s->add_gen[k]))
            return false;
    return true;
}

static void test_stress_no_concurrent_processing(void **state)
{
    static struct stress s;
    struct wq_opts o = {.base_delay_ms = 1, .max_delay_ms = 4};
    pthread_t th[NWORKERS];
    const char *env = getenv("WQ_SEED");
    unsigned rnd;
    char key[16];
    int64_t deadline;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    printf("test_workqueue stress seed %u (replay: WQ_SEED=%u)\n", s.seed, s.seed);
    rnd = s.seed;
    assert_int_equal(wq_new(&o, &s.q), 0);
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, stress_worker, &s), 0);
    for (int i = 0; i < NADDS; i++) {
        int k = (int)(rand_r(&rnd) % NKEYS);

        snprintf(key, sizeof(key), "k%d", k);
        atomic_fetch_add(&s.add_gen[k], 1);
        if (rand_r(&rnd) % 8 == 0)
            assert_int_equal(wq_add_after(s.q, key, rand_r(&rnd) % 4), 0);
        else
            assert_int_equal(wq_add(s.q, key), 0);
        if (i % 512 == 0)
            sched_yield();
    }
    deadline = mono_ms() + 30000;
    while (!all_seen(&s) && mono_ms() < deadline)
        sleep_ms(1);
    assert_true(all_seen(&s)); /* every add was followed by a processing of its key */
    wq_shutdown(s.q);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(th[i], NULL);
    printf("processed %d keys for %d adds\n", atomic_load(&s.processed), NADDS);
    assert_int_equal(atomic_load(&s.overlaps), 0);
    assert_int_equal(atomic_load(&s.bad_keys), 0);
    assert_true(atomic_load(&s.processed) >= NKEYS / 2);
    wq_free(s.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_dirty_while_processing),
        cmocka_unit_test(test_delayed_ordering),
        cmocka_unit_test(test_backoff_and_forget),
        cmocka_unit_test(test_shutdown_wakes_waiters),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_stress_no_concurrent_processing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
