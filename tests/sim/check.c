/*
 * check.c: the invariants, checked as the simulation goes (after every write, apply and
 * update batch, so the failing step is the one reported) and at the end of a seed.
 *
 *   election safety     at most one leader per term, over the whole run;
 *   log matching        two entries with the same index and term carry the same payload and
 *                       follow entries of the same term (so, inductively, identical logs up
 *                       to there), checked on every entry any member holds durably (a write
 *                       lost in a crash before its sync was never sent either);
 *   leader completeness a leader of term T holds every entry known committed in a term < T
 *                       (known committed: applied anywhere, or at or below a member's commit
 *                       index; its commit term is bounded by the observer's term);
 *   state machine       every member applies a prefix of one history; a re-delivered entry
 *   safety              equals what the store holds; snapshots carry that history;
 *   acknowledged writes a proposal acknowledged at index i is the history's entry i, and at
 *                       the end every member has applied it;
 *   read index          a read state's index is >= the highest commit index known anywhere
 *                       when the read was issued (linearizable reads);
 *   membership          each member's conf state is the history's conf at its applied index,
 *                       and a snapshot's conf is the history's conf at the snapshot index;
 *   raft/disk agreement raft's last and first index equal the member's written log;
 *   commit              a member's commit index never goes back and never passes its log.
 * The raft.h update contract and hard state monotonicity are checked in member.c.
 */
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define U(x) ((unsigned long long)(x))

static uint64_t data_hash(const sent *e)
{
    uint64_t h = 0xcbf29ce484222325ull ^ e->type;
    for (size_t i = 0; i < e->len; i++)
        h = (h ^ e->data[i]) * 0x100000001b3ull;
    return h;
}

bool check_written_entry(sim *s, member *m, const sent *e, uint64_t prev_term)
{
    kv_ent *k = hist_entry_slot(&s->h, e->index, e->term);
    uint64_t dh = data_hash(e);
    if (!k->index) {
        *k = (kv_ent){e->index, e->term, dh, prev_term};
        return true;
    }
    if (k->data_hash != dh || k->prev_term != prev_term) {
        sim_fail(s, "log matching", "m%llu writes %llu/%llu (after term %llu), another member "
                 "wrote it with %s (after term %llu)", U(m->id), U(e->index), U(e->term),
                 U(prev_term), k->data_hash != dh ? "another payload" : "the same payload",
                 U(k->prev_term));
        return false;
    }
    return true;
}

bool check_log(sim *s, member *m, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i <= to; i++) {
        uint64_t prev = 0;
        const sent *e = dimage_entry(&m->d.cur, i);
        (void)dimage_term(&m->d.cur, i - 1, &prev);
        if (!e || !check_written_entry(s, m, e, prev))
            return false;
    }
    return true;
}

bool check_committed(sim *s, uint64_t index, uint64_t term, uint64_t obs_term)
{
    hist *h = &s->h;
    hist_reserve_gc(h, index);
    if (h->gc_term[index] == 0) {
        h->gc_term[index] = term;
        h->gc_obs[index] = obs_term;
        if (index > h->gmax)
            h->gmax = index;
        /* Leaders already checked past index must check it too. */
        for (uint64_t id = 1; id < s->next_id; id++)
            if (s->m[id].lc_next > index)
                s->m[id].lc_next = index;
        return true;
    }
    if (h->gc_term[index] != term) {
        sim_fail(s, "committed entry changed", "index %llu committed with term %llu, now term "
                 "%llu", U(index), U(h->gc_term[index]), U(term));
        return false;
    }
    return true;
}

static void note_conf(sim *s, uint64_t index, uint64_t uid, const raft_conf_change *cc)
{
    sconf prev = hist_conf_now(&s->h), next = sconf_apply(prev, cc);
    hist_push_conf(&s->h, index, next);
    if (!(uid & SIM_BOOT_UID))
        s->st.conf_changes++;
    for (uint64_t id = 1; id <= SIM_MAX_IDS; id++) {
        if (sconf_has(next, id))
            s->m[id].was_member = true;
        else if (sconf_has(prev, id))
            s->m[id].removed_at = index;
    }
    sim_trace(s, "history %llu: conf change type %d m%llu -> voters %#llx learners %#llx",
              U(index), cc->type, U(cc->node_id), U(next.voters), U(next.learners));
}

static void note_ack(sim *s, member *m, uint64_t uid, uint64_t index)
{
    if (uid == 0 || (uid & SIM_BOOT_UID) || uid >= s->next_uid)
        return;
    prop *p = sim_prop(s, uid);
    if (p->proposer == m->id && p->inc == m->inc && !p->acked_at) {
        p->acked_at = index;
        s->st.acked++;
    }
}

