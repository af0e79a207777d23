/*
 * member.c: one simulated member: the node's driving loop (raft.h steps 1 to 7) over the
 * simulated disk and network, its state machine, crash and restart.
 *
 * State machine model: the applied state is the sequence of {term, uid} of every applied
 * index (sm). It is made durable by the store's own flushes (disk_sm_flush, at random after
 * applying), independently of the WAL, as the node's LMDB store is; a received snapshot
 * replaces it durably when the snapshot is synced. On restart the state machine is the
 * durable store (or the snapshot, if newer) and raft_config.applied = max(snapshot index,
 * min(store index, persisted commit)), as node.c computes it: raft then re-delivers
 * (applied, commit], and entries the store already holds are compared with it and skipped,
 * while conf changes are always handed to raft_apply_conf_change.
 *
 * A proposal is acknowledged when the member it was proposed on applies it in the same
 * incarnation (the node answers the client then).
 *
 * Invariants checked here, about raft's output: the update contract (responses only after
 * persistence, no message before a term or vote change is durable, must_sync whenever
 * entries, a snapshot, term or vote change), hard state monotonic (term never decreases, one
 * vote per term), committed entries persisted before they are applied and delivered in order
 * without gaps, MsgSnap metadata matching the snapshot the member holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sim.h"

#define DRAIN_MAX 10000 /* update batches per drain before we call it a livelock */

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t sim_proposal_data(uint64_t uid, uint8_t *buf)
{
    size_t pad = (size_t)(uid % 9);
    put_le64(buf, uid);
    for (size_t k = 0; k < pad; k++)
        buf[8 + k] = (uint8_t)(uid * 31 + k);
    return 8 + pad;
}

/* The uid an entry carries; false if its payload is not one we proposed. */
static bool entry_uid(const raft_entry *e, uint64_t *uid, raft_conf_change *cc)
{
    if (e->type == RAFT_ENTRY_CONF_CHANGE) {
        if (raft_conf_change_decode(e->data, e->len, cc) != 0 || cc->context_len != 8)
            return false;
        *uid = get_le64(cc->context);
        return true;
    }
    if (e->len == 0) {
        *uid = 0;
        return true;
    }
    if (e->len < 8)
        return false;
    uint8_t want[SIM_DATA_MAX];
    *uid = get_le64(e->data);
    return sim_proposal_data(*uid, want) == e->len && memcmp(want, e->data, e->len) == 0;
}

static raft_config base_config(sim *s, uint64_t id)
{
    raft_config c = {0};
    c.id = id;
    c.election_tick = s->p.election_tick;
    c.heartbeat_tick = s->p.heartbeat_tick;
    c.seed = rng_next(&s->rng);
    c.pre_vote = s->p.pre_vote;
    c.check_quorum = s->p.check_quorum;
    c.max_inflight_msgs = s->p.max_inflight;
    c.max_size_per_msg = s->p.max_size;
    return c;
}

static void reset_checker(member *m, const raft_hard_state *hs, uint64_t snap_index)
{
    m->seen_commit = snap_index;
    m->seen_term = hs->term;
    m->seen_vote = hs->vote;
    m->lc_term = 0;
    m->lc_next = 0;
}

static void sm_reserve(member *m, size_t n)
{
    if (m->sm_cap >= n)
        return;
    size_t cap = m->sm_cap ? m->sm_cap : 64;
    while (cap < n)
        cap *= 2;
    m->sm = realloc(m->sm, cap * sizeof(sval));
    if (!m->sm)
        abort();
    m->sm_cap = cap;
}

static void sm_set(member *m, const sval *vals, size_t n)
{
    sm_reserve(m, n);
    if (n)
        memcpy(m->sm, vals, n * sizeof(sval));
    m->sm_n = n;
}

static void open_raft(sim *s, member *m, const raft_config *cfg, const raft_restore *rs)
{
    m->cfg = *cfg;
    int rc = raft_new(cfg, rs, &m->r);
    if (rc) {
        sim_fail(s, "restart", "raft_new(m%llu) = %d (%s) on term %llu commit %llu snapshot "
                 "%llu, %zu entries, applied %llu", (unsigned long long)m->id, rc,
                 ce_strerror(rc), (unsigned long long)rs->hard_state.term,
                 (unsigned long long)rs->hard_state.commit,
                 (unsigned long long)rs->snapshot.index, rs->n_entries,
                 (unsigned long long)cfg->applied);
        m->state = M_DOWN;
        return;
    }
    m->state = M_UP;
    m->inc++;
}

