/*
 * test_metrics.c: the Prometheus registry: exact exposition text (order, HELP/TYPE, escaping,
 * histogram buckets, value formatting), label rendering and validation, type checks, series
 * removal by prefix, the operator's families and collectors, and exact counts under threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "runtime/metrics.h"

static char *render(metrics *m)
{
    char *out;
    size_t len;

    assert_int_equal(metrics_render_text(m, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    return out;
}

static void test_exposition_exact(void **state)
{
    metrics *m;
    char *out;
    const double b[] = {0.1, 1, 2.5};

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "zeta", "Last \\ one\nline2", NULL, 0), 0);
    assert_int_equal(metrics_register(m, METRIC_COUNTER, "alpha_total", "Counts.", NULL, 0), 0);
    assert_int_equal(metrics_register(m, METRIC_HISTOGRAM, "lat_seconds", "Latency.", b, 3), 0);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "empty", "No series.", NULL, 0), 0);
    assert_int_equal(metrics_counter_add(m, "alpha_total", "k=\"b\"", 2), 0);
    assert_int_equal(metrics_counter_add(m, "alpha_total", "k=\"a\"", 1), 0);
    assert_int_equal(metrics_counter_add(m, "alpha_total", "k=\"a\"", 0.5), 0);
    assert_int_equal(metrics_gauge_set(m, "zeta", NULL, -3), 0);
    assert_int_equal(metrics_gauge_add(m, "zeta", "", 1e20), 0);
    assert_int_equal(metrics_observe(m, "lat_seconds", "c=\"x\"", 0.05), 0);
    assert_int_equal(metrics_observe(m, "lat_seconds", "c=\"x\"", 1), 0);
    assert_int_equal(metrics_observe(m, "lat_seconds", "c=\"x\"", 7), 0);
    assert_int_equal(metrics_observe(m, "lat_seconds", "", 2), 0);
    out = render(m);
    assert_string_equal(out,
                        "# HELP alpha_total Counts.\n"
                        "# TYPE alpha_total counter\n"
                        "alpha_total{k=\"a\"} 1.5\n"
                        "alpha_total{k=\"b\"} 2\n"
                        "# HELP lat_seconds Latency.\n"
                        "# TYPE lat_seconds histogram\n"
                        "lat_seconds_bucket{le=\"0.1\"} 0\n"
                        "lat_seconds_bucket{le=\"1\"} 0\n"
                        "lat_seconds_bucket{le=\"2.5\"} 1\n"
                        "lat_seconds_bucket{le=\"+Inf\"} 1\n"
                        "lat_seconds_sum 2\n"
                        "lat_seconds_count 1\n"
                        "lat_seconds_bucket{c=\"x\",le=\"0.1\"} 1\n"
                        "lat_seconds_bucket{c=\"x\",le=\"1\"} 2\n"
                        "lat_seconds_bucket{c=\"x\",le=\"2.5\"} 2\n"
                        "lat_seconds_bucket{c=\"x\",le=\"+Inf\"} 3\n"
                        "lat_seconds_sum{c=\"x\"} 8.05\n"
                        "lat_seconds_count{c=\"x\"} 3\n"
                        "# HELP zeta Last \\\\ one\\nline2\n"
                        "# TYPE zeta gauge\n"
                        "zeta 1e+20\n");
    free(out);
    metrics_free(m);
}

static void test_special_values(void **state)
{
    metrics *m;
    char *out;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "g", "h", NULL, 0), 0);
    assert_int_equal(metrics_gauge_set(m, "g", "i=\"1\"", INFINITY), 0);
    assert_int_equal(metrics_gauge_set(m, "g", "i=\"2\"", -INFINITY), 0);
    assert_int_equal(metrics_gauge_set(m, "g", "i=\"3\"", NAN), 0);
    assert_int_equal(metrics_gauge_set(m, "g", "i=\"4\"", 0.1), 0);
    assert_int_equal(metrics_gauge_set(m, "g", "i=\"5\"", 1776000000.123456), 0);
    assert_int_equal(metrics_gauge_set(m, "g", "i=\"6\"", -0.0), 0);
    assert_int_equal(metrics_gauge_set(m, "g", "i=\"7\"", 123456789), 0);
    out = render(m);
    assert_string_equal(out, "# HELP g h\n# TYPE g gauge\n"
                             "g{i=\"1\"} +Inf\ng{i=\"2\"} -Inf\ng{i=\"3\"} NaN\ng{i=\"4\"} 0.1\n"
                             "g{i=\"5\"} 1776000000.123456\ng{i=\"6\"} 0\ng{i=\"7\"} 123456789\n");
    free(out);
    metrics_free(m);
}

static void test_labels_render_and_validate(void **state)
{
    char buf[64], tiny[12];

    (void)state;
    assert_int_equal(metrics_labels(buf, sizeof(buf), "namespace", "ns", "cluster",
                                    "a\"b\\c\nd", NULL), 0);
    assert_string_equal(buf, "namespace=\"ns\",cluster=\"a\\\"b\\\\c\\nd\"");
    assert_int_equal(metrics_labels(buf, sizeof(buf), NULL), 0);
    assert_string_equal(buf, "");
    assert_int_equal(metrics_labels(tiny, sizeof(tiny), "k", "12345678", NULL), CE_INVAL);
    assert_string_equal(tiny, "");
    assert_int_equal(metrics_labels(tiny, sizeof(tiny), "k", "1234567", NULL), 0); /* exact fit */
    assert_string_equal(tiny, "k=\"1234567\"");
    assert_int_equal(metrics_labels(buf, sizeof(buf), "9bad", "v", NULL), CE_INVAL);
    assert_int_equal(metrics_labels(buf, sizeof(buf), "a:b", "v", NULL), CE_INVAL);
    assert_int_equal(metrics_labels(buf, sizeof(buf), "k", (const char *)NULL, NULL), CE_INVAL);
}

