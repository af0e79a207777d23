/*
 * test_olog.c: the operator's JSON-lines log: exact field order and escaping, int64 values,
 * the level filter, level parsing, and that lines written by many threads at once never
 * interleave (every line of the output parses as one JSON object).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "runtime/olog.h"

/* A temporary file the logger writes to; read back with slurp(). */
static int open_sink(void)
{
    char path[] = "/tmp/test_olog.XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    olog_set_fd(fd);
    return fd;
}

static char *slurp(int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    char *buf = malloc((size_t)size + 1);

    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
    buf[size] = '\0';
    return buf;
}

static void close_sink(int fd)
{
    olog_set_fd(2);
    close(fd);
}

/* The line minus its timestamp field, which is checked separately. */
static const char *after_ts(const char *line)
{
    const char *p = strstr(line, "\",\"level\"");

    assert_non_null(p);
    return p + 2;
}

static void test_format_and_escaping(void **state)
{
    int fd = open_sink();
    char *out;

    (void)state;
    olog_set_level(OLOG_INFO);
    olog_named(OLOG_WARN, "leader-election", "a \"quoted\"\nmsg\\", "k1", "tab\there",
               "n", OLOG_I64(-9000000000LL), "nul", (const char *)NULL, "ctl", "\x01\x7f",
               "utf", "caf\xc3\xa9 \xff!", NULL);
    out = slurp(fd);
    /* {"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ", */
    assert_int_equal(strncmp(out, "{\"ts\":\"", 7), 0);
    assert_int_equal(strlen(out), 7 + 24 + 2 + strlen(after_ts(out)));
    assert_true(out[7 + 4] == '-' && out[7 + 10] == 'T' && out[7 + 19] == '.' &&
                out[7 + 23] == 'Z');
    assert_string_equal(after_ts(out),
                        "\"level\":\"warn\",\"logger\":\"leader-election\","
                        "\"msg\":\"a \\\"quoted\\\"\\nmsg\\\\\",\"k1\":\"tab\\there\","
                        "\"n\":-9000000000,\"nul\":null,\"ctl\":\"\\u0001\\u007f\","
                        "\"utf\":\"caf\xc3\xa9 \\ufffd!\"}\n");
    free(out);
    close_sink(fd);
}

static void test_default_logger_and_filter(void **state)
{
    int fd = open_sink();
    char *out;
    cJSON *j;

    (void)state;
    olog_set_level(OLOG_WARN);
    assert_false(olog_enabled(OLOG_INFO));
    assert_true(olog_enabled(OLOG_ERROR));
    olog(OLOG_INFO, "dropped", NULL);
    olog(OLOG_DEBUG, "dropped", NULL);
    olog_set_default_logger("op");
    olog(OLOG_ERROR, "kept", "x", "y", NULL);
    olog_set_default_logger("cetcd-operator");
    olog_set_level(OLOG_INFO);
    out = slurp(fd);
    assert_non_null(strchr(out, '\n'));
    assert_null(strchr(strchr(out, '\n') + 1, '\n')); /* exactly one line */
    j = cJSON_Parse(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "error");
    assert_string_equal(cJSON_GetObjectItem(j, "logger")->valuestring, "op");
    assert_string_equal(cJSON_GetObjectItem(j, "msg")->valuestring, "kept");
    assert_string_equal(cJSON_GetObjectItem(j, "x")->valuestring, "y");
    cJSON_Delete(j);
    free(out);
    close_sink(fd);
}

static void test_parse_level(void **state)
{
    enum olog_level l = OLOG_INFO;

    (void)state;
    assert_int_equal(olog_parse_level("debug", &l), 0);
    assert_int_equal(l, OLOG_DEBUG);
    assert_int_equal(olog_parse_level("warn", &l), 0);
    assert_int_equal(l, OLOG_WARN);
    assert_int_equal(olog_parse_level("error", &l), 0);
    assert_int_equal(l, OLOG_ERROR);
    assert_int_equal(olog_parse_level("info", &l), 0);
    assert_int_equal(l, OLOG_INFO);
    assert_int_equal(olog_parse_level("verbose", &l), CE_INVAL);
    assert_int_equal(olog_parse_level("", &l), CE_INVAL);
    assert_int_equal(olog_parse_level(NULL, &l), CE_INVAL);
    assert_int_equal(l, OLOG_INFO);
}

#define NTHREADS 4
#define NLINES 300

static void *log_many(void *arg)
{
    long id = (long)arg;
    char big[3000];

    memset(big, 'a' + (int)id, sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < NLINES; i++)
        olog(OLOG_INFO, "line", "thread", OLOG_I64(id), "i", OLOG_I64(i), "pad", big, NULL);
    return NULL;
}

static void test_threads_never_interleave(void **state)
{
    int fd = open_sink();
    pthread_t th[NTHREADS];
    int seen[NTHREADS] = {0};
    char *out, *line, *save;

    (void)state;
    for (long i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, log_many, (void *)i), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    out = slurp(fd);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        int t;

        assert_non_null(j);
        t = cJSON_GetObjectItem(j, "thread")->valueint;
        assert_true(t >= 0 && t < NTHREADS);
        /* lines of one thread appear in its order */
        assert_int_equal(cJSON_GetObjectItem(j, "i")->valueint, seen[t]);
        assert_int_equal(cJSON_GetObjectItem(j, "pad")->valuestring[0], 'a' + t);
        seen[t]++;
        cJSON_Delete(j);
    }
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(seen[i], NLINES);
    free(out);
    close_sink(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_escaping),
        cmocka_unit_test(test_default_logger_and_filter),
        cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_threads_never_interleave),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
