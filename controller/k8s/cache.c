/*
 * cache.c: the informer's object table: "namespace/name" -> cJSON object (owned).
 *
 * A chained hash table (FNV-1a over namespace, '/', name; power-of-two buckets, doubled when
 * the load passes 1). Cluster-scoped objects have namespace "". Each entry keeps its key as
 * one allocated "ns/name" string so lookups never allocate. Not locked: the informer holds
 * its own mutex around every change and every read from other threads.
 */
#include "k8s_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key; /* "ns/name" */
    size_t ns_len;
    cJSON *obj;
    struct entry *next;
};

struct k8s_cache {
    struct entry **b;
    size_t nb, count;
};

const char *k8s_obj_ns(const cJSON *obj)
{
    const char *s = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "namespace"));

    return s ? s : "";
}

const char *k8s_obj_name(const cJSON *obj)
{
    return cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "name"));
}

const char *k8s_obj_rv(const cJSON *obj)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "resourceVersion"));
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t slot(const struct k8s_cache *t, const char *ns, const char *name)
{
    uint64_t h = fnv(14695981039346656037ull, ns);

    h = (h ^ '/') * 1099511628211ull;
    return (size_t)(fnv(h, name) & (t->nb - 1));
}

static bool key_eq(const struct entry *e, const char *ns, const char *name)
{
    size_t nl = strlen(ns);

    return e->ns_len == nl && !memcmp(e->key, ns, nl) && !strcmp(e->key + nl + 1, name);
}

struct k8s_cache *k8s_cache_new(void)
{
    struct k8s_cache *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->nb = 16;
    if (!(t->b = calloc(t->nb, sizeof(*t->b)))) {
        free(t);
        return NULL;
    }
    return t;
}

void k8s_cache_free(struct k8s_cache *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nb; i++) {
        for (struct entry *e = t->b[i], *n; e; e = n) {
            n = e->next;
            cJSON_Delete(e->obj);
            free(e->key);
            free(e);
        }
    }
    free(t->b);
    free(t);
}

static struct entry **find_link(const struct k8s_cache *t, const char *ns, const char *name)
{
    struct entry **l = &t->b[slot(t, ns, name)];

    while (*l && !key_eq(*l, ns, name))
        l = &(*l)->next;
    return l;
}

/* Doubles the bucket array; on allocation failure the table stays as it was (just slower). */
static void grow(struct k8s_cache *t)
{
    size_t nb = t->nb * 2;
    struct entry **b = calloc(nb, sizeof(*b));
    struct k8s_cache nt = {b, nb, 0};

    if (!b)
        return;
    for (size_t i = 0; i < t->nb; i++) {
        for (struct entry *e = t->b[i], *n; e; e = n) {
            size_t s;

            n = e->next;
            e->key[e->ns_len] = 0;
            s = slot(&nt, e->key, e->key + e->ns_len + 1);
            e->key[e->ns_len] = '/';
            e->next = b[s];
            b[s] = e;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

static struct entry *new_entry(const char *ns, const char *name, cJSON *obj)
{
    struct entry *e = calloc(1, sizeof(*e));
    size_t nl = strlen(ns), ml = strlen(name);

    if (!e || !(e->key = malloc(nl + ml + 2))) {
        free(e);
        return NULL;
    }
    memcpy(e->key, ns, nl);
    e->key[nl] = '/';
    memcpy(e->key + nl + 1, name, ml + 1);
    e->ns_len = nl;
    e->obj = obj;
    return e;
}

int k8s_cache_put(struct k8s_cache *t, cJSON *obj, cJSON **old)
{
    const char *ns = k8s_obj_ns(obj), *name = k8s_obj_name(obj);
    struct entry **l, *e;

    *old = NULL;
    if (!name)
        return CE_INVAL;
    l = find_link(t, ns, name);
    if (*l) {
        *old = (*l)->obj;
        (*l)->obj = obj;
        return 0;
    }
    if (!(e = new_entry(ns, name, obj)))
        return CE_NOMEM;
    *l = e;
    if (++t->count > t->nb)
        grow(t);
    return 0;
}

cJSON *k8s_cache_take(struct k8s_cache *t, const char *ns, const char *name)
{
    struct entry **l = find_link(t, ns ? ns : "", name), *e = *l;
    cJSON *obj;

    if (!e)
        return NULL;
    *l = e->next;
    obj = e->obj;
    free(e->key);
    free(e);
    t->count--;
    return obj;
}

const cJSON *k8s_cache_find(const struct k8s_cache *t, const char *ns, const char *name)
{
    struct entry *e = *find_link(t, ns ? ns : "", name);

    return e ? e->obj : NULL;
}

size_t k8s_cache_count(const struct k8s_cache *t)
{
    return t->count;
}

void k8s_cache_each(const struct k8s_cache *t, void (*fn)(void *ud, const cJSON *obj), void *ud)
{
    for (size_t i = 0; i < t->nb; i++)
        for (const struct entry *e = t->b[i]; e; e = e->next)
            fn(ud, e->obj);
}
