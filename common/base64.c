/*
 * base64.c: standard base64 encoding and decoding (contract in base64.h). Pure functions, no
 * allocation: callers size the output with cetcd_b64_encoded_len or n*3/4+3.
 */
#include "base64.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t cetcd_b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void cetcd_b64_encode(const void *src, size_t n, char *dst)
{
    const unsigned char *s = src;
    size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        *dst++ = b64[s[i] >> 2];
        *dst++ = b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *dst++ = b64[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
        *dst++ = b64[s[i + 2] & 63];
    }
    if (n - i == 1) {
        *dst++ = b64[s[i] >> 2];
        *dst++ = b64[(s[i] & 3) << 4];
        *dst++ = '=';
        *dst++ = '=';
    } else if (n - i == 2) {
        *dst++ = b64[s[i] >> 2];
        *dst++ = b64[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *dst++ = b64[(s[i + 1] & 15) << 2];
        *dst++ = '=';
    }
    *dst = 0;
}

/* Each character's 6-bit value plus one; 0 marks a character outside both alphabets
 * (standard "+/" and URL-safe "-_"). A table rather than comparisons: snapshots arrive through
 * the gateway as base64, so this loop decodes every byte of a backup. */
static const unsigned char dec[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
    ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
    ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
    ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
    ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
    ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
    ['-'] = 63, ['_'] = 64,
};

/* Four characters into three bytes; false if one is not base64. */
static bool quad(const unsigned char *s, unsigned char *d)
{
    unsigned a = dec[s[0]], b = dec[s[1]], c = dec[s[2]], e = dec[s[3]];

    if (!a || !b || !c || !e)
        return false;
    uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (e - 1);
    d[0] = (unsigned char)(v >> 16);
    d[1] = (unsigned char)(v >> 8);
    d[2] = (unsigned char)v;
    return true;
}

int cetcd_b64_decode(const char *src, size_t n, char *dst, size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)src;
    unsigned char *d = (unsigned char *)dst, tail[4] = {'A', 'A', 'A', 'A'}, out[3];
    size_t i, o = 0, rest;

    while (n > 0 && src[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return CE_CORRUPT;
    for (i = 0; i + 4 <= n; i += 4, o += 3)
        if (!quad(s + i, d + o))
            return CE_CORRUPT;
    rest = n - i; /* 0, 2 or 3 characters: 0, 1 or 2 bytes */
    if (rest) {
        for (size_t k = 0; k < rest; k++)
            tail[k] = s[i + k];
        if (!quad(tail, out))
            return CE_CORRUPT;
        for (size_t k = 0; k + 1 < rest; k++)
            d[o++] = out[k];
    }
    *outlen = o;
    return 0;
}

int cetcd_b64_decode_text(const char *in, char **out)
{
    size_t n = strlen(in), m = 0, len = 0;
    char *clean = malloc(n + 1), *d = malloc(n / 4 * 3 + 4);
    int rc = CE_NOMEM;

    if (!clean || !d)
        goto out_free;
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", in[i]))
            clean[m++] = in[i];
    rc = cetcd_b64_decode(clean, m, d, &len);
    if (rc)
        goto out_free;
    d[len] = 0;
    free(clean);
    *out = d;
    return 0;

out_free:
    free(clean);
    free(d);
    *out = NULL;
    return rc;
}