bool check_applied(sim *s, member *m, const sval *v, uint64_t index, uint8_t type,
                   const raft_conf_change *cc)
{
    hist *h = &s->h;
    if (index <= h->n) {
        const sval *w = &h->v[index - 1];
        if (w->term != v->term || w->uid != v->uid) {
            bool acked = w->uid && !(w->uid & SIM_BOOT_UID) && w->uid < s->next_uid &&
                         sim_prop(s, w->uid)->acked_at == index;
            sim_fail(s, acked ? "acknowledged proposal lost" : "state machine safety",
                     "m%llu applies %llu/%llu uid %llu at %llu, history has %llu/uid %llu",
                     U(m->id), U(index), U(v->term), U(v->uid), U(index), U(w->term),
                     U(w->uid));
            return false;
        }
    } else if (index == h->n + 1) {
        hist_push(h, *v);
        s->st.commits++;
        if (type == RAFT_ENTRY_CONF_CHANGE)
            note_conf(s, index, v->uid, cc);
    } else {
        sim_fail(s, "state machine safety", "m%llu applies %llu, history ends at %zu",
                 U(m->id), U(index), h->n);
        return false;
    }
    note_ack(s, m, v->uid, index);
    return check_committed(s, index, v->term, raft_term(m->r));
}

void check_snapshot_vals(sim *s, member *m, const ssnap *sn)
{
    const hist *h = &s->h;
    if (sn->index > h->n) {
        sim_fail(s, "state machine safety", "m%llu: snapshot at %llu beyond history %zu",
                 U(m->id), U(sn->index), h->n);
        return;
    }
    for (uint64_t i = 0; i < sn->index; i++) {
        if (sn->vals[i].term != h->v[i].term || sn->vals[i].uid != h->v[i].uid) {
            sim_fail(s, "state machine safety", "m%llu: snapshot %llu differs from history at "
                     "%llu", U(m->id), U(sn->index), U(i + 1));
            return;
        }
    }
    sconf want = hist_conf_at(h, sn->index);
    if (!sconf_eq(sn->conf, want))
        sim_fail(s, "membership", "m%llu: snapshot %llu has conf %#llx/%#llx, history %#llx/%#llx",
                 U(m->id), U(sn->index), U(sn->conf.voters), U(sn->conf.learners),
                 U(want.voters), U(want.learners));
    else if (sn->index)
        (void)check_committed(s, sn->index, sn->term, m->r ? raft_term(m->r) : sn->term);
}

void check_read_state(sim *s, member *m, const raft_read_state *rs)
{
    if (rs->ctx == 0 || rs->ctx >= s->next_ctx) {
        sim_fail(s, "read index", "m%llu: read state for unknown ctx %llu", U(m->id), U(rs->ctx));
        return;
    }
    const readq *q = sim_read(s, rs->ctx);
    if (q->issuer != m->id) {
        sim_fail(s, "read index", "m%llu got the read state of m%llu's read %llu", U(m->id),
                 U(q->issuer), U(rs->ctx));
        return;
    }
    if (rs->index < q->min_index) {
        sim_fail(s, "read index", "m%llu: read %llu answered at index %llu, but %llu was "
                 "committed when it was issued", U(m->id), U(rs->ctx), U(rs->index),
                 U(q->min_index));
        return;
    }
    s->st.reads++;
    sim_trace(s, "  m%llu read %llu: index %llu (>= %llu)", U(m->id), U(rs->ctx), U(rs->index),
              U(q->min_index));
}

static void check_leader(sim *s, member *m)
{
    uint64_t term = raft_term(m->r);
    uint64_t *slot = hist_leader_slot(&s->h, term);
    if (*slot == 0) {
        *slot = m->id;
        s->st.leaders++;
        if (s->phase == PHASE_FAULT && rng_chance(&s->rng, s->p.doom_pm))
            m->doomed = true;
        sim_trace(s, "m%llu is leader of term %llu", U(m->id), U(term));
    } else if (*slot != m->id) {
        sim_fail(s, "election safety", "m%llu and m%llu both lead term %llu", U(*slot), U(m->id),
                 U(term));
    }
}

static void check_completeness(sim *s, member *m)
{
    const hist *h = &s->h;
    uint64_t term = raft_term(m->r);
    if (m->lc_term != term) {
        m->lc_term = term;
        m->lc_next = 1;
    }
    uint64_t si = dimage_snap_index(&m->d.cur);
    for (uint64_t i = m->lc_next > si ? m->lc_next : si; i <= h->gmax; i++) {
        uint64_t t;
        if (i == 0 || h->gc_term[i] == 0 || h->gc_obs[i] >= term)
            continue;
        if (!dimage_term(&m->d.cur, i, &t) || t != h->gc_term[i]) {
            sim_fail(s, "leader completeness", "leader m%llu of term %llu lacks committed "
                     "%llu/%llu (committed by term %llu)", U(m->id), U(term), U(i),
                     U(h->gc_term[i]), U(h->gc_obs[i]));
            return;
        }
    }
    m->lc_next = h->gmax + 1;
}

