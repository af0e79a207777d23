/*
 * progress.c: the leader's per-member replication state (etcd-raft's tracker.Progress) and the
 * inflight window.
 *
 * States: PROBE (one MsgApp at a time until the follower's log position is found; paused after
 * each send until a response or heartbeat response), REPLICATE (optimistic pipelining: next is
 * advanced as MsgApp are sent, at most max_inflight unacknowledged), SNAPSHOT (a snapshot was
 * sent; nothing more until it is reported applied or failed).
 * Invariants: match < next; in REPLICATE every inflight index is in (match, next).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

int progress_init(rprogress *p, uint64_t id, bool learner, uint64_t next, size_t max_inflight)
{
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->is_learner = learner;
    p->next = next;
    p->recent_active = true;
    p->ins.size = max_inflight;
    p->ins.buf = malloc(max_inflight * sizeof(uint64_t));
    return p->ins.buf ? 0 : CE_NOMEM;
}

void progress_destroy(rprogress *p)
{
    free(p->ins.buf);
    p->ins.buf = NULL;
}

void progress_reset(rprogress *p, uint64_t next)
{
    p->match = 0;
    p->next = next;
    p->pending_snapshot = 0;
    p->ack_round = 0;
    p->state = RAFT_PROGRESS_PROBE;
    p->probe_sent = false;
    p->recent_active = true;
    p->vote = 0;
    inflights_reset(&p->ins);
}

static void reset_state(rprogress *p, raft_progress_state st)
{
    p->probe_sent = false;
    p->pending_snapshot = 0;
    p->state = st;
    inflights_reset(&p->ins);
}

void progress_become_probe(rprogress *p)
{
    /* After a snapshot the follower has at least the snapshot: resume probing after it. */
    if (p->state == RAFT_PROGRESS_SNAPSHOT) {
        uint64_t ps = p->pending_snapshot;
        reset_state(p, RAFT_PROGRESS_PROBE);
        p->next = (p->match + 1 > ps + 1) ? p->match + 1 : ps + 1;
    } else {
        reset_state(p, RAFT_PROGRESS_PROBE);
        p->next = p->match + 1;
    }
}

void progress_become_replicate(rprogress *p)
{
    reset_state(p, RAFT_PROGRESS_REPLICATE);
    p->next = p->match + 1;
}

void progress_become_snapshot(rprogress *p, uint64_t snap_index)
{
    reset_state(p, RAFT_PROGRESS_SNAPSHOT);
    p->pending_snapshot = snap_index;
}

/* An acknowledgement of index n: true if it raised match. */
bool progress_maybe_update(rprogress *p, uint64_t n)
{
    bool updated = false;
    if (p->match < n) {
        p->match = n;
        updated = true;
        p->probe_sent = false;
    }
    /* Invariant: match < next. */
    if (p->next < n + 1)
        p->next = n + 1;
    return updated;
}

/* A rejection of the MsgApp at `rejected` (its prev index); hint is the follower's last index.
 * Returns false for a stale rejection. */
bool progress_maybe_decr_to(rprogress *p, uint64_t rejected, uint64_t hint)
{
    if (p->state == RAFT_PROGRESS_REPLICATE) {
        if (rejected <= p->match)
            return false;
        p->next = p->match + 1;
        return true;
    }
    if (p->next - 1 != rejected)
        return false;
    uint64_t n = rejected < hint + 1 ? rejected : hint + 1;
    p->next = n < 1 ? 1 : n;
    if (p->next <= p->match)
        p->next = p->match + 1;
    p->probe_sent = false;
    return true;
}

bool progress_is_paused(const rprogress *p)
{
    switch (p->state) {
    case RAFT_PROGRESS_PROBE:
        return p->probe_sent;
    case RAFT_PROGRESS_REPLICATE:
        return inflights_full(&p->ins);
    default:
        return true;
    }
}

/* Bookkeeping after a MsgApp whose last entry is `last` (0 entries: last == next - 1). */
void progress_sent_entries(rprogress *p, uint64_t last)
{
    if (p->state == RAFT_PROGRESS_REPLICATE) {
        if (last >= p->next) {
            p->next = last + 1;
            inflights_add(&p->ins, last);
        }
    } else if (p->state == RAFT_PROGRESS_PROBE) {
        p->probe_sent = true;
    }
}

bool inflights_full(const inflights *in)
{
    return in->count >= in->size;
}

void inflights_add(inflights *in, uint64_t idx)
{
    if (inflights_full(in))
        return;
    in->buf[(in->start + in->count) % in->size] = idx;
    in->count++;
}

/* Frees every inflight message with last index <= idx (they are acknowledged). */
void inflights_free_le(inflights *in, uint64_t idx)
{
    while (in->count > 0 && in->buf[in->start] <= idx) {
        in->start = (in->start + 1) % in->size;
        in->count--;
    }
    if (in->count == 0)
        in->start = 0;
}

void inflights_free_first(inflights *in)
{
    if (in->count > 0)
        inflights_free_le(in, in->buf[in->start]);
}

void inflights_reset(inflights *in)
{
    in->start = 0;
    in->count = 0;
}