void member_start_new(sim *s, uint64_t id, const raft_peer *peers, size_t n_peers)
{
    member *m = &s->m[id];
    memset(m, 0, sizeof(*m));
    m->id = id;
    m->boot = n_peers > 0;
    disk_init(&m->d);
    raft_restore rs = {.peers = peers, .n_peers = n_peers};
    raft_config cfg = base_config(s, id);
    reset_checker(m, &rs.hard_state, 0);
    open_raft(s, m, &cfg, &rs);
    sim_trace(s, "m%llu start new (%zu peers)", (unsigned long long)id, n_peers);
}

uint64_t member_durable_applied(const member *m)
{
    const dimage *im = &m->d.dur;
    uint64_t si = dimage_snap_index(im);
    uint64_t commit = im->hs.commit > si ? im->hs.commit : si;
    uint64_t a = m->d.sm_n < commit ? m->d.sm_n : commit;
    return a > si ? a : si;
}

static size_t conf_arrays(sconf c, uint64_t *voters, uint64_t *learners, size_t *nl)
{
    size_t nv = 0;
    *nl = 0;
    for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
        if (c.voters & sconf_bit(id))
            voters[nv++] = id;
        if (c.learners & sconf_bit(id))
            learners[(*nl)++] = id;
    }
    return nv;
}

static void boot_peers(sim *s, raft_peer *peers, uint8_t (*ctx)[8])
{
    for (int i = 0; i < s->p.n_initial; i++) {
        put_le64(ctx[i], SIM_BOOT_UID | (uint64_t)(i + 1));
        peers[i] = (raft_peer){(uint64_t)(i + 1), ctx[i], 8};
    }
}

/* No hard state was ever synced (term 0): no batch was ever synced, since the first one of a
 * member holds a hard state, so nothing was acknowledged from this disk and the node starts
 * afresh (a torn first write may have left some entries). */
static bool disk_blank(const dimage *im)
{
    return im->hs.term == 0;
}

/* Buffers a raft_restore points into. */
typedef struct restore_buf {
    uint64_t voters[SIM_MAX_IDS];
    uint64_t learners[SIM_MAX_IDS];
    raft_peer peers[SIM_MAX_LIVE];
    uint8_t ctx[SIM_MAX_LIVE][8];
    raft_entry *ents;
} restore_buf;

/* What the node reads back from m's durable disk (caller frees b->ents). */
static raft_restore restore_of(sim *s, const member *m, restore_buf *b)
{
    const dimage *im = &m->d.dur;
    raft_restore rs = {.hard_state = im->hs};
    if (im->snap) {
        rs.snapshot.index = im->snap->index;
        rs.snapshot.term = im->snap->term;
        rs.snapshot.conf.voters = b->voters;
        rs.snapshot.conf.learners = b->learners;
        rs.snapshot.conf.n_voters = conf_arrays(im->snap->conf, b->voters, b->learners,
                                                &rs.snapshot.conf.n_learners);
    }
    b->ents = calloc(im->n ? im->n : 1, sizeof(raft_entry));
    if (!b->ents)
        abort();
    for (size_t i = 0; i < im->n; i++) {
        const sent *e = &im->ents[i];
        b->ents[i] = (raft_entry){e->term, e->index, (raft_entry_type)e->type,
                                  e->len ? e->data : NULL, e->len};
    }
    rs.entries = b->ents;
    rs.n_entries = im->n;
    if (m->boot && disk_blank(im)) {
        boot_peers(s, b->peers, b->ctx); /* bootstraps again, as etcd does without a WAL */
        rs.peers = b->peers;
        rs.n_peers = (size_t)s->p.n_initial;
    }
    return rs;
}

