/*
 * informer.c: a cache of one resource kept current by list + watch on a thread of its own.
 *
 * Loop: list (GET ...?labelSelector=S) -> replace the cache, notify the differences (an object
 * new or with another resourceVersion: changed; gone: deleted) -> watch from the list's
 * resourceVersion (GET ...?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T
 * [&labelSelector=S], T random in 240..480 s). The watch body is one JSON event per line:
 *   {"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}
 * ADDED/MODIFIED replace the cached object, DELETED removes it (notified with the event's
 * object, its last state), BOOKMARK only advances RV, ERROR ends the watch (code 410: relist).
 * Every event advances RV to its object's metadata.resourceVersion, so a stream that ends
 * cleanly (server timeout) is resumed from RV without relisting. A 410 (HTTP or ERROR event)
 * relists at once, the first time; any other failure (API server unreachable, 5xx, bad event)
 * relists after a backoff: 0.2 s doubling to 10 s, each sleep jittered by +-25% (xorshift
 * seeded from the clock), reset once a watch delivers an event. Sleeps and transfers end
 * within ~100 ms of the stop flag (the informer's own, raised by k8s_informer_free, or the
 * client's).
 * Invariants: only the informer thread changes the cache, always under `lock`; other threads
 * read it under `lock` and get deep copies; notify runs on the informer thread without the
 * lock held (it may call k8s_informer_get), after the cache already shows the change.
 */
#include "k8s_int.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000

struct k8s_informer {
    k8s_client *c;
    const struct k8s_res *r;
    char *ns, *selector;
    k8s_notify_fn fn;
    void *ctx;
    pthread_t thread;
    bool started;
    atomic_bool stop, synced;
    pthread_mutex_t lock; /* guards `cache` (the pointer and its contents) */
    pthread_cond_t synced_cv; /* broadcast (under lock) when `synced` becomes true */
    struct k8s_cache *cache;
    /* informer thread only */
    char *rv;
    uint64_t rng;
    unsigned backoff_n;
    bool progress;   /* the current watch delivered an event */
    bool gone_again; /* the last relist was for a 410 and no event came since */
};

/* ---------------------------------------------------------------- backoff */

static uint64_t next_rand(struct k8s_informer *inf)
{
    uint64_t x = inf->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return inf->rng = x;
}

static long backoff_ms(struct k8s_informer *inf)
{
    long base = BACKOFF_MIN_MS << (inf->backoff_n < 6 ? inf->backoff_n : 6);
    long d = base * 3 / 4 + (long)(next_rand(inf) % (uint64_t)(base / 2 + 1));

    if (inf->backoff_n < 16)
        inf->backoff_n++;
    if (d < BACKOFF_MIN_MS)
        d = BACKOFF_MIN_MS;
    return d > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d;
}

static int backoff_sleep(struct k8s_informer *inf)
{
    long ms = backoff_ms(inf);

    log_warn("k8s informer %s: %s; retrying in %ld ms", inf->r->plural, k8s_errmsg(), ms);
    return k8s_sleep_ms(inf->c, &inf->stop, ms);
}

/* ---------------------------------------------------------------- cache changes */

static void notify(struct k8s_informer *inf, const cJSON *obj, bool deleted)
{
    if (inf->fn)
        inf->fn(inf->ctx, obj, deleted);
}

static int set_rv(struct k8s_informer *inf, const char *rv)
{
    char *d;

    if (!rv || !*rv)
        return 0;
    if (!(d = strdup(rv)))
        return k8s_fail(CE_NOMEM, "kubernetes: out of memory");
    free(inf->rv);
    inf->rv = d;
    return 0;
}

static void fill_kind(const struct k8s_res *r, cJSON *obj)
{
    if (!cJSON_HasObjectItem(obj, "apiVersion"))
        cJSON_AddStringToObject(obj, "apiVersion", r->group_version);
    if (!cJSON_HasObjectItem(obj, "kind"))
        cJSON_AddStringToObject(obj, "kind", r->kind);
}

