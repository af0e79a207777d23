/*
 * match.c: which watchers an event's key concerns.
 *
 * Watchers are grouped by key range: a group per distinct (kind, key, end), where kind is
 * G_KEY (the key alone), G_RANGE ([key, end)) or G_FROM (every key >= key, etcd's "\0" end).
 * Single-key groups sit in a hash table (FNV-1a of the key, chained, doubled at load 1), so
 * an event finds them with one lookup; range groups are one list scanned per event (few in
 * practice: a prefix watched by a thousand clients is one group). Inside a group, classes
 * split watchers by the options that change their event bytes (prev_kv, NOPUT, NODELETE).
 *
 * Invariants: a group exists while it has a class, a class while it has a watcher (refs);
 * a group's key and end are its own copies.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fnv1a.h"
#include "watch_int.h"

#define KB_INITIAL 64

static int bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;

    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static bool bytes_eq(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static int bytes_dup(ProtobufCBinaryData *dst, const ProtobufCBinaryData *src)
{
    dst->len = src->len;
    dst->data = malloc(src->len ? src->len : 1);
    if (!dst->data)
        return CE_NOMEM;
    if (src->len)
        memcpy(dst->data, src->data, src->len);
    return 0;
}

/* ---- the single-key table ---- */

static int kb_grow(watch_hub *h)
{
    size_t n = h->nkb ? h->nkb * 2 : KB_INITIAL;
    wgroup **kb = calloc(n, sizeof(*kb));

    if (!kb)
        return CE_NOMEM;
    for (size_t i = 0; i < h->nkb; i++) {
        wgroup *g = h->kb[i], *next;
        for (; g; g = next) {
            next = g->next;
            g->prev = NULL;
            g->next = kb[g->hash & (n - 1)];
            if (g->next)
                g->next->prev = g;
            kb[g->hash & (n - 1)] = g;
        }
    }
    free(h->kb);
    h->kb = kb;
    h->nkb = n;
    return 0;
}

static wgroup *key_find(watch_hub *h, const ProtobufCBinaryData *key, uint64_t hash)
{
    if (!h->nkb)
        return NULL;
    for (wgroup *g = h->kb[hash & (h->nkb - 1)]; g; g = g->next)
        if (g->hash == hash && bytes_eq(&g->key, key))
            return g;
    return NULL;
}

static wgroup *range_find(watch_hub *h, const ProtobufCBinaryData *key,
                          const ProtobufCBinaryData *end, enum gkind kind)
{
    for (wgroup *g = h->ranges; g; g = g->next)
        if (g->kind == kind && bytes_eq(&g->key, key) && bytes_eq(&g->end, end))
            return g;
    return NULL;
}

/* ---- groups ---- */

static void group_link(watch_hub *h, wgroup *g)
{
    wgroup **head = g->kind == G_KEY ? &h->kb[g->hash & (h->nkb - 1)] : &h->ranges;

    g->prev = NULL;
    g->next = *head;
    if (*head)
        (*head)->prev = g;
    *head = g;
    if (g->kind == G_KEY)
        h->nkeys++;
}

static void group_free(watch_hub *h, wgroup *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else if (g->kind == G_KEY)
        h->kb[g->hash & (h->nkb - 1)] = g->next;
    else
        h->ranges = g->next;
    if (g->next)
        g->next->prev = g->prev;
    if (g->kind == G_KEY)
        h->nkeys--;
    free(g->key.data);
    free(g->end.data);
    free(g);
}

static int group_new(watch_hub *h, const ProtobufCBinaryData *key,
                     const ProtobufCBinaryData *end, enum gkind kind, uint64_t hash,
                     wgroup **out)
{
    wgroup *g;

    if (kind == G_KEY && h->nkeys >= h->nkb && kb_grow(h))
        return CE_NOMEM;
    g = calloc(1, sizeof(*g));
    if (!g)
        return CE_NOMEM;
    g->kind = kind;
    g->hash = hash;
    if (bytes_dup(&g->key, key) || bytes_dup(&g->end, end)) {
        free(g->key.data);
        free(g);
        return CE_NOMEM;
    }
    group_link(h, g);
    *out = g;
    return 0;
}

static int group_get(watch_hub *h, const ProtobufCBinaryData *key,
                     const ProtobufCBinaryData *end, enum gkind kind, wgroup **out)
{
    uint64_t hash = kind == G_KEY ? fnv1a64(key->data, key->len) : 0;
    ProtobufCBinaryData none = {0, NULL};
    wgroup *g = kind == G_KEY ? key_find(h, key, hash) : range_find(h, key, end, kind);

    if (g) {
        *out = g;
        return 0;
    }
    return group_new(h, key, kind == G_RANGE ? end : &none, kind, hash, out);
}

/* ---- classes ---- */

int match_class_get(watch_hub *h, const ProtobufCBinaryData *key,
                    const ProtobufCBinaryData *end, enum gkind kind, unsigned variant,
                    wclass **out)
{
    wgroup *g;
    wclass *c;
    int rc = group_get(h, key, end, kind, &g);

    if (rc)
        return rc;
    for (c = g->classes; c && c->variant != variant; c = c->next)
        ;
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c) {
            if (!g->classes)
                group_free(h, g);
            return CE_NOMEM;
        }
        c->g = g;
        c->variant = variant;
        c->next = g->classes;
        g->classes = c;
    }
    c->refs++;
    *out = c;
    return 0;
}

void match_class_put(watch_hub *h, wclass *c)
{
    wgroup *g = c->g;
    wclass **pp;

    if (--c->refs > 0)
        return;
    for (pp = &g->classes; *pp != c; pp = &(*pp)->next)
        ;
    *pp = c->next;
    free(c->evs);
    free(c);
    if (!g->classes)
        group_free(h, g);
}

/* ---- matching ---- */

static bool range_holds(const wgroup *g, const ProtobufCBinaryData *key)
{
    if (bytes_cmp(key->data, key->len, g->key.data, g->key.len) < 0)
        return false;
    return g->kind == G_FROM || bytes_cmp(key->data, key->len, g->end.data, g->end.len) < 0;
}

static void each_class(watch_hub *h, wgroup *g, void (*fn)(watch_hub *h, wclass *c, void *arg),
                       void *arg)
{
    for (wclass *c = g->classes; c; c = c->next)
        fn(h, c, arg);
}

void match_key(watch_hub *h, const ProtobufCBinaryData *key,
               void (*fn)(watch_hub *h, wclass *c, void *arg), void *arg)
{
    wgroup *g;

    if (h->nkeys && (g = key_find(h, key, fnv1a64(key->data, key->len))) != NULL)
        each_class(h, g, fn, arg);
    for (g = h->ranges; g; g = g->next)
        if (range_holds(g, key))
            each_class(h, g, fn, arg);
}

void match_free_all(watch_hub *h)
{
    free(h->kb);
    h->kb = NULL;
    h->nkb = h->nkeys = 0;
}
