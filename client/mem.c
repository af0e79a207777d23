/*
 * mem.c: the response arena, a small utility of the client library.
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
