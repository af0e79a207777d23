/*
 * election.c: roles and elections: ticks (election timeout for followers and candidates,
 * heartbeat and check-quorum for leaders), the role transitions, campaigns with optional
 * pre-vote, vote granting, and the candidate's step function.
 *
 * Invariants:
 *   - at most one vote per term: vote is only set together with term, and the vote response
 *     leaves only after both are durable (raft.h, msgs_after_persist);
 *   - randomized_timeout in [election_tick, 2 * election_tick), drawn from the seeded PRNG;
 *   - only voters campaign (learners and removed members never do), and votes are counted
 *     only from voters of the current configuration;
 *   - pre-vote changes neither term nor vote; a leader that does not hear from a quorum
 *     within an election timeout steps down (check-quorum).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

enum poll_result { POLL_PENDING, POLL_WON, POLL_LOST };

static uint64_t next_rand(raft *r)
{
    /* splitmix64: deterministic from the configured seed. */
    uint64_t z = (r->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void raft__reset_timeout(raft *r)
{
    /* Invariant: randomized_timeout in [election_tick, 2 * election_tick). */
    r->randomized_timeout = r->election_tick + (int)(next_rand(r) % (uint64_t)r->election_tick);
}

static void reset(raft *r, uint64_t term)
{
    if (term != r->term) {
        r->term = term;
        r->vote = RAFT_NONE;
    }
    r->lead = RAFT_NONE;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    r->timeout_now_pending = false;
    raft__reset_timeout(r);
    raft__abort_transfer(r);
    uint64_t next = rlog_last_index(&r->log) + 1;
    for (size_t i = 0; i < r->n_prs; i++) {
        progress_reset(&r->prs[i], next);
        if (r->prs[i].id == r->id)
            r->prs[i].match = r->log.stabled;
    }
    /* Pending reads belong to the old leadership: dropped (the node retries on timeout). */
    r->n_reads = 0;
}

void raft__become_follower(raft *r, uint64_t term, uint64_t lead)
{
    reset(r, term);
    r->lead = lead;
    r->role = RAFT_FOLLOWER;
}

static void become_pre_candidate(raft *r)
{
    /* Pre-vote changes neither term nor vote: a partitioned member cannot inflate terms. */
    for (size_t i = 0; i < r->n_prs; i++)
        r->prs[i].vote = 0;
    r->lead = RAFT_NONE;
    r->role = RAFT_PRE_CANDIDATE;
}

static void become_candidate(raft *r)
{
    reset(r, r->term + 1);
    r->vote = r->id;
    r->role = RAFT_CANDIDATE;
}

static void become_leader(raft *r)
{
    reset(r, r->term);
    r->lead = r->id;
    r->role = RAFT_LEADER;
    rprogress *self = raft__find(r, r->id);
    if (self)
        progress_become_replicate(self);
    /* Conservatively assume the unapplied tail may hold a conf change. */
    r->pending_conf_index = rlog_last_index(&r->log);
    /* The empty entry of the new term lets the leader commit earlier terms' entries. */
    (void)rlog_append_new(&r->log, r->term, RAFT_ENTRY_NORMAL, NULL, 0);
}

static enum poll_result poll(raft *r, uint64_t id, bool granted)
{
    rprogress *p = raft__find(r, id);
    if (p && !p->is_learner && p->vote == 0)
        p->vote = granted ? 1 : -1;
    size_t yes = 0, no = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].is_learner)
            continue;
        yes += r->prs[i].vote > 0;
        no += r->prs[i].vote < 0;
    }
    size_t q = raft__quorum(r);
    if (yes >= q)
        return POLL_WON;
    if (no > r->n_voters - q)
        return POLL_LOST;
    return POLL_PENDING;
}

static void win(raft *r)
{
    become_leader(r);
    raft__bcast_append(r);
}

static void campaign(raft *r, bool pre, bool transfer)
{
    uint64_t vterm;
    if (pre) {
        become_pre_candidate(r);
        vterm = r->term + 1;
    } else {
        become_candidate(r);
        vterm = r->term;
    }
    /* The own vote: persisted with the hard state before any message of this batch leaves. */
    if (poll(r, r->id, true) == POLL_WON) {
        if (pre)
            campaign(r, false, transfer);
        else
            win(r);
        return;
    }
    for (size_t i = 0; i < r->n_prs; i++) {
        rprogress *p = &r->prs[i];
        if (p->is_learner || p->id == r->id)
            continue;
        raft_msg m = {.term = vterm, .index = rlog_last_index(&r->log),
                      .log_term = rlog_last_term(&r->log), .transfer = transfer};
        raft__send_type(r, pre ? RAFT_MSG_PRE_VOTE : RAFT_MSG_VOTE, p->id, &m);
    }
}

