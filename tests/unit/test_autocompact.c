/*
 * test_autocompact.c: parsing of --auto-compaction-mode/--auto-compaction-retention as etcd 3.4
 * reads them (server/node/autocompact.h).
 *
 * - periodic: a bare number is hours ("1" = 1 h); Go durations with h, m, s, ms units and
 *   fractions ("1h30m", "2.5s", "500ms"); "0" or "" disables; garbage, a negative number, an
 *   unknown unit are refused (CE_INVAL).
 * - revision: a bare number of revisions; "0" disables; a duration is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "node/autocompact.h"

/* Parses ret in mode; on success the chosen limit is want and the other one is 0. */
static void expect(const char *mode, const char *ret, int want_rc, uint64_t want_ms,
                   int64_t want_revs)
{
    uint64_t ms = 99;
    int64_t revs = 99;

    assert_int_equal(autocompact_parse(mode, ret, &ms, &revs), want_rc);
    if (!want_rc) {
        assert_int_equal(ms, want_ms);
        assert_int_equal(revs, want_revs);
    }
}

static void periodic(const char *ret, int want_rc, uint64_t want_ms)
{
    expect("periodic", ret, want_rc, want_ms, 0);
}

static void revision(const char *ret, int want_rc, int64_t want_revs)
{
    expect("revision", ret, want_rc, 0, want_revs);
}

static void test_periodic(void **state)
{
    (void)state;
    periodic("1", 0, 3600000);
    periodic("72", 0, 72ull * 3600000);
    periodic("30m", 0, 1800000);
    periodic("1h30m", 0, 5400000);
    periodic("2.5s", 0, 2500);
    periodic("500ms", 0, 500);
    periodic("0", 0, 0);
    periodic("", 0, 0);
    periodic(NULL, 0, 0);
    periodic("abc", CE_INVAL, 0);
    periodic("-1h", CE_INVAL, 0);
    periodic("10x", CE_INVAL, 0);
    periodic("1h30", CE_INVAL, 0);
}

static void test_revision(void **state)
{
    (void)state;
    revision("1000", 0, 1000);
    revision("0", 0, 0);
    revision("1h", CE_INVAL, 0);
    revision("-5", CE_INVAL, 0);
    revision("12a", CE_INVAL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_periodic),
        cmocka_unit_test(test_revision),
    };
    log_set_level(LOG_FATAL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