static void trace_restart(sim *s, const member *m, uint64_t applied)
{
    const dimage *im = &m->d.dur;
    sim_trace(s, "m%llu restart: term %llu vote %llu commit %llu snapshot %llu last %llu "
              "store %zu applied %llu", (unsigned long long)m->id,
              (unsigned long long)im->hs.term, (unsigned long long)im->hs.vote,
              (unsigned long long)im->hs.commit, (unsigned long long)dimage_snap_index(im),
              (unsigned long long)dimage_last(im), m->d.sm_n, (unsigned long long)applied);
}

void member_restart(sim *s, member *m)
{
    if (disk_blank(&m->d.dur)) {
        disk_free(&m->d); /* what a torn first write left is garbage */
        disk_init(&m->d);
    }
    const dimage *im = &m->d.dur;
    restore_buf b;
    raft_restore rs = restore_of(s, m, &b);
    raft_config cfg = base_config(s, m->id);
    cfg.applied = member_durable_applied(m);
    if (im->snap && im->snap->index > m->d.sm_n)
        sm_set(m, im->snap->vals, im->snap->index); /* the store is older than the snapshot */
    else
        sm_set(m, m->d.sm, m->d.sm_n);
    reset_checker(m, &im->hs, dimage_snap_index(im));
    open_raft(s, m, &cfg, &rs);
    free(b.ents);
    s->st.restarts++;
    if (im->n) /* a torn write may have kept entries never checked */
        (void)check_log(s, m, im->ents[0].index, dimage_last(im));
    trace_restart(s, m, cfg.applied);
    if (m->state == M_UP && !rs.n_peers && raft_last_index(m->r) != dimage_last(im))
        sim_fail(s, "restart", "m%llu: raft last index %llu, disk %llu",
                 (unsigned long long)m->id, (unsigned long long)raft_last_index(m->r),
                 (unsigned long long)dimage_last(im));
}

static void rx_clear(member *m)
{
    for (size_t i = 0; i < m->n_rx; i++)
        ssnap_unref(m->rx[i]);
    m->n_rx = 0;
}

static void rx_add(member *m, ssnap *sn)
{
    if (m->n_rx == m->cap_rx) {
        m->cap_rx = m->cap_rx ? 2 * m->cap_rx : 4;
        m->rx = realloc(m->rx, m->cap_rx * sizeof(*m->rx));
        if (!m->rx)
            abort();
    }
    ssnap_ref(sn);
    m->rx[m->n_rx++] = sn;
}

/* The received data matching the metadata raft asks to install. */
static ssnap *rx_find(const member *m, const raft_snapshot_meta *meta)
{
    for (size_t i = m->n_rx; i-- > 0;) {
        ssnap *sn = m->rx[i];
        if (sn->index == meta->index && sn->term == meta->term &&
            sconf_eq(sn->conf, sconf_from_raft(&meta->conf)))
            return sn;
    }
    return NULL;
}

void member_crash(sim *s, member *m, bool torn)
{
    raft_free(m->r);
    m->r = NULL;
    rx_clear(m);
    size_t n_ops, kept = disk_crash(&m->d, &s->rng, &n_ops);
    m->state = M_DOWN;
    s->st.crashes++;
    s->st.torn += torn;
    sim_trace(s, "m%llu crash%s: kept %zu of %zu unsynced writes", (unsigned long long)m->id,
              torn ? " before sync" : "", kept, n_ops);
}

void member_stop(sim *s, member *m)
{
    raft_free(m->r);
    m->r = NULL;
    m->state = M_STOPPED;
    sim_trace(s, "m%llu stopped (removed at %llu)", (unsigned long long)m->id,
              (unsigned long long)m->removed_at);
}

void member_free(member *m)
{
    raft_free(m->r);
    m->r = NULL;
    rx_clear(m);
    free(m->rx);
    m->rx = NULL;
    disk_free(&m->d);
    free(m->sm);
    m->sm = NULL;
}

/* ---- the update batch ---- */

static bool is_response(raft_msg_type t)
{
    return t == RAFT_MSG_APP_RESP || t == RAFT_MSG_VOTE_RESP || t == RAFT_MSG_PRE_VOTE_RESP ||
           t == RAFT_MSG_HEARTBEAT_RESP;
}

