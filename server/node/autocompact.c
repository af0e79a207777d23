/*
 * autocompact.c: the leader's periodic and revision compactors (see autocompact.h).
 *
 * Invariants: at most one compaction proposal is in flight (a->inflight); the periodic sample
 * ring holds, oldest first, the revisions seen at consecutive intervals while this member led
 * (at most keep: when full, its oldest sample is the revision of one retention ago);
 * a compaction target is always <= the current revision and > the compaction point.
 */
#include "autocompact.h"
#include "err.h"
#include "log.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS (3600ull * 1000)
#define REVISION_CHECK_MS (5ull * 60 * 1000)
#define MAX_SAMPLES 100000             /* a ring for ~1 year of 6-minute samples */

struct autocompact {
    evloop *loop;
    node *n;
    ev_timer timer;
    uint64_t period_ms;                /* periodic: the retention */
    int64_t revisions;                 /* revision: the retention */
    int64_t *ring;                     /* periodic: samples, oldest first */
    size_t nring, keep;                /* keep = retention / interval + 1 */
    uint64_t last_ms;                  /* when the last compaction was proposed (or leading began) */
    bool inflight;
    uint64_t handle;
};

/* A Go-style duration: one or more <number><unit> (h, m, s, ms), e.g. "1h30m", "2.5s". */
static int parse_duration(const char *s, uint64_t *ms)
{
    double total = 0;

    if (!*s)
        return CE_INVAL;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0)
            return CE_INVAL;
        if (!strncmp(end, "ms", 2)) {
            total += v;
            end += 2;
        } else if (*end == 'h' || *end == 'm' || *end == 's') {
            total += v * (*end == 'h' ? 3600e3 : *end == 'm' ? 60e3 : 1e3);
            end++;
        } else {
            return CE_INVAL;
        }
        s = end;
    }
    *ms = (uint64_t)total;
    return 0;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

int autocompact_parse(const char *mode, const char *retention, uint64_t *period_ms,
                      int64_t *revisions)
{
    *period_ms = 0;
    *revisions = 0;
    if (!retention || !*retention)
        retention = "0";
    if (mode && !strcmp(mode, "revision")) {
        if (!all_digits(retention) || strlen(retention) > 18) {
            log_error("invalid --auto-compaction-retention \"%s\" for revision mode: want a number of revisions", retention);
            return CE_INVAL;
        }
        *revisions = strtoll(retention, 0, 10);
        return 0;
    }
    if (all_digits(retention)) {
        if (strlen(retention) > 6)
            return CE_INVAL;
        *period_ms = strtoull(retention, 0, 10) * HOUR_MS;
        return 0;
    }
    if (parse_duration(retention, period_ms)) {
        log_error("invalid --auto-compaction-retention \"%s\": want a duration (\"1h\", \"30m\") or hours", retention);
        return CE_INVAL;
    }
    return 0;
}

static bool leading(node *n)
{
    node_status st;

    node_get_status(n, &st);
    return st.leader && st.leader == st.member_id;
}

static void proposed(void *ctx, int err, ProtobufCMessage *resp)
{
    autocompact *a = ctx;

    a->inflight = false;
    if (err)
        log_warn("auto-compaction: compaction failed: %s", ce_strerror(err));
    if (resp)
        protobuf_c_message_free_unpacked(resp, 0);
}

static void compact_to(autocompact *a, int64_t rev)
{
    Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    mvcc *m = node_store(a->n);

    if (rev <= 0 || rev <= mvcc_compact_rev(m) || rev > mvcc_rev(m))
        return;
    cr.revision = rev;
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_COMPACTION;
    ir.compaction = &cr;
    if (node_propose(a->n, &ir, proposed, a, &a->handle) == 0) {
        a->inflight = true;
        log_info("auto-compaction: compacting to revision %" PRId64, rev);
    }
}

static uint64_t periodic_interval(const autocompact *a)
{
    uint64_t itv = a->period_ms < HOUR_MS ? a->period_ms : HOUR_MS;

    return itv / 10 ? itv / 10 : 1;
}

/* One sample; once the ring spans the retention and a compaction interval has passed, the
 * oldest sample (the revision of `retention` ago) is the target. */
static void periodic_tick(autocompact *a, uint64_t now)
{
    uint64_t every = a->period_ms < HOUR_MS ? a->period_ms : HOUR_MS;

    if (a->nring == a->keep) {
        memmove(a->ring, a->ring + 1, sizeof(a->ring[0]) * (a->keep - 1));
        a->nring--;
    }
    a->ring[a->nring++] = mvcc_rev(node_store(a->n));
    if (a->nring == a->keep && now - a->last_ms >= every && !a->inflight) {
        a->last_ms = now;
        compact_to(a, a->ring[0]);
    }
}

static void on_timer(evloop *l, ev_timer *t)
{
    autocompact *a = t->data;
    uint64_t now = evloop_now_ms();

    (void)l;
    if (!leading(a->n)) {
        a->nring = 0;
        a->last_ms = now;
        return;
    }
    if (a->period_ms) {
        periodic_tick(a, now);
        return;
    }
    if (!a->inflight)
        compact_to(a, mvcc_rev(node_store(a->n)) - a->revisions);
}

int autocompact_new(evloop *loop, node *n, const char *mode, const char *retention,
                    uint64_t check_ms, autocompact **out)
{
    uint64_t period_ms, every;
    int64_t revisions;
    autocompact *a;
    int rc = autocompact_parse(mode, retention, &period_ms, &revisions);

    *out = NULL;
    if (rc || (!period_ms && !revisions))
        return rc;
    a = calloc(1, sizeof(*a));
    if (!a)
        return CE_NOMEM;
    a->loop = loop;
    a->n = n;
    a->period_ms = period_ms;
    a->revisions = revisions;
    if (period_ms) {
        a->keep = period_ms / periodic_interval(a) + 1;
        if (a->keep > MAX_SAMPLES)
            a->keep = MAX_SAMPLES;
        a->ring = calloc(a->keep, sizeof(*a->ring));
        if (!a->ring) {
            free(a);
            return CE_NOMEM;
        }
    }
    a->last_ms = evloop_now_ms();
    every = period_ms ? periodic_interval(a) : check_ms ? check_ms : REVISION_CHECK_MS;
    evloop_timer_start(loop, &a->timer, every, every, on_timer, a);
    log_info("auto-compaction: %s mode, retention %s", period_ms ? "periodic" : "revision", retention);
    *out = a;
    return 0;
}

void autocompact_free(autocompact *a)
{
    if (!a)
        return;
    evloop_timer_stop(a->loop, &a->timer);
    if (a->inflight)
        node_cancel(a->n, a->handle);
    free(a->ring);
    free(a);
}
