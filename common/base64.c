/*
 * base64.c: standard base64 encoding and decoding (contract in base64.h). Pure functions, no
 * allocation: callers size the output with cetcd_b64_encoded_len or n*3/4+3.
 */
#include "base64.h"

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

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int cetcd_b64_decode(const char *src, size_t n, char *dst, size_t *outlen)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;

    while (n > 0 && src[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return CE_CORRUPT;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)src[i]);
        if (v < 0)
            return CE_CORRUPT;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    *outlen = o;
    return 0;
}
