/*
 * pending.c: the waiter table of pending.h.
 */
#include "pending.h"
#include "err.h"

#include <stdlib.h>

#define INITIAL_BUCKETS 1024

static size_t slot(const pending_table *t, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (t->nbuckets - 1);
}

int pending_init(pending_table *t)
{
    t->buckets = calloc(INITIAL_BUCKETS, sizeof(*t->buckets));
    if (!t->buckets)
        return CE_NOMEM;
    t->nbuckets = INITIAL_BUCKETS;
    t->count = 0;
    t->rhead = t->rtail = 0;
    return 0;
}

void pending_fini(pending_table *t)
{
    pending *p, *next;

    /* reads are freed through the FIFO (they may have left the table when cancelled) */
    for (p = t->rhead; p; p = next) {
        next = p->rnext;
        if (p->cancelled)
            free(p);
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (p = t->buckets[i]; p; p = next) {
            next = p->hnext;
            free(p);
        }
    }
    free(t->buckets);
    t->buckets = 0;
}

static void grow(pending_table *t)
{
    size_t n = t->nbuckets * 2;
    pending **b = calloc(n, sizeof(*b));
    pending_table nt = {.buckets = b, .nbuckets = n};

    if (!b)
        return; /* keep the longer chains */
    for (size_t i = 0; i < t->nbuckets; i++) {
        pending *p = t->buckets[i], *next;
        for (; p; p = next) {
            size_t s = slot(&nt, p->id);
            next = p->hnext;
            p->hnext = b[s];
            b[s] = p;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

int pending_add(pending_table *t, uint64_t id, node_write_cb wcb, node_read_cb rcb, void *ctx,
                pending **out)
{
    pending *p = calloc(1, sizeof(*p));
    size_t s;

    if (!p)
        return CE_NOMEM;
    if (t->count >= t->nbuckets * 2)
        grow(t);
    p->id = id;
    p->wcb = wcb;
    p->rcb = rcb;
    p->ctx = ctx;
    s = slot(t, id);
    p->hnext = t->buckets[s];
    t->buckets[s] = p;
    t->count++;
    if (rcb) {
        if (t->rtail)
            t->rtail->rnext = p;
        else
            t->rhead = p;
        t->rtail = p;
    }
    *out = p;
    return 0;
}

pending *pending_find(pending_table *t, uint64_t id)
{
    for (pending *p = t->buckets[slot(t, id)]; p; p = p->hnext)
        if (p->id == id)
            return p;
    return 0;
}

pending *pending_take(pending_table *t, uint64_t id)
{
    pending **pp = &t->buckets[slot(t, id)];

    for (; *pp; pp = &(*pp)->hnext) {
        pending *p = *pp;
        if (p->id == id) {
            *pp = p->hnext;
            p->hnext = 0;
            t->count--;
            return p;
        }
    }
    return 0;
}
