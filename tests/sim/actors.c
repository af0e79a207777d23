/*
 * actors.c: what acts on the cluster in a step besides time and the network: clients
 * (proposals and ReadIndex calls at random members, followers forwarding them), the operator
 * (membership changes, leader transfers) and the faults (crashes, torn writes' reboots,
 * restarts, partitions), all drawn from the seed's PRNG with the seed's rates.
 *
 * Membership rules: at most SIM_MAX_LIVE members run (members of the conf plus joining ones);
 * ids are never reused; a change is chosen from the committed conf (the history's), which may
 * be stale: raft refuses what no longer makes sense (a second pending change, removing or
 * demoting the last voter). Raft cannot tell a demotion from re-adding a member removed
 * meanwhile, so no addition or demotion ever targets an id whose removal was proposed, and a
 * joining member's addition is proposed again only long after the last try.
 *
 * Faults target leaders and candidates half of the time (crashes, isolation): those are the
 * moments where safety bugs hide. A crash may be followed at once by a reboot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define ADD_RETRY 50 /* election timeouts before proposing a member's addition again */

/* ---- picking members ---- */

typedef bool (*mpred)(const sim *s, const member *m);

static bool is_up(const sim *s, const member *m)
{
    (void)s;
    return m->state == M_UP;
}

static bool is_down(const sim *s, const member *m)
{
    (void)s;
    return m->state == M_DOWN;
}

static bool is_running(const sim *s, const member *m)
{
    (void)s;
    return m->state == M_UP || m->state == M_DOWN;
}

/* A member started to join whose addition is not (yet) in the history. Its addition is
 * proposed again only long after the last try: a lost proposal may still commit late (from
 * a deposed leader's log), and two of them could re-add it after a removal. */
static bool is_joining(const sim *s, const member *m)
{
    uint64_t wait = ADD_RETRY * (uint64_t)s->p.election_tick;
    return is_running(s, m) && !m->was_member && !m->remove_proposed &&
           (!m->add_tick || s->st.ticks > m->add_tick + wait);
}

/* A leader or a candidate: the members whose crash or isolation matters most. */
static bool is_campaigning(const sim *s, const member *m)
{
    return is_up(s, m) && raft_get_role(m->r) != RAFT_FOLLOWER;
}

static bool is_voter(const sim *s, const member *m)
{
    return (hist_conf_now(&s->h).voters & sconf_bit(m->id)) != 0;
}

/* A voter that may be demoted: raft cannot tell a demotion (ADD_LEARNER of a voter) from the
 * re-addition of a member removed meanwhile, so no add or demotion targets an id whose
 * removal was proposed (etcd's membership layer refuses removed ids the same way). */
static bool is_demotable(const sim *s, const member *m)
{
    return is_voter(s, m) && !m->remove_proposed;
}

static bool is_learner(const sim *s, const member *m)
{
    return (hist_conf_now(&s->h).learners & sconf_bit(m->id)) != 0;
}

static size_t count(const sim *s, mpred pred)
{
    size_t n = 0;
    for (uint64_t id = 1; id < s->next_id; id++)
        n += pred(s, &s->m[id]);
    return n;
}

/* A random member satisfying pred, or NULL. */
static member *pick(sim *s, mpred pred)
{
    size_t n = count(s, pred);
    if (n == 0)
        return NULL;
    size_t k = (size_t)rng_below(&s->rng, n);
    for (uint64_t id = 1; id < s->next_id; id++)
        if (pred(s, &s->m[id]) && k-- == 0)
            return &s->m[id];
    return NULL;
}

member *sim_member(sim *s, uint64_t id)
{
    if (id == 0 || id >= s->next_id)
        return NULL;
    member *m = &s->m[id];
    return is_running(s, m) ? m : NULL;
}

/* ---- clients ---- */

static void propose(sim *s, member *m)
{
    uint64_t uid = s->next_uid++;
    uint8_t data[SIM_DATA_MAX];
    size_t len = sim_proposal_data(uid, data);
    int rc = raft_propose(m->r, data, len);
    prop *p = sim_prop(s, uid);
    if (rc == 0) {
        p->proposer = m->id;
        p->inc = m->inc;
        s->st.proposals++;
    }
    sim_trace(s, "m%llu propose uid %llu = %d", (unsigned long long)m->id,
              (unsigned long long)uid, rc);
}

static void read_index(sim *s, member *m)
{
    uint64_t ctx = s->next_ctx++;
    readq *q = sim_read(s, ctx);
    int rc = raft_read_index(m->r, ctx);
    if (rc == 0) {
        q->issuer = m->id;
        q->min_index = s->h.gmax;
    }
    sim_trace(s, "m%llu read index %llu (committed %llu) = %d", (unsigned long long)m->id,
              (unsigned long long)ctx, (unsigned long long)s->h.gmax, rc);
}

