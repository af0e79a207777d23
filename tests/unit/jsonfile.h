/*
 * jsonfile.h: whole-object JSON checks for the unit tests: an expected object is a file under
 * tests/unit/data/<subdir>/ (found next to this header through __FILE__, or in the directory an
 * environment variable names), written by hand from the design, never produced by the code under
 * test. Objects compare as parsed trees, key order aside; a mismatch prints every differing path
 * with the expected and the actual value, then the whole actual object. Two objects built
 * alike may also be checked to print the same.
 * Header-only (each test binary is one translation unit); include it after <cmocka.h>.
 */
#ifndef CETCD_TEST_JSONFILE_H
#define CETCD_TEST_JSONFILE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

/* The whole file as a NUL-terminated string (malloc'd), NULL if unreadable. */
static inline char *jsonfile_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

/* data/<subdir>/<name> (or $<env>/<name> when that variable is set), parsed; fails the test if
 * it cannot be read or parsed. */
static inline cJSON *jsonfile_load(const char *env, const char *subdir, const char *name)
{
    char path[1024];
    const char *dir = env ? getenv(env) : NULL;
    const char *slash = strrchr(__FILE__, '/');
    char *text;
    cJSON *j;

    if (dir)
        snprintf(path, sizeof(path), "%s/%s", dir, name);
    else
        snprintf(path, sizeof(path), "%.*sdata/%s/%s", slash ? (int)(slash - __FILE__ + 1) : 0,
                 __FILE__, subdir, name);
    text = jsonfile_read(path);
    if (!text)
        fail_msg("cannot read %s", path);
    j = cJSON_Parse(text);
    free(text);
    if (!j)
        fail_msg("%s is not valid JSON", path);
    return j;
}

static inline void jsonfile_print(const char *label, const cJSON *v)
{
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;

    fprintf(stderr, "      %s %s\n", label, s ? s : "(absent)");
    free(s);
}

static inline void jsonfile_report(const char *path, const char *what, const cJSON *want,
                                   const cJSON *got)
{
    fprintf(stderr, "    %s: %s\n", path[0] ? path : "(root)", what);
    jsonfile_print("want", want);
    jsonfile_print("got ", got);
}

/* Prints each difference between two trees; returns how many there are. */
static inline int jsonfile_diff(const char *path, const cJSON *want, const cJSON *got)
{
    char sub[1024];
    const cJSON *e, *w, *g;
    int n = 0, i = 0;

    if (!want || !got) {
        jsonfile_report(path, want ? "missing" : "unexpected", want, got);
        return 1;
    }
    if (cJSON_IsObject(want) && cJSON_IsObject(got)) {
        cJSON_ArrayForEach(e, want) {
            snprintf(sub, sizeof(sub), "%s.%s", path, e->string);
            n += jsonfile_diff(sub, e, cJSON_GetObjectItemCaseSensitive(got, e->string));
        }
        cJSON_ArrayForEach(e, got) {
            if (cJSON_GetObjectItemCaseSensitive(want, e->string))
                continue;
            snprintf(sub, sizeof(sub), "%s.%s", path, e->string);
            jsonfile_report(sub, "unexpected field", NULL, e);
            n++;
        }
        return n;
    }
    if (cJSON_IsArray(want) && cJSON_IsArray(got)) {
        for (w = want->child, g = got->child; w || g;
             i++, w = w ? w->next : NULL, g = g ? g->next : NULL) {
            snprintf(sub, sizeof(sub), "%s[%d]", path, i);
            n += jsonfile_diff(sub, w, g);
        }
        return n;
    }
    if (cJSON_Compare(want, got, true))
        return 0;
    jsonfile_report(path, "differs", want, got);
    return 1;
}

/* got equals want (a NULL got fails); what names want in the report. */
static inline void jsonfile_assert_equal(const cJSON *got, const cJSON *want, const char *what)
{
    int n;

    assert_non_null(got);
    n = jsonfile_diff("", want, got);
    if (n) {
        char *s = cJSON_Print(got);
        fprintf(stderr, "  %d difference(s) from %s; actual object:\n%s\n", n, what, s);
        free(s);
    }
    assert_int_equal(n, 0);
}

/* got equals the object in the file (a NULL got fails). */
static inline void jsonfile_assert(const cJSON *got, const char *env, const char *subdir,
                                   const char *name)
{
    cJSON *want = jsonfile_load(env, subdir, name);

    jsonfile_assert_equal(got, want, name);
    cJSON_Delete(want);
}

/* a and b print the same (compact form); both are deleted. */
static inline void jsonfile_assert_same_print(cJSON *a, cJSON *b)
{
    char *ta = cJSON_PrintUnformatted(a);
    char *tb = cJSON_PrintUnformatted(b);

    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

#endif
