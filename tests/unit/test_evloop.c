/*
 * test_evloop.c: the event loop's contract: timers fire in order and periodically, flush
 * hooks run once per iteration, a watcher stopped inside a callback is never called again,
 * and evloop_wake/stop from another thread ends a blocked wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "evloop.h"

struct ctx {
    int fired[4];
    int order[8];
    int norder;
    int flushes;
    int reads;
    ev_io *a, *b;
    ev_io *freed;
    int pipes[2][2];
};

static void timer_cb(evloop *l, ev_timer *t)
{
    struct ctx *c = t->data;
    int which = t->period_ms ? 1 : 0;

    c->fired[which]++;
    c->order[c->norder++ % 8] = which;
    if (c->fired[1] == 3)
        evloop_stop(l);
}

static void test_timers(void **state)
{
    evloop *l;
    ev_timer once = {0}, periodic = {0};
    struct ctx c = {0};

    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    evloop_timer_start(l, &once, 1, 0, timer_cb, &c);
    evloop_timer_start(l, &periodic, 5, 5, timer_cb, &c);
    assert_int_equal(evloop_run(l), 0);
    assert_int_equal(c.fired[0], 1);
    assert_int_equal(c.fired[1], 3);
    assert_int_equal(c.order[0], 0); /* the 1 ms one-shot first */
    assert_false(once.active);
    evloop_timer_stop(l, &periodic);
    evloop_free(l);
}

static void count_flush(evloop *l, void *arg)
{
    struct ctx *c = arg;

    if (++c->flushes == 3)
        evloop_stop(l);
}

static void wake_timer(evloop *l, ev_timer *t)
{
    (void)l;
    (void)t;
}

static void test_flush_each_iteration(void **state)
{
    evloop *l;
    ev_timer t = {0};
    struct ctx c = {0};

    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(evloop_add_flush(l, count_flush, &c), 0);
    evloop_timer_start(l, &t, 1, 1, wake_timer, &c);
    assert_int_equal(evloop_run(l), 0);
    assert_int_equal(c.flushes, 3);
    evloop_timer_stop(l, &t);
    evloop_free(l);
}

/* The first readable watcher stops and frees the other one, ready in the same batch. */
static void read_cb(evloop *l, ev_io *w, int ev)
{
    struct ctx *c = w->data;
    char b[8];

    (void)ev;
    c->reads++;
    if (read(w->fd, b, sizeof(b)) < 0)
        fail();
    if (!c->freed) {
        c->freed = w == c->a ? c->b : c->a;
        evloop_io_stop(l, c->freed);
        free(c->freed);
    }
    evloop_stop(l);
}

static void test_stop_inside_callback(void **state)
{
    evloop *l;
    struct ctx c = {0};
    ev_io *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(pipe(c.pipes[0]), 0);
    assert_int_equal(pipe(c.pipes[1]), 0);
    assert_int_equal(write(c.pipes[0][1], "x", 1), 1);
    assert_int_equal(write(c.pipes[1][1], "y", 1), 1);
    assert_int_equal(evloop_io_start(l, a, c.pipes[0][0], EV_READ, read_cb, &c), 0);
    assert_int_equal(evloop_io_start(l, b, c.pipes[1][0], EV_READ, read_cb, &c), 0);
    c.a = a;
    c.b = b;
    assert_int_equal(evloop_run(l), 0);
    assert_int_equal(c.reads, 1); /* both were ready, the freed one was never called */
    {
        ev_io *survivor = c.freed == a ? b : a;
        evloop_io_stop(l, survivor);
        free(survivor);
    }
    for (int i = 0; i < 2; i++) {
        close(c.pipes[i][0]);
        close(c.pipes[i][1]);
    }
    evloop_free(l);
}

static void *stopper(void *arg)
{
    evloop_stop(arg);
    return 0;
}

static void test_stop_from_thread(void **state)
{
    evloop *l;
    pthread_t th;

    (void)state;
    assert_int_equal(evloop_new(&l), 0);
    assert_int_equal(pthread_create(&th, 0, stopper, l), 0);
    assert_int_equal(evloop_run(l), 0); /* no timers: returns only because of the wake-up */
    pthread_join(th, 0);
    evloop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_flush_each_iteration),
        cmocka_unit_test(test_stop_inside_callback),
        cmocka_unit_test(test_stop_from_thread),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