static void trace_msg(sim *s, const raft_msg *m, bool after)
{
    if (!s->verbose)
        return;
    char extra[64] = "";
    if (m->type == RAFT_MSG_SNAP)
        snprintf(extra, sizeof extra, " snap %llu/%llu", (unsigned long long)m->snapshot.index,
                 (unsigned long long)m->snapshot.term);
    sim_trace(s, "  send%s %s m%llu->m%llu term %llu idx %llu logterm %llu commit %llu n %zu%s%s "
              "ctx %llu%s", after ? "(persisted)" : "", raft_msg_type_name(m->type),
              (unsigned long long)m->from, (unsigned long long)m->to,
              (unsigned long long)m->term, (unsigned long long)m->index,
              (unsigned long long)m->log_term, (unsigned long long)m->commit, m->n_entries,
              m->reject ? " reject" : "", m->transfer ? " transfer" : "",
              (unsigned long long)m->context, extra);
}

static void send_all(sim *s, member *m, const raft_msg *msgs, size_t n, bool after)
{
    for (size_t i = 0; i < n && !s->failed; i++) {
        trace_msg(s, &msgs[i], after);
        net_send(s, m->id, &msgs[i]);
    }
}

static bool check_contract(sim *s, member *m, const raft_update *u)
{
    const raft_hard_state *hs = &u->hard_state;
    bool vote_changed = hs->term != m->seen_term || hs->vote != m->seen_vote;
    if (hs->term < m->seen_term || (hs->term == m->seen_term && m->seen_vote != RAFT_NONE &&
                                    hs->vote != m->seen_vote)) {
        sim_fail(s, "hard state", "m%llu: term/vote %llu/%llu after %llu/%llu",
                 (unsigned long long)m->id, (unsigned long long)hs->term,
                 (unsigned long long)hs->vote, (unsigned long long)m->seen_term,
                 (unsigned long long)m->seen_vote);
        return false;
    }
    if ((vote_changed || u->n_entries || u->snapshot) && !u->must_sync) {
        sim_fail(s, "update contract", "m%llu: entries, snapshot or vote without must_sync",
                 (unsigned long long)m->id);
        return false;
    }
    if (vote_changed && u->n_msgs) {
        sim_fail(s, "update contract", "m%llu: %zu messages before a term/vote change is durable",
                 (unsigned long long)m->id, u->n_msgs);
        return false;
    }
    for (size_t i = 0; i < u->n_msgs; i++) {
        if (is_response(u->msgs[i].type)) {
            sim_fail(s, "update contract", "m%llu: %s sent before persisting",
                     (unsigned long long)m->id, raft_msg_type_name(u->msgs[i].type));
            return false;
        }
    }
    m->seen_term = hs->term;
    m->seen_vote = hs->vote;
    return true;
}

static bool install_snapshot(sim *s, member *m, const raft_snapshot_meta *meta)
{
    ssnap *sn = rx_find(m, meta);
    if (!sn) {
        sim_fail(s, "snapshot data", "m%llu: raft installs %llu/%llu, no such data received",
                 (unsigned long long)m->id, (unsigned long long)meta->index,
                 (unsigned long long)meta->term);
        return false;
    }
    check_snapshot_vals(s, m, sn);
    sm_set(m, sn->vals, sn->index);
    disk_write_snap(&m->d, sn);
    s->st.snapshots++;
    sim_trace(s, "  m%llu install snapshot %llu/%llu", (unsigned long long)m->id,
              (unsigned long long)sn->index, (unsigned long long)sn->term);
    return true;
}

static bool persist(sim *s, member *m, const raft_update *u)
{
    uint64_t last = dimage_last(&m->d.cur);
    if (!disk_write_ents(&m->d, u->entries, u->n_entries)) {
        sim_fail(s, "update contract", "m%llu: entries from %llu (%zu) do not fit a log ending "
                 "at %llu", (unsigned long long)m->id,
                 (unsigned long long)(u->n_entries ? u->entries[0].index : 0), u->n_entries,
                 (unsigned long long)last);
        return false;
    }
    if (u->hard_state_changed)
        disk_write_hs(&m->d, u->hard_state);
    return true;
}

