/*
 * run.c: one seed of the simulation: its parameters, the step loop and the liveness phase
 * (the faults and clients that act in a step are in actors.c).
 *
 * A step: (fault phase) the actors: random crashes, restarts, partitions, membership changes,
 * leader transfers, client proposals and ReadIndex calls; every steps_per_tick
 * steps a tick of every running member (with some skew); delivery of the messages due; every
 * member drains its update batches (and is checked); maintenance: snapshots past snap_count,
 * the store's flushes, the OS's background writeback, and shutting down removed members.
 *
 * Faults last fault_steps steps. Then everything heals (no loss, short delays, no partitions,
 * every member restarted, messages from removed members filtered as etcd's transport does)
 * and the cluster must elect a leader within LEADER_BOUND election timeouts (more without
 * pre-vote, see there), commit a final proposal and converge (every member of the final conf
 * applied the leader's last index) within CONVERGE_BOUND more election timeouts plus one tick
 * per entry of the backlog (what the slowest member had still to apply when the leader was
 * found).
 *
 * A removed member is shut down once every voter of the new conf holds the removal durably
 * (so that no restart can need its vote), as an operator would after `member remove`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sim.h"

/* Election timeouts to elect a leader after the heal. Without pre-vote the bound is generous:
 * a candidate whose log is behind keeps bumping the term and resetting the others' timers
 * (etcd-raft does the same), and with timeouts drawn from [et, 2 et) an up-to-date member
 * times out first in a round with a probability of about 1/2 only. */
#define LEADER_BOUND 15
#define LEADER_BOUND_NO_PREVOTE 50
#define CONVERGE_BOUND 30 /* election timeouts to commit the final proposal and converge */

static void choose_params(sim *s)
{
    rng *r = &s->rng;
    sim_params *p = &s->p;
    p->n_initial = 1 + (int)rng_below(r, SIM_MAX_LIVE);
    p->election_tick = 4 + (int)rng_below(r, 12);
    p->heartbeat_tick = 1 + (int)rng_below(r, p->election_tick < 9 ? 1 : 3);
    p->pre_vote = !rng_chance(r, 200);
    p->check_quorum = !rng_chance(r, 200);
    p->max_inflight = rng_chance(r, 300) ? 0 : 1 + rng_below(r, 8);
    p->max_size = rng_chance(r, 300) ? 0 : 8 + rng_below(r, 64);
    p->steps_per_tick = 3 + rng_below(r, 6);
    p->fault_steps = 4000 + rng_below(r, 26000);
    p->drop_pm = (unsigned)rng_below(r, 150);
    p->dup_pm = (unsigned)rng_below(r, 80);
    p->delay_max = 1 + (unsigned)rng_below(r, 2 * p->steps_per_tick);
    p->part_pm = (unsigned)rng_below(r, 8);
    p->heal_pm = 5 + (unsigned)rng_below(r, 30);
    p->crash_pm = (unsigned)rng_below(r, 6);
    p->torn_pm = (unsigned)rng_below(r, rng_chance(r, 200) ? 30 : 4);
    p->restart_pm = 10 + (unsigned)rng_below(r, 40);
    p->reboot_pm = (unsigned)rng_below(r, 800);
    p->prop_pm = 50 + (unsigned)rng_below(r, 300);
    p->read_pm = (unsigned)rng_below(r, 100);
    p->conf_pm = (unsigned)rng_below(r, 12);
    p->transfer_pm = (unsigned)rng_below(r, 4);
    p->unreach_pm = (unsigned)rng_below(r, 500);
    p->snapfail_pm = (unsigned)rng_below(r, 200);
    p->flush_pm = 100 + (unsigned)rng_below(r, 900);
    p->bgsync_pm = (unsigned)rng_below(r, 50);
    p->skew_pm = (unsigned)rng_below(r, 100);
    p->doom_pm = rng_chance(r, 500) ? 0 : (unsigned)rng_below(r, 150);
    p->snap_count = 5 + rng_below(r, 60);
    p->snap_keep = rng_below(r, 10);
}

static void trace_params(sim *s)
{
    const sim_params *p = &s->p;
    sim_trace(s, "seed %llu: %d members, election %d heartbeat %d, pre-vote %d check-quorum %d, "
              "inflight %zu maxsize %zu, %llu steps/tick, %llu fault steps, drop %u dup %u "
              "delay %u, partition %u/%u, crash %u torn %u restart %u reboot %u doom %u, "
              "propose %u read %u conf %u transfer %u, snapshot every %llu keep %llu",
              (unsigned long long)s->seed, p->n_initial, p->election_tick, p->heartbeat_tick,
              p->pre_vote, p->check_quorum, p->max_inflight, p->max_size,
              (unsigned long long)p->steps_per_tick, (unsigned long long)p->fault_steps,
              p->drop_pm, p->dup_pm, p->delay_max, p->part_pm, p->heal_pm, p->crash_pm,
              p->torn_pm, p->restart_pm, p->reboot_pm, p->doom_pm, p->prop_pm, p->read_pm,
              p->conf_pm, p->transfer_pm,
              (unsigned long long)p->snap_count, (unsigned long long)p->snap_keep);
}

