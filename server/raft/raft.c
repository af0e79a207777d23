/*
 * raft.c: lifecycle, restore, the update batch (get_update/advance), membership and status of
 * the Raft state machine. The role logic (tick, step, elections, replication, reads, transfer)
 * lives in step.c.
 *
 * Invariants kept here:
 *   - everything observable leaves through raft_get_update(); what it hands out (the
 *     out_* message queues and read states, slices of the log, the pending snapshot) is not
 *     moved or freed before raft_advance(): the only mutation allowed in between,
 *     raft_apply_conf_change, queues into fresh buffers and never appends to the log;
 *   - a message queued while term or vote changed is never released before they are durable
 *     (get_update moves all messages to msgs_after_persist in that case);
 *   - the leader's own match index is the durable (stabled) index, raised only in advance;
 *   - applied only moves in advance, to what the caller reported applied: applied <= committed.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

#define DEFAULT_MAX_INFLIGHT 256
#define DEFAULT_MAX_SIZE (1u << 20)

/* ---- small helpers shared with step.c ---- */

rprogress *raft__find(raft *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

size_t raft__quorum(const raft *r)
{
    return r->n_voters / 2 + 1;
}

bool raft__promotable(const raft *r)
{
    for (size_t i = 0; i < r->n_voters; i++)
        if (r->conf_ids[i] == r->id)
            return true;
    return false;
}

int raft__conf_copy(const raft_conf_state *src, raft_conf_state *dst)
{
    size_t n = src->n_voters + src->n_learners;
    uint64_t *block = malloc((n ? n : 1) * sizeof(uint64_t));
    if (!block)
        return CE_NOMEM;
    if (src->n_voters)
        memcpy(block, src->voters, src->n_voters * sizeof(uint64_t));
    if (src->n_learners)
        memcpy(block + src->n_voters, src->learners, src->n_learners * sizeof(uint64_t));
    dst->voters = block;
    dst->n_voters = src->n_voters;
    dst->learners = block + src->n_voters;
    dst->n_learners = src->n_learners;
    return 0;
}

void raft__conf_free(raft_conf_state *c)
{
    free((void *)(uintptr_t)c->voters);
    memset(c, 0, sizeof(*c));
}

static bool is_response(raft_msg_type t)
{
    return t == RAFT_MSG_APP_RESP || t == RAFT_MSG_VOTE_RESP || t == RAFT_MSG_PRE_VOTE_RESP ||
           t == RAFT_MSG_HEARTBEAT_RESP;
}

void raft__msg_release(raft_msg *m)
{
    for (size_t i = 0; i < m->n_entries; i++)
        rdata_unref(m->entries[i].data);
    free(m->entries);
    m->entries = NULL;
    m->n_entries = 0;
    if (m->type == RAFT_MSG_SNAP)
        raft__conf_free(&m->snapshot.conf);
}

static int msgq_push(msgq *q, const raft_msg *m)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        raft_msg *v = realloc(q->v, cap * sizeof(*v));
        if (!v)
            return CE_NOMEM;
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n++] = *m;
    return 0;
}

static void msgq_clear(msgq *q)
{
    for (size_t i = 0; i < q->n; i++)
        raft__msg_release(&q->v[i]);
    q->n = 0;
}

int raft__send(raft *r, raft_msg *m)
{
    m->from = r->id;
    bool has_own_term = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE ||
                        m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PRE_VOTE_RESP;
    bool termless = m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READ_INDEX ||
                    m->type == RAFT_MSG_TRANSFER_LEADER;
    if (termless)
        m->term = 0;
    else if (!has_own_term)
        m->term = r->term;
    int rc = msgq_push(is_response(m->type) ? &r->msgs_after : &r->msgs, m);
    if (rc)
        raft__msg_release(m);
    return rc;
}

void raft__send_type(raft *r, raft_msg_type type, uint64_t to, raft_msg *proto)
{
    raft_msg m = proto ? *proto : (raft_msg){0};
    m.type = type;
    m.to = to;
    (void)raft__send(r, &m); /* on OOM the message is lost, as on a lossy network */
}

int raft__add_read_state(raft *r, uint64_t ctx, uint64_t index)
{
    if (r->n_rstates == r->cap_rstates) {
        size_t cap = r->cap_rstates ? r->cap_rstates * 2 : 8;
        raft_read_state *v = realloc(r->rstates, cap * sizeof(*v));
        if (!v)
            return CE_NOMEM;
        r->rstates = v;
        r->cap_rstates = cap;
    }
    r->rstates[r->n_rstates++] = (raft_read_state){.ctx = ctx, .index = index};
    return 0;
}

