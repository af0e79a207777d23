/*
 * mem.c: the response arena and base64, small utilities of the client library.
 *
 * An arena is a singly linked list of blocks; allocations are 16-byte aligned bump allocations
 * inside the newest block, a request larger than the default block size gets its own block.
 * Nothing is freed individually: cetcd_mem_free() releases every block at once. A NULL arena
 * pointer is valid and means "empty"; cetcd_mem_alloc() creates the arena on first use.
 */
#include "client_internal.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE 4096

struct block {
    struct block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct cetcd_mem {
    struct block *head;
};

static struct block *block_new(size_t cap)
{
    struct block *b = malloc(sizeof(*b) + cap);

    if (!b)
        return NULL;
    b->next = NULL;
    b->used = 0;
    b->cap = cap;
    return b;
}

void *cetcd_mem_alloc(struct cetcd_mem **m, size_t n)
{
    struct block *b;
    size_t need = (n + 15) & ~(size_t)15;

    if (need < n)
        return NULL;
    if (!*m) {
        *m = calloc(1, sizeof(**m));
        if (!*m)
            return NULL;
    }
    b = (*m)->head;
    if (!b || b->cap - b->used < need) {
        b = block_new(need > BLOCK_SIZE / 2 ? need : BLOCK_SIZE);
        if (!b)
            return NULL;
        b->next = (*m)->head;
        (*m)->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    memset(p, 0, n);
    return p;
}

char *cetcd_mem_dup(struct cetcd_mem **m, const char *s, size_t n)
{
    char *p = cetcd_mem_alloc(m, n + 1);

    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void cetcd_mem_free(struct cetcd_mem *m)
{
    struct block *b, *next;

    if (!m)
        return;
    for (b = m->head; b; b = next) {
        next = b->next;
        free(b);
    }
    free(m);
}

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

size_t cetcd_prefix_end(const char *key, size_t len, char *buf)
{
    for (size_t i = len; i > 0; i--) {
        if ((unsigned char)key[i - 1] != 0xff) {
            memcpy(buf, key, i - 1);
            buf[i - 1] = (char)((unsigned char)key[i - 1] + 1);
            return i;
        }
    }
    buf[0] = 0;
    return 1;
}
