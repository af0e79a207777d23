/*
 * replication.c: log replication. Leader side: MsgApp (batched up to max_size_per_msg,
 * pipelined up to max_inflight_msgs per follower in replicate state, one probe at a time in
 * probe state), MsgSnap for followers behind the compacted log, heartbeats carrying the
 * commit index, responses, and commit by quorum. Follower side: accepting or rejecting
 * MsgApp (log matching, conflict resolution), heartbeats and snapshots.
 *
 * Invariants:
 *   - a leader never overwrites or deletes entries of its own log (Leader Append-Only);
 *   - an entry is committed by counting replicas only if it is from the leader's current term
 *     (Raft 5.4.2); the leader's own replica counts only once durable (match = stabled);
 *   - a follower never truncates a committed entry, and never learns a commit index beyond
 *     what it holds (heartbeats carry min(match, committed));
 *   - per follower: match < next; nothing is sent while its progress is paused.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

static raft_entry *copy_entries(const raft_entry *ents, size_t n)
{
    if (n == 0)
        return NULL;
    raft_entry *c = malloc(n * sizeof(*c));
    if (!c)
        return NULL;
    memcpy(c, ents, n * sizeof(*c));
    for (size_t i = 0; i < n; i++)
        rdata_ref(c[i].data);
    return c;
}

static bool send_snapshot(raft *r, rprogress *pr)
{
    /* Only to a member recently heard from: a snapshot is expensive. */
    if (!pr->recent_active || r->snap.index == 0)
        return false;
    raft_msg m = {.type = RAFT_MSG_SNAP, .to = pr->id};
    m.snapshot.index = r->snap.index;
    m.snapshot.term = r->snap.term;
    if (raft__conf_copy(&r->snap.conf, &m.snapshot.conf) != 0)
        return false;
    progress_become_snapshot(pr, r->snap.index);
    (void)raft__send(r, &m);
    return true;
}

/* Sends the follower what it lacks (or a probe/empty MsgApp if send_if_empty); returns
 * whether a message was sent. */
bool raft__send_append(raft *r, rprogress *pr, bool send_if_empty)
{
    if (progress_is_paused(pr))
        return false;
    uint64_t prev = pr->next - 1, prev_term;
    const raft_entry *ents;
    size_t n;
    if (!rlog_term(&r->log, prev, &prev_term) ||
        !rlog_slice(&r->log, pr->next, rlog_last_index(&r->log) + 1, r->max_size, &ents, &n))
        return send_snapshot(r, pr);
    if (n == 0 && !send_if_empty)
        return false;
    raft_msg m = {.type = RAFT_MSG_APP, .to = pr->id, .index = prev, .log_term = prev_term,
                  .commit = r->log.committed};
    m.entries = copy_entries(ents, n);
    if (n && !m.entries)
        return false;
    m.n_entries = n;
    progress_sent_entries(pr, n ? ents[n - 1].index : prev);
    (void)raft__send(r, &m);
    return true;
}

void raft__bcast_append(raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id != r->id)
            raft__send_append(r, &r->prs[i], true);
}

void raft__flush_appends(raft *r)
{
    bool appends = r->appends_pending, heartbeat = r->read_heartbeat_pending;
    r->appends_pending = r->read_heartbeat_pending = false;
    if (r->role != RAFT_LEADER)
        return;
    if (appends)
        for (size_t i = 0; i < r->n_prs; i++)
            if (r->prs[i].id != r->id)
                raft__send_append(r, &r->prs[i], false);
    if (heartbeat)
        raft__bcast_heartbeat(r);
}

void raft__bcast_heartbeat(raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++) {
        rprogress *pr = &r->prs[i];
        if (pr->id == r->id)
            continue;
        /* Invariant: never tell a follower to commit past what it is known to hold. */
        raft_msg m = {.commit = pr->match < r->log.committed ? pr->match : r->log.committed,
                      .context = r->read_round};
        raft__send_type(r, RAFT_MSG_HEARTBEAT, pr->id, &m);
    }
}

static void sort_desc(uint64_t *v, size_t n)
{
    /* Insertion sort: n is the number of voters (a handful). */
    for (size_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] < x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/* The largest value at least a quorum of voters has reached (self_value for this member). */
uint64_t raft__quorum_value(raft *r, size_t field_off, uint64_t self_value)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        rprogress *p = &r->prs[i];
        if (p->is_learner)
            continue;
        uint64_t v;
        memcpy(&v, (const char *)p + field_off, sizeof(v));
        r->scratch[k++] = p->id == r->id ? self_value : v;
    }
    if (k == 0)
        return 0;
    sort_desc(r->scratch, k);
    return r->scratch[raft__quorum(r) - 1];
}

bool raft__maybe_commit(raft *r)
{
    rprogress *self = raft__find(r, r->id);
    uint64_t idx = raft__quorum_value(r, offsetof(rprogress, match), self ? self->match : 0);
    if (!rlog_maybe_commit(&r->log, idx, r->term))
        return false;
    raft__activate_reads(r);
    return true;
}

int raft__handle_append(raft *r, const raft_msg *m)
{
    raft_msg out = {0};
    if (m->index < r->log.committed) {
        out.index = r->log.committed;
        raft__send_type(r, RAFT_MSG_APP_RESP, m->from, &out);
        return 0;
    }
    uint64_t lastnew;
    int err;
    if (rlog_maybe_append(&r->log, m->index, m->log_term, m->commit, m->entries, m->n_entries,
                          &lastnew, &err)) {
        out.index = lastnew;
        raft__send_type(r, RAFT_MSG_APP_RESP, m->from, &out);
        return 0;
    }
    if (err)
        return err;
    out.index = m->index;
    out.reject = true;
    /* Hint: our last index that may match, skipping entries of terms above the leader's
     * prev term (they cannot match); log_term = our term there. */
    out.reject_hint = rlog_find_conflict_by_term(&r->log, m->index, m->log_term, &out.log_term);
    raft__send_type(r, RAFT_MSG_APP_RESP, m->from, &out);
    return 0;
}