static bool apply_conf(sim *s, member *m, const raft_entry *e, const raft_conf_change *cc)
{
    int rc = raft_apply_conf_change(m->r, cc, NULL);
    if (rc)
        sim_fail(s, "conf change", "m%llu: raft_apply_conf_change(entry %llu) = %d",
                 (unsigned long long)m->id, (unsigned long long)e->index, rc);
    return rc == 0;
}

static bool apply_one(sim *s, member *m, const raft_entry *e)
{
    const sent *p = dimage_entry(&m->d.cur, e->index);
    uint64_t uid;
    raft_conf_change cc;
    if (!p || p->term != e->term) {
        sim_fail(s, "apply", "m%llu applies %llu/%llu, not in its log",
                 (unsigned long long)m->id, (unsigned long long)e->index,
                 (unsigned long long)e->term);
        return false;
    }
    if (!entry_uid(e, &uid, &cc)) {
        sim_fail(s, "apply", "m%llu: entry %llu has a corrupt payload (%zu bytes)",
                 (unsigned long long)m->id, (unsigned long long)e->index, e->len);
        return false;
    }
    if (e->type == RAFT_ENTRY_CONF_CHANGE && !apply_conf(s, m, e, &cc))
        return false;
    sval v = {e->term, uid};
    if (e->index <= m->sm_n) {
        /* Re-delivered after a restart: the store has it, and it must be the same. */
        const sval *have = &m->sm[e->index - 1];
        if (have->term != v.term || have->uid != v.uid)
            sim_fail(s, "state machine safety", "m%llu: re-delivered %llu is %llu/%llu, store "
                     "has %llu/%llu", (unsigned long long)m->id, (unsigned long long)e->index,
                     (unsigned long long)v.term, (unsigned long long)v.uid,
                     (unsigned long long)have->term, (unsigned long long)have->uid);
        return !s->failed;
    }
    if (e->index != m->sm_n + 1) {
        sim_fail(s, "apply", "m%llu applies %llu after %zu", (unsigned long long)m->id,
                 (unsigned long long)e->index, m->sm_n);
        return false;
    }
    sm_reserve(m, m->sm_n + 1);
    m->sm[m->sm_n++] = v;
    return check_applied(s, m, &v, e->index, (uint8_t)e->type,
                         e->type == RAFT_ENTRY_CONF_CHANGE ? &cc : NULL);
}

static void apply_all(sim *s, member *m, const raft_update *u)
{
    for (size_t i = 0; i < u->n_committed && !s->failed; i++)
        if (!apply_one(s, m, &u->committed[i]))
            return;
    if (u->n_committed && rng_chance(&s->rng, s->p.flush_pm))
        disk_sm_flush(&m->d, m->sm, m->sm_n);
}

static void trace_update(sim *s, member *m, const raft_update *u)
{
    if (!s->verbose)
        return;
    sim_trace(s, " m%llu update: hs %llu/%llu/%llu%s role %d lead %llu snap %llu ents %llu+%zu "
              "msgs %zu+%zu commit %llu+%zu reads %zu%s", (unsigned long long)m->id,
              (unsigned long long)u->hard_state.term, (unsigned long long)u->hard_state.vote,
              (unsigned long long)u->hard_state.commit, u->hard_state_changed ? "*" : "",
              u->soft_state.role, (unsigned long long)u->soft_state.leader,
              (unsigned long long)(u->snapshot ? u->snapshot->index : 0),
              (unsigned long long)(u->n_entries ? u->entries[0].index : 0), u->n_entries,
              u->n_msgs, u->n_msgs_after_persist,
              (unsigned long long)(u->n_committed ? u->committed[0].index : 0), u->n_committed,
              u->n_read_states, u->must_sync ? " sync" : "");
}