static void check_commit(sim *s, member *m)
{
    uint64_t c = raft_commit_index(m->r);
    if (c < m->seen_commit) {
        sim_fail(s, "commit", "m%llu: commit index went back from %llu to %llu", U(m->id),
                 U(m->seen_commit), U(c));
        return;
    }
    uint64_t si = dimage_snap_index(&m->d.cur); /* below it (a snapshot): terms unknown */
    for (uint64_t i = m->seen_commit + 1 > si ? m->seen_commit + 1 : si; i <= c && !s->failed;
         i++) {
        uint64_t t;
        if (!dimage_term(&m->d.cur, i, &t)) {
            sim_fail(s, "commit", "m%llu: commit index %llu beyond its log (%llu)", U(m->id),
                     U(c), U(dimage_last(&m->d.cur)));
            return;
        }
        (void)check_committed(s, i, t, raft_term(m->r));
    }
    if (c > m->seen_commit && raft_get_role(m->r) == RAFT_LEADER && s->phase == PHASE_FAULT &&
        rng_chance(&s->rng, s->p.doom_pm))
        m->doomed = true; /* the moments that matter most for safety */
    m->seen_commit = c;
}

static void check_agreement(sim *s, member *m)
{
    const dimage *im = &m->d.cur;
    if (raft_last_index(m->r) != dimage_last(im) ||
        raft_first_index(m->r) != dimage_snap_index(im) + 1) {
        sim_fail(s, "raft/disk agreement", "m%llu: raft log [%llu, %llu], written [%llu, %llu]",
                 U(m->id), U(raft_first_index(m->r)), U(raft_last_index(m->r)),
                 U(dimage_snap_index(im) + 1), U(dimage_last(im)));
        return;
    }
    uint64_t applied = raft_applied_index(m->r);
    if (m->sm_n < applied) {
        sim_fail(s, "apply", "m%llu: raft applied %llu, state machine has %zu", U(m->id),
                 U(applied), m->sm_n);
        return;
    }
    raft_conf_state cs;
    raft_conf_state_get(m->r, &cs);
    sconf have = sconf_from_raft(&cs), want = hist_conf_at(&s->h, applied);
    if (!sconf_eq(have, want))
        sim_fail(s, "membership", "m%llu: conf %#llx/%#llx at applied %llu, history %#llx/%#llx",
                 U(m->id), U(have.voters), U(have.learners), U(applied), U(want.voters),
                 U(want.learners));
}

void check_member(sim *s, member *m)
{
    if (raft_get_role(m->r) == RAFT_LEADER)
        check_leader(s, m);
    if (!s->failed)
        check_agreement(s, m);
    if (!s->failed)
        check_commit(s, m);
    if (!s->failed && raft_get_role(m->r) == RAFT_LEADER)
        check_completeness(s, m);
}

/* After the heal: every member of the final conf is up and has applied the same last index
 * as the leader, which holds every acknowledged proposal. */
void check_final(sim *s, uint64_t leader)
{
    member *l = &s->m[leader];
    uint64_t last = raft_last_index(l->r);
    sconf c = hist_conf_now(&s->h);
    for (uint64_t id = 1; id < s->next_id && !s->failed; id++) {
        member *m = &s->m[id];
        if (!sconf_has(c, id))
            continue;
        if (m->state != M_UP || raft_applied_index(m->r) != last ||
            raft_last_index(m->r) != last || raft_commit_index(m->r) != last) {
            sim_fail(s, "convergence", "m%llu (%s): applied %llu commit %llu last %llu, leader "
                     "m%llu last %llu", U(id), m->state == M_UP ? "up" : "not up",
                     U(m->r ? raft_applied_index(m->r) : 0),
                     U(m->r ? raft_commit_index(m->r) : 0), U(m->r ? raft_last_index(m->r) : 0),
                     U(leader), U(last));
        }
    }
    for (uint64_t uid = 1; uid < s->next_uid && !s->failed; uid++) {
        const prop *p = sim_prop(s, uid);
        if (!p->acked_at)
            continue;
        if (p->acked_at > last || p->acked_at > s->h.n || s->h.v[p->acked_at - 1].uid != uid)
            sim_fail(s, "acknowledged proposal lost", "uid %llu acknowledged at %llu is not in "
                     "the final history (last %llu)", U(uid), U(p->acked_at), U(last));
    }
}
