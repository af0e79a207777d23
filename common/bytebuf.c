/*
 * bytebuf.c: the growable byte buffer (bytebuf.h).
 */
#include "bytebuf.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BYTEBUF_MIN 256

int bytebuf_reserve(bytebuf *b, size_t extra)
{
    size_t cap, live = bytebuf_size(b);
    uint8_t *p;

    if (b->off > 0 && live == 0)
        b->off = b->len = 0;
    if (b->cap - b->len >= extra)
        return 0;
    /* Compact when it makes the room and moves no more than it reclaims. */
    if (b->off > 0 && b->cap - live >= extra && b->off >= live) {
        memmove(b->p, b->p + b->off, live);
        b->len = live;
        b->off = 0;
        return 0;
    }
    cap = b->cap ? b->cap : BYTEBUF_MIN;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return CE_NOMEM;
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (!p)
        return CE_NOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int bytebuf_append(bytebuf *b, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (bytebuf_reserve(b, n))
        return CE_NOMEM;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

int bytebuf_printf(bytebuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (bytebuf_reserve(b, 128))
        return CE_NOMEM;
    va_start(ap, fmt);
    n = vsnprintf((char *)b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CE_INVAL;
    if ((size_t)n >= b->cap - b->len) {
        if (bytebuf_reserve(b, (size_t)n + 1))
            return CE_NOMEM;
        va_start(ap, fmt);
        vsnprintf((char *)b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

void bytebuf_consume(bytebuf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void bytebuf_trim(bytebuf *b, size_t keep)
{
    if (bytebuf_size(b) == 0 && b->cap > keep)
        bytebuf_free(b);
}

void bytebuf_free(bytebuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}
