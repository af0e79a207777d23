/*
 * leader.c: Lease-based leader election (semantics in leader.h), independent of how the
 * Lease is stored (struct leader_store) and of the clock (struct leader_clock).
 *
 * State: `observed` is the last Lease record read or written, `observed_ms` the local
 * monotonic time it was first seen in that exact form; the lease counts as valid for
 * observed.lease_duration_s from observed_ms. `leading` is set by a successful attempt and
 * cleared when an attempt sees another holder, on loss and on release; `last_renew_ms` is
 * the local time of the last successful attempt.
 *
 * Invariants: leader_is_leader() is true only if leading and the last successful attempt is
 * younger than the renew deadline, so it turns false on time even while a store call hangs;
 * since the renew deadline is shorter than the lease duration, that is before any other
 * candidate may take over (which needs a full lease duration of an unchanged record on its
 * own clock). The observation fields are touched by one thread at a time: the election
 * thread while it runs, the caller of leader_try/leader_stop otherwise. on_lost is called at
 * most once, and never after leader_stop.
 */
#include "leader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "runtime/olog.h"

#define LOGGER "leader-election"

struct leader {
    struct leader_store store;
    struct leader_clock clock;
    char *ns, *name, *identity, *lease_desc; /* lease_desc: "ns/name" for logs */
    int lease_ms, renew_ms, retry_ms, lease_s;
    void (*on_started)(void *arg);
    void (*on_lost)(void *arg);
    void (*on_new_leader)(void *arg, const char *identity);
    void *arg;
    metrics *metrics;
    char labels[LEADER_ID_MAX + 16];

    struct leader_record observed;
    bool have_observed;
    int64_t observed_ms;
    atomic_bool leading;
    _Atomic int64_t last_renew_ms;
    unsigned rnd;

    pthread_mutex_t mu; /* guards stop; cond wakes the thread's sleeps */
    pthread_cond_t cond;
    bool stop;
    bool started, joined;
    pthread_t thread;
};

/* ---- clock ---- */