static void test_validation_and_types(void **state)
{
    metrics *m;
    double v;
    const double bad[] = {1, 1};

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_register(m, METRIC_COUNTER, "c_total", "h", NULL, 0), 0);
    assert_int_equal(metrics_register(m, METRIC_COUNTER, "c_total", "other", NULL, 0), 0);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "c_total", "h", NULL, 0), CE_EXISTS);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "1bad", "h", NULL, 0), CE_INVAL);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "bad-name", "h", NULL, 0), CE_INVAL);
    assert_int_equal(metrics_register(m, METRIC_HISTOGRAM, "h", "h", bad, 2), CE_INVAL);
    assert_int_equal(metrics_counter_add(m, "nope", "", 1), CE_NOTFOUND);
    assert_int_equal(metrics_gauge_set(m, "c_total", "", 1), CE_INVAL);
    assert_int_equal(metrics_observe(m, "c_total", "", 1), CE_INVAL);
    assert_int_equal(metrics_counter_add(m, "c_total", "", -1), CE_INVAL);
    assert_int_equal(metrics_counter_add(m, "c_total", "", NAN), CE_INVAL);
    /* malformed label texts never reach the exposition */
    const char *bad_labels[] = {"k", "k=v", "k=\"v", "k=\"v\",", "=\"v\"", "k=\"a\nb\"",
                                "k=\"\\x\"", "k=\"v\"x", "9k=\"v\"", "k=\"v\",,j=\"w\""};
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++)
        assert_int_equal(metrics_counter_add(m, "c_total", bad_labels[i], 1), CE_INVAL);
    assert_int_equal(metrics_counter_add(m, "c_total", "a=\"\",b=\"\\\"\\\\\\n\"", 1), 0);
    assert_int_equal(metrics_value(m, "c_total", "a=\"\",b=\"\\\"\\\\\\n\"", &v), 0);
    assert_true(v == 1);
    assert_int_equal(metrics_value(m, "c_total", "a=\"x\"", &v), CE_NOTFOUND);
    metrics_free(m);
}

static void test_remove_prefix(void **state)
{
    metrics *m;
    char *out;
    const char *ls[] = {"namespace=\"n\",cluster=\"b\",action=\"add\"",
                        "namespace=\"n\",cluster=\"b\",action=\"remove\"",
                        "namespace=\"n\",cluster=\"bc\",action=\"add\"",
                        "namespace=\"n\",cluster=\"b\""};

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_register(m, METRIC_COUNTER, "x_total", "h", NULL, 0), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(metrics_counter_add(m, "x_total", ls[i], 1), 0);
    assert_int_equal(metrics_remove(m, "x_total", "namespace=\"n\",cluster=\"b\""), 3);
    out = render(m);
    assert_string_equal(out, "# HELP x_total h\n# TYPE x_total counter\n"
                             "x_total{namespace=\"n\",cluster=\"bc\",action=\"add\"} 1\n");
    free(out);
    assert_int_equal(metrics_remove(m, "x_total", ""), 1);
    assert_int_equal(metrics_remove(m, "absent", ""), 0);
    out = render(m);
    assert_string_equal(out, ""); /* families without series are omitted */
    free(out);
    metrics_free(m);
}