/* Takes obj into the cache and notifies it. */
static int apply_upsert(struct k8s_informer *inf, cJSON *obj)
{
    cJSON *old = NULL;
    int rc;

    fill_kind(inf->r, obj);
    pthread_mutex_lock(&inf->lock);
    rc = k8s_cache_put(inf->cache, obj, &old);
    pthread_mutex_unlock(&inf->lock);
    if (rc) {
        cJSON_Delete(obj);
        return rc == CE_INVAL ? 0 : k8s_fail(rc, "kubernetes: out of memory"); /* nameless: skip */
    }
    cJSON_Delete(old);
    notify(inf, obj, false); /* safe without the lock: only this thread changes the cache */
    return 0;
}

static int apply_delete(struct k8s_informer *inf, cJSON *obj)
{
    const char *name = k8s_obj_name(obj);
    cJSON *old = NULL;

    if (name) {
        pthread_mutex_lock(&inf->lock);
        old = k8s_cache_take(inf->cache, k8s_obj_ns(obj), name);
        pthread_mutex_unlock(&inf->lock);
        fill_kind(inf->r, obj);
        notify(inf, obj, true);
    }
    cJSON_Delete(old);
    cJSON_Delete(obj);
    return 0;
}

/* ---------------------------------------------------------------- list */

struct diff {
    struct k8s_informer *inf;
    const struct k8s_cache *other;
    bool deleted; /* walking the old table: report objects missing from the new one */
};

static void diff_one(void *ud, const cJSON *obj)
{
    struct diff *d = ud;
    const cJSON *o = k8s_cache_find(d->other, k8s_obj_ns(obj), k8s_obj_name(obj));
    const char *rv = k8s_obj_rv(obj), *orv = o ? k8s_obj_rv(o) : NULL;

    if (d->deleted && !o)
        notify(d->inf, obj, true);
    else if (!d->deleted && (!o || !rv || !orv || strcmp(rv, orv)))
        notify(d->inf, obj, false);
}

static int fill_cache(struct k8s_informer *inf, cJSON *items, struct k8s_cache *t)
{
    cJSON *it, *old;
    int rc;

    while ((it = cJSON_DetachItemFromArray(items, 0))) {
        fill_kind(inf->r, it);
        if ((rc = k8s_cache_put(t, it, &old)) == CE_INVAL)
            cJSON_Delete(it); /* nameless: skip */
        else if (rc) {
            cJSON_Delete(it);
            return k8s_fail(rc, "kubernetes: out of memory");
        }
        cJSON_Delete(old);
    }
    return 0;
}

/* Swaps in the new table, then notifies the differences from the old one. */
static void replace_cache(struct k8s_informer *inf, struct k8s_cache *fresh)
{
    struct k8s_cache *old;
    struct diff d = {inf, NULL, false};

    pthread_mutex_lock(&inf->lock);
    old = inf->cache;
    inf->cache = fresh;
    pthread_mutex_unlock(&inf->lock);
    d.other = old;
    k8s_cache_each(fresh, diff_one, &d);
    d.other = fresh;
    d.deleted = true;
    k8s_cache_each(old, diff_one, &d);
    k8s_cache_free(old);
}

static int list_path(struct k8s_informer *inf, struct k8s_buf *b)
{
    if (k8s_res_path(b, inf->r, inf->ns, NULL, NULL) ||
        (inf->selector && k8s_buf_query(b, "labelSelector", inf->selector)))
        return k8s_fail(CE_NOMEM, "kubernetes: out of memory");
    return 0;
}

static int relist(struct k8s_informer *inf)
{
    struct k8s_buf path = {0};
    struct k8s_cache *fresh = NULL;
    cJSON *list = NULL, *items;
    int rc;

    if ((rc = list_path(inf, &path)) ||
        (rc = k8s_request_json(inf->c, "GET", path.p, NULL, NULL, &inf->stop, &list)))
        goto out_free;
    items = cJSON_GetObjectItemCaseSensitive(list, "items");
    if (!cJSON_IsArray(items) && !cJSON_IsNull(items)) {
        rc = k8s_fail(CE_K8S_HTTP, "kubernetes: list of %s without items", inf->r->plural);
        goto out_free;
    }
    if (!(fresh = k8s_cache_new())) {
        rc = k8s_fail(CE_NOMEM, "kubernetes: out of memory");
        goto out_free;
    }
    if ((rc = fill_cache(inf, items, fresh)) ||
        (rc = set_rv(inf, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(list, "metadata"), "resourceVersion")))))
        goto out_free;
    replace_cache(inf, fresh);
    fresh = NULL;
    pthread_mutex_lock(&inf->lock);
    atomic_store(&inf->synced, true);
    pthread_cond_broadcast(&inf->synced_cv);
    pthread_mutex_unlock(&inf->lock);