/* ---- membership ---- */

static void rebuild_conf_ids(raft *r)
{
    size_t k = 0;
    r->n_voters = r->n_learners = 0;
    for (size_t i = 0; i < r->n_prs; i++)
        if (!r->prs[i].is_learner)
            r->conf_ids[k++] = r->prs[i].id, r->n_voters++;
    for (size_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].is_learner)
            r->conf_ids[k++] = r->prs[i].id, r->n_learners++;
}

static int add_progress(raft *r, uint64_t id, bool learner)
{
    if (r->n_prs == r->cap_prs) {
        size_t cap = r->cap_prs ? r->cap_prs * 2 : 8;
        rprogress *p = realloc(r->prs, cap * sizeof(*p));
        if (!p)
            return CE_NOMEM;
        r->prs = p;
        uint64_t *ids = realloc(r->conf_ids, cap * sizeof(*ids));
        if (!ids)
            return CE_NOMEM;
        r->conf_ids = ids;
        uint64_t *sc = realloc(r->scratch, cap * sizeof(*sc));
        if (!sc)
            return CE_NOMEM;
        r->scratch = sc;
        r->cap_prs = cap;
    }
    int rc = progress_init(&r->prs[r->n_prs], id, learner, rlog_last_index(&r->log) + 1,
                           r->max_inflight);
    if (rc)
        return rc;
    r->n_prs++;
    return 0;
}

static void remove_progress(raft *r, uint64_t id)
{
    rprogress *p = raft__find(r, id);
    if (!p)
        return;
    progress_destroy(p);
    size_t i = (size_t)(p - r->prs);
    memmove(p, p + 1, (r->n_prs - i - 1) * sizeof(*p));
    r->n_prs--;
}

static void clear_progress(raft *r)
{
    for (size_t i = 0; i < r->n_prs; i++)
        progress_destroy(&r->prs[i]);
    r->n_prs = 0;
}

static int upsert(raft *r, uint64_t id, bool learner)
{
    rprogress *p = raft__find(r, id);
    if (p) {
        p->is_learner = learner;
        return 0;
    }
    return add_progress(r, id, learner);
}

int raft__set_conf(raft *r, const raft_conf_state *cs)
{
    clear_progress(r);
    int rc = 0;
    for (size_t i = 0; i < cs->n_voters && !rc; i++)
        rc = upsert(r, cs->voters[i], false);
    for (size_t i = 0; i < cs->n_learners && !rc; i++)
        rc = upsert(r, cs->learners[i], true);
    rebuild_conf_ids(r);
    return rc;
}

/* Effect of one committed conf change on the membership (no role consequences). */
static int change_membership(raft *r, const raft_conf_change *cc)
{
    rprogress *p = raft__find(r, cc->node_id);
    switch (cc->type) {
    case RAFT_CC_ADD_VOTER:
        return upsert(r, cc->node_id, false);
    case RAFT_CC_ADD_LEARNER:
        return upsert(r, cc->node_id, true);
    case RAFT_CC_PROMOTE:
        if (p)
            p->is_learner = false;
        return 0;
    case RAFT_CC_REMOVE:
        remove_progress(r, cc->node_id);
        return 0;
    case RAFT_CC_UPDATE:
        return 0;
    }
    return CE_INVAL;
}

int raft_apply_conf_change(raft *r, const raft_conf_change *cc, raft_conf_state *out)
{
    if (cc->node_id == RAFT_NONE)
        return CE_INVAL;
    int rc = change_membership(r, cc);
    rebuild_conf_ids(r);
    if (rc)
        return rc;
    if (r->role == RAFT_LEADER) {
        if (!raft__promotable(r)) {
            /* A leader removed (or demoted) hands over to a voter, then steps down. */
            raft__hand_over(r);
        } else {
            if (r->lead_transferee != RAFT_NONE && !raft__find(r, r->lead_transferee))
                raft__abort_transfer(r);
            /* The quorum changed: commit may advance. */
            if (raft__maybe_commit(r))
                raft__bcast_append(r);
        }
    }
    if (out)
        raft_conf_state_get(r, out);
    return 0;
}

/* ---- lifecycle ---- */

static int check_config(const raft_config *c)
{
    if (c->id == RAFT_NONE || c->heartbeat_tick < 1 || c->election_tick <= c->heartbeat_tick)
        return CE_INVAL;
    return 0;
}

