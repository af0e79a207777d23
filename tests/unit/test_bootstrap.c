/*
 * test_bootstrap.c: the membership entry's text form (common/bootstrap.h): round trips,
 * comments and blank lines, unknown keys, refusals naming the line, deterministic bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "err.h"

#define IC3 "c-0=http://c-0.c-peer.ns.svc:2380,c-1=http://c-1.c-peer.ns.svc:2380," \
            "c-2=http://c-2.c-peer.ns.svc:2380"

static int parse_str(const char *text, struct bootstrap_entry *e, char *err, size_t errsz)
{
    return bootstrap_entry_parse(text, strlen(text), e, err, errsz);
}

static void assert_entries_equal(const struct bootstrap_entry *a, const struct bootstrap_entry *b)
{
    assert_int_equal(a->state_new, b->state_new);
    assert_int_equal(a->joined, b->joined);
    assert_true(a->member_id == b->member_id);
    assert_true((a->initial_cluster == NULL) == (b->initial_cluster == NULL));
    if (a->initial_cluster)
        assert_string_equal(a->initial_cluster, b->initial_cluster);
    assert_true((a->data_uid == NULL) == (b->data_uid == NULL));
    if (a->data_uid)
        assert_string_equal(a->data_uid, b->data_uid);
}

static void test_format_exact_bytes(void **state)
{
    struct bootstrap_entry e = {.state_new = false, .initial_cluster = IC3, .joined = true,
                                .member_id = 0x8e9e05c52164694dull,
                                .data_uid = "6f1c2d9a-0b7e-4c1d-9a43-2f6f5b1d2c3e"};
    char *text;

    (void)state;
    assert_int_equal(bootstrap_entry_format(&e, &text), 0);
    assert_string_equal(text, "initial-cluster-state=existing\n"
                              "initial-cluster=" IC3 "\n"
                              "joined=true\n"
                              "member-id=8e9e05c52164694d\n"
                              "data-uid=6f1c2d9a-0b7e-4c1d-9a43-2f6f5b1d2c3e\n");
    free(text);
}

static void test_format_omits_absent(void **state)
{
    struct bootstrap_entry e = {.state_new = true, .initial_cluster = "c-0=http://h:2380"};
    char *text;

    (void)state;
    assert_int_equal(bootstrap_entry_format(&e, &text), 0);
    assert_string_equal(text, "initial-cluster-state=new\ninitial-cluster=c-0=http://h:2380\n"
                              "joined=false\n");
    free(text);
    /* an empty uid (unknown volume) is the same as none */
    e.data_uid = "";
    assert_int_equal(bootstrap_entry_format(&e, &text), 0);
    assert_null(strstr(text, "data-uid"));
    free(text);
}

