/*
 * test_histo.c: exponential-bucket histograms (common/histo.h), the shape of etcd's latency
 * metrics.
 *
 * - Bounds are start * factor^i: etcd's fsync buckets 0.001 * 2^i end at 8.192 s (i = 13).
 * - Buckets are cumulative: a value lands in its own bucket and every bucket above it; a value
 *   equal to a bound belongs to that bound's bucket (Prometheus' le = "less or equal"); a value
 *   above the last bound is only in count (the +Inf bucket).
 * - count and sum cover every observation; init clears them and clamps the bucket number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "histo.h"

static void test_bounds(void **state)
{
    histo h;

    (void)state;
    histo_init(&h, 0.001, 2, 14);
    assert_int_equal(h.n, 14);
    assert_true(histo_bound(&h, 0) == 0.001);
    assert_true(histo_bound(&h, 13) > 8.1919 && histo_bound(&h, 13) < 8.1921);
    histo_init(&h, 1, 2, 0);
    assert_int_equal(h.n, 1);
    histo_init(&h, 1, 2, 1000);
    assert_int_equal(h.n, HISTO_MAX_BUCKETS);
}

static void test_cumulative(void **state)
{
    histo h;

    (void)state;
    histo_init(&h, 1, 2, 4);        /* bounds 1 2 4 8 */
    histo_observe(&h, 0.5);          /* all four */
    histo_observe(&h, 2);            /* bound itself: 2, 4, 8 */
    histo_observe(&h, 5);            /* 8 only */
    histo_observe(&h, 100);          /* +Inf only */
    assert_int_equal(h.buckets[0], 1);
    assert_int_equal(h.buckets[1], 2);
    assert_int_equal(h.buckets[2], 2);
    assert_int_equal(h.buckets[3], 3);
    assert_int_equal(h.count, 4);
    assert_true(h.sum == 107.5);
    histo_init(&h, 1, 2, 4);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.buckets[3], 0);
    assert_true(h.sum == 0);
}

static void test_now_monotonic(void **state)
{
    double a, b;

    (void)state;
    a = histo_now();
    b = histo_now();
    assert_true(a > 0 && b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_cumulative),
        cmocka_unit_test(test_now_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
