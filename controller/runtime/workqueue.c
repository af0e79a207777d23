/*
 * workqueue.c: the rate-limited work queue (semantics in workqueue.h).
 *
 * Every key the queue knows has one item in a chained hash table. Its state:
 *   dirty       it must be processed (again): set by an add, cleared when wq_get hands it out
 *   processing  handed out by wq_get, wq_done not called yet
 *   heap_idx    its slot in the min-heap of delayed adds (NO_SLOT if none), due = deadline
 *   failures    wq_add_rate_limited calls since wq_forget
 * Invariants: an item is in the ready FIFO exactly when dirty && !processing; an item with
 * none of dirty, processing, a heap slot or failures is freed at once; the heap is ordered by
 * (due, seq), so keys due at the same instant leave in the order they were added. All fields
 * are guarded by q->mu. Delayed keys are moved to the FIFO by whoever next looks at it
 * (wq_get, wq_len) under the lock; a waiter sleeps until the earliest deadline at most.
 */
#include "workqueue.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

#define NO_SLOT SIZE_MAX
#define DEFAULT_BASE_MS 200
#define DEFAULT_MAX_MS 60000

struct item {
    char *key;
    struct item *next; /* hash chain */
    bool dirty, processing;
    size_t heap_idx;
    int64_t due;       /* monotonic ms, valid with a heap slot */
    uint64_t seq;      /* tie-break of equal deadlines */
    int failures;
};

struct wq {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool shutdown;
    struct item **buckets; /* hash table, nbuckets a power of two */
    size_t nbuckets, nitems;
    struct item **fifo;    /* ring: fifo[(head + i) % fifo_cap], i < fifo_len */
    size_t head, fifo_len, fifo_cap;
    struct item **heap;
    size_t heap_len, heap_cap;
    uint64_t seq;
    int64_t base_ms, max_ms;
    metrics *metrics;
    char labels[192];      /* name="..." */
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- hash table ---- */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct item *item_find(const wq *q, const char *key)
{
    struct item *it = q->buckets[hash(key) & (q->nbuckets - 1)];

    while (it && strcmp(it->key, key) != 0)
        it = it->next;
    return it;
}

static void rehash(wq *q)
{
    size_t n = q->nbuckets * 2;
    struct item **b = calloc(n, sizeof(*b));

    if (!b)
        return; /* keep the longer chains */
    for (size_t i = 0; i < q->nbuckets; i++) {
        struct item *it = q->buckets[i], *next;

        for (; it; it = next) {
            size_t h = hash(it->key) & (n - 1);

            next = it->next;
            it->next = b[h];
            b[h] = it;
        }
    }
    free(q->buckets);
    q->buckets = b;
    q->nbuckets = n;
}

/* The item of key, created (clean) if absent; NULL on allocation failure. */
static struct item *item_get(wq *q, const char *key)
{
    struct item *it = item_find(q, key);
    size_t h;

