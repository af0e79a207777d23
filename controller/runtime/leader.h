/*
 * leader.h: leader election on a coordination.k8s.io/v1 Lease, with the semantics of
 * client-go's leaderelection package (so cetcd-operator replicas and kubectl views agree).
 *
 * The Lease spec: holderIdentity (the leader; "" = released), leaseDurationSeconds,
 * acquireTime and renewTime (RFC 3339 UTC with microseconds, "2026-11-21T10:00:00.000000Z"),
 * leaseTransitions (+1 each time a candidate takes the lease from another holder or from
 * nobody). One attempt (leader_try) is client-go's tryAcquireOrRenew:
 *   - no Lease: create it holding it (transitions 0);
 *   - read the Lease; if its record differs from the last one seen, remember it and the LOCAL
 *     monotonic time it was first seen (the remote timestamps are never trusted: clocks skew);
 *   - held by another identity, and less than its leaseDurationSeconds have passed on the
 *     local clock since the record last changed: fail;
 *   - otherwise write ourselves as holder (renewTime now; acquireTime kept and transitions
 *     unchanged if we already held it, else acquireTime now and transitions + 1) with the
 *     resourceVersion read, so of candidates racing on one version exactly one wins (the
 *     others get CE_K8S_CONFLICT / CE_EXISTS and fail the attempt).
 * The election thread (leader_start) tries every retry period (jittered by up to 20 %) until
 * it leads, calls on_started, then renews every retry period. If no renewal has succeeded
 * for renew_deadline, or a read shows another holder, leadership is lost: on_lost is called
 * once and the thread ends (the operator then exits, as controller-runtime does; it must not
 * go on acting as leader). leader_stop(l, true) releases a held lease (holderIdentity "",
 * leaseDurationSeconds 1, as client-go's ReleaseOnCancel) so a standby takes over at its next
 * retry instead of waiting out the lease.
 *
 * The gauge leader_election_master_status{name="<lease name>"} is 1 while leading, else 0.
 *
 * Lease access goes through struct leader_store (the Kubernetes one is made by leader_new;
 * tests inject an in-memory one through leader_new_store), time through struct leader_clock.
 */
#ifndef CETCD_LEADER_H
#define CETCD_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "k8s/k8s.h"
#include "runtime/metrics.h"

#define LEADER_ID_MAX 256
#define LEADER_TIME_MAX 32

/* The Lease spec, as the election reads and writes it. */
struct leader_record {
    char holder[LEADER_ID_MAX];          /* "" = nobody */
    int lease_duration_s;                /* 0 if absent */
    char acquire_time[LEADER_TIME_MAX];  /* RFC 3339 micro, "" if absent */
    char renew_time[LEADER_TIME_MAX];
    int transitions;
};

/* Access to the one Lease. Each function returns 0 or a negative CE_* code. */
struct leader_store {
    /* Reads the Lease into *rec and its resourceVersion into *version (malloc'd, the caller
     * frees it). CE_NOTFOUND if there is no Lease. */
    int (*get)(void *ctx, struct leader_record *rec, char **version);
    /* Creates the Lease. CE_EXISTS if it exists. */
    int (*create)(void *ctx, const struct leader_record *rec);
    /* Replaces the spec if the Lease is still at version. CE_K8S_CONFLICT if it changed,
     * CE_NOTFOUND if it is gone. */
    int (*update)(void *ctx, const struct leader_record *rec, const char *version);
    /* Frees ctx (called by leader_free); may be NULL. */
    void (*free)(void *ctx);
    void *ctx;
};

/* Time sources. mono_ms: monotonic milliseconds (expiry, deadlines); wall_us: microseconds
 * since the epoch (only written into the Lease). */
struct leader_clock {
    int64_t (*mono_ms)(void *ctx);
    int64_t (*wall_us)(void *ctx);
    void *ctx;
};

struct leader_opts {
    const char *namespace;   /* the Lease's namespace (leader_new) */
    const char *name;        /* the Lease's name; also the gauge's name label */
    const char *identity;    /* this candidate: unique per process, e.g. "<pod>_<random>";
                              * 1..LEADER_ID_MAX-1 bytes */
    int lease_duration_ms;   /* 0 = 15000; written rounded up to whole seconds */
    int renew_deadline_ms;   /* 0 = 10000; must be < lease duration */
    int retry_period_ms;     /* 0 = 2000; renew deadline must exceed 1.2 x this */
    /* Called on the election thread. They must not call leader_stop or leader_free. */
    void (*on_started)(void *arg);
    void (*on_lost)(void *arg);
    void (*on_new_leader)(void *arg, const char *identity); /* optional: holder changed */
    void *arg;
    metrics *metrics;        /* NULL = no gauge; else metrics_register_operator is called */
    const struct leader_clock *clock; /* NULL = CLOCK_MONOTONIC / CLOCK_REALTIME (copied) */
};

typedef struct leader leader;

/* Elects on Lease opts->namespace/opts->name through the Kubernetes client (not owned; it
 * must outlive the elector). 0, CE_INVAL (bad options) or CE_NOMEM. (leader_k8s.c) */
int leader_new(k8s_client *c, const struct leader_opts *opts, leader **out);
/* Same with any store; the elector owns store->ctx from here on (also on failure). */
int leader_new_store(const struct leader_store *store, const struct leader_opts *opts,
                     leader **out);
/* Starts the election thread. 0, CE_INVAL (already started) or CE_NOMEM. */
int leader_start(leader *l);
/* True while this process holds the lease (as of its last successful attempt). */
bool leader_is_leader(const leader *l);
/* Stops the election thread and waits for it; if release and leading, releases the Lease
 * (one get + update; a failure is logged). Does not call on_lost. Safe to call twice, and
 * without leader_start (then it only releases). */
void leader_stop(leader *l, bool release);
/* Stops (without release) if still running and frees everything, the store's ctx too. */
void leader_free(leader *l);

/* One acquire-or-renew attempt (what the thread runs); true if we hold the lease after it.
 * For tests with a fake clock; do not call while the thread runs. */
bool leader_try(leader *l);

/* Formats wall_us as RFC 3339 UTC with microseconds; out has LEADER_TIME_MAX bytes. */
void leader_format_time(int64_t wall_us, char *out);

/* The Kubernetes store alone (leader_k8s.c): 0, CE_INVAL or CE_NOMEM. */
int leader_k8s_store(k8s_client *c, const char *ns, const char *name, struct leader_store *out);

#endif