static bool has_unapplied_conf_change(const raft *r)
{
    uint64_t from = r->log.applied > r->conf_in_effect ? r->log.applied : r->conf_in_effect;
    for (uint64_t i = from + 1; i <= r->log.committed; i++) {
        const raft_entry *e = rlog_entry(&r->log, i);
        if (e && e->type == RAFT_ENTRY_CONF_CHANGE)
            return true;
    }
    return false;
}

int raft__hup(raft *r, bool transfer)
{
    if (r->role == RAFT_LEADER)
        return 0;
    /* Invariant: only voters campaign; learners and removed members never do. */
    if (!raft__promotable(r))
        return CE_INVAL;
    /* A committed but unapplied conf change could make our view of the quorum wrong. */
    if (has_unapplied_conf_change(r))
        return CE_AGAIN;
    campaign(r, r->pre_vote && !transfer, transfer);
    return 0;
}

void raft__send_vote_reject(raft *r, raft_msg_type type, uint64_t to)
{
    raft_msg out = {.term = r->term, .reject = true, .commit = r->log.committed};
    (void)rlog_term(&r->log, r->log.committed, &out.log_term);
    raft__send_type(r, type, to, &out);
}

void raft__learn_commit(raft *r, const raft_msg *m)
{
    /* Log Matching: a log holding (commit, log_term) holds the refuser's whole committed
     * prefix, so that prefix is committed here too. A leader commits only by counting. */
    if (r->role != RAFT_LEADER && m->commit > r->log.committed &&
        rlog_match_term(&r->log, m->commit, m->log_term))
        rlog_commit_to(&r->log, m->commit);
}

void raft__handle_vote(raft *r, const raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE;
    raft_msg_type resp = pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
    /* Invariant: one vote per term; a pre-vote for a later term promises nothing. */
    bool can_vote = r->vote == m->from || (r->vote == RAFT_NONE && r->lead == RAFT_NONE) ||
                    (pre && m->term > r->term);
    if (can_vote && rlog_is_up_to_date(&r->log, m->index, m->log_term)) {
        raft_msg out = {.term = m->term};
        raft__send_type(r, resp, m->from, &out);
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
        return;
    }
    raft__send_vote_reject(r, resp, m->from);
}

static bool quorum_active(raft *r)
{
    size_t active = 0;
    for (size_t i = 0; i < r->n_prs; i++) {
        rprogress *p = &r->prs[i];
        if (p->id == r->id)
            p->recent_active = true;
        if (!p->is_learner && p->recent_active)
            active++;
        if (p->id != r->id)
            p->recent_active = false;
    }
    return active >= raft__quorum(r);
}

static void tick_election(raft *r)
{
    /* A learner or removed member never resets it: saturate instead of overflowing. */
    if (r->election_elapsed < INT_MAX)
        r->election_elapsed++;
    if (raft__promotable(r) && r->election_elapsed >= r->randomized_timeout) {
        r->election_elapsed = 0;
        (void)raft__hup(r, false);
    }
}

static void tick_heartbeat(raft *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->election_elapsed >= r->election_tick) {
        r->election_elapsed = 0;
        /* Check-quorum: a leader that did not hear from a quorum within an election timeout
         * steps down, so a partitioned leader stops serving (and its lease ends). */
        if (r->check_quorum && !quorum_active(r)) {
            raft__become_follower(r, r->term, RAFT_NONE);
            return;
        }
        raft__abort_transfer(r);
        if (!raft__promotable(r))
            raft__hand_over(r); /* the hand-over did not complete: try again */
        if (r->role != RAFT_LEADER)
            return;
    }
    if (r->heartbeat_elapsed >= r->heartbeat_tick) {
        r->heartbeat_elapsed = 0;
        raft__bcast_heartbeat(r);
    }
}

void raft_tick(raft *r)
{
    if (r->role == RAFT_LEADER)
        tick_heartbeat(r);
    else
        tick_election(r);
}

int raft__step_candidate(raft *r, const raft_msg *m)
{
    raft_msg_type my_resp =
        r->role == RAFT_PRE_CANDIDATE ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
    switch (m->type) {
    case RAFT_MSG_PROP:
    case RAFT_MSG_READ_INDEX:
    case RAFT_MSG_TRANSFER_LEADER:
        return CE_NO_LEADER;
    case RAFT_MSG_APP:
        raft__become_follower(r, m->term, m->from);
        return raft__handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        raft__become_follower(r, m->term, m->from);
        raft__handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAP:
        raft__become_follower(r, m->term, m->from);
        return raft__handle_snapshot(r, m);
    default:
        break;
    }
    if (m->type != my_resp)
        return 0;
    switch (poll(r, m->from, !m->reject)) {
    case POLL_WON:
        if (r->role == RAFT_PRE_CANDIDATE)
            campaign(r, false, m->transfer);
        else
            win(r);
        break;
    case POLL_LOST:
        raft__become_follower(r, r->term, RAFT_NONE);
        break;
    case POLL_PENDING:
        break;
    }
    return 0;
}

int raft_campaign(raft *r)
{
    return raft__hup(r, false);
}