static int check_restore(const raft_restore *rs, uint64_t applied)
{
    const raft_snapshot_meta *s = &rs->snapshot;
    if ((s->conf.n_voters && !s->conf.voters) || (s->conf.n_learners && !s->conf.learners) ||
        (rs->n_entries && !rs->entries) || (rs->n_peers && !rs->peers))
        return CE_INVAL;
    uint64_t prev = s->index, prev_term = s->term;
    for (size_t i = 0; i < rs->n_entries; i++) {
        const raft_entry *e = &rs->entries[i];
        if (e->index != prev + 1 || e->term < prev_term || (e->len && !e->data) ||
            (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_CONF_CHANGE))
            return CE_INVAL;
        prev = e->index;
        prev_term = e->term;
    }
    /* Invariant: snapshot <= applied <= commit <= last. A hard state term below the log's
     * last term is accepted (restore raises it): a torn WAL tail keeps entries without the
     * hard state written after them. */
    uint64_t commit = rs->hard_state.commit < s->index ? s->index : rs->hard_state.commit;
    if (commit > prev || applied > commit)
        return CE_INVAL;
    if (rs->n_peers && (prev != 0 || rs->hard_state.term != 0 || s->conf.n_voters))
        return CE_INVAL;
    return 0;
}

static int bootstrap(raft *r, const raft_restore *rs)
{
    /* etcd's StartNode: term 1, one AddVoter entry per peer, all committed, membership known
     * at once; the node persists and applies them like any committed entries. */
    r->term = 1;
    for (size_t i = 0; i < rs->n_peers; i++) {
        raft_conf_change cc = {RAFT_CC_ADD_VOTER, rs->peers[i].id, rs->peers[i].context,
                               rs->peers[i].context_len};
        uint8_t *buf;
        size_t len;
        int rc = raft_conf_change_encode(&cc, &buf, &len);
        if (rc)
            return rc;
        rc = rlog_append_new(&r->log, 1, RAFT_ENTRY_CONF_CHANGE, buf, len);
        free(buf);
        if (!rc)
            rc = change_membership(r, &cc);
        if (rc)
            return rc;
    }
    rebuild_conf_ids(r);
    r->log.committed = rs->n_peers;
    r->conf_in_effect = rs->n_peers;
    return 0;
}

/* Conf changes the node applied before stopping but after its snapshot. */
static int replay_conf_changes(raft *r)
{
    for (uint64_t i = r->log.snap_index + 1; i <= r->log.applied; i++) {
        const raft_entry *e = rlog_entry(&r->log, i);
        if (e->type != RAFT_ENTRY_CONF_CHANGE)
            continue;
        raft_conf_change cc;
        int rc = raft_conf_change_decode(e->data, e->len, &cc);
        if (!rc)
            rc = change_membership(r, &cc);
        if (rc)
            return rc;
    }
    rebuild_conf_ids(r);
    return 0;
}

static int restore(raft *r, const raft_restore *rs, uint64_t applied)
{
    const raft_snapshot_meta *s = &rs->snapshot;
    rlog_init(&r->log, s->index, s->term);
    int rc = raft__conf_copy(&s->conf, &r->snap.conf);
    if (rc)
        return rc;
    r->snap.index = s->index;
    r->snap.term = s->term;
    rc = raft__set_conf(r, &s->conf);
    if (rc)
        return rc;
    if (rs->n_peers)
        return bootstrap(r, rs);
    rc = rlog_append(&r->log, rs->entries, rs->n_entries);
    if (rc)
        return rc;
    r->log.stabled = rlog_last_index(&r->log);
    rlog_commit_to(&r->log, rs->hard_state.commit);
    r->log.applied = applied < s->index ? s->index : applied;
    r->term = rs->hard_state.term;
    r->vote = rs->hard_state.vote;
    r->prev_hs = (raft_hard_state){r->term, r->vote, r->log.committed};
    if (rlog_last_term(&r->log) > r->term) {
        /* Entries of a term whose hard state was lost (torn write): this member never voted
         * in that term (a vote leaves only once durable), so it resumes there with no vote;
         * the first update persists the new hard state. Invariant: term >= last log term. */
        r->term = rlog_last_term(&r->log);
        r->vote = RAFT_NONE;
    }
    return replay_conf_changes(r);
}