/* One batch; false if the member crashed in the middle of it or a check failed. */
static bool process_update(sim *s, member *m)
{
    raft_update u;
    raft_get_update(m->r, &u);
    trace_update(s, m, &u);
    if (!check_contract(s, m, &u))
        return false;
    if (u.snapshot && !install_snapshot(s, m, u.snapshot))
        return false;
    send_all(s, m, u.msgs, u.n_msgs, false);
    if (s->failed || !persist(s, m, &u))
        return false;
    if (u.must_sync && s->phase == PHASE_FAULT && rng_chance(&s->rng, s->p.torn_pm)) {
        member_crash(s, m, true);
        if (rng_chance(&s->rng, s->p.reboot_pm))
            member_restart(s, m); /* a quick reboot */
        return false;
    }
    if (u.must_sync)
        disk_sync(&m->d);
    if (u.n_entries &&
        !check_log(s, m, u.entries[0].index, u.entries[u.n_entries - 1].index))
        return false;
    send_all(s, m, u.msgs_after_persist, u.n_msgs_after_persist, true);
    apply_all(s, m, &u);
    for (size_t i = 0; i < u.n_read_states && !s->failed; i++)
        check_read_state(s, m, &u.read_states[i]);
    if (s->failed)
        return false;
    raft_advance(m->r, &u);
    return true;
}

void member_drain(sim *s, member *m)
{
    for (int k = 0; m->state == M_UP && raft_has_update(m->r); k++) {
        if (k == DRAIN_MAX) {
            sim_fail(s, "liveness", "m%llu: raft keeps producing updates",
                     (unsigned long long)m->id);
            return;
        }
        if (!process_update(s, m))
            return;
    }
    rx_clear(m); /* raft installs an accepted snapshot in the update after the step */
    if (m->state == M_UP)
        check_member(s, m);
}

void member_deliver(sim *s, member *m, const raft_msg *msg, ssnap *snap)
{
    if (msg->type == RAFT_MSG_SNAP)
        rx_add(m, snap); /* the node stores the data, then steps the message */
    int rc = raft_step(m->r, msg);
    if (s->verbose)
        sim_trace(s, "deliver %s m%llu->m%llu term %llu idx %llu commit %llu n %zu snap %llu%s = %d",
                  raft_msg_type_name(msg->type), (unsigned long long)msg->from,
                  (unsigned long long)msg->to, (unsigned long long)msg->term,
                  (unsigned long long)msg->index, (unsigned long long)msg->commit,
                  msg->n_entries, (unsigned long long)msg->snapshot.index,
                  msg->reject ? " reject" : "", rc);
    bool forwarded = msg->type == RAFT_MSG_PROP || msg->type == RAFT_MSG_READ_INDEX ||
                     msg->type == RAFT_MSG_TRANSFER_LEADER;
    if (rc == CE_CORRUPT || rc == CE_NOMEM || (rc == CE_INVAL && msg->type != RAFT_MSG_PROP) ||
        (rc && !forwarded))
        sim_fail(s, "step", "m%llu: raft_step(%s from m%llu) = %d (%s)",
                 (unsigned long long)m->id, raft_msg_type_name(msg->type),
                 (unsigned long long)msg->from, rc, ce_strerror(rc));
}

/* ---- snapshots taken by the member ---- */

void member_maybe_compact(sim *s, member *m)
{
    uint64_t applied = raft_applied_index(m->r);
    uint64_t snap = raft_first_index(m->r) - 1;
    if (applied - snap < s->p.snap_count)
        return;
    uint64_t keep = rng_below(&s->rng, s->p.snap_keep + 1);
    uint64_t idx = applied - (keep < applied - snap ? keep : applied - snap);
    if (idx <= snap || raft_compact(m->r, idx, m->sm[idx - 1].term) != 0) {
        /* A conf change after idx: the snapshot must be taken at the applied index. */
        idx = applied;
        int rc = raft_compact(m->r, idx, m->sm[idx - 1].term);
        if (rc) {
            sim_fail(s, "compact", "m%llu: raft_compact(applied %llu) = %d",
                     (unsigned long long)m->id, (unsigned long long)idx, rc);
            return;
        }
    }
    raft_conf_state cs;
    raft_conf_state_get(m->r, &cs);
    ssnap *sn = ssnap_new(idx, m->sm[idx - 1].term, sconf_from_raft(&cs), m->sm);
    disk_compact(&m->d, sn);
    check_snapshot_vals(s, m, sn);
    ssnap_unref(sn);
    s->st.compactions++;
    sim_trace(s, "m%llu snapshot at %llu (applied %llu)", (unsigned long long)m->id,
              (unsigned long long)idx, (unsigned long long)applied);
}
