/*
 * testfile.h: whole files for the unit tests: read one into memory (NUL-terminated, so text
 * may be used as a string), write one from memory, read a fixture under tests/unit/data/
 * (found next to this header through __FILE__), and the SHA-256 of a buffer. Every step is
 * asserted: a test never goes on with half a file. Header-only (each test binary is one
 * translation unit); include it after <cmocka.h>.
 */
#ifndef CETCD_TEST_TESTFILE_H
#define CETCD_TEST_TESTFILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

/* The whole file at path, malloc'd with a NUL after its *len bytes. */
static inline uint8_t *testfile_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* Creates or replaces the file at path with p[0..n). */
static inline void testfile_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");

    if (!f)
        fail_msg("cannot create %s", path);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* tests/unit/data/<rel>, read as testfile_read does. */
static inline uint8_t *testfile_read_data(const char *rel, size_t *len)
{
    const char *slash = strrchr(__FILE__, '/');
    char path[1024];

    snprintf(path, sizeof(path), "%.*sdata/%s", slash ? (int)(slash - __FILE__ + 1) : 0,
             __FILE__, rel);
    return testfile_read(path, len);
}

static inline void testfile_sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 0;

    assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
    assert_int_equal(len, 32);
}

#endif
