/*
 * step.c: the message entry point (validation, the term rules common to all roles) and the
 * leader's and follower's step functions, proposals, forwarding and leader transfer.
 * Elections live in election.c, replication in replication.c, reads in readindex.c.
 *
 * Invariants:
 *   - a malformed message (bad type, sender, recipient, non-contiguous entries) changes
 *     nothing: it is refused with CE_INVAL;
 *   - a message from a higher term moves us to that term first (except pre-votes and the
 *     leader lease, below); a message from a lower term never changes state;
 *   - while a leader transfer is under way the leader accepts no proposals.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

void raft__abort_transfer(raft *r)
{
    r->lead_transferee = RAFT_NONE;
}

void raft__send_timeout_now(raft *r, uint64_t to)
{
    raft__send_type(r, RAFT_MSG_TIMEOUT_NOW, to, NULL);
}

int raft__transfer(raft *r, uint64_t to)
{
    rprogress *pr = raft__find(r, to);
    if (!pr || pr->is_learner)
        return CE_BAD_LEADER_TRANSFER;
    if (r->lead_transferee == to || to == r->id)
        return 0;
    raft__abort_transfer(r);
    /* Invariant: no proposals while transferring; the transfer times out after an election
     * timeout (tick_heartbeat aborts it). */
    r->lead_transferee = to;
    r->election_elapsed = 0;
    if (pr->match == rlog_last_index(&r->log))
        raft__send_timeout_now(r, to);
    else
        raft__send_append(r, pr, true);
    return 0;
}

/* A leader removed or demoted by a conf change it applied keeps leading (refusing proposals)
 * until the most up-to-date voter holds its whole log, then sends it MsgTimeoutNow and steps
 * down. Stepping down at once could strand the remaining voters: they may not know yet that
 * the change is committed, so they may still need this member's vote, which it refuses them
 * while its log is longer than theirs; and a learner never campaigns. Retried every election
 * timeout (tick_heartbeat) if the transfer does not complete. */
void raft__hand_over(raft *r)
{
    rprogress *best = NULL;
    for (size_t i = 0; i < r->n_prs; i++) {
        rprogress *p = &r->prs[i];
        if (!p->is_learner && p->id != r->id && (!best || p->match > best->match))
            best = p;
    }
    if (!best) {
        raft__become_follower(r, r->term, RAFT_NONE);
        return;
    }
    r->lead_transferee = best->id;
    r->election_elapsed = 0;
    if (best->match == rlog_last_index(&r->log)) {
        raft__send_timeout_now(r, best->id);
        raft__become_follower(r, r->term, RAFT_NONE);
    } else {
        raft__send_append(r, best, true);
    }
}

/* A conf change the leader refuses (CE_INVAL): removing, updating or promoting an unknown
 * member, promoting a non-learner, or removing or demoting the last voter (the cluster could
 * never elect a leader again). Checked against the applied conf, which every earlier change
 * is in: at most one change is pending, and none when this is called. */
static int check_conf_change(raft *r, const uint8_t *data, size_t len)
{
    raft_conf_change cc;
    if (raft_conf_change_decode(data, len, &cc) != 0)
        return CE_INVAL;
    rprogress *p = raft__find(r, cc.node_id);
    if ((cc.type == RAFT_CC_REMOVE || cc.type == RAFT_CC_UPDATE) && !p)
        return CE_INVAL;
    if (cc.type == RAFT_CC_PROMOTE && (!p || !p->is_learner))
        return CE_INVAL;
    bool last_voter = p && !p->is_learner && r->n_voters == 1;
    if (last_voter && (cc.type == RAFT_CC_REMOVE || cc.type == RAFT_CC_ADD_LEARNER))
        return CE_INVAL;
    return 0;
}