void raft__handle_heartbeat(raft *r, const raft_msg *m)
{
    rlog_commit_to(&r->log, m->commit);
    raft_msg out = {.context = m->context};
    raft__send_type(r, RAFT_MSG_HEARTBEAT_RESP, m->from, &out);
}

/* Installs a snapshot's metadata; false if it is stale or already covered by the log. */
static int restore_snapshot(raft *r, const raft_snapshot_meta *s, bool *restored)
{
    *restored = false;
    /* Invariant: committed never moves back. A snapshot whose conf does not hold this member
     * is installed too: a member added after the leader's last snapshot gets one taken before
     * its addition, and learns of its own addition from the entries that follow (as a member
     * joining with an empty log does). Refusing it would leave the member stuck until the
     * leader's next snapshot. */
    if (s->index <= r->log.committed)
        return 0;
    if (rlog_match_term(&r->log, s->index, s->term)) {
        rlog_commit_to(&r->log, s->index);
        return 0;
    }
    raft_snapshot_meta copy = {.index = s->index, .term = s->term};
    int rc = raft__conf_copy(&s->conf, &copy.conf);
    if (rc)
        return rc;
    raft_conf_state snapconf;
    rc = raft__conf_copy(&s->conf, &snapconf);
    if (rc) {
        raft__conf_free(&copy.conf);
        return rc;
    }
    rc = raft__set_conf(r, &s->conf);
    if (rc) {
        raft__conf_free(&copy.conf);
        raft__conf_free(&snapconf);
        return rc;
    }
    rlog_restore(&r->log, s->index, s->term);
    raft__conf_free(&r->pending_snap.conf);
    r->pending_snap = copy;
    raft__conf_free(&r->snap.conf);
    r->snap = (raft_snapshot_meta){.index = s->index, .term = s->term, .conf = snapconf};
    *restored = true;
    return 0;
}

int raft__handle_snapshot(raft *r, const raft_msg *m)
{
    bool restored;
    int rc = restore_snapshot(r, &m->snapshot, &restored);
    if (rc)
        return rc;
    raft_msg out = {.index = restored ? rlog_last_index(&r->log) : r->log.committed};
    raft__send_type(r, RAFT_MSG_APP_RESP, m->from, &out);
    return 0;
}

void raft__leader_app_resp(raft *r, rprogress *pr, const raft_msg *m)
{
    pr->recent_active = true;
    if (m->reject) {
        uint64_t hint = m->reject_hint;
        if (m->log_term > 0) {
            /* Skip back over our entries of terms the follower cannot have. */
            uint64_t t;
            hint = rlog_find_conflict_by_term(&r->log, hint, m->log_term, &t);
        }
        if (progress_maybe_decr_to(pr, m->index, hint)) {
            if (pr->state == RAFT_PROGRESS_REPLICATE)
                progress_become_probe(pr);
            raft__send_append(r, pr, true);
        }
        return;
    }
    bool was_paused = progress_is_paused(pr);
    if (!progress_maybe_update(pr, m->index))
        return;
    if (pr->state == RAFT_PROGRESS_PROBE) {
        progress_become_replicate(pr);
    } else if (pr->state == RAFT_PROGRESS_SNAPSHOT && pr->match >= pr->pending_snapshot) {
        progress_become_probe(pr);
        progress_become_replicate(pr);
    } else if (pr->state == RAFT_PROGRESS_REPLICATE) {
        inflights_free_le(&pr->ins, m->index);
    }
    if (raft__maybe_commit(r))
        raft__bcast_append(r);
    else if (was_paused)
        raft__send_append(r, pr, false);
    /* Fill the window; bounded by max_inflight (each send adds one inflight). */
    while (raft__send_append(r, pr, false)) {
    }
    if (m->from == r->lead_transferee && pr->match == rlog_last_index(&r->log)) {
        raft__send_timeout_now(r, m->from);
        if (!raft__promotable(r))
            raft__become_follower(r, r->term, RAFT_NONE); /* hand-over done */
    }
}

void raft__leader_heartbeat_resp(raft *r, rprogress *pr, const raft_msg *m)
{
    pr->recent_active = true;
    pr->probe_sent = false;
    if (pr->state == RAFT_PROGRESS_REPLICATE && inflights_full(&pr->ins))
        inflights_free_first(&pr->ins);
    if (pr->match < rlog_last_index(&r->log))
        raft__send_append(r, pr, true);
    if (m->context > pr->ack_round && m->context <= r->read_round) {
        pr->ack_round = m->context;
        raft__release_reads(r);
    }
}

void raft_report_unreachable(raft *r, uint64_t id)
{
    rprogress *pr = r->role == RAFT_LEADER ? raft__find(r, id) : NULL;
    /* Pipelining to an unreachable member is pointless: fall back to probing. */
    if (pr && pr->state == RAFT_PROGRESS_REPLICATE)
        progress_become_probe(pr);
}

void raft_report_snapshot(raft *r, uint64_t id, bool ok)
{
    rprogress *pr = r->role == RAFT_LEADER ? raft__find(r, id) : NULL;
    if (!pr || pr->state != RAFT_PROGRESS_SNAPSHOT)
        return;
    if (!ok)
        pr->pending_snapshot = 0;
    progress_become_probe(pr);
    /* Wait for the follower's MsgAppResp/heartbeat response before probing again. */
    pr->probe_sent = true;
}