static void boot(sim *s)
{
    raft_peer peers[SIM_MAX_LIVE];
    uint8_t ctx[SIM_MAX_LIVE][8];
    for (int i = 0; i < s->p.n_initial; i++) {
        uint64_t uid = SIM_BOOT_UID | (uint64_t)(i + 1);
        for (int b = 0; b < 8; b++)
            ctx[i][b] = (uint8_t)(uid >> (8 * b));
        peers[i] = (raft_peer){(uint64_t)(i + 1), ctx[i], 8};
    }
    s->next_id = (uint64_t)s->p.n_initial + 1;
    for (int i = 0; i < s->p.n_initial; i++)
        member_start_new(s, (uint64_t)(i + 1), peers, (size_t)s->p.n_initial);
}

/* ---- time, delivery, maintenance ---- */

static void tick_all(sim *s)
{
    s->st.ticks++;
    for (uint64_t id = 1; id < s->next_id; id++) {
        member *m = &s->m[id];
        if (m->state != M_UP)
            continue;
        if (s->phase == PHASE_FAULT && rng_chance(&s->rng, s->p.skew_pm))
            continue; /* a slow clock */
        raft_tick(m->r);
    }
}

static void drain_all(sim *s)
{
    uint64_t n = s->next_id - 1, start = rng_below(&s->rng, n);
    for (uint64_t k = 0; k < n && !s->failed; k++) {
        member *m = &s->m[1 + (start + k) % n];
        if (m->state == M_UP)
            member_drain(s, m);
    }
}

/* Every voter of the current conf holds index durably applied (or in a snapshot). */
static bool voters_hold(sim *s, uint64_t index)
{
    sconf c = hist_conf_now(&s->h);
    for (uint64_t id = 1; id < s->next_id; id++) {
        if (!(c.voters & sconf_bit(id)))
            continue;
        const member *v = &s->m[id];
        if ((v->state != M_UP && v->state != M_DOWN) || member_durable_applied(v) < index)
            return false;
    }
    return true;
}

static void stop_removed(sim *s)
{
    for (uint64_t id = 1; id < s->next_id; id++) {
        member *m = &s->m[id];
        bool running = m->state == M_UP || m->state == M_DOWN;
        if (running && m->removed_at && voters_hold(s, m->removed_at))
            member_stop(s, m);
    }
}

static void maintenance(sim *s)
{
    for (uint64_t id = 1; id < s->next_id && !s->failed; id++) {
        member *m = &s->m[id];
        if (m->state != M_UP)
            continue;
        member_maybe_compact(s, m);
        if (rng_chance(&s->rng, s->p.bgsync_pm))
            disk_sync(&m->d);
        if (rng_chance(&s->rng, s->p.flush_pm / 10))
            disk_sm_flush(&m->d, m->sm, m->sm_n);
    }
    stop_removed(s);
}

static void one_step(sim *s)
{
    s->step++;
    s->st.steps++;
    if (s->phase == PHASE_FAULT) {
        actors_faults(s);
        actors_clients(s);
    }
    if (s->step % s->p.steps_per_tick == 0)
        tick_all(s);
    net_deliver_due(s);
    drain_all(s);
    if (!s->failed)
        maintenance(s);
}

/* ---- the heal and liveness ---- */

static void heal(sim *s)
{
    s->phase = PHASE_HEAL;
    sim_trace(s, "heal: no more faults");
    net_heal(s);
    for (uint64_t id = 1; id < s->next_id && !s->failed; id++)
        if (s->m[id].state == M_DOWN)
            member_restart(s, &s->m[id]);
    drain_all(s);
}

/* The leader of the highest term among running members of the conf; 0 if none. */
static uint64_t current_leader(sim *s)
{
    sconf c = hist_conf_now(&s->h);
    uint64_t best = 0, best_term = 0, max_term = 0;
    for (uint64_t id = 1; id < s->next_id; id++) {
        member *m = &s->m[id];
        if (m->state != M_UP || !sconf_has(c, id))
            continue;
        uint64_t t = raft_term(m->r);
        if (t > max_term)
            max_term = t;
        if (raft_get_role(m->r) == RAFT_LEADER && t > best_term)
            best = id, best_term = t;
    }
    return best && best_term == max_term ? best : 0;
}

/* Every member of the conf applied the leader's last index. */
static bool converged(sim *s, uint64_t l)
{
    uint64_t last = raft_last_index(s->m[l].r);
    sconf c = hist_conf_now(&s->h);
    for (uint64_t id = 1; id < s->next_id; id++) {
        member *m = &s->m[id];
        if (sconf_has(c, id) && (m->state != M_UP || raft_applied_index(m->r) != last))
            return false;
    }
    return true;
}