/* Same entry, same bytes; and format(parse(format(e))) == format(e). */
static void test_round_trip_deterministic(void **state)
{
    static const struct bootstrap_entry cases[] = {
        {.state_new = true, .initial_cluster = "c-0=http://c-0.c-peer.ns.svc:2380"},
        {.state_new = false, .initial_cluster = IC3, .joined = false},
        {.state_new = false, .initial_cluster = IC3, .joined = true, .member_id = 1},
        {.state_new = false, .initial_cluster = IC3, .joined = true,
         .member_id = UINT64_MAX, .data_uid = "pvc-uid-1"},
        {.state_new = true, .initial_cluster = "a=https://[::1]:2380", .data_uid = "x"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bootstrap_entry back;
        char *t1, *t2, *t3, err[128];

        assert_int_equal(bootstrap_entry_format(&cases[i], &t1), 0);
        assert_int_equal(bootstrap_entry_format(&cases[i], &t2), 0);
        assert_string_equal(t1, t2);
        assert_int_equal(parse_str(t1, &back, err, sizeof(err)), 0);
        assert_entries_equal(&cases[i], &back);
        assert_int_equal(bootstrap_entry_format(&back, &t3), 0);
        assert_string_equal(t1, t3);
        bootstrap_entry_clear(&back);
        free(t1);
        free(t2);
        free(t3);
    }
}

static void test_comments_blank_lines_unknown_keys(void **state)
{
    const char *text = "# written by cetcd-operator\n"
                       "\n"
                       "   \n"
                       "future-key=whatever=it=is\n"
                       "  initial-cluster-state = existing  \r\n"
                       "\t# indented comment\n"
                       "initial-cluster=" IC3 "\n"
                       "another-unknown=\n"
                       "joined=true\n"
                       "member-id=00000000000000FF\n"
                       "data-uid=abc"; /* no final newline */
    struct bootstrap_entry e;
    char err[128];

    (void)state;
    assert_int_equal(parse_str(text, &e, err, sizeof(err)), 0);
    assert_false(e.state_new);
    assert_string_equal(e.initial_cluster, IC3);
    assert_true(e.joined);
    assert_true(e.member_id == 0xff);
    assert_string_equal(e.data_uid, "abc");
    bootstrap_entry_clear(&e);
}

/* Optional keys absent: joined false, member id 0, no uid. */
static void test_minimal_entry(void **state)
{
    const char *text = "initial-cluster=c-0=http://h:2380\ninitial-cluster-state=new\n";
    struct bootstrap_entry e;
    char err[128];

    (void)state;
    assert_int_equal(parse_str(text, &e, err, sizeof(err)), 0);
    assert_true(e.state_new);
    assert_false(e.joined);
    assert_true(e.member_id == 0);
    assert_null(e.data_uid);
    bootstrap_entry_clear(&e);
}

/* The text need not be NUL-terminated: len bounds it. */
static void test_length_bounds_text(void **state)
{
    const char *text = "initial-cluster-state=new\ninitial-cluster=c-0=http://h:2380\njoined=true";
    struct bootstrap_entry e;
    char err[128];

    (void)state;
    /* cut "joined=true" to "joined=tr": a bad value on line 3 */
    assert_int_equal(bootstrap_entry_parse(text, strlen(text) - 2, &e, err, sizeof(err)), CE_INVAL);
    assert_non_null(strstr(err, "line 3"));
    /* cut before line 3 entirely */
    assert_int_equal(bootstrap_entry_parse(text, strlen(text) - 11, &e, err, sizeof(err)), 0);
    assert_false(e.joined);
    bootstrap_entry_clear(&e);
}

struct bad_case {
    const char *text;
    const char *want; /* substring of the message */
};

static void test_refusals_name_the_line(void **state)
{
    static const struct bad_case cases[] = {
        {"initial-cluster-state=new\njust some words\n", "line 2:"},
        {"# c\ninitial-cluster-state=old\n", "line 2: invalid initial-cluster-state \"old\""},
        {"initial-cluster-state=New\ninitial-cluster=a=http://h:1\n", "line 1: invalid initial-cluster-state"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\njoined=yes\n", "line 3: invalid joined"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\njoined=\n", "line 3: invalid joined"},
        {"initial-cluster-state=new\ninitial-cluster=\n", "line 2: invalid initial-cluster"},
        {"initial-cluster-state=new\ninitial-cluster=a\n", "line 2: invalid initial-cluster"},
        {"initial-cluster-state=new\ninitial-cluster==http://h:1\n", "line 2: invalid initial-cluster"},
        {"initial-cluster-state=new\ninitial-cluster=a=ftp://h:1\n", "line 2: invalid initial-cluster"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h\n", "line 2: invalid initial-cluster"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1,\n", "line 2: invalid initial-cluster"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1,,b=http://h:2\n", "line 2: invalid initial-cluster"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\nmember-id=123\n", "line 3: invalid member-id"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\nmember-id=000000000000000g\n", "line 3: invalid member-id"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\nmember-id=0000000000000000\n", "line 3: invalid member-id"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\nmember-id=00000000000000001\n", "line 3: invalid member-id"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\ndata-uid=\n", "line 3: invalid data-uid"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\ndata-uid=a b\n", "line 3: invalid data-uid"},
        {"initial-cluster-state=new\ninitial-cluster=a=http://h:1\n"
         "data-uid=0123456789012345678901234567890123456789012345678901234567890123\n", "line 3: invalid data-uid"},
        {"initial-cluster-state=new\n\ninitial-cluster-state=existing\n", "line 3: initial-cluster-state given twice"},
        {"initial-cluster=a=http://h:1\n", "initial-cluster-state is missing"},
        {"initial-cluster-state=existing\n", "initial-cluster is missing"},
        {"", "initial-cluster-state is missing"},
        {"# only a comment\n", "initial-cluster-state is missing"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bootstrap_entry e;
        char err[256];

        memset(&e, 0x5a, sizeof(e)); /* parse must zero it, also on failure */
        assert_int_equal(parse_str(cases[i].text, &e, err, sizeof(err)), CE_INVAL);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err, cases[i].want);
        assert_null(e.initial_cluster);
        assert_null(e.data_uid);
        bootstrap_entry_clear(&e);
    }
}

static void test_nul_byte_refused(void **state)
{
    const char text[] = "initial-cluster-state=new\ninitial-cluster=a=http://h:1\x00x\n";
    struct bootstrap_entry e;
    char err[128];

    (void)state;
    assert_int_equal(bootstrap_entry_parse(text, sizeof(text) - 1, &e, err, sizeof(err)), CE_INVAL);
    assert_non_null(strstr(err, "line 2"));
}

/* A tiny error buffer truncates the message but never overflows; NULL is allowed. */
static void test_small_error_buffer(void **state)
{
    struct bootstrap_entry e;
    char err[8];

    (void)state;
    assert_int_equal(parse_str("nonsense\n", &e, err, sizeof(err)), CE_INVAL);
    assert_string_equal(err, "line 1:");
    assert_int_equal(parse_str("nonsense\n", &e, NULL, 0), CE_INVAL);
}

/* format refuses what parse would refuse, so its output always reads back. */
static void test_format_refuses_unparsable(void **state)
{
    struct bootstrap_entry no_ic = {.state_new = true};
    struct bootstrap_entry bad_ic = {.state_new = true, .initial_cluster = "a=http://h:1\njoined=true"};
    struct bootstrap_entry bad_uid = {.initial_cluster = "a=http://h:1", .data_uid = "x\ny"};
    char *text = (char *)1;

    (void)state;
    assert_int_equal(bootstrap_entry_format(&no_ic, &text), CE_INVAL);
    assert_null(text);
    assert_int_equal(bootstrap_entry_format(&bad_ic, &text), CE_INVAL);
    assert_int_equal(bootstrap_entry_format(&bad_uid, &text), CE_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_exact_bytes),
        cmocka_unit_test(test_format_omits_absent),
        cmocka_unit_test(test_round_trip_deterministic),
        cmocka_unit_test(test_comments_blank_lines_unknown_keys),
        cmocka_unit_test(test_minimal_entry),
        cmocka_unit_test(test_length_bounds_text),
        cmocka_unit_test(test_refusals_name_the_line),
        cmocka_unit_test(test_nul_byte_refused),
        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_format_refuses_unparsable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