static int64_t real_mono_ms(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_wall_us(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono(const leader *l) { return l->clock.mono_ms(l->clock.ctx); }

void leader_format_time(int64_t wall_us, char *out)
{
    time_t sec = (time_t)(wall_us / 1000000);
    long us = (long)(wall_us % 1000000);
    struct tm tm;
    char date[24];

    if (us < 0) {
        sec--;
        us += 1000000;
    }
    gmtime_r(&sec, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, LEADER_TIME_MAX, "%s.%06ldZ", date, us);
}

/* ---- state ---- */

static void set_leading(leader *l, bool on)
{
    atomic_store(&l->leading, on);
    if (l->metrics)
        metrics_gauge_set(l->metrics, M_LEADER_STATUS, l->labels, on ? 1 : 0);
}

bool leader_is_leader(const leader *l)
{
    int64_t age = mono(l) - atomic_load(&((leader *)l)->last_renew_ms);

    return atomic_load(&((leader *)l)->leading) && age < l->renew_ms;
}

static bool record_equal(const struct leader_record *a, const struct leader_record *b)
{
    return strcmp(a->holder, b->holder) == 0 && a->lease_duration_s == b->lease_duration_s &&
           strcmp(a->acquire_time, b->acquire_time) == 0 &&
           strcmp(a->renew_time, b->renew_time) == 0 && a->transitions == b->transitions;
}

/* Remembers rec as seen now, reporting a change of holder. */
static void observe(leader *l, const struct leader_record *rec, int64_t now)
{
    bool new_holder = !l->have_observed || strcmp(l->observed.holder, rec->holder) != 0;

    l->observed = *rec;
    l->have_observed = true;
    l->observed_ms = now;
    if (new_holder && rec->holder[0]) {
        olog_named(OLOG_INFO, LOGGER, "new leader observed", "lease", l->lease_desc, "leader",
                   rec->holder, NULL);
        if (l->on_new_leader)
            l->on_new_leader(l->arg, rec->holder);
    }
}

static bool lease_valid(const leader *l, int64_t now)
{
    int64_t dur = l->observed.lease_duration_s > 0 ? (int64_t)l->observed.lease_duration_s * 1000
                                                   : l->lease_ms;

    return l->observed_ms + dur > now;
}

/* ---- one attempt ---- */

enum attempt { HELD, HELD_BY_OTHER, FAILED };

static void log_store_error(const leader *l, const char *what, int rc)
{
    olog_named(rc == CE_K8S_CONFLICT || rc == CE_EXISTS ? OLOG_INFO : OLOG_WARN, LOGGER, what,
               "lease", l->lease_desc, "error", ce_strerror(rc), NULL);
}

static enum attempt create_lease(leader *l, const struct leader_record *rec, int64_t now)
{
    int rc = l->store.create(l->store.ctx, rec);

    if (rc != 0) {
        log_store_error(l, "cannot create lease", rc);
        return FAILED;
    }
    observe(l, rec, now);
    return HELD;
}

static enum attempt attempt(leader *l)
{
    struct leader_record rec = {0}, old = {0};
    int64_t now = mono(l);
    char *version = NULL;
    enum attempt res = FAILED;
    int rc;

    snprintf(rec.holder, sizeof(rec.holder), "%s", l->identity);
    rec.lease_duration_s = l->lease_s;
    leader_format_time(l->clock.wall_us(l->clock.ctx), rec.renew_time);
    memcpy(rec.acquire_time, rec.renew_time, sizeof(rec.acquire_time));

    rc = l->store.get(l->store.ctx, &old, &version);
    if (rc == CE_NOTFOUND)
        return create_lease(l, &rec, now);
    if (rc != 0) {
        log_store_error(l, "cannot read lease", rc);
        return FAILED;
    }
    old.holder[sizeof(old.holder) - 1] = '\0';
    if (!l->have_observed || !record_equal(&old, &l->observed))
        observe(l, &old, now);
    if (old.holder[0] && strcmp(old.holder, l->identity) != 0 && lease_valid(l, now)) {
        res = HELD_BY_OTHER;
        goto out_free_version;
    }
    if (strcmp(old.holder, l->identity) == 0) {
        memcpy(rec.acquire_time, old.acquire_time, sizeof(rec.acquire_time));
        rec.transitions = old.transitions;
    } else {
        rec.transitions = old.transitions + 1;
    }
    rc = l->store.update(l->store.ctx, &rec, version);
    if (rc != 0) {
        log_store_error(l, "cannot update lease", rc);
        goto out_free_version;
    }
    observe(l, &rec, now);
    res = HELD;
out_free_version:
    free(version);
    return res;
}

bool leader_try(leader *l)
{
    int64_t start = mono(l); /* a renewal counts from before its calls: conservative */
    enum attempt res = attempt(l);

    if (res == HELD) {
        atomic_store(&l->last_renew_ms, start);
        if (!atomic_load(&l->leading))
            olog_named(OLOG_INFO, LOGGER, "successfully acquired lease", "lease", l->lease_desc,
                       "identity", l->identity, "transitions", OLOG_I64(l->observed.transitions),
                       NULL);
        set_leading(l, true);
    } else if (res == HELD_BY_OTHER) {
        set_leading(l, false);
    }
    return res == HELD;
}

/* ---- release ---- */

static void release(leader *l)
{
    struct leader_record old = {0}, rec = {0};
    char *version = NULL;
    int rc = l->store.get(l->store.ctx, &old, &version);

    if (rc == 0 && strcmp(old.holder, l->identity) == 0) {
        rec.lease_duration_s = 1;
        leader_format_time(l->clock.wall_us(l->clock.ctx), rec.renew_time);
        memcpy(rec.acquire_time, rec.renew_time, sizeof(rec.acquire_time));
        rec.transitions = old.transitions;
        rc = l->store.update(l->store.ctx, &rec, version);
        if (rc == 0)
            observe(l, &rec, mono(l));
    }
    free(version);
    if (rc != 0)
        log_store_error(l, "cannot release lease", rc);
    else
        olog_named(OLOG_INFO, LOGGER, "released lease", "lease", l->lease_desc, NULL);
    set_leading(l, false);
}

/* ---- the election thread ---- */

/* Sleeps ms (real monotonic time) unless stopped; true if stop was requested. */
static bool sleep_or_stop(leader *l, int64_t ms)
{
    struct timespec ts;
    bool stop;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&l->mu);
    while (!l->stop && pthread_cond_timedwait(&l->cond, &l->mu, &ts) == 0)
        ;
    stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

static bool stopping(leader *l)
{
    bool stop;

    pthread_mutex_lock(&l->mu);
    stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

/* Tries until leading; false if stopped first. */
static bool acquire(leader *l)
{
    olog_named(OLOG_INFO, LOGGER, "attempting to acquire leader lease", "lease", l->lease_desc,
               "identity", l->identity, NULL);
    while (!stopping(l)) {
        if (leader_try(l))
            return true;
        if (sleep_or_stop(l, l->retry_ms + (int64_t)(rand_r(&l->rnd) % (l->retry_ms / 5 + 1))))
            return false;
    }
    return false;
}

/* Renews until stopped (returns) or lost (calls on_lost). */
static void renew(leader *l)
{
    while (!sleep_or_stop(l, l->retry_ms)) {
        if (leader_try(l))
            continue;
        if (stopping(l))
            return;
        if (atomic_load(&l->leading) && mono(l) - atomic_load(&l->last_renew_ms) < l->renew_ms)
            continue; /* transient failure: retry until the deadline */
        set_leading(l, false);
        olog_named(OLOG_ERROR, LOGGER, "leader election lost", "lease", l->lease_desc,
                   "identity", l->identity, "holder", l->observed.holder, NULL);
        if (l->on_lost)
            l->on_lost(l->arg);
        return;
    }
}

static void *run(void *arg)
{
    leader *l = arg;

    if (!acquire(l))
        return NULL;
    if (l->on_started)
        l->on_started(l->arg);
    renew(l);
    return NULL;
}

int leader_start(leader *l)
{
    if (l->started)
        return CE_INVAL;
    if (pthread_create(&l->thread, NULL, run, l) != 0)
        return CE_NOMEM;
    l->started = true;
    return 0;
}

void leader_stop(leader *l, bool release_lease)
{
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    if (l->started && !l->joined) {
        pthread_join(l->thread, NULL);
        l->joined = true;
    }
    if (release_lease && atomic_load(&l->leading))
        release(l);
    set_leading(l, false);
}

/* ---- lifecycle ---- */

static int check_opts(const struct leader_opts *o)
{
    int lease = o->lease_duration_ms ? o->lease_duration_ms : 15000;
    int renew = o->renew_deadline_ms ? o->renew_deadline_ms : 10000;
    int retry = o->retry_period_ms ? o->retry_period_ms : 2000;

    if (!o->name || !*o->name || !o->identity || !*o->identity ||
        strlen(o->identity) >= LEADER_ID_MAX || strlen(o->name) >= LEADER_ID_MAX)
        return CE_INVAL;
    if (lease <= 0 || renew <= 0 || retry <= 0 || lease <= renew ||
        (int64_t)renew * 10 <= (int64_t)retry * 12)
        return CE_INVAL;
    return 0;
}

static void set_timing(leader *l, const struct leader_opts *o)
{
    l->lease_ms = o->lease_duration_ms ? o->lease_duration_ms : 15000;
    l->renew_ms = o->renew_deadline_ms ? o->renew_deadline_ms : 10000;
    l->retry_ms = o->retry_period_ms ? o->retry_period_ms : 2000;
    l->lease_s = (l->lease_ms + 999) / 1000;
    if (o->clock) {
        l->clock = *o->clock;
    } else {
        l->clock.mono_ms = real_mono_ms;
        l->clock.wall_us = real_wall_us;
    }
}

static int set_names(leader *l, const struct leader_opts *o)
{
    const char *ns = o->namespace ? o->namespace : "";
    size_t n = strlen(ns) + strlen(o->name) + 2;

    l->ns = strdup(ns);
    l->name = strdup(o->name);
    l->identity = strdup(o->identity);
    l->lease_desc = malloc(n);
    if (!l->ns || !l->name || !l->identity || !l->lease_desc)
        return CE_NOMEM;
    snprintf(l->lease_desc, n, "%s%s%s", ns, *ns ? "/" : "", o->name);
    return 0;
}

static int set_metrics(leader *l, const struct leader_opts *o)
{
    int rc;

    if (!o->metrics)
        return 0;
    l->metrics = o->metrics;
    rc = metrics_register_operator(l->metrics);
    if (rc == 0)
        rc = metrics_labels(l->labels, sizeof(l->labels), "name", o->name, NULL);
    if (rc == 0)
        rc = metrics_gauge_set(l->metrics, M_LEADER_STATUS, l->labels, 0);
    return rc;
}

static int init_sync(leader *l)
{
    pthread_condattr_t ca;
    int rc = CE_NOMEM;

    if (pthread_condattr_init(&ca) != 0)
        return CE_NOMEM;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
        pthread_cond_init(&l->cond, &ca) == 0) {
        if (pthread_mutex_init(&l->mu, NULL) == 0)
            rc = 0;
        else
            pthread_cond_destroy(&l->cond);
    }
    pthread_condattr_destroy(&ca);
    return rc;
}

static void free_fields(leader *l)
{
    if (l->store.free)
        l->store.free(l->store.ctx);
    free(l->ns);
    free(l->name);
    free(l->identity);
    free(l->lease_desc);
    free(l);
}

int leader_new_store(const struct leader_store *store, const struct leader_opts *opts,
                     leader **out)
{
    leader *l;
    int rc = check_opts(opts);

    if (rc == 0 && (!store->get || !store->create || !store->update))
        rc = CE_INVAL;
    l = rc == 0 ? calloc(1, sizeof(*l)) : NULL;
    if (!l) {
        if (store->free)
            store->free(store->ctx);
        return rc ? rc : CE_NOMEM;
    }
    l->store = *store;
    set_timing(l, opts);
    l->on_started = opts->on_started;
    l->on_lost = opts->on_lost;
    l->on_new_leader = opts->on_new_leader;
    l->arg = opts->arg;
    l->rnd = (unsigned)real_wall_us(NULL) ^ (unsigned)(uintptr_t)l;
    rc = set_names(l, opts);
    if (rc == 0)
        rc = set_metrics(l, opts);
    if (rc != 0)
        goto out_free_fields;
    rc = init_sync(l);
    if (rc != 0)
        goto out_free_fields;
    *out = l;
    return 0;
out_free_fields:
    free_fields(l);
    return rc;
}

void leader_free(leader *l)
{
    if (!l)
        return;
    leader_stop(l, false);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
    free_fields(l);
}