/* Steps until cond holds or `ticks` ticks passed; false on timeout or failure. */
static bool run_until(sim *s, uint64_t ticks, bool (*cond)(sim *))
{
    uint64_t end = s->st.ticks + ticks;
    while (!s->failed && s->st.ticks < end) {
        if (cond(s))
            return true;
        one_step(s);
    }
    return !s->failed && cond(s);
}

static bool has_leader(sim *s)
{
    return current_leader(s) != 0;
}

/* Proposes a final entry at leader l, as a client would; true if accepted. */
static bool propose_final(sim *s, uint64_t l)
{
    uint64_t uid = s->next_uid++;
    uint8_t data[SIM_DATA_MAX];
    size_t len = sim_proposal_data(uid, data);
    int rc = raft_propose(s->m[l].r, data, len);
    sim_trace(s, "m%llu final proposal uid %llu = %d", (unsigned long long)l,
              (unsigned long long)uid, rc);
    if (rc != 0)
        return false;
    prop *p = sim_prop(s, uid);
    p->proposer = l;
    p->inc = s->m[l].inc;
    s->final_uid = uid;
    return true;
}

/* The final proposal is acknowledged and everyone applied it. A proposal whose proposer lost
 * leadership before applying it may be lost: the client proposes again. */
static bool final_done(sim *s)
{
    uint64_t l = current_leader(s);
    prop *p = s->final_uid ? sim_prop(s, s->final_uid) : NULL;
    if (p && !p->acked_at && (p->proposer != l || s->m[l].inc != p->inc))
        p = NULL;
    if (!p && l && propose_final(s, l))
        p = sim_prop(s, s->final_uid);
    return p && p->acked_at && l && converged(s, l);
}

/* Entries the slowest member of the conf has still to apply. */
static uint64_t backlog(sim *s, uint64_t l)
{
    uint64_t last = raft_last_index(s->m[l].r), behind = 0;
    sconf c = hist_conf_now(&s->h);
    for (uint64_t id = 1; id < s->next_id; id++) {
        member *m = &s->m[id];
        if (sconf_has(c, id) && m->state == M_UP && last - raft_applied_index(m->r) > behind)
            behind = last - raft_applied_index(m->r);
    }
    return behind;
}

/* One line per running member: id, role, term, commit, applied, last, voter or learner. */
static void describe(sim *s, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = 0;
    sconf c = hist_conf_now(&s->h);
    for (uint64_t id = 1; id < s->next_id && k + 80 < size; id++) {
        member *m = &s->m[id];
        if (m->state != M_UP)
            continue;
        raft_conf_state cs;
        raft_conf_state_get(m->r, &cs);
        sconf mc = sconf_from_raft(&cs);
        k += (size_t)snprintf(buf + k, size - k, " [m%llu %s role %d term %llu commit %llu "
                              "applied %llu last %llu]", (unsigned long long)id,
                              (mc.voters & sconf_bit(id)) ? "voter" : sconf_has(c, id) ?
                              "learner" : "outside", raft_get_role(m->r),
                              (unsigned long long)raft_term(m->r),
                              (unsigned long long)raft_commit_index(m->r),
                              (unsigned long long)raft_applied_index(m->r),
                              (unsigned long long)raft_last_index(m->r));
    }
}

static void liveness(sim *s)
{
    uint64_t et = (uint64_t)s->p.election_tick;
    uint64_t lb = (s->p.pre_vote ? LEADER_BOUND : LEADER_BOUND_NO_PREVOTE) * et;
    char desc[600];
    if (!run_until(s, lb, has_leader)) {
        describe(s, desc, sizeof desc);
        if (!s->failed)
            sim_fail(s, "liveness", "no leader %llu ticks after the heal:%s",
                     (unsigned long long)lb, desc);
        return;
    }
    /* The proposals queued before the heal drain at one entry per tick at least. */
    uint64_t bound = CONVERGE_BOUND * et + backlog(s, current_leader(s));
    if (!run_until(s, bound, final_done)) {
        describe(s, desc, sizeof desc);
        if (!s->failed)
            sim_fail(s, "liveness", "final proposal not applied everywhere %llu ticks after a "
                     "leader was elected:%s", (unsigned long long)bound, desc);
        return;
    }
    check_final(s, current_leader(s));
}

bool sim_run(sim *s)
{
    rng_seed(&s->rng, s->seed);
    net_init(&s->net);
    hist_init(&s->h);
    s->next_uid = 1;
    s->next_ctx = 1;
    choose_params(s);
    trace_params(s);
    boot(s);
    drain_all(s);
    while (!s->failed && s->step < s->p.fault_steps)
        one_step(s);
    if (!s->failed)
        heal(s);
    if (!s->failed)
        liveness(s);
    return !s->failed;
}

void sim_free(sim *s)
{
    for (uint64_t id = 1; id <= SIM_MAX_IDS; id++)
        member_free(&s->m[id]);
    net_free(&s->net);
    hist_free(&s->h);
    free(s->props);
    free(s->reads);
}