    if (it)
        return it;
    it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->key = strdup(key);
    if (!it->key) {
        free(it);
        return NULL;
    }
    it->heap_idx = NO_SLOT;
    if (q->nitems >= q->nbuckets)
        rehash(q);
    h = hash(key) & (q->nbuckets - 1);
    it->next = q->buckets[h];
    q->buckets[h] = it;
    q->nitems++;
    return it;
}

/* Frees the item if nothing refers to it any more. */
static void item_release(wq *q, struct item *it)
{
    struct item **pp;

    if (it->dirty || it->processing || it->heap_idx != NO_SLOT || it->failures > 0)
        return;
    for (pp = &q->buckets[hash(it->key) & (q->nbuckets - 1)]; *pp != it; pp = &(*pp)->next)
        ;
    *pp = it->next;
    q->nitems--;
    free(it->key);
    free(it);
}

/* ---- ready FIFO ---- */

static int fifo_push(wq *q, struct item *it)
{
    if (q->fifo_len == q->fifo_cap) {
        size_t ncap = q->fifo_cap ? q->fifo_cap * 2 : 16;
        struct item **f = malloc(ncap * sizeof(*f));

        if (!f)
            return CE_NOMEM;
        for (size_t i = 0; i < q->fifo_len; i++)
            f[i] = q->fifo[(q->head + i) % q->fifo_cap];
        free(q->fifo);
        q->fifo = f;
        q->fifo_cap = ncap;
        q->head = 0;
    }
    q->fifo[(q->head + q->fifo_len) % q->fifo_cap] = it;
    q->fifo_len++;
    return 0;
}

static struct item *fifo_front(const wq *q) { return q->fifo[q->head]; }

static void fifo_pop(wq *q)
{
    q->head = (q->head + 1) % q->fifo_cap;
    q->fifo_len--;
}

/* ---- delay heap ---- */

static bool before(const struct item *a, const struct item *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(wq *q, size_t i, struct item *it)
{
    q->heap[i] = it;
    it->heap_idx = i;
}

static void sift_up(wq *q, size_t i)
{
    struct item *it = q->heap[i];

    while (i > 0 && before(it, q->heap[(i - 1) / 2])) {
        heap_set(q, i, q->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(q, i, it);
}

static void sift_down(wq *q, size_t i)
{
    struct item *it = q->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= q->heap_len)
            break;
        if (c + 1 < q->heap_len && before(q->heap[c + 1], q->heap[c]))
            c++;
        if (!before(q->heap[c], it))
            break;
        heap_set(q, i, q->heap[c]);
        i = c;
    }
    heap_set(q, i, it);
}

static int heap_push(wq *q, struct item *it)
{
    if (q->heap_len == q->heap_cap) {
        size_t ncap = q->heap_cap ? q->heap_cap * 2 : 16;
        struct item **h = realloc(q->heap, ncap * sizeof(*h));

        if (!h)
            return CE_NOMEM;
        q->heap = h;
        q->heap_cap = ncap;
    }
    q->heap[q->heap_len] = it;
    it->heap_idx = q->heap_len++;
    sift_up(q, it->heap_idx);
    return 0;
}

static struct item *heap_pop(wq *q)
{
    struct item *top = q->heap[0];

    q->heap_len--;
    if (q->heap_len > 0) {
        q->heap[0] = q->heap[q->heap_len];
        sift_down(q, 0);
    }
    top->heap_idx = NO_SLOT;
    return top;
}

/* ---- core ---- */

static void update_depth(wq *q)
{
    if (q->metrics)
        metrics_gauge_set(q->metrics, M_WQ_DEPTH, q->labels, (double)q->fifo_len);
}

/* client-go's Add, on an existing item. Called locked. */
static int add_locked(wq *q, struct item *it)
{
    int rc = 0;

    if (it->dirty)
        return 0;
    if (!it->processing) {
        rc = fifo_push(q, it);
        if (rc != 0)
            return rc;
        pthread_cond_signal(&q->cond);
    }
    it->dirty = true;
    if (q->metrics)
        metrics_counter_add(q->metrics, M_WQ_ADDS, q->labels, 1);
    update_depth(q);
    return 0;
}

/* Moves every key whose deadline has passed into the FIFO, in deadline order. */
static void promote_due(wq *q)
{
    int64_t now;

    if (q->heap_len == 0)
        return;
    now = now_ms();
    while (q->heap_len > 0 && q->heap[0]->due <= now) {
        struct item *it = heap_pop(q);

        if (add_locked(q, it) != 0) {
            /* no memory for the FIFO: retry a little later rather than lose the key */
            it->due = now + 10;
            heap_push(q, it); /* cannot fail: the slot just freed is still allocated */
            break;
        }
        item_release(q, it);
    }
}

static bool valid_key(const char *key) { return key && *key; }

/* Puts (or moves earlier) the key's delayed add. Called locked, with delay > 0. */
static int add_after_locked(wq *q, struct item *it, int64_t delay)
{
    int64_t due = now_ms() + delay;
    int rc = 0;

    if (it->heap_idx != NO_SLOT) {
        if (due >= it->due)
            return 0;
        it->due = due;
        sift_up(q, it->heap_idx);
    } else {
        it->due = due;
        it->seq = q->seq++;
        rc = heap_push(q, it);
    }
    if (rc == 0 && q->heap[0] == it)
        pthread_cond_broadcast(&q->cond); /* waiters sleep until an older, later deadline */
    return rc;
}

/* base * 2^failures, capped at max. */
static int64_t backoff(const wq *q, int failures)
{
    int64_t ms = q->base_ms;

    for (int i = 0; i < failures && ms < q->max_ms; i++)
        ms *= 2;
    return ms < q->max_ms ? ms : q->max_ms;
}

static int add_delayed(wq *q, const char *key, int64_t ms, bool rate_limited)
{
    struct item *it;
    int rc = 0;

    if (!valid_key(key))
        return CE_INVAL;
    pthread_mutex_lock(&q->mu);
    if (q->shutdown)
        goto out_unlock;
    it = item_get(q, key);
    if (!it) {
        rc = CE_NOMEM;
        goto out_unlock;
    }
    if (rate_limited) {
        ms = backoff(q, it->failures);
        it->failures++;
        if (q->metrics)
            metrics_counter_add(q->metrics, M_WQ_RETRIES, q->labels, 1);
    }
    rc = ms <= 0 ? add_locked(q, it) : add_after_locked(q, it, ms);
    item_release(q, it);
out_unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int wq_add(wq *q, const char *key) { return add_delayed(q, key, 0, false); }

int wq_add_after(wq *q, const char *key, int64_t ms) { return add_delayed(q, key, ms, false); }

int wq_add_rate_limited(wq *q, const char *key) { return add_delayed(q, key, 0, true); }

void wq_forget(wq *q, const char *key)
{
    struct item *it;

    if (!valid_key(key))
        return;
    pthread_mutex_lock(&q->mu);
    it = item_find(q, key);
    if (it) {
        it->failures = 0;
        item_release(q, it);
    }
    pthread_mutex_unlock(&q->mu);
}

int wq_num_requeues(wq *q, const char *key)
{
    struct item *it;
    int n = 0;

    if (!valid_key(key))
        return 0;
    pthread_mutex_lock(&q->mu);
    it = item_find(q, key);
    if (it)
        n = it->failures;
    pthread_mutex_unlock(&q->mu);
    return n;
}

int64_t wq_next_backoff_ms(wq *q, const char *key)
{
    return backoff(q, wq_num_requeues(q, key));
}

/* Waits on the condvar until signalled or until the earliest deadline. */
static void wait_locked(wq *q)
{
    struct timespec ts;
    int64_t due;

    if (q->heap_len == 0) {
        pthread_cond_wait(&q->cond, &q->mu);
        return;
    }
    due = q->heap[0]->due;
    ts.tv_sec = due / 1000;
    ts.tv_nsec = (due % 1000) * 1000000;
    pthread_cond_timedwait(&q->cond, &q->mu, &ts);
}

int wq_get(wq *q, char **key)
{
    struct item *it;
    int rc = 0;

    *key = NULL;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->shutdown) {
            rc = CE_STOPPED;
            goto out_unlock;
        }
        promote_due(q);
        if (q->fifo_len > 0)
            break;
        wait_locked(q);
    }
    it = fifo_front(q);
    *key = strdup(it->key);
    if (!*key) {
        rc = CE_NOMEM;
        goto out_unlock;
    }
    fifo_pop(q);
    it->processing = true;
    it->dirty = false;
    update_depth(q);
out_unlock:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void wq_done(wq *q, const char *key)
{
    struct item *it;

    if (!valid_key(key))
        return;
    pthread_mutex_lock(&q->mu);
    it = item_find(q, key);
    if (it && it->processing) {
        it->processing = false;
        if (it->dirty && fifo_push(q, it) != 0) {
            /* out of memory: retry through the delay heap rather than lose the key (lost
             * only if that allocation fails too) */
            it->dirty = false;
            (void)add_after_locked(q, it, 10);
        } else if (it->dirty) {
            pthread_cond_signal(&q->cond);
            update_depth(q);
        }
        item_release(q, it);
    }
    pthread_mutex_unlock(&q->mu);
}

void wq_shutdown(wq *q)
{
    pthread_mutex_lock(&q->mu);
    q->shutdown = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

bool wq_shutting_down(wq *q)
{
    bool s;

    pthread_mutex_lock(&q->mu);
    s = q->shutdown;
    pthread_mutex_unlock(&q->mu);
    return s;
}

size_t wq_len(wq *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    promote_due(q);
    n = q->fifo_len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* ---- lifecycle ---- */

static int init_sync(wq *q)
{
    pthread_condattr_t ca;
    int rc = CE_NOMEM;

    if (pthread_condattr_init(&ca) != 0)
        return CE_NOMEM;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
        pthread_cond_init(&q->cond, &ca) == 0) {
        if (pthread_mutex_init(&q->mu, NULL) == 0)
            rc = 0;
        else
            pthread_cond_destroy(&q->cond);
    }
    pthread_condattr_destroy(&ca);
    return rc;
}

static int init_metrics(wq *q, const struct wq_opts *o)
{
    int rc;

    if (!o || !o->metrics)
        return 0;
    q->metrics = o->metrics;
    rc = metrics_register_operator(q->metrics);
    if (rc == 0)
        rc = metrics_labels(q->labels, sizeof(q->labels), "name", o->name ? o->name : "", NULL);
    if (rc == 0)
        rc = metrics_gauge_set(q->metrics, M_WQ_DEPTH, q->labels, 0);
    if (rc == 0)
        rc = metrics_counter_add(q->metrics, M_WQ_ADDS, q->labels, 0);
    if (rc == 0)
        rc = metrics_counter_add(q->metrics, M_WQ_RETRIES, q->labels, 0);
    return rc;
}

int wq_new(const struct wq_opts *opts, wq **out)
{
    wq *q;
    int rc;

    q = calloc(1, sizeof(*q));
    if (!q)
        return CE_NOMEM;
    q->base_ms = opts && opts->base_delay_ms ? opts->base_delay_ms : DEFAULT_BASE_MS;
    q->max_ms = opts && opts->max_delay_ms ? opts->max_delay_ms : DEFAULT_MAX_MS;
    rc = q->base_ms < 0 || q->max_ms < q->base_ms ? CE_INVAL : 0;
    if (rc != 0)
        goto out_free_q;
    q->nbuckets = 64;
    q->buckets = calloc(q->nbuckets, sizeof(*q->buckets));
    rc = q->buckets ? init_metrics(q, opts) : CE_NOMEM;
    if (rc != 0)
        goto out_free_buckets;
    rc = init_sync(q);
    if (rc != 0)
        goto out_free_buckets;
    *out = q;
    return 0;
out_free_buckets:
    free(q->buckets);
out_free_q:
    free(q);
    return rc;
}

void wq_free(wq *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nbuckets; i++) {
        struct item *it = q->buckets[i], *next;

        for (; it; it = next) {
            next = it->next;
            free(it->key);
            free(it);
        }
    }
    free(q->buckets);
    free(q->fifo);
    free(q->heap);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