static void test_operator_families(void **state)
{
    metrics *m;
    char *out, *p;
    char lbl[128];
    double start, rss;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_register_operator(m), 0);
    assert_int_equal(metrics_register_operator(m), 0); /* idempotent */
    assert_int_equal(metrics_labels(lbl, sizeof(lbl), "controller", "etcdcluster", NULL), 0);
    assert_int_equal(metrics_observe(m, M_RECONCILE_TIME, lbl, 0.03), 0);
    assert_int_equal(metrics_labels(lbl, sizeof(lbl), "namespace", "default", "cluster", "c1",
                                    "action", "add", NULL), 0);
    assert_int_equal(metrics_counter_add(m, M_MEMBERSHIP_CHANGES, lbl, 1), 0);
    assert_int_equal(metrics_gauge_set(m, M_LEADER_STATUS, "name=\"cetcd-operator\"", 1), 0);
    out = render(m);
    assert_non_null(strstr(out,
        "# HELP controller_runtime_reconcile_time_seconds Length of time per reconciliation per "
        "controller\n# TYPE controller_runtime_reconcile_time_seconds histogram\n"
        "controller_runtime_reconcile_time_seconds_bucket{controller=\"etcdcluster\",le=\"0.005\"} 0\n"
        "controller_runtime_reconcile_time_seconds_bucket{controller=\"etcdcluster\",le=\"0.01\"} 0\n"
        "controller_runtime_reconcile_time_seconds_bucket{controller=\"etcdcluster\",le=\"0.025\"} 0\n"
        "controller_runtime_reconcile_time_seconds_bucket{controller=\"etcdcluster\",le=\"0.05\"} 1\n"));
    assert_non_null(strstr(out, "le=\"10\"} 1\n"
        "controller_runtime_reconcile_time_seconds_bucket{controller=\"etcdcluster\",le=\"+Inf\"} 1\n"
        "controller_runtime_reconcile_time_seconds_sum{controller=\"etcdcluster\"} 0.03\n"
        "controller_runtime_reconcile_time_seconds_count{controller=\"etcdcluster\"} 1\n"));
    assert_non_null(strstr(out, "# TYPE cetcd_operator_membership_changes_total counter\n"
        "cetcd_operator_membership_changes_total{namespace=\"default\",cluster=\"c1\",action=\"add\"} 1\n"));
    assert_non_null(strstr(out, "# TYPE leader_election_master_status gauge\n"
                                "leader_election_master_status{name=\"cetcd-operator\"} 1\n"));
    /* families in name order: cetcd_* < controller_* < leader_* < process_* */
    assert_true(strstr(out, "# TYPE cetcd_") < strstr(out, "# TYPE controller_"));
    assert_true(strstr(out, "# TYPE controller_") < strstr(out, "# TYPE leader_"));
    assert_true(strstr(out, "# TYPE leader_") < strstr(out, "# TYPE process_resident"));
    assert_true(strstr(out, "# TYPE process_resident") < strstr(out, "# TYPE process_start"));
    p = strstr(out, "\nprocess_resident_memory_bytes ");
    assert_non_null(p);
    rss = strtod(p + strlen("\nprocess_resident_memory_bytes "), NULL);
    assert_true(rss > 1e5 && rss < 1e10);
    assert_int_equal(metrics_value(m, M_PROCESS_START, "", &start), 0);
    assert_true(start > (double)time(NULL) - 3600 && start <= (double)time(NULL) + 1);
    free(out);
    metrics_free(m);
}

#define NTHREADS 4
#define NOPS 20000

static void *hammer(void *arg)
{
    metrics *m = arg;

    for (int i = 0; i < NOPS; i++) {
        metrics_counter_add(m, "t_total", (i & 1) ? "p=\"odd\"" : "p=\"even\"", 1);
        metrics_observe(m, "t_seconds", "", 0.001);
        metrics_gauge_add(m, "t_gauge", "", 1);
        if (i % 1000 == 0)
            free(render(m));
    }
    return NULL;
}

static void test_threads_exact_counts(void **state)
{
    metrics *m;
    pthread_t th[NTHREADS];
    double v;
    char *out;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_register(m, METRIC_COUNTER, "t_total", "h", NULL, 0), 0);
    assert_int_equal(metrics_register(m, METRIC_HISTOGRAM, "t_seconds", "h", NULL, 0), 0);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "t_gauge", "h", NULL, 0), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, m), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(metrics_value(m, "t_total", "p=\"odd\"", &v), 0);
    assert_true(v == NTHREADS * NOPS / 2);
    assert_int_equal(metrics_value(m, "t_gauge", "", &v), 0);
    assert_true(v == NTHREADS * NOPS);
    out = render(m);
    assert_non_null(strstr(out, "t_seconds_bucket{le=\"0.005\"} 80000\n"));
    assert_non_null(strstr(out, "t_seconds_count 80000\n"));
    free(out);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_exact),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_labels_render_and_validate),
        cmocka_unit_test(test_validation_and_types),
        cmocka_unit_test(test_remove_prefix),
        cmocka_unit_test(test_operator_families),
        cmocka_unit_test(test_threads_exact_counts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