void actors_clients(sim *s)
{
    if (rng_chance(&s->rng, s->p.prop_pm)) {
        member *m = pick(s, is_up);
        for (uint64_t k = 1 + rng_below(&s->rng, 3); m && k > 0; k--)
            propose(s, m);
    }
    if (rng_chance(&s->rng, s->p.read_pm)) {
        member *m = pick(s, is_up);
        if (m)
            read_index(s, m);
    }
}

/* ---- membership changes ---- */

static member *joining_member(sim *s)
{
    member *j = pick(s, is_joining);
    if (!j && count(s, is_running) < SIM_MAX_LIVE && s->next_id <= SIM_MAX_IDS) {
        uint64_t id = s->next_id++;
        member_start_new(s, id, NULL, 0);
        j = &s->m[id];
    }
    if (j)
        j->add_tick = s->st.ticks + 1;
    return j;
}

/* Picks a change that makes sense in the committed conf; false if none was found. */
static bool choose_change(sim *s, raft_conf_change *cc)
{
    sconf c = hist_conf_now(&s->h);
    bool many = __builtin_popcountll(c.voters) > 1;
    member *t = NULL;
    switch (rng_below(&s->rng, 7)) {
    case 0:
    case 1:
        cc->type = rng_chance(&s->rng, 500) ? RAFT_CC_ADD_LEARNER : RAFT_CC_ADD_VOTER;
        t = joining_member(s);
        break;
    case 2:
        cc->type = RAFT_CC_PROMOTE;
        t = pick(s, is_learner);
        break;
    case 3:
        cc->type = RAFT_CC_REMOVE;
        t = many ? pick(s, is_voter) : NULL;
        break;
    case 4:
        cc->type = RAFT_CC_REMOVE;
        t = pick(s, is_learner);
        break;
    case 5:
        cc->type = RAFT_CC_ADD_LEARNER; /* demotion */
        t = many ? pick(s, is_demotable) : NULL;
        break;
    default:
        cc->type = RAFT_CC_UPDATE;
        t = pick(s, is_voter);
        break;
    }
    if (!t)
        return false;
    cc->node_id = t->id;
    if (cc->type == RAFT_CC_REMOVE)
        t->remove_proposed = true;
    return true;
}

static void conf_action(sim *s)
{
    raft_conf_change cc = {0};
    member *at = pick(s, is_up);
    if (!at || !choose_change(s, &cc))
        return;
    uint64_t uid = s->next_uid++;
    uint8_t ctx[8];
    for (int b = 0; b < 8; b++)
        ctx[b] = (uint8_t)(uid >> (8 * b));
    cc.context = ctx;
    cc.context_len = 8;
    int rc = raft_propose_conf_change(at->r, &cc);
    prop *p = sim_prop(s, uid);
    if (rc == 0) {
        p->proposer = at->id;
        p->inc = at->inc;
    }
    sim_trace(s, "m%llu propose conf change type %d m%llu uid %llu = %d",
              (unsigned long long)at->id, cc.type, (unsigned long long)cc.node_id,
              (unsigned long long)uid, rc);
}

/* ---- faults ---- */

static void transfer_action(sim *s)
{
    member *at = pick(s, is_up), *to = pick(s, is_voter);
    if (!at || !to)
        return;
    int rc = raft_transfer_leader(at->r, to->id);
    sim_trace(s, "m%llu transfer leadership to m%llu = %d", (unsigned long long)at->id,
              (unsigned long long)to->id, rc);
}

void actors_faults(sim *s)
{
    const sim_params *p = &s->p;
    member *m;
    for (uint64_t id = 1; id < s->next_id; id++) {
        if (s->m[id].doomed && s->m[id].state == M_UP) {
            member_crash(s, &s->m[id], false);
            if (rng_chance(&s->rng, p->reboot_pm))
                member_restart(s, &s->m[id]);
        }
        s->m[id].doomed = false;
    }
    if (rng_chance(&s->rng, p->crash_pm) &&
        ((rng_chance(&s->rng, 500) && (m = pick(s, is_campaigning))) || (m = pick(s, is_up)))) {
        member_crash(s, m, false);
        if (rng_chance(&s->rng, p->reboot_pm))
            member_restart(s, m);
    }
    if (rng_chance(&s->rng, p->restart_pm) && (m = pick(s, is_down)))
        member_restart(s, m);
    if (!s->net.partitioned && rng_chance(&s->rng, p->part_pm)) {
        m = rng_chance(&s->rng, 300) ? pick(s, is_campaigning) : NULL;
        net_partition(s, m ? m->id : 0);
    }
    else if (s->net.partitioned && rng_chance(&s->rng, p->heal_pm))
        net_heal(s);
    if (rng_chance(&s->rng, p->conf_pm))
        conf_action(s);
    if (rng_chance(&s->rng, p->transfer_pm))
        transfer_action(s);
}
