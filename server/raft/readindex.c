/*
 * readindex.c: linearizable reads (etcd's ReadOnlySafe). The leader records the commit index
 * when a read arrives, then numbers a heartbeat round; the read is answered once a quorum of
 * voters acknowledged a round at least as recent as the read's, i.e. once the leader has
 * confirmed, after the read arrived, that it still leads.
 *
 * Invariants:
 *   - a read index is taken only once the leader committed an entry of its own term (before
 *     that its commit index may lag the cluster's): earlier reads wait (round 0);
 *   - reads are answered in arrival order; a single-voter leader answers at once;
 *   - pending reads are dropped when leadership is lost (the requester times out).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

static bool committed_in_term(const raft *r)
{
    return rlog_match_term(&r->log, r->log.committed, r->term);
}

static void answer_read(raft *r, const read_req *q)
{
    if (q->from == r->id) {
        (void)raft__add_read_state(r, q->ctx, q->index);
        return;
    }
    raft_msg m = {.index = q->index, .context = q->ctx};
    raft__send_type(r, RAFT_MSG_READ_INDEX_RESP, q->from, &m);
}

/* Answers, in order, every read whose heartbeat round a quorum acknowledged.
 * Invariant: a read is answered only after a quorum confirmed this leadership after the read
 * arrived, with index = the commit index when it arrived (taken once this term committed). */
void raft__release_reads(raft *r)
{
    uint64_t confirmed = raft__quorum_value(r, offsetof(rprogress, ack_round), UINT64_MAX);
    size_t k = 0;
    while (k < r->n_reads && r->reads[k].round != 0 && r->reads[k].round <= confirmed)
        answer_read(r, &r->reads[k++]);
    memmove(r->reads, r->reads + k, (r->n_reads - k) * sizeof(*r->reads));
    r->n_reads -= k;
}

void raft__activate_reads(raft *r)
{
    if (r->role != RAFT_LEADER || !committed_in_term(r))
        return;
    bool any = false;
    for (size_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].round == 0) {
            if (!any)
                r->read_round++;
            any = true;
            r->reads[i].round = r->read_round;
            r->reads[i].index = r->log.committed;
        }
    }
    if (!any)
        return;
    if (r->n_voters == 1)
        raft__release_reads(r);
    else
        r->read_heartbeat_pending = true; /* one round per update for all reads */
}

int raft__read_index(raft *r, uint64_t from, uint64_t ctx)
{
    if (r->n_reads == r->cap_reads) {
        size_t cap = r->cap_reads ? r->cap_reads * 2 : 16;
        read_req *v = realloc(r->reads, cap * sizeof(*v));
        if (!v)
            return CE_NOMEM;
        r->reads = v;
        r->cap_reads = cap;
    }
    r->reads[r->n_reads++] = (read_req){.ctx = ctx, .from = from};
    raft__activate_reads(r);
    return 0;
}

int raft_read_index(raft *r, uint64_t ctx)
{
    if (r->role == RAFT_LEADER)
        return raft__read_index(r, r->id, ctx);
    if (r->lead == RAFT_NONE || raft__is_candidate(r))
        return CE_NO_LEADER;
    raft_msg f = {.type = RAFT_MSG_READ_INDEX, .to = r->lead, .context = ctx};
    return raft__send(r, &f);
}
