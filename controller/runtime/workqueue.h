/*
 * workqueue.h: the controller's rate-limited work queue of string keys ("namespace/name"),
 * with client-go's workqueue semantics.
 *
 * - A key is in the queue at most once: wq_add of a key already waiting is a no-op.
 * - A key is never handed to two workers at once: between wq_get returning it and wq_done,
 *   the key is "processing"; a wq_add meanwhile marks it dirty, and wq_done puts it back
 *   in the queue (once, however many adds happened).
 * - wq_add_after(key, ms) adds the key after ms milliseconds (ms <= 0: now). A key waiting
 *   with a later deadline is moved earlier; an earlier deadline is kept. Due keys enter the
 *   queue in deadline order.
 * - wq_add_rate_limited(key) = wq_add_after(key, backoff) with per-key exponential backoff:
 *   base * 2^n for the n-th call since the last wq_forget(key), capped at max (defaults
 *   200 ms doubling to 60 s). wq_forget resets it (call it after a successful reconcile).
 * - wq_shutdown wakes every wq_get, which from then on returns CE_STOPPED at once (queued keys
 *   are not drained: the operator is exiting); adds after shutdown are ignored.
 * Thread-safe; timed waits use CLOCK_MONOTONIC.
 *
 * Metrics (when opts.metrics is set; families from metrics_register_operator, which wq_new
 * calls): workqueue_depth{name} = wq_len, workqueue_adds_total{name} counts adds that put
 * a key into the dirty set (not deduplicated ones), workqueue_retries_total{name} counts
 * wq_add_rate_limited calls.
 */
#ifndef CETCD_WORKQUEUE_H
#define CETCD_WORKQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/metrics.h"

typedef struct wq wq;

struct wq_opts {
    const char *name;         /* the metrics' name label, e.g. "etcdcluster"; NULL = "" */
    metrics *metrics;         /* NULL = no metrics */
    int64_t base_delay_ms;    /* 0 = 200 */
    int64_t max_delay_ms;     /* 0 = 60000 */
};

/* opts may be NULL (defaults, no metrics). 0, CE_INVAL (base > max or negative) or CE_NOMEM. */
int wq_new(const struct wq_opts *opts, wq **out);
/* Frees the queue; no thread may be inside a wq_* call (shut down and join workers first). */
void wq_free(wq *q);

/* 0, CE_INVAL (NULL or empty key) or CE_NOMEM. After shutdown: 0, ignored. */
int wq_add(wq *q, const char *key);
int wq_add_after(wq *q, const char *key, int64_t ms);
int wq_add_rate_limited(wq *q, const char *key);
/* Forgets key's failures (backoff back to base). */
void wq_forget(wq *q, const char *key);
/* How many wq_add_rate_limited calls since the last wq_forget. */
int wq_num_requeues(wq *q, const char *key);
/* The delay the next wq_add_rate_limited(key) would use, in ms. */
int64_t wq_next_backoff_ms(wq *q, const char *key);

/*
 * Blocks until a key is ready and returns it in *key (malloc'd; the caller frees it after
 * calling wq_done with it), or until shutdown: CE_STOPPED (*key = NULL). CE_NOMEM possible.
 */
int wq_get(wq *q, char **key);
/* Ends processing of a key from wq_get; re-queues it if it was added meanwhile. */
void wq_done(wq *q, const char *key);

void wq_shutdown(wq *q);
bool wq_shutting_down(wq *q);
/* Keys ready to be handed out (not counting processing or delayed ones). */
size_t wq_len(wq *q);

#endif