int raft__propose_entry(raft *r, raft_entry_type type, const uint8_t *data, size_t len)
{
    if (r->role != RAFT_LEADER) {
        if (r->lead == RAFT_NONE || raft__is_candidate(r))
            return CE_NO_LEADER;
        raft_msg m = {.type = RAFT_MSG_PROP, .to = r->lead};
        raft_entry e = {.type = type, .len = len, .data = rdata_new(data, len)};
        if (len && !e.data)
            return CE_NOMEM;
        m.entries = malloc(sizeof(raft_entry));
        if (!m.entries) {
            rdata_unref(e.data);
            return CE_NOMEM;
        }
        m.entries[0] = e;
        m.n_entries = 1;
        return raft__send(r, &m);
    }
    if (!raft__find(r, r->id) || r->lead_transferee != RAFT_NONE)
        return CE_NOT_LEADER;
    if (type == RAFT_ENTRY_CONF_CHANGE) {
        /* Invariant: at most one unapplied conf change in the log (single-step changes). */
        if (r->pending_conf_index > r->log.applied)
            return CE_AGAIN;
        int rc = check_conf_change(r, data, len);
        if (rc)
            return rc;
    }
    int rc = rlog_append_new(&r->log, r->term, type, data, len);
    if (rc)
        return rc;
    if (type == RAFT_ENTRY_CONF_CHANGE)
        r->pending_conf_index = rlog_last_index(&r->log);
    r->appends_pending = true; /* sent by raft__flush_appends at the next get_update */
    return 0;
}

/* A forwarded proposal: proposed entry by entry, as if local. A conf change that does not
 * decode is refused whole (it would make every member's apply fail). */
static int step_prop(raft *r, const raft_msg *m)
{
    raft_conf_change cc;
    for (size_t i = 0; i < m->n_entries; i++)
        if (m->entries[i].type == RAFT_ENTRY_CONF_CHANGE &&
            raft_conf_change_decode(m->entries[i].data, m->entries[i].len, &cc) != 0)
            return CE_INVAL;
    for (size_t i = 0; i < m->n_entries; i++) {
        int rc = raft__propose_entry(r, m->entries[i].type, m->entries[i].data,
                                     m->entries[i].len);
        if (rc)
            return rc;
    }
    return 0;
}

static int step_leader(raft *r, const raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_PROP:
        return step_prop(r, m);
    case RAFT_MSG_READ_INDEX:
        return raft__read_index(r, m->from, m->context);
    case RAFT_MSG_TRANSFER_LEADER:
        return raft__transfer(r, m->context);
    default:
        break;
    }
    rprogress *pr = raft__find(r, m->from);
    if (!pr)
        return 0;
    if (m->type == RAFT_MSG_APP_RESP)
        raft__leader_app_resp(r, pr, m);
    else if (m->type == RAFT_MSG_HEARTBEAT_RESP)
        raft__leader_heartbeat_resp(r, pr, m);
    return 0;
}

static int forward(raft *r, const raft_msg *m)
{
    if (r->lead == RAFT_NONE)
        return CE_NO_LEADER;
    raft_msg f = {.type = m->type, .to = r->lead, .context = m->context};
    return raft__send(r, &f);
}

static int step_follower(raft *r, const raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_PROP:
        return step_prop(r, m);
    case RAFT_MSG_APP:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft__handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->lead = m->from;
        raft__handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAP:
        r->election_elapsed = 0;
        r->lead = m->from;
        return raft__handle_snapshot(r, m);
    case RAFT_MSG_TRANSFER_LEADER:
        return forward(r, m);
    case RAFT_MSG_READ_INDEX:
        /* Not forwarded again: the answer would come back to us, not to the member that
         * asked (contexts are only unique per member). The requester times out. */
        return CE_NOT_LEADER;
    case RAFT_MSG_TIMEOUT_NOW:
        /* Leader transfer: campaign at once, skipping pre-vote, overriding leases; after
         * applying the committed conf changes if some are not (the MsgApp that committed the
         * one that made its sender hand over often arrives just before). */
        r->timeout_now_pending = raft__hup(r, true) == CE_AGAIN;
        return 0;
    case RAFT_MSG_READ_INDEX_RESP:
        return raft__add_read_state(r, m->context, m->index);
    default:
        return 0;
    }
}

static bool entries_valid(const raft_msg *m)
{
    if (m->n_entries && !m->entries)
        return false;
    for (size_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        if ((e->len && !e->data) ||
            (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_CONF_CHANGE))
            return false;
        if (m->type == RAFT_MSG_APP && e->index != m->index + 1 + i)
            return false;
        if (m->type == RAFT_MSG_APP && (e->term < m->log_term || e->term > m->term))
            return false;
    }
    return true;
}