out_free:
    k8s_cache_free(fresh);
    cJSON_Delete(list);
    k8s_buf_free(&path);
    return rc;
}

/* ---------------------------------------------------------------- watch */

static int error_event(const cJSON *st)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(st, "code");
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message"));

    k8s_set_errmsg("%s", msg ? msg : "kubernetes: watch ERROR event");
    if (cJSON_IsNumber(code) && code->valueint == 410)
        return CE_K8S_GONE;
    return CE_K8S_HTTP;
}

static int on_event(void *ud, char *line, size_t len)
{
    struct k8s_informer *inf = ud;
    cJSON *ev = cJSON_ParseWithLength(line, len), *obj;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "type"));
    int rc;

    obj = cJSON_DetachItemFromObjectCaseSensitive(ev, "object");
    if (!type || !cJSON_IsObject(obj)) {
        rc = k8s_fail(CE_K8S_HTTP, "kubernetes: bad watch event: %.200s", line);
    } else if (!strcmp(type, "ERROR")) {
        rc = error_event(obj);
    } else {
        inf->progress = true;
        rc = set_rv(inf, k8s_obj_rv(obj));
        if (!rc && (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED"))) {
            rc = apply_upsert(inf, obj);
            obj = NULL;
        } else if (!rc && !strcmp(type, "DELETED")) {
            rc = apply_delete(inf, obj);
            obj = NULL;
        }
    }
    cJSON_Delete(obj);
    cJSON_Delete(ev);
    return rc;
}

static int watch_path(struct k8s_informer *inf, struct k8s_buf *b, long *secs)
{
    char t[24];

    *secs = 240 + (long)(next_rand(inf) % 241);
    snprintf(t, sizeof(t), "%ld", *secs);
    if (list_path(inf, b) || k8s_buf_query(b, "watch", "1") ||
        (inf->rv && k8s_buf_query(b, "resourceVersion", inf->rv)) ||
        k8s_buf_query(b, "allowWatchBookmarks", "true") || k8s_buf_query(b, "timeoutSeconds", t))
        return k8s_fail(CE_NOMEM, "kubernetes: out of memory");
    return 0;
}

/* One watch stream, until the server ends it (0) or something fails. */
static int watch_once(struct k8s_informer *inf)
{
    struct k8s_call call = {.method = "GET", .stop = &inf->stop, .on_line = on_event, .ud = inf};
    struct k8s_buf path = {0};
    long secs;
    int rc;

    if ((rc = watch_path(inf, &path, &secs)))
        return rc;
    call.path = path.p;
    call.timeout_ms = (secs + 30) * 1000;
    rc = k8s_http_do(inf->c, &call);
    if (!rc)
        rc = k8s_status_error("GET", call.status, &call.resp);
    k8s_buf_free(&call.resp);
    k8s_buf_free(&path);
    return rc;
}

/* Watches until a failure; a stream that ends with no event at all is resumed after a backoff. */
static int watch_loop(struct k8s_informer *inf)
{
    int rc;

    for (;;) {
        inf->progress = false;
        rc = watch_once(inf);
        if (inf->progress) {
            inf->backoff_n = 0;
            inf->gone_again = false;
        }
        if (rc)
            return rc;
        if (!inf->progress && (rc = k8s_sleep_ms(inf->c, &inf->stop, backoff_ms(inf))))
            return rc;
    }
}

static void *run(void *arg)
{
    struct k8s_informer *inf = arg;
    int rc;

    while (!k8s_stop_requested(inf->c, &inf->stop)) {
        rc = relist(inf);
        if (!rc)
            rc = watch_loop(inf);
        if (rc == CE_STOPPED)
            break;
        if (rc == CE_K8S_GONE && !inf->gone_again) {
            inf->gone_again = true; /* relist at once; a second 410 in a row waits */
            continue;
        }
        if (backoff_sleep(inf) == CE_STOPPED)
            break;
    }
    return NULL;
}