int raft_new(const raft_config *cfg, const raft_restore *rs, raft **out)
{
    *out = NULL;
    int rc = check_config(cfg);
    if (!rc)
        rc = check_restore(rs, cfg->applied);
    if (rc)
        return rc;
    raft *r = calloc(1, sizeof(*r));
    if (!r)
        return CE_NOMEM;
    r->id = cfg->id;
    r->election_tick = cfg->election_tick;
    r->heartbeat_tick = cfg->heartbeat_tick;
    r->pre_vote = cfg->pre_vote;
    r->check_quorum = cfg->check_quorum;
    r->max_inflight = cfg->max_inflight_msgs ? cfg->max_inflight_msgs : DEFAULT_MAX_INFLIGHT;
    r->max_size = cfg->max_size_per_msg ? cfg->max_size_per_msg : DEFAULT_MAX_SIZE;
    r->rng = cfg->seed ^ (cfg->id * 0x9E3779B97F4A7C15ull);
    rc = restore(r, rs, cfg->applied);
    if (rc)
        goto out_free_raft;
    uint64_t term = r->term, vote = r->vote;
    raft__become_follower(r, term, RAFT_NONE);
    r->vote = vote;
    r->prev_ss = (raft_soft_state){RAFT_NONE, RAFT_FOLLOWER};
    *out = r;
    return 0;
out_free_raft:
    raft_free(r);
    return rc;
}

void raft_free(raft *r)
{
    if (!r)
        return;
    msgq *qs[] = {&r->msgs, &r->msgs_after, &r->out_msgs, &r->out_after};
    for (size_t i = 0; i < 4; i++) {
        msgq_clear(qs[i]);
        free(qs[i]->v);
    }
    free(r->out_rstates);
    clear_progress(r);
    free(r->prs);
    free(r->conf_ids);
    free(r->scratch);
    rlog_destroy(&r->log);
    raft__conf_free(&r->snap.conf);
    raft__conf_free(&r->pending_snap.conf);
    free(r->reads);
    free(r->rstates);
    free(r);
}

/* ---- compaction ---- */

int raft_compact(raft *r, uint64_t index, uint64_t term)
{
    if (index == r->log.snap_index && term == r->log.snap_term)
        return 0;
    if (index < r->log.snap_index || index > r->log.applied ||
        !rlog_match_term(&r->log, index, term))
        return CE_INVAL;
    /* The snapshot records the current conf state: valid only if no conf change was applied
     * after index. */
    for (uint64_t i = index + 1; i <= r->log.applied; i++)
        if (rlog_entry(&r->log, i)->type == RAFT_ENTRY_CONF_CHANGE)
            return CE_INVAL;
    raft_conf_state cs, copy;
    raft_conf_state_get(r, &cs);
    int rc = raft__conf_copy(&cs, &copy);
    if (rc)
        return rc;
    raft__conf_free(&r->snap.conf);
    r->snap.conf = copy;
    r->snap.index = index;
    r->snap.term = term;
    /* Invariant: index <= applied <= stabled, so nothing undurable is dropped. */
    rlog_compact(&r->log, index);
    return 0;
}

/* ---- the update batch ---- */

static raft_hard_state hard_state(const raft *r)
{
    return (raft_hard_state){r->term, r->vote, r->log.committed};
}

static uint64_t apply_from(const raft *r)
{
    uint64_t a = r->log.applied;
    if (r->pending_snap.index > a)
        a = r->pending_snap.index;
    return a;
}

bool raft_has_update(const raft *r)
{
    raft_hard_state hs = hard_state(r);
    return r->lead != r->prev_ss.leader || r->role != r->prev_ss.role ||
           hs.term != r->prev_hs.term || hs.vote != r->prev_hs.vote ||
           hs.commit != r->prev_hs.commit || rlog_last_index(&r->log) > r->log.stabled ||
           r->pending_snap.index != 0 || r->msgs.n || r->msgs_after.n ||
           r->log.committed > apply_from(r) || r->n_rstates || r->appends_pending ||
           r->read_heartbeat_pending;
}

static void move_all_msgs_after(raft *r)
{
    for (size_t i = 0; i < r->msgs.n; i++) {
        if (msgq_push(&r->msgs_after, &r->msgs.v[i]) != 0)
            raft__msg_release(&r->msgs.v[i]); /* dropped: the network may lose it anyway */
    }
    r->msgs.n = 0;
}