static bool msg_valid(const raft *r, const raft_msg *m)
{
    if (m->type < RAFT_MSG_APP || m->type > RAFT_MSG_TYPE_MAX)
        return false;
    if (m->from == RAFT_NONE || m->from == r->id || (m->to != RAFT_NONE && m->to != r->id))
        return false;
    if (m->n_entries && m->type != RAFT_MSG_APP && m->type != RAFT_MSG_PROP)
        return false;
    bool termless = m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READ_INDEX ||
                    m->type == RAFT_MSG_TRANSFER_LEADER;
    if (!termless && m->term == 0)
        return false;
    const raft_conf_state *c = &m->snapshot.conf;
    if (m->type == RAFT_MSG_SNAP &&
        ((c->n_voters && !c->voters) || (c->n_learners && !c->learners)))
        return false;
    return entries_valid(m);
}

/* Term rules common to all roles; returns false when m is consumed (stale or ignored). */
static bool check_term(raft *r, const raft_msg *m)
{
    bool vote_req = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE;
    if (m->term > r->term) {
        /* Leader lease: with check-quorum, a member that heard from a leader within the
         * election timeout ignores vote requests (unless forced by a leader transfer), so a
         * rejoining partitioned member cannot disrupt a healthy cluster. */
        bool in_lease = r->check_quorum && r->lead != RAFT_NONE &&
                        r->election_elapsed < r->election_tick;
        if (vote_req && !m->transfer && in_lease)
            return false;
        if (m->type == RAFT_MSG_PRE_VOTE ||
            (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject))
            return true; /* pre-vote never changes our term */
        bool from_leader = m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT ||
                           m->type == RAFT_MSG_SNAP;
        raft__become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);
        return true;
    }
    if (m->term < r->term) {
        if ((r->check_quorum || r->pre_vote) &&
            (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APP)) {
            /* Tell a stale leader about the new term so it steps down. */
            raft__send_type(r, RAFT_MSG_APP_RESP, m->from, NULL);
        } else if (m->type == RAFT_MSG_PRE_VOTE) {
            raft__send_vote_reject(r, RAFT_MSG_PRE_VOTE_RESP, m->from);
        }
        return false;
    }
    return true;
}

int raft_step(raft *r, const raft_msg *m)
{
    if (!msg_valid(r, m))
        return CE_INVAL;
    if (m->term != 0 && !check_term(r, m))
        return 0;
    if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
        raft__handle_vote(r, m);
        return 0;
    }
    if ((m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PRE_VOTE_RESP) && m->reject)
        raft__learn_commit(r, m);
    switch (r->role) {
    case RAFT_LEADER:
        return step_leader(r, m);
    case RAFT_CANDIDATE:
    case RAFT_PRE_CANDIDATE:
        return raft__step_candidate(r, m);
    default:
        return step_follower(r, m);
    }
}

int raft_propose(raft *r, const uint8_t *data, size_t len)
{
    if (len && !data)
        return CE_INVAL;
    return raft__propose_entry(r, RAFT_ENTRY_NORMAL, data, len);
}

int raft_propose_conf_change(raft *r, const raft_conf_change *cc)
{
    if (cc->node_id == RAFT_NONE)
        return CE_INVAL;
    uint8_t *buf;
    size_t len;
    int rc = raft_conf_change_encode(cc, &buf, &len);
    if (rc)
        return rc;
    rc = raft__propose_entry(r, RAFT_ENTRY_CONF_CHANGE, buf, len);
    free(buf);
    return rc;
}

int raft_transfer_leader(raft *r, uint64_t to)
{
    if (to == RAFT_NONE)
        return CE_INVAL;
    if (r->role == RAFT_LEADER)
        return raft__transfer(r, to);
    if (r->lead == RAFT_NONE || raft__is_candidate(r))
        return CE_NO_LEADER;
    raft_msg f = {.type = RAFT_MSG_TRANSFER_LEADER, .to = r->lead, .context = to};
    return raft__send(r, &f);
}