/* ---------------------------------------------------------------- public */

static int dup_opt(char **dst, const char *s)
{
    *dst = NULL;
    if (!s || !*s)
        return 0;
    return (*dst = strdup(s)) ? 0 : CE_NOMEM;
}

int k8s_informer_new(k8s_client *c, const struct k8s_res *r, const char *ns,
                     const char *label_selector, k8s_notify_fn fn, void *ctx, k8s_informer **out)
{
    struct k8s_informer *inf;
    struct timespec ts;

    *out = NULL;
    if (!c || !r)
        return k8s_fail(CE_INVAL, "kubernetes: informer without client or resource");
    if (!(inf = calloc(1, sizeof(*inf))))
        return CE_NOMEM;
    pthread_mutex_init(&inf->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&inf->synced_cv, &ca);
    pthread_condattr_destroy(&ca);
    inf->c = c;
    inf->r = r;
    inf->fn = fn;
    inf->ctx = ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    inf->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)inf;
    inf->rng |= 1;
    if (dup_opt(&inf->ns, ns) || dup_opt(&inf->selector, label_selector) ||
        !(inf->cache = k8s_cache_new())) {
        k8s_informer_free(inf);
        return CE_NOMEM;
    }
    *out = inf;
    return 0;
}

int k8s_informer_start(k8s_informer *inf)
{
    if (inf->started)
        return k8s_fail(CE_INVAL, "kubernetes: informer already started");
    if (pthread_create(&inf->thread, NULL, run, inf))
        return k8s_fail(CE_NOMEM, "kubernetes: cannot start the informer thread");
    inf->started = true;
    return 0;
}

bool k8s_informer_wait_synced(k8s_informer *inf, long timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&inf->lock);
    while (!atomic_load(&inf->synced) &&
           pthread_cond_timedwait(&inf->synced_cv, &inf->lock, &dl) == 0)
        ;
    pthread_mutex_unlock(&inf->lock);
    return atomic_load(&inf->synced);
}

bool k8s_informer_synced(const k8s_informer *inf)
{
    return atomic_load(&((k8s_informer *)inf)->synced);
}

cJSON *k8s_informer_get(k8s_informer *inf, const char *ns, const char *name)
{
    const cJSON *o;
    cJSON *copy = NULL;

    if (!name)
        return NULL;
    pthread_mutex_lock(&inf->lock);
    if ((o = k8s_cache_find(inf->cache, ns, name)))
        copy = cJSON_Duplicate(o, true);
    pthread_mutex_unlock(&inf->lock);
    return copy;
}

struct filter {
    const char *ns, *label, *value;
    cJSON *out;
};

static bool labels_match(const cJSON *obj, const char *label, const char *value)
{
    const cJSON *l;

    if (!label)
        return true;
    l = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "labels"),
        label);
    return cJSON_IsString(l) && (!value || !strcmp(l->valuestring, value));
}

static void collect_one(void *ud, const cJSON *obj)
{
    struct filter *f = ud;
    cJSON *copy;

    if (!f->out || (f->ns && strcmp(f->ns, k8s_obj_ns(obj))) ||
        !labels_match(obj, f->label, f->value))
        return;
    if (!(copy = cJSON_Duplicate(obj, true)) || !cJSON_AddItemToArray(f->out, copy)) {
        cJSON_Delete(copy);
        cJSON_Delete(f->out);
        f->out = NULL; /* out of memory: the caller gets NULL */
    }
}

cJSON *k8s_informer_list(k8s_informer *inf, const char *ns, const char *label, const char *value)
{
    struct filter f = {ns, label, value, cJSON_CreateArray()};

    pthread_mutex_lock(&inf->lock);
    k8s_cache_each(inf->cache, collect_one, &f);
    pthread_mutex_unlock(&inf->lock);
    return f.out;
}

void k8s_informer_free(k8s_informer *inf)
{
    if (!inf)
        return;
    atomic_store(&inf->stop, true);
    if (inf->started)
        pthread_join(inf->thread, NULL);
    k8s_cache_free(inf->cache);
    pthread_mutex_destroy(&inf->lock);
    pthread_cond_destroy(&inf->synced_cv);
    free(inf->rv);
    free(inf->ns);
    free(inf->selector);
    free(inf);
}