/* Hands the queued messages and read states out; new ones queue in fresh buffers. */
static void swap_out(raft *r)
{
    msgq_clear(&r->out_msgs); /* empty unless get_update is called twice without advance */
    msgq_clear(&r->out_after);
    msgq t = r->out_msgs;
    r->out_msgs = r->msgs;
    r->msgs = t;
    t = r->out_after;
    r->out_after = r->msgs_after;
    r->msgs_after = t;
    raft_read_state *rs = r->out_rstates;
    size_t cap = r->cap_out_rstates;
    r->out_rstates = r->rstates;
    r->n_out_rstates = r->n_rstates;
    r->cap_out_rstates = r->cap_rstates;
    r->rstates = rs;
    r->n_rstates = 0;
    r->cap_rstates = cap;
}

void raft_get_update(raft *r, raft_update *u)
{
    raft__flush_appends(r);
    memset(u, 0, sizeof(*u));
    u->hard_state = hard_state(r);
    bool vote_changed = u->hard_state.term != r->prev_hs.term ||
                        u->hard_state.vote != r->prev_hs.vote;
    u->hard_state_changed = vote_changed || u->hard_state.commit != r->prev_hs.commit;
    u->soft_state = (raft_soft_state){r->lead, r->role};
    u->soft_state_changed = r->lead != r->prev_ss.leader || r->role != r->prev_ss.role;
    if (r->pending_snap.index)
        u->snapshot = &r->pending_snap;
    rlog_slice(&r->log, r->log.stabled + 1, rlog_last_index(&r->log) + 1, SIZE_MAX,
               &u->entries, &u->n_entries);
    if (vote_changed)
        move_all_msgs_after(r);
    swap_out(r);
    u->msgs = r->out_msgs.v;
    u->n_msgs = r->out_msgs.n;
    u->msgs_after_persist = r->out_after.v;
    u->n_msgs_after_persist = r->out_after.n;
    rlog_slice(&r->log, apply_from(r) + 1, r->log.committed + 1, SIZE_MAX, &u->committed,
               &u->n_committed);
    u->read_states = r->out_rstates;
    u->n_read_states = r->n_out_rstates;
    u->must_sync = vote_changed || u->n_entries > 0 || u->snapshot != NULL;
}

void raft_advance(raft *r, const raft_update *u)
{
    if (u->snapshot) {
        r->log.applied = u->snapshot->index;
        raft__conf_free(&r->pending_snap.conf);
        memset(&r->pending_snap, 0, sizeof(r->pending_snap));
    }
    if (u->n_entries)
        r->log.stabled = u->entries[u->n_entries - 1].index;
    if (u->n_committed) {
        /* Invariant: applied <= committed. */
        r->log.applied = u->committed[u->n_committed - 1].index;
    }
    r->prev_hs = u->hard_state;
    r->prev_ss = u->soft_state;
    msgq_clear(&r->out_msgs);
    msgq_clear(&r->out_after);
    r->n_out_rstates = 0;
    if (r->role == RAFT_LEADER) {
        rprogress *self = raft__find(r, r->id);
        /* The leader's own replica counts only once durable. */
        if (self && progress_maybe_update(self, r->log.stabled) && raft__maybe_commit(r))
            raft__bcast_append(r);
    } else if (r->timeout_now_pending) {
        r->timeout_now_pending = raft__hup(r, true) == CE_AGAIN;
    }
}

/* ---- status ---- */

uint64_t raft_id(const raft *r) { return r->id; }
uint64_t raft_term(const raft *r) { return r->term; }
uint64_t raft_leader(const raft *r) { return r->lead; }
raft_role raft_get_role(const raft *r) { return r->role; }
uint64_t raft_commit_index(const raft *r) { return r->log.committed; }
uint64_t raft_applied_index(const raft *r) { return r->log.applied; }
uint64_t raft_last_index(const raft *r) { return rlog_last_index(&r->log); }
uint64_t raft_first_index(const raft *r) { return rlog_first_index(&r->log); }

void raft_conf_state_get(const raft *r, raft_conf_state *out)
{
    out->voters = r->conf_ids;
    out->n_voters = r->n_voters;
    out->learners = r->conf_ids ? r->conf_ids + r->n_voters : NULL;
    out->n_learners = r->n_learners;
}

bool raft_is_learner(const raft *r)
{
    const rprogress *p = raft__find((raft *)(uintptr_t)r, r->id);
    return p && p->is_learner;
}

int raft_progress(const raft *r, uint64_t id, raft_progress_info *out)
{
    if (r->role != RAFT_LEADER)
        return CE_NOT_LEADER;
    const rprogress *p = raft__find((raft *)(uintptr_t)r, id);
    if (!p)
        return CE_NOTFOUND;
    *out = (raft_progress_info){p->match, p->next, p->state, p->is_learner, p->recent_active};
    return 0;
}
