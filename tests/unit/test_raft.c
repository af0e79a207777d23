/*
 * test_raft.c: the Raft core's contract, driven through an in-test network harness.
 *
 * The harness holds N raft instances, each with a "disk" (hard state, entries, snapshot point)
 * written exactly as a node would from the update batch, and a record of what each applied.
 * Every message is encoded with raft_msg_encode and decoded with raft_msg_decode on delivery,
 * so the wire format is exercised by every test. Links can be cut (partitions), members taken
 * down and restarted from their disk, and messages dropped at random (seeded).
 *
 * Checked invariants after every delivery round: at most one leader per term (Election
 * Safety), and any index applied by two members holds the same entry (State Machine Safety).
 * Randomized tests print their seed; replay with RAFT_SEED=<n> (RAFT_ITERS=<k> runs k
 * randomized clusters, default 8, for soaking). The randomized cluster test adds drops,
 * duplication, reordering, partitions, crashes/restarts from disk, compaction + snapshot
 * catch-up, conf changes, leader transfers and ReadIndex (checked for linearizability:
 * a read's index covers everything committed before it was requested).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "server/raft/raft.h"

#define MAXN 5
#define MAXQ 100000
#define ET 10 /* election ticks */
#define HT 1  /* heartbeat ticks */

/* ---------- harness ---------- */

typedef struct stored {
    uint64_t term, index;
    raft_entry_type type;
    uint8_t *data;
    size_t len;
} stored;

typedef struct disk {
    raft_hard_state hs;
    uint64_t snap_index, snap_term;
    uint64_t voters[MAXN], learners[MAXN];
    size_t nv, nl;
    stored *ents; /* after the snapshot */
    size_t n, cap;
} disk;

typedef struct member {
    raft *r;
    bool down;
    disk d;
    stored *applied; /* applied[i] is index i + 1 (snapshot-covered ones have term 0) */
    size_t n_applied, cap_applied;
    uint64_t snap_installed;
    raft_read_state reads[64];
    size_t n_reads;
    raft_config cfg;
} member;

typedef struct wire {
    int to; /* member slot */
    uint8_t *buf;
    size_t len;
} wire;

typedef struct net {
    int n;
    member m[MAXN];
    bool cut[MAXN][MAXN];
    wire *q;
    size_t qh, qt;
    uint64_t leader_of_term[4096];
    uint64_t rng;
    unsigned drop_pct;
    bool chaos; /* duplicate and reorder messages */
    struct { int from; uint64_t to; } snap_fail[256]; /* lost MsgSnap, reported later */
    size_t n_snap_fail;
    size_t app_rejects; /* MsgAppResp rejections delivered */
    uint64_t max_commit;          /* highest commit index any member ever reported */
    uint64_t read_min[1024];      /* read ctx -> max_commit when it was issued (+1) */
    size_t reads_checked;
} net;

static uint64_t id_of(int i)
{
    return (uint64_t)i + 1;
}

static uint64_t rnd(net *nt)
{
    uint64_t z = (nt->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void disk_free(disk *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->ents[i].data);
    free(d->ents);
    memset(d, 0, sizeof(*d));
}

static void disk_append(disk *d, const raft_entry *e, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint64_t idx = e[k].index;
        assert_true(idx > d->snap_index);
        size_t pos = (size_t)(idx - d->snap_index - 1);
        assert_true(pos <= d->n);
        for (size_t i = pos; i < d->n; i++)
            free(d->ents[i].data);
        d->n = pos;
        if (d->n == d->cap) {
            d->cap = d->cap ? d->cap * 2 : 64;
            d->ents = realloc(d->ents, d->cap * sizeof(stored));
        }
        stored *s = &d->ents[d->n++];
        s->term = e[k].term;
        s->index = idx;
        s->type = e[k].type;
        s->len = e[k].len;
        s->data = e[k].len ? malloc(e[k].len) : NULL;
        if (e[k].len)
            memcpy(s->data, e[k].data, e[k].len);
    }
}

static void disk_install_snapshot(disk *d, const raft_snapshot_meta *s)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->ents[i].data);
    d->n = 0;
    d->snap_index = s->index;
    d->snap_term = s->term;
    d->nv = s->conf.n_voters;
    d->nl = s->conf.n_learners;
    memcpy(d->voters, s->conf.voters, d->nv * sizeof(uint64_t));
    memcpy(d->learners, s->conf.learners, d->nl * sizeof(uint64_t));
}

/* The node took a snapshot at its applied index: compact the disk and raft. */
static void disk_compact(member *mb, uint64_t index, uint64_t term)
{
    disk *d = &mb->d;
    size_t k = (size_t)(index - d->snap_index);
    for (size_t i = 0; i < k; i++)
        free(d->ents[i].data);
    memmove(d->ents, d->ents + k, (d->n - k) * sizeof(stored));
    d->n -= k;
    d->snap_index = index;
    d->snap_term = term;
    raft_conf_state cs;
    raft_conf_state_get(mb->r, &cs);
    d->nv = cs.n_voters;
    d->nl = cs.n_learners;
    memcpy(d->voters, cs.voters, d->nv * sizeof(uint64_t));
    memcpy(d->learners, cs.learners, d->nl * sizeof(uint64_t));
}

static void record_applied(member *mb, const raft_entry *e)
{
    if (mb->n_applied == mb->cap_applied) {
        mb->cap_applied = mb->cap_applied ? mb->cap_applied * 2 : 64;
        mb->applied = realloc(mb->applied, mb->cap_applied * sizeof(stored));
    }
    /* Invariant under test: committed entries come out in order, each exactly once. */
    assert_int_equal(e->index, mb->n_applied + 1);
    stored *s = &mb->applied[mb->n_applied++];
    s->term = e->term;
    s->index = e->index;
    s->type = e->type;
    s->len = e->len;
    s->data = e->len ? malloc(e->len) : NULL;
    if (e->len)
        memcpy(s->data, e->data, e->len);
}

static void applied_free(member *mb)
{
    for (size_t i = 0; i < mb->n_applied; i++)
        free(mb->applied[i].data);
    free(mb->applied);
    mb->applied = NULL;
    mb->n_applied = mb->cap_applied = 0;
}

static int slot_of(uint64_t id)
{
    return (int)id - 1;
}

static void enqueue(net *nt, int from, const raft_msg *m)
{
    int to = slot_of(m->to);
    if (to < 0 || to >= nt->n)
        return; /* to a member that does not exist (random-message test) */
    if (nt->cut[from][to] || nt->m[to].down ||
        (nt->drop_pct && rnd(nt) % 100 < nt->drop_pct)) {
        /* The node's transport reports a snapshot it could not send (after the batch). */
        if (m->type == RAFT_MSG_SNAP && nt->n_snap_fail < 256) {
            nt->snap_fail[nt->n_snap_fail].from = from;
            nt->snap_fail[nt->n_snap_fail++].to = m->to;
        }
        return;
    }
    assert_true(nt->qt + 1 < MAXQ);
    wire *w = &nt->q[nt->qt++];
    w->to = to;
    assert_int_equal(raft_msg_encode(m, &w->buf, &w->len), 0);
    if (nt->chaos && rnd(nt) % 100 < 2) { /* duplicated by the network */
        wire *dup = &nt->q[nt->qt++];
        *dup = *w;
        dup->buf = malloc(w->len);
        memcpy(dup->buf, w->buf, w->len);
    }
}

static bool fuzzing; /* random messages may carry undecodable conf changes */

static void apply_entry(member *mb, const raft_entry *e)
{
    if (e->type == RAFT_ENTRY_CONF_CHANGE) {
        raft_conf_change cc;
        int rc = raft_conf_change_decode(e->data, e->len, &cc);
        if (!fuzzing)
            assert_int_equal(rc, 0);
        if (rc == 0)
            assert_int_equal(raft_apply_conf_change(mb->r, &cc, NULL), 0);
    }
    record_applied(mb, e);
}

static void check_leader(net *nt, member *mb)
{
    if (raft_get_role(mb->r) != RAFT_LEADER)
        return;
    uint64_t t = raft_term(mb->r);
    assert_true(t < 4096);
    /* Election Safety: at most one leader per term. */
    if (nt->leader_of_term[t] == 0)
        nt->leader_of_term[t] = raft_id(mb->r);
    assert_int_equal(nt->leader_of_term[t], raft_id(mb->r));
}

/* Does what the node does with one update batch. */
static void process_one(net *nt, int i)
{
    member *mb = &nt->m[i];
    raft_update u;
    raft_get_update(mb->r, &u);
    for (size_t k = 0; k < u.n_msgs; k++)
        enqueue(nt, i, &u.msgs[k]);
    if (u.snapshot) {
        disk_install_snapshot(&mb->d, u.snapshot);
        /* The node's store now holds the snapshot: applied jumps to its index. */
        while (mb->n_applied < u.snapshot->index) {
            raft_entry e = {.index = mb->n_applied + 1};
            record_applied(mb, &e);
        }
        mb->snap_installed = u.snapshot->index;
    }
    disk_append(&mb->d, u.entries, u.n_entries);
    if (u.hard_state_changed)
        mb->d.hs = u.hard_state;
    if (u.hard_state_changed || u.n_entries) {
        /* msgs_after_persist that must not leave before: they do now. */
    }
    for (size_t k = 0; k < u.n_msgs_after_persist; k++)
        enqueue(nt, i, &u.msgs_after_persist[k]);
    for (size_t k = 0; k < u.n_committed; k++)
        apply_entry(mb, &u.committed[k]);
    if (u.hard_state.commit > nt->max_commit)
        nt->max_commit = u.hard_state.commit;
    for (size_t k = 0; k < u.n_read_states; k++) {
        const raft_read_state *rs = &u.read_states[k];
        /* Linearizable reads: the read index covers everything committed before the read
         * was requested. */
        if (rs->ctx < 1024 && nt->read_min[rs->ctx]) {
            assert_true(rs->index + 1 >= nt->read_min[rs->ctx]);
            nt->reads_checked++;
        }
        if (mb->n_reads < 64)
            mb->reads[mb->n_reads++] = *rs;
    }
    raft_advance(mb->r, &u);
    check_leader(nt, mb);
}

static void process(net *nt, int i)
{
    for (int guard = 0; guard < 100 && raft_has_update(nt->m[i].r); guard++)
        process_one(nt, i);
}

static void process_all(net *nt)
{
    for (int i = 0; i < nt->n; i++)
        if (!nt->m[i].down)
            process(nt, i);
    for (size_t k = 0; k < nt->n_snap_fail; k++) {
        member *mb = &nt->m[nt->snap_fail[k].from];
        if (!mb->down)
            raft_report_snapshot(mb->r, nt->snap_fail[k].to, false);
    }
    nt->n_snap_fail = 0;
}

static void check_logs_agree(net *nt)
{
    /* State Machine Safety: an index applied anywhere holds the same entry everywhere. */
    for (int a = 0; a < nt->n; a++)
        for (int b = a + 1; b < nt->n; b++) {
            member *x = &nt->m[a], *y = &nt->m[b];
            size_t n = x->n_applied < y->n_applied ? x->n_applied : y->n_applied;
            for (size_t i = 0; i < n; i++) {
                stored *p = &x->applied[i], *q = &y->applied[i];
                if (p->term == 0 || q->term == 0)
                    continue; /* covered by a snapshot */
                assert_int_equal(p->term, q->term);
                assert_int_equal(p->len, q->len);
                if (p->len)
                    assert_memory_equal(p->data, q->data, p->len);
            }
        }
}

static void deliver_one(net *nt, wire *w)
{
    member *mb = &nt->m[w->to];
    raft_msg m;
    assert_int_equal(raft_msg_decode(w->buf, w->len, &m), 0);
    free(w->buf);
    if (m.type == RAFT_MSG_APP_RESP && m.reject)
        nt->app_rejects++;
    if (!mb->down) {
        int rc = raft_step(mb->r, &m);
        /* Forwarded requests may fail as their local call would (a conf change the leader
         * refuses: CE_INVAL); nothing else may. */
        if (!(rc == 0 || rc == CE_NO_LEADER || rc == CE_NOT_LEADER || rc == CE_AGAIN ||
              rc == CE_BAD_LEADER_TRANSFER || (rc == CE_INVAL && m.type == RAFT_MSG_PROP)))
            fail_msg("step %s -> %d", raft_msg_type_name(m.type), rc);
    }
    if (m.type == RAFT_MSG_SNAP) {
        /* The node streamed the snapshot data: report the outcome to the leader. */
        member *ld = &nt->m[slot_of(m.from)];
        if (!ld->down)
            raft_report_snapshot(ld->r, m.to, !mb->down);
    }
    raft_msg_free(&m);
}

/* Delivers until quiet; bounded. */
static void stabilize(net *nt)
{
    for (int round = 0; round < 1000; round++) {
        process_all(nt);
        if (nt->qh == nt->qt)
            break;
        size_t end = nt->qt;
        for (size_t k = end; nt->chaos && k > nt->qh + 1; k--) { /* reordered */
            size_t j = nt->qh + (size_t)(rnd(nt) % (k - nt->qh));
            wire t = nt->q[k - 1];
            nt->q[k - 1] = nt->q[j];
            nt->q[j] = t;
        }
        while (nt->qh < end)
            deliver_one(nt, &nt->q[nt->qh++]);
        if (nt->qh == nt->qt)
            nt->qh = nt->qt = 0;
        else if (nt->qh > MAXQ / 2) {
            memmove(nt->q, nt->q + nt->qh, (nt->qt - nt->qh) * sizeof(wire));
            nt->qt -= nt->qh;
            nt->qh = 0;
        }
    }
    process_all(nt);
    check_logs_agree(nt);
}

static void drop_queue(net *nt)
{
    for (size_t i = nt->qh; i < nt->qt; i++)
        free(nt->q[i].buf);
    nt->qh = nt->qt = 0;
}

static raft_config make_cfg(uint64_t id, uint64_t seed, bool pre_vote, bool check_quorum)
{
    return (raft_config){.id = id, .election_tick = ET, .heartbeat_tick = HT,
                         .seed = seed, .pre_vote = pre_vote, .check_quorum = check_quorum,
                         .max_inflight_msgs = 4, .max_size_per_msg = 64};
}

/* Starts member i from its disk (restart), with applied = what it applied. */
static void start_from_disk(net *nt, int i)
{
    member *mb = &nt->m[i];
    disk *d = &mb->d;
    raft_entry *ents = calloc(d->n + 1, sizeof(raft_entry));
    for (size_t k = 0; k < d->n; k++)
        ents[k] = (raft_entry){d->ents[k].term, d->ents[k].index, d->ents[k].type,
                               d->ents[k].data, d->ents[k].len};
    raft_restore rs = {.hard_state = d->hs,
                       .snapshot = {d->snap_index, d->snap_term,
                                    {d->voters, d->nv, d->learners, d->nl}},
                       .entries = ents, .n_entries = d->n};
    mb->cfg.applied = mb->n_applied;
    if (mb->cfg.applied > d->hs.commit)
        mb->cfg.applied = d->hs.commit;
    assert_int_equal(raft_new(&mb->cfg, &rs, &mb->r), 0);
    free(ents);
    mb->down = false;
}

static net *net_new(int n, int voters, uint64_t seed, bool pre_vote, bool check_quorum)
{
    net *nt = calloc(1, sizeof(*nt));
    nt->n = n;
    nt->rng = seed;
    nt->q = calloc(MAXQ, sizeof(wire));
    raft_peer peers[MAXN];
    for (int i = 0; i < voters; i++)
        peers[i] = (raft_peer){id_of(i), NULL, 0};
    for (int i = 0; i < n; i++) {
        member *mb = &nt->m[i];
        mb->cfg = make_cfg(id_of(i), seed + (uint64_t)i, pre_vote, check_quorum);
        raft_restore rs = {0};
        if (i < voters) {
            rs.peers = peers;
            rs.n_peers = (size_t)voters;
        }
        assert_int_equal(raft_new(&mb->cfg, &rs, &mb->r), 0);
    }
    process_all(nt);
    return nt;
}

static void net_free(net *nt)
{
    drop_queue(nt);
    for (int i = 0; i < nt->n; i++) {
        raft_free(nt->m[i].r);
        disk_free(&nt->m[i].d);
        applied_free(&nt->m[i]);
    }
    free(nt->q);
    free(nt);
}

static void crash(net *nt, int i)
{
    member *mb = &nt->m[i];
    raft_free(mb->r);
    mb->r = NULL;
    mb->down = true;
}

static void tick_all(net *nt, int ticks)
{
    for (int t = 0; t < ticks; t++) {
        for (int i = 0; i < nt->n; i++)
            if (!nt->m[i].down)
                raft_tick(nt->m[i].r);
        stabilize(nt);
    }
}

static int leader_slot(net *nt)
{
    int found = -1;
    uint64_t best = 0;
    for (int i = 0; i < nt->n; i++) {
        member *mb = &nt->m[i];
        if (!mb->down && raft_get_role(mb->r) == RAFT_LEADER && raft_term(mb->r) >= best) {
            best = raft_term(mb->r);
            found = i;
        }
    }
    return found;
}

static bool is_voter(raft *r)
{
    raft_conf_state cs;
    raft_conf_state_get(r, &cs);
    for (size_t i = 0; i < cs.n_voters; i++)
        if (cs.voters[i] == raft_id(r))
            return true;
    return false;
}

static int wait_leader(net *nt)
{
    for (int t = 0; t < 50 * ET; t++) {
        int l = leader_slot(nt);
        if (l >= 0) {
            /* A leader of a stale term may linger in a minority: want one all followers
             * agree on. */
            bool agreed = true;
            for (int i = 0; i < nt->n; i++)
                if (!nt->m[i].down && raft_leader(nt->m[i].r) != id_of(l) &&
                    is_voter(nt->m[i].r) && !nt->cut[l][i])
                    agreed = false;
            if (agreed)
                return l;
        }
        tick_all(nt, 1);
    }
    fail_msg("no leader elected");
    return -1;
}

static void isolate(net *nt, int i, bool on)
{
    for (int k = 0; k < nt->n; k++) {
        nt->cut[i][k] = on && k != i;
        nt->cut[k][i] = on && k != i;
    }
}

static void propose_str(raft *r, const char *s)
{
    assert_int_equal(raft_propose(r, (const uint8_t *)s, strlen(s)), 0);
}

static bool applied_has(member *mb, const char *s)
{
    for (size_t i = 0; i < mb->n_applied; i++)
        if (mb->applied[i].len == strlen(s) && memcmp(mb->applied[i].data, s, strlen(s)) == 0)
            return true;
    return false;
}

static uint64_t env_seed(uint64_t dflt)
{
    const char *s = getenv("RAFT_SEED");
    return s ? strtoull(s, NULL, 10) : dflt;
}

/* ---------- 1. single member ---------- */

static void test_single_elects_self_in_timeout(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        net *nt = net_new(1, 1, seed, false, false);
        raft *r = nt->m[0].r;
        /* Bootstrap: the AddVoter entry of the member is committed and applied. */
        assert_int_equal(nt->m[0].n_applied, 1);
        assert_int_equal(nt->m[0].applied[0].type, RAFT_ENTRY_CONF_CHANGE);
        int ticks = 0;
        while (raft_get_role(r) != RAFT_LEADER && ticks < 3 * ET) {
            raft_tick(r);
            ticks++;
            process_all(nt);
        }
        /* Randomized timeout in [election_tick, 2 * election_tick). */
        assert_true(ticks >= ET && ticks < 2 * ET);
        assert_int_equal(raft_leader(r), 1);
        assert_int_equal(raft_term(r), 2);
        net_free(nt);
    }
}

static void test_single_commits_what_is_durable(void **state)
{
    (void)state;
    net *nt = net_new(1, 1, 7, false, false);
    raft *r = nt->m[0].r;
    assert_int_equal(raft_campaign(r), 0);
    assert_int_equal(raft_get_role(r), RAFT_LEADER);
    process_all(nt);
    uint64_t c0 = raft_commit_index(r);
    propose_str(r, "a");
    propose_str(r, "b");
    /* Not durable yet: not committed. */
    assert_int_equal(raft_commit_index(r), c0);
    raft_update u;
    raft_get_update(r, &u);
    assert_int_equal(u.n_entries, 2);
    assert_true(u.must_sync);
    assert_int_equal(u.n_committed, 0);
    disk_append(&nt->m[0].d, u.entries, u.n_entries);
    raft_advance(r, &u);
    /* The advance made them durable: committed now, and delivered in order next. */
    assert_int_equal(raft_commit_index(r), c0 + 2);
    assert_true(raft_has_update(r));
    raft_get_update(r, &u);
    assert_int_equal(u.n_committed, 2);
    assert_memory_equal(u.committed[0].data, "a", 1);
    assert_memory_equal(u.committed[1].data, "b", 1);
    assert_true(u.hard_state_changed);
    assert_int_equal(u.hard_state.commit, c0 + 2);
    for (size_t k = 0; k < u.n_committed; k++)
        record_applied(&nt->m[0], &u.committed[k]);
    nt->m[0].d.hs = u.hard_state;
    raft_advance(r, &u);
    assert_int_equal(raft_applied_index(r), c0 + 2);
    assert_false(raft_has_update(r));
    net_free(nt);
}

static void test_fresh_single_campaigns_at_once(void **state)
{
    (void)state;
    raft_config cfg = make_cfg(1, 1, true, true);
    raft_peer p = {1, (const uint8_t *)"m1", 2};
    raft_restore rs = {.peers = &p, .n_peers = 1};
    raft *r;
    assert_int_equal(raft_new(&cfg, &rs, &r), 0);
    /* The bootstrap entry is in effect already: no need to wait for its apply. */
    assert_int_equal(raft_campaign(r), 0);
    assert_int_equal(raft_get_role(r), RAFT_LEADER);
    raft_update u;
    raft_get_update(r, &u);
    assert_int_equal(u.n_entries, 2); /* bootstrap conf change + the leader's empty entry */
    assert_int_equal(u.entries[0].type, RAFT_ENTRY_CONF_CHANGE);
    assert_int_equal(u.n_committed, 1);
    raft_conf_change cc;
    assert_int_equal(raft_conf_change_decode(u.committed[0].data, u.committed[0].len, &cc), 0);
    assert_int_equal(cc.type, RAFT_CC_ADD_VOTER);
    assert_int_equal(cc.context_len, 2);
    assert_int_equal(raft_apply_conf_change(r, &cc, NULL), 0); /* idempotent */
    raft_advance(r, &u);
    raft_conf_state cs;
    raft_conf_state_get(r, &cs);
    assert_int_equal(cs.n_voters, 1);
    raft_free(r);
}

static void test_single_restart(void **state)
{
    (void)state;
    net *nt = net_new(1, 1, 3, false, false);
    member *mb = &nt->m[0];
    raft_campaign(mb->r);
    process_all(nt);
    for (int i = 0; i < 5; i++)
        propose_str(mb->r, "x");
    process_all(nt);
    uint64_t term = raft_term(mb->r), commit = raft_commit_index(mb->r);
    assert_int_equal(commit, 1 + 1 + 5); /* bootstrap, empty leader entry, 5 */
    assert_int_equal(mb->d.hs.commit, commit);
    assert_int_equal(mb->d.hs.vote, 1);
    /* Pretend the node applied only up to 4 before crashing. */
    crash(nt, 0);
    for (size_t i = 4; i < mb->n_applied; i++)
        free(mb->applied[i].data);
    mb->n_applied = 4;
    start_from_disk(nt, 0);
    assert_int_equal(raft_term(mb->r), term);
    assert_int_equal(raft_commit_index(mb->r), commit);
    assert_int_equal(raft_applied_index(mb->r), 4);
    assert_int_equal(raft_get_role(mb->r), RAFT_FOLLOWER);
    raft_conf_state cs;
    raft_conf_state_get(mb->r, &cs);
    assert_int_equal(cs.n_voters, 1);
    raft_update u;
    raft_get_update(mb->r, &u);
    assert_false(u.hard_state_changed);
    assert_int_equal(u.n_entries, 0);
    assert_int_equal(u.n_committed, commit - 4); /* re-delivered above applied */
    assert_int_equal(u.committed[0].index, 5);
    for (size_t k = 0; k < u.n_committed; k++)
        apply_entry(mb, &u.committed[k]);
    raft_advance(mb->r, &u);
    /* It can lead again, in a later term. */
    assert_int_equal(raft_campaign(mb->r), 0);
    assert_int_equal(raft_get_role(mb->r), RAFT_LEADER);
    assert_true(raft_term(mb->r) > term);
    net_free(nt);
}

static void test_restore_rejects_inconsistent_state(void **state)
{
    (void)state;
    raft_config cfg = make_cfg(1, 1, false, false);
    raft *r;
    raft_entry e[2] = {{1, 1, RAFT_ENTRY_NORMAL, NULL, 0}, {1, 3, RAFT_ENTRY_NORMAL, NULL, 0}};
    raft_restore rs = {.hard_state = {1, 0, 1}, .entries = e, .n_entries = 2};
    assert_int_equal(raft_new(&cfg, &rs, &r), CE_INVAL); /* gap */
    rs.n_entries = 1;
    rs.hard_state.commit = 5;
    assert_int_equal(raft_new(&cfg, &rs, &r), CE_INVAL); /* commit past the log */
    rs.hard_state.commit = 1;
    cfg.applied = 2;
    assert_int_equal(raft_new(&cfg, &rs, &r), CE_INVAL); /* applied past commit */
    cfg.applied = 0;
    cfg.election_tick = 1;
    assert_int_equal(raft_new(&cfg, &rs, &r), CE_INVAL); /* election <= heartbeat */
}

/* ---------- 2. elections ---------- */

static void test_three_elect_one_leader(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        net *nt = net_new(3, 3, seed, false, false);
        int l = wait_leader(nt);
        uint64_t term = raft_term(nt->m[l].r);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(raft_leader(nt->m[i].r), id_of(l));
            assert_int_equal(raft_term(nt->m[i].r), term);
            /* The vote was persisted with the term. */
            assert_int_equal(nt->m[i].d.hs.term, term);
        }
        net_free(nt);
    }
}

static void test_vote_response_waits_for_persistence(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 11, false, false);
    assert_int_equal(raft_campaign(nt->m[0].r), 0);
    raft_update u;
    raft_get_update(nt->m[0].r, &u);
    /* Term and vote changed: nothing may leave before they are durable. */
    assert_true(u.hard_state_changed && u.must_sync);
    assert_int_equal(u.n_msgs, 0);
    assert_int_equal(u.n_msgs_after_persist, 2);
    assert_int_equal(u.msgs_after_persist[0].type, RAFT_MSG_VOTE);
    raft_msg vote = u.msgs_after_persist[0];
    vote.entries = NULL;
    raft_step(nt->m[1].r, &vote);
    raft_advance(nt->m[0].r, &u);
    raft_update v;
    raft_get_update(nt->m[1].r, &v);
    assert_int_equal(v.hard_state.vote, 1);
    assert_int_equal(v.n_msgs, 0);
    assert_int_equal(v.n_msgs_after_persist, 1);
    assert_int_equal(v.msgs_after_persist[0].type, RAFT_MSG_VOTE_RESP);
    assert_false(v.msgs_after_persist[0].reject);
    raft_advance(nt->m[1].r, &v);
    net_free(nt);
}

static void test_vote_refused_to_stale_log(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 5, false, false);
    int l = wait_leader(nt);
    int lag = (l + 1) % 3, other = (l + 2) % 3;
    isolate(nt, lag, true);
    propose_str(nt->m[l].r, "only-two-have-this");
    stabilize(nt);
    /* Old leader gone; the lagging member may not win: its log is behind. */
    crash(nt, l);
    isolate(nt, lag, false);
    assert_int_equal(raft_campaign(nt->m[lag].r), 0);
    stabilize(nt);
    assert_int_not_equal(raft_get_role(nt->m[lag].r), RAFT_LEADER);
    int nl = wait_leader(nt);
    assert_int_equal(nl, other);
    stabilize(nt);
    assert_true(applied_has(&nt->m[lag], "only-two-have-this"));
    net_free(nt);
}

static void test_leader_failure_and_reelection(void **state)
{
    (void)state;
    uint64_t seed = env_seed(42);
    net *nt = net_new(5, 5, seed, false, false);
    int l = wait_leader(nt);
    uint64_t t1 = raft_term(nt->m[l].r);
    propose_str(nt->m[l].r, "before");
    stabilize(nt);
    crash(nt, l);
    int l2 = wait_leader(nt);
    assert_int_not_equal(l2, l);
    assert_true(raft_term(nt->m[l2].r) > t1);
    propose_str(nt->m[l2].r, "after");
    stabilize(nt);
    /* The old leader restarts from its disk, learns the new term and catches up. */
    start_from_disk(nt, l);
    tick_all(nt, 3 * ET);
    assert_int_equal(raft_get_role(nt->m[l].r), RAFT_FOLLOWER);
    assert_true(applied_has(&nt->m[l], "before"));
    assert_true(applied_has(&nt->m[l], "after"));
    net_free(nt);
}

static void test_prevote_does_not_disrupt(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 9, true, false);
    int l = wait_leader(nt);
    uint64_t term = raft_term(nt->m[l].r);
    int iso = (l + 1) % 3;
    isolate(nt, iso, true);
    tick_all(nt, 10 * ET);
    /* Pre-vote: the isolated member never wins a pre-vote, so never bumps its term. */
    assert_int_equal(raft_term(nt->m[iso].r), term);
    isolate(nt, iso, false);
    tick_all(nt, 3 * ET);
    assert_int_equal(leader_slot(nt), l);
    assert_int_equal(raft_term(nt->m[l].r), term);
    assert_int_equal(raft_leader(nt->m[iso].r), id_of(l));
    net_free(nt);
}

static void test_without_prevote_rejoin_disrupts(void **state)
{
    (void)state;
    /* The counterpart, so the test above would fail on a broken pre-vote. */
    net *nt = net_new(3, 3, 9, false, false);
    int l = wait_leader(nt);
    uint64_t term = raft_term(nt->m[l].r);
    int iso = (l + 1) % 3;
    isolate(nt, iso, true);
    tick_all(nt, 5 * ET);
    assert_true(raft_term(nt->m[iso].r) > term);
    net_free(nt);
}

static void test_check_quorum_step_down(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 13, false, true);
    int l = wait_leader(nt);
    isolate(nt, l, true);
    tick_all(nt, 2 * ET + 1);
    assert_int_not_equal(raft_get_role(nt->m[l].r), RAFT_LEADER);
    assert_int_equal(raft_propose(nt->m[l].r, (const uint8_t *)"x", 1), CE_NO_LEADER);
    net_free(nt);
}

static void test_leader_lease_ignores_disruptive_vote(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 17, false, true);
    int l = wait_leader(nt);
    uint64_t term = raft_term(nt->m[l].r);
    int f = (l + 1) % 3;
    /* f campaigns at a higher term while the others hear from the leader: ignored. */
    assert_int_equal(raft_campaign(nt->m[f].r), 0);
    assert_int_equal(raft_term(nt->m[f].r), term + 1);
    stabilize(nt);
    int o = (l + 2) % 3;
    assert_int_equal(raft_get_role(nt->m[l].r), RAFT_LEADER);
    assert_int_equal(raft_term(nt->m[l].r), term);
    assert_int_equal(raft_term(nt->m[o].r), term);
    assert_int_equal(raft_leader(nt->m[o].r), id_of(l));
    assert_int_not_equal(raft_get_role(nt->m[f].r), RAFT_LEADER);
    /* Once the lease ran out (no leader heard for an election timeout) the vote counts. */
    isolate(nt, l, true);
    for (int i = 0; i < ET; i++)
        raft_tick(nt->m[o].r);
    drop_queue(nt);
    process_all(nt);
    drop_queue(nt);
    assert_int_equal(raft_campaign(nt->m[f].r), 0);
    stabilize(nt);
    assert_int_equal(raft_get_role(nt->m[f].r), RAFT_LEADER);
    net_free(nt);
}

/* ---------- 3. replication ---------- */

static void test_replication_and_forwarding(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 21, false, false);
    int l = wait_leader(nt);
    int f = (l + 1) % 3;
    char buf[32];
    for (int i = 0; i < 50; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        propose_str(nt->m[i % 2 ? f : l].r, buf); /* half forwarded by a follower */
    }
    stabilize(nt);
    tick_all(nt, 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(raft_commit_index(nt->m[i].r), raft_last_index(nt->m[l].r));
        assert_true(applied_has(&nt->m[i], "v0"));
        assert_true(applied_has(&nt->m[i], "v49"));
    }
    raft_progress_info pi;
    assert_int_equal(raft_progress(nt->m[l].r, id_of(f), &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_REPLICATE);
    assert_int_equal(pi.match, raft_last_index(nt->m[l].r));
    assert_int_equal(raft_progress(nt->m[f].r, id_of(l), &pi), CE_NOT_LEADER);
    net_free(nt);
}

static void test_no_commit_without_quorum(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 23, false, false);
    int l = wait_leader(nt);
    isolate(nt, l, true);
    uint64_t c = raft_commit_index(nt->m[l].r);
    propose_str(nt->m[l].r, "lonely");
    stabilize(nt);
    assert_int_equal(raft_commit_index(nt->m[l].r), c);
    assert_false(applied_has(&nt->m[l], "lonely"));
    net_free(nt);
}

static void test_conflicting_entries_replaced(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 29, false, false);
    int l = wait_leader(nt);
    /* The leader appends entries only it has, then loses leadership. */
    isolate(nt, l, true);
    for (int i = 0; i < 5; i++)
        propose_str(nt->m[l].r, "doomed");
    stabilize(nt);
    uint64_t doomed_last = raft_last_index(nt->m[l].r);
    int l2 = -1;
    for (int t = 0; t < 50 * ET && l2 < 0; t++) {
        tick_all(nt, 1);
        int a = (l + 1) % 3, b = (l + 2) % 3;
        if (raft_get_role(nt->m[a].r) == RAFT_LEADER)
            l2 = a;
        if (raft_get_role(nt->m[b].r) == RAFT_LEADER)
            l2 = b;
    }
    assert_true(l2 >= 0);
    propose_str(nt->m[l2].r, "winner");
    stabilize(nt);
    isolate(nt, l, false);
    tick_all(nt, 3 * ET);
    /* Log Matching: the uncommitted tail was replaced; the old leader applies the new one. */
    assert_true(applied_has(&nt->m[l], "winner"));
    assert_false(applied_has(&nt->m[l], "doomed"));
    assert_true(raft_last_index(nt->m[l].r) >= doomed_last - 4);
    net_free(nt);
}

static void test_divergent_log_backtracks_by_term(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 73, false, false);
    int l = wait_leader(nt);
    isolate(nt, l, true);
    for (int i = 0; i < 200; i++)
        propose_str(nt->m[l].r, "stale");
    stabilize(nt);
    int l2 = -1;
    for (int t = 0; t < 50 * ET && l2 < 0; t++) {
        for (int k = 0; k < 3; k++)
            if (k != l)
                raft_tick(nt->m[k].r);
        stabilize(nt);
        for (int k = 0; k < 3; k++)
            if (k != l && raft_get_role(nt->m[k].r) == RAFT_LEADER)
                l2 = k;
    }
    assert_true(l2 >= 0);
    /* The new leader's log grows past the old leader's divergent tail. */
    for (int i = 0; i < 250; i++)
        propose_str(nt->m[l2].r, "new");
    stabilize(nt);
    /* A further election: the next leader starts probing the old one at its own last index,
     * far past where the logs agree. */
    int l3 = 3 - l - l2;
    assert_int_equal(raft_transfer_leader(nt->m[l2].r, id_of(l3)), 0);
    stabilize(nt);
    assert_int_equal(raft_get_role(nt->m[l3].r), RAFT_LEADER);
    nt->app_rejects = 0;
    isolate(nt, l, false);
    tick_all(nt, 3);
    assert_true(applied_has(&nt->m[l], "new"));
    /* 200 divergent entries of one term are skipped in one or two rejections, not 200. */
    assert_true(nt->app_rejects <= 3);
    net_free(nt);
}

static void test_proposals_batched_per_update(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 79, false, false);
    int l = wait_leader(nt);
    raft *r = nt->m[l].r;
    propose_str(r, "warm-up"); /* followers into replicate state */
    stabilize(nt);
    for (int i = 0; i < 10; i++)
        propose_str(r, "a");
    raft_update u;
    raft_get_update(r, &u);
    assert_int_equal(u.n_entries, 10);
    /* Leader appends may leave before its own fsync; one MsgApp per follower for all ten. */
    assert_int_equal(u.n_msgs, 2);
    for (size_t k = 0; k < u.n_msgs; k++) {
        assert_int_equal(u.msgs[k].type, RAFT_MSG_APP);
        assert_int_equal(u.msgs[k].n_entries, 10);
        assert_int_equal(u.msgs[k].entries[0].index, u.entries[0].index);
    }
    assert_int_equal(u.n_msgs_after_persist, 0);
    for (size_t k = 0; k < u.n_msgs; k++)
        enqueue(nt, l, &u.msgs[k]);
    disk_append(&nt->m[l].d, u.entries, u.n_entries);
    raft_advance(r, &u);
    stabilize(nt);
    assert_int_equal(raft_commit_index(nt->m[(l + 1) % 3].r), raft_last_index(r));
    net_free(nt);
}

/* Steps one message into r, filling from/to/term. */
static void step_from(raft *r, raft_msg_type type, uint64_t from, uint64_t term, uint64_t index,
                      bool reject)
{
    raft_msg m = {.type = type, .from = from, .to = raft_id(r), .term = term, .index = index,
                  .reject = reject};
    assert_int_equal(raft_step(r, &m), 0);
}

static void drain(raft *r)
{
    raft_update u;
    while (raft_has_update(r)) {
        raft_get_update(r, &u);
        raft_advance(r, &u);
    }
}

static void test_commit_only_current_term_by_counting(void **state)
{
    (void)state;
    uint64_t voters[3] = {1, 2, 3};
    raft_entry e[4] = {{1, 1, RAFT_ENTRY_NORMAL, NULL, 0}, {1, 2, RAFT_ENTRY_NORMAL, NULL, 0},
                       {1, 3, RAFT_ENTRY_NORMAL, NULL, 0},
                       {2, 4, RAFT_ENTRY_NORMAL, (const uint8_t *)"old", 3}};
    raft_restore rs = {.hard_state = {2, 0, 3}, .snapshot = {0, 0, {voters, 3, NULL, 0}},
                       .entries = e, .n_entries = 4};
    raft_config cfg = make_cfg(1, 1, false, false);
    cfg.applied = 3;
    raft *r;
    assert_int_equal(raft_new(&cfg, &rs, &r), 0);
    assert_int_equal(raft_campaign(r), 0);
    drain(r);
    step_from(r, RAFT_MSG_VOTE_RESP, 2, 3, 0, false);
    assert_int_equal(raft_get_role(r), RAFT_LEADER);
    drain(r); /* persists the term-3 empty entry at index 5: own match 5 */
    /* A quorum (1 and 2) holds index 4, but it is from term 2: not committed by counting. */
    step_from(r, RAFT_MSG_APP_RESP, 2, 3, 4, false);
    assert_int_equal(raft_commit_index(r), 3);
    /* Once the term-3 entry is on a quorum, everything up to it commits. */
    step_from(r, RAFT_MSG_APP_RESP, 2, 3, 5, false);
    assert_int_equal(raft_commit_index(r), 5);
    raft_free(r);
}

static void test_learner_vote_not_counted(void **state)
{
    (void)state;
    uint64_t voters[2] = {1, 2}, learners[1] = {3};
    raft_restore rs = {.hard_state = {1, 0, 0},
                       .snapshot = {0, 0, {voters, 2, learners, 1}}};
    raft_config cfg = make_cfg(1, 1, false, false);
    raft *r;
    assert_int_equal(raft_new(&cfg, &rs, &r), 0);
    assert_int_equal(raft_campaign(r), 0);
    drain(r);
    step_from(r, RAFT_MSG_VOTE_RESP, 3, 2, 0, false);
    assert_int_equal(raft_get_role(r), RAFT_CANDIDATE);
    step_from(r, RAFT_MSG_VOTE_RESP, 2, 2, 0, false);
    assert_int_equal(raft_get_role(r), RAFT_LEADER);
    raft_free(r);
}

static void test_inflight_window_limits_pipelining(void **state)
{
    (void)state;
    net *nt = net_new(2, 2, 31, false, false);
    int l = wait_leader(nt);
    int f = 1 - l;
    raft *r = nt->m[l].r;
    /* Messages to f are held back (not delivered) while proposing. */
    nt->cut[l][f] = true;
    uint8_t big[40] = {0};
    for (int i = 0; i < 20; i++)
        assert_int_equal(raft_propose(r, big, sizeof big), 0);
    nt->cut[l][f] = false;
    raft_update u;
    raft_get_update(r, &u);
    size_t apps = 0;
    for (size_t k = 0; k < u.n_msgs; k++)
        if (u.msgs[k].type == RAFT_MSG_APP) {
            apps++;
            /* max_size_per_msg = 64: one 40-byte entry per message here. */
            assert_int_equal(u.msgs[k].n_entries, 1);
        }
    /* Only the window (4 after those already in flight) was sent: not 20. */
    assert_true(apps <= 4);
    raft_advance(r, &u);
    drop_queue(nt);
    /* Heartbeat responses reopen the window; eventually everything is replicated. */
    tick_all(nt, 30);
    assert_int_equal(raft_commit_index(nt->m[f].r), raft_last_index(r));
    net_free(nt);
}

/* ---------- 4. reads, learners, conf changes, transfer, snapshots ---------- */

static void test_read_index(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 37, false, false);
    int l = wait_leader(nt);
    int f = (l + 1) % 3;
    propose_str(nt->m[l].r, "w");
    stabilize(nt);
    uint64_t c = raft_commit_index(nt->m[l].r);
    assert_int_equal(raft_read_index(nt->m[l].r, 77), 0);
    process(nt, l);
    assert_int_equal(nt->m[l].n_reads, 0); /* needs a heartbeat quorum first */
    stabilize(nt);
    assert_int_equal(nt->m[l].n_reads, 1);
    assert_int_equal(nt->m[l].reads[0].ctx, 77);
    assert_int_equal(nt->m[l].reads[0].index, c);
    /* Follower: forwarded to the leader, answered back. */
    assert_int_equal(raft_read_index(nt->m[f].r, 78), 0);
    stabilize(nt);
    assert_int_equal(nt->m[f].n_reads, 1);
    assert_int_equal(nt->m[f].reads[0].ctx, 78);
    assert_int_equal(nt->m[f].reads[0].index, c);
    /* A leader cut off from the quorum never answers. */
    isolate(nt, l, true);
    assert_int_equal(raft_read_index(nt->m[l].r, 79), 0);
    tick_all(nt, 5);
    assert_int_equal(nt->m[l].n_reads, 1);
    net_free(nt);
}

static void test_read_index_single_voter(void **state)
{
    (void)state;
    net *nt = net_new(1, 1, 41, false, false);
    raft_campaign(nt->m[0].r);
    process_all(nt);
    assert_int_equal(raft_read_index(nt->m[0].r, 5), 0);
    raft_update u;
    raft_get_update(nt->m[0].r, &u);
    assert_int_equal(u.n_read_states, 1);
    assert_int_equal(u.read_states[0].ctx, 5);
    assert_int_equal(u.read_states[0].index, raft_commit_index(nt->m[0].r));
    raft_advance(nt->m[0].r, &u);
    net_free(nt);
}

static void add_member(net *nt, int l, int slot, raft_conf_change_type type)
{
    raft_conf_change cc = {type, id_of(slot), (const uint8_t *)"ctx", 3};
    assert_int_equal(raft_propose_conf_change(nt->m[l].r, &cc), 0);
    stabilize(nt);
    tick_all(nt, 3);
}

static void test_learner_replicated_not_voting(void **state)
{
    (void)state;
    /* Members 1-3 voters, member 4 starts empty (joins an existing cluster). */
    net *nt = net_new(4, 3, 43, false, false);
    int l = wait_leader(nt);
    add_member(nt, l, 3, RAFT_CC_ADD_LEARNER);
    propose_str(nt->m[l].r, "to-learner");
    stabilize(nt);
    tick_all(nt, 3);
    member *ln = &nt->m[3];
    assert_true(raft_is_learner(ln->r));
    assert_true(applied_has(ln, "to-learner"));
    raft_progress_info pi;
    assert_int_equal(raft_progress(nt->m[l].r, 4, &pi), 0);
    assert_true(pi.is_learner);
    assert_int_equal(pi.match, raft_last_index(nt->m[l].r));
    raft_conf_state cs;
    raft_conf_state_get(nt->m[l].r, &cs);
    assert_int_equal(cs.n_voters, 3);
    assert_int_equal(cs.n_learners, 1);
    /* Never campaigns. */
    assert_int_equal(raft_campaign(ln->r), CE_INVAL);
    isolate(nt, 3, true);
    tick_all(nt, 5 * ET);
    assert_int_equal(raft_get_role(ln->r), RAFT_FOLLOWER);
    isolate(nt, 3, false);
    /* Not in the quorum: leader + learner cannot commit without another voter. */
    isolate(nt, (l + 1) % 3, true);
    isolate(nt, (l + 2) % 3, true);
    uint64_t c = raft_commit_index(nt->m[l].r);
    propose_str(nt->m[l].r, "needs-voters");
    stabilize(nt);
    assert_int_equal(raft_commit_index(nt->m[l].r), c);
    isolate(nt, (l + 1) % 3, false);
    isolate(nt, (l + 2) % 3, false);
    tick_all(nt, 3);
    /* Promote: now a voter. */
    add_member(nt, leader_slot(nt), 3, RAFT_CC_PROMOTE);
    assert_false(raft_is_learner(ln->r));
    raft_conf_state_get(ln->r, &cs);
    assert_int_equal(cs.n_voters, 4);
    net_free(nt);
}

static void test_conf_change_add_remove(void **state)
{
    (void)state;
    net *nt = net_new(4, 3, 47, false, false);
    int l = wait_leader(nt);
    raft_conf_change bad = {RAFT_CC_PROMOTE, 4, NULL, 0};
    assert_int_equal(raft_propose_conf_change(nt->m[l].r, &bad), CE_INVAL);
    add_member(nt, l, 3, RAFT_CC_ADD_VOTER);
    /* Single step: a second change waits for the first to be applied. */
    raft_conf_change rm = {RAFT_CC_REMOVE, id_of((l + 1) % 3), NULL, 0};
    raft_conf_change up = {RAFT_CC_UPDATE, 4, NULL, 0};
    assert_int_equal(raft_propose_conf_change(nt->m[l].r, &rm), 0);
    assert_int_equal(raft_propose_conf_change(nt->m[l].r, &up), CE_AGAIN);
    stabilize(nt);
    tick_all(nt, 3);
    for (int i = 0; i < 4; i++) {
        if (i == (l + 1) % 3)
            continue;
        raft_conf_state cs;
        raft_conf_state_get(nt->m[i].r, &cs);
        assert_int_equal(cs.n_voters, 3);
    }
    /* The removed member out, the cluster of 3 (incl. new member 4) still commits. */
    crash(nt, (l + 1) % 3);
    propose_str(nt->m[l].r, "after-reconfig");
    stabilize(nt);
    assert_true(applied_has(&nt->m[3], "after-reconfig"));
    net_free(nt);
}

static void test_leader_removes_itself(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 53, false, false);
    int l = wait_leader(nt);
    raft_conf_change rm = {RAFT_CC_REMOVE, id_of(l), NULL, 0};
    assert_int_equal(raft_propose_conf_change(nt->m[l].r, &rm), 0);
    stabilize(nt);
    assert_int_not_equal(raft_get_role(nt->m[l].r), RAFT_LEADER);
    crash(nt, l);
    int l2 = wait_leader(nt);
    assert_int_not_equal(l2, l);
    net_free(nt);
}

static void test_leader_transfer(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 59, true, true);
    int l = wait_leader(nt);
    int to = (l + 2) % 3;
    uint64_t term = raft_term(nt->m[l].r);
    assert_int_equal(raft_transfer_leader(nt->m[l].r, to == l ? 1 : id_of(to)), 0);
    /* Proposals are refused while the transfer is under way... */
    stabilize(nt);
    /* ...and the target won a forced election despite pre-vote and the lease. */
    assert_int_equal(leader_slot(nt), to);
    assert_int_equal(raft_term(nt->m[to].r), term + 1);
    /* Requested through a follower: forwarded. */
    int back = l;
    int via = 3 - to - l;
    assert_int_equal(raft_transfer_leader(nt->m[via].r, id_of(back)), 0);
    stabilize(nt);
    assert_int_equal(leader_slot(nt), back);
    assert_int_equal(raft_transfer_leader(nt->m[back].r, 99), CE_BAD_LEADER_TRANSFER);
    net_free(nt);
}

static void test_transfer_blocks_proposals(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 61, false, false);
    int l = wait_leader(nt);
    int to = (l + 1) % 3;
    isolate(nt, to, true); /* the target cannot take over */
    assert_int_equal(raft_transfer_leader(nt->m[l].r, id_of(to)), 0);
    assert_int_equal(raft_propose(nt->m[l].r, (const uint8_t *)"x", 1), CE_NOT_LEADER);
    /* Aborted after an election timeout: proposals work again. */
    isolate(nt, to, false);
    for (int i = 0; i < ET; i++)
        raft_tick(nt->m[l].r);
    drop_queue(nt);
    process_all(nt);
    drop_queue(nt);
    assert_int_equal(raft_propose(nt->m[l].r, (const uint8_t *)"x", 1), 0);
    net_free(nt);
}

static void test_snapshot_catch_up(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 67, false, false);
    int l = wait_leader(nt);
    int lag = (l + 1) % 3;
    crash(nt, lag);
    char buf[16];
    for (int i = 0; i < 30; i++) {
        snprintf(buf, sizeof buf, "s%d", i);
        propose_str(nt->m[l].r, buf);
        stabilize(nt);
    }
    /* Every live member snapshots at its applied index and compacts. */
    for (int i = 0; i < 3; i++) {
        member *mb = &nt->m[i];
        if (mb->down)
            continue;
        uint64_t a = raft_applied_index(mb->r);
        uint64_t t = mb->applied[a - 1].term;
        assert_int_equal(raft_compact(mb->r, a, t), 0);
        disk_compact(mb, a, t);
        assert_int_equal(raft_first_index(mb->r), a + 1);
    }
    assert_int_equal(raft_compact(nt->m[l].r, 1, 1), CE_INVAL); /* behind the snapshot */
    uint64_t snap = raft_first_index(nt->m[l].r) - 1;
    propose_str(nt->m[l].r, "after-snap");
    stabilize(nt);
    start_from_disk(nt, lag);
    tick_all(nt, 3 * ET);
    member *mb = &nt->m[lag];
    assert_int_equal(mb->snap_installed, snap);
    assert_true(applied_has(mb, "after-snap"));
    assert_int_equal(raft_commit_index(mb->r), raft_commit_index(nt->m[l].r));
    raft_progress_info pi;
    assert_int_equal(raft_progress(nt->m[l].r, id_of(lag), &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_REPLICATE);
    /* The lagging member restarts from its (snapshot) disk. */
    crash(nt, lag);
    start_from_disk(nt, lag);
    assert_int_equal(raft_first_index(mb->r), snap + 1);
    net_free(nt);
}

static void test_unreachable_and_snapshot_reports(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 83, false, false);
    int l = wait_leader(nt);
    int f = (l + 1) % 3, g = (l + 2) % 3;
    raft *r = nt->m[l].r;
    propose_str(r, "x");
    stabilize(nt);
    raft_progress_info pi;
    assert_int_equal(raft_progress(r, id_of(f), &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_REPLICATE);
    raft_report_unreachable(r, id_of(f));
    assert_int_equal(raft_progress(r, id_of(f), &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_PROBE);
    assert_int_equal(pi.next, pi.match + 1);
    propose_str(r, "z"); /* the probe is acknowledged: pipelining again */
    stabilize(nt);
    assert_int_equal(raft_progress(r, id_of(f), &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_REPLICATE);
    /* A failed snapshot: back to probing from match + 1, then snapshot again. */
    crash(nt, g);
    raft_report_unreachable(r, id_of(g)); /* probe from its match: behind the compaction */
    for (int i = 0; i < 5; i++)
        propose_str(r, "y");
    stabilize(nt);
    uint64_t a = raft_applied_index(r);
    assert_int_equal(raft_compact(r, a, nt->m[l].applied[a - 1].term), 0);
    disk_compact(&nt->m[l], a, nt->m[l].applied[a - 1].term);
    start_from_disk(nt, g);
    nt->cut[l][g] = true; /* the snapshot cannot be delivered: reported failed */
    tick_all(nt, 2);
    assert_int_equal(raft_progress(r, id_of(g), &pi), 0);
    assert_int_not_equal(pi.state, RAFT_PROGRESS_REPLICATE);
    assert_true(pi.next <= a);
    nt->cut[l][g] = false;
    tick_all(nt, 3);
    assert_int_equal(raft_progress(r, id_of(g), &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_REPLICATE);
    assert_int_equal(nt->m[g].snap_installed, a);
    net_free(nt);
}

/* ---------- wire format ---------- */

static raft_msg sample_app(raft_entry *e)
{
    e[0] = (raft_entry){5, 11, RAFT_ENTRY_NORMAL, (const uint8_t *)"hello", 5};
    e[1] = (raft_entry){5, 12, RAFT_ENTRY_CONF_CHANGE, NULL, 0};
    return (raft_msg){.type = RAFT_MSG_APP, .to = 2, .from = 1, .term = 5, .log_term = 4,
                      .index = 10, .commit = 9, .reject_hint = 3, .context = 0xABCDEF,
                      .reject = true, .transfer = true, .entries = e, .n_entries = 2};
}

/* ---------- found by the deterministic simulator (tests/sim) ---------- */

/* A member added after the leader's last snapshot gets that snapshot, whose conf does not
 * hold it yet: it must install it (and learn of its addition from the entries after it),
 * not refuse it and wait for the leader's next snapshot. */
static void test_new_member_installs_older_snapshot(void **state)
{
    (void)state;
    net *nt = net_new(4, 3, 73, false, false);
    int l = wait_leader(nt);
    propose_str(nt->m[l].r, "before");
    stabilize(nt);
    for (int i = 0; i < 3; i++) {
        member *mb = &nt->m[i];
        uint64_t a = raft_applied_index(mb->r);
        assert_int_equal(raft_compact(mb->r, a, mb->applied[a - 1].term), 0);
        disk_compact(mb, a, mb->applied[a - 1].term);
    }
    uint64_t snap = raft_first_index(nt->m[l].r) - 1;
    add_member(nt, l, 3, RAFT_CC_ADD_LEARNER);
    propose_str(nt->m[l].r, "after");
    stabilize(nt);
    tick_all(nt, 3);
    member *nw = &nt->m[3];
    assert_int_equal(nw->snap_installed, snap);
    assert_true(applied_has(nw, "after"));
    assert_true(raft_is_learner(nw->r));
    net_free(nt);
}

/* A torn WAL tail can keep entries of a new term without the hard state written after them
 * (our WAL writes entries first): the member restarts in that term, with no vote, and
 * persists that hard state first. */
static void test_restore_after_torn_hard_state(void **state)
{
    (void)state;
    raft_config cfg = make_cfg(1, 1, false, false);
    raft *r;
    raft_entry e[2] = {{1, 1, RAFT_ENTRY_NORMAL, NULL, 0}, {3, 2, RAFT_ENTRY_NORMAL, NULL, 0}};
    raft_restore rs = {.hard_state = {2, 1, 1}, .entries = e, .n_entries = 2};
    assert_int_equal(raft_new(&cfg, &rs, &r), 0);
    assert_int_equal(raft_term(r), 3);
    assert_int_equal(raft_last_index(r), 2);
    raft_update u;
    raft_get_update(r, &u);
    assert_true(u.hard_state_changed);
    assert_true(u.must_sync);
    assert_int_equal(u.hard_state.term, 3);
    assert_int_equal(u.hard_state.vote, RAFT_NONE);
    raft_advance(r, &u);
    raft_free(r);
}

/* Two voters; the leader B demotes itself, commits that with A's acknowledgement and appends
 * more, but A never hears of the commit, and B (restarted, a learner) has the longer log.
 * A needs B's vote, which B refuses; B never campaigns. The refusal carries B's commit index,
 * from which A learns the demotion is committed, applies it and elects itself. */
static void test_vote_refusal_teaches_commit(void **state)
{
    (void)state;
    net *nt = net_new(2, 2, 79, false, false);
    int b = wait_leader(nt), a = 1 - b;
    raft_conf_change cc = {RAFT_CC_ADD_LEARNER, id_of(b), (const uint8_t *)"ctx", 3};
    assert_int_equal(raft_propose_conf_change(nt->m[b].r, &cc), 0);
    process(nt, b); /* the conf change goes out to A */
    propose_str(nt->m[b].r, "only-on-b");
    nt->cut[b][a] = true; /* nothing more reaches A */
    stabilize(nt);
    assert_true(raft_is_learner(nt->m[b].r));
    assert_true(raft_commit_index(nt->m[a].r) < raft_commit_index(nt->m[b].r));
    assert_true(raft_last_index(nt->m[a].r) < raft_last_index(nt->m[b].r));
    crash(nt, b);
    start_from_disk(nt, b);
    assert_true(raft_is_learner(nt->m[b].r));
    nt->cut[b][a] = false;
    int l = wait_leader(nt);
    assert_int_equal(l, a);
    raft_conf_state cs;
    raft_conf_state_get(nt->m[a].r, &cs);
    assert_int_equal(cs.n_voters, 1);
    net_free(nt);
}

/* A leader that demotes itself hands leadership over (MsgTimeoutNow to an up-to-date voter)
 * instead of leaving the cluster leaderless until an election timeout. */
static void test_demoted_leader_hands_over(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 83, true, true);
    int l = wait_leader(nt);
    uint64_t term = raft_term(nt->m[l].r);
    raft_conf_change cc = {RAFT_CC_ADD_LEARNER, id_of(l), (const uint8_t *)"ctx", 3};
    assert_int_equal(raft_propose_conf_change(nt->m[l].r, &cc), 0);
    stabilize(nt); /* no tick: no election timeout can fire */
    assert_int_not_equal(raft_get_role(nt->m[l].r), RAFT_LEADER);
    int l2 = leader_slot(nt);
    assert_true(l2 >= 0 && l2 != l);
    assert_true(raft_term(nt->m[l2].r) > term);
    propose_str(nt->m[l2].r, "after-hand-over");
    stabilize(nt);
    assert_true(applied_has(&nt->m[l], "after-hand-over"));
    net_free(nt);
}

/* A follower does not forward another member's MsgReadIndex: the answer would come back to
 * the follower, whose own read with the same context would take it (contexts are unique per
 * member only) and could be stale. */
static void test_read_index_not_forwarded_twice(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 89, false, false);
    int l = wait_leader(nt), f = (l + 1) % 3, g = (l + 2) % 3;
    raft_msg m = {.type = RAFT_MSG_READ_INDEX, .from = id_of(g), .to = id_of(f), .context = 5};
    assert_int_equal(raft_step(nt->m[f].r, &m), CE_NOT_LEADER);
    assert_false(raft_has_update(nt->m[f].r));
    net_free(nt);
}

/* The leader refuses changes that leave no voter, forwarded ones included; a forwarded
 * change is checked as a local one is. */
static void test_leader_refuses_removing_last_voter(void **state)
{
    (void)state;
    net *nt = net_new(1, 1, 97, false, false);
    raft_campaign(nt->m[0].r);
    process_all(nt);
    raft_conf_change rm = {RAFT_CC_REMOVE, 1, NULL, 0};
    raft_conf_change demote = {RAFT_CC_ADD_LEARNER, 1, NULL, 0};
    assert_int_equal(raft_propose_conf_change(nt->m[0].r, &rm), CE_INVAL);
    assert_int_equal(raft_propose_conf_change(nt->m[0].r, &demote), CE_INVAL);
    net_free(nt);
    nt = net_new(3, 3, 101, false, false);
    int l = wait_leader(nt), f = (l + 1) % 3;
    uint64_t last = raft_last_index(nt->m[l].r);
    raft_conf_change promote = {RAFT_CC_PROMOTE, id_of(f), NULL, 0}; /* already a voter */
    assert_int_equal(raft_propose_conf_change(nt->m[f].r, &promote), 0); /* forwarded */
    stabilize(nt);
    assert_int_equal(raft_last_index(nt->m[l].r), last);
    net_free(nt);
}

static void test_msg_round_trip(void **state)
{
    (void)state;
    raft_entry e[2];
    raft_msg m = sample_app(e), d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(raft_msg_encode(&m, &buf, &len), 0);
    assert_int_equal(len, 72 + 2 * 21 + 5);
    assert_int_equal(raft_msg_decode(buf, len, &d), 0);
    assert_int_equal(d.type, RAFT_MSG_APP);
    assert_int_equal(d.to, 2);
    assert_int_equal(d.from, 1);
    assert_int_equal(d.term, 5);
    assert_int_equal(d.log_term, 4);
    assert_int_equal(d.index, 10);
    assert_int_equal(d.commit, 9);
    assert_int_equal(d.reject_hint, 3);
    assert_int_equal(d.context, 0xABCDEF);
    assert_true(d.reject && d.transfer);
    assert_int_equal(d.n_entries, 2);
    assert_int_equal(d.entries[0].len, 5);
    assert_memory_equal(d.entries[0].data, "hello", 5);
    assert_int_equal(d.entries[1].type, RAFT_ENTRY_CONF_CHANGE);
    assert_null(d.entries[1].data);
    raft_msg_free(&d);
    free(buf);

    uint64_t v[3] = {1, 2, 3}, lr[1] = {9};
    raft_msg s = {.type = RAFT_MSG_SNAP, .to = 3, .from = 1, .term = 7,
                  .snapshot = {100, 6, {v, 3, lr, 1}}};
    assert_int_equal(raft_msg_encode(&s, &buf, &len), 0);
    assert_int_equal(raft_msg_decode(buf, len, &d), 0);
    assert_int_equal(d.snapshot.index, 100);
    assert_int_equal(d.snapshot.term, 6);
    assert_int_equal(d.snapshot.conf.n_voters, 3);
    assert_int_equal(d.snapshot.conf.voters[2], 3);
    assert_int_equal(d.snapshot.conf.n_learners, 1);
    assert_int_equal(d.snapshot.conf.learners[0], 9);
    raft_msg_free(&d);
    free(buf);
}

static void test_msg_rejects_truncated_and_garbage(void **state)
{
    (void)state;
    raft_entry e[2];
    raft_msg m = sample_app(e), d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(raft_msg_encode(&m, &buf, &len), 0);
    for (size_t k = 0; k < len; k++)
        assert_int_equal(raft_msg_decode(buf, k, &d), CE_CORRUPT);
    /* Trailing byte. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    assert_int_equal(raft_msg_decode(longer, len + 1, &d), CE_CORRUPT);
    free(longer);
    /* Bad version, type, flags; huge entry count and length. */
    uint8_t c[256];
    memcpy(c, buf, len);
    c[0] = 2;
    assert_int_equal(raft_msg_decode(c, len, &d), CE_CORRUPT);
    memcpy(c, buf, len);
    c[1] = 0;
    assert_int_equal(raft_msg_decode(c, len, &d), CE_CORRUPT);
    c[1] = 15;
    assert_int_equal(raft_msg_decode(c, len, &d), CE_CORRUPT);
    memcpy(c, buf, len);
    c[2] = 4;
    assert_int_equal(raft_msg_decode(c, len, &d), CE_CORRUPT);
    memcpy(c, buf, len);
    c[68] = c[69] = c[70] = c[71] = 0xFF;
    assert_int_equal(raft_msg_decode(c, len, &d), CE_CORRUPT);
    memcpy(c, buf, len);
    c[72 + 17] = c[72 + 18] = c[72 + 19] = c[72 + 20] = 0xFF; /* first entry len */
    assert_int_equal(raft_msg_decode(c, len, &d), CE_CORRUPT);
    memcpy(c, buf, len);
    c[72 + 16] = 7; /* entry type */
    assert_int_equal(raft_msg_decode(c, len, &d), CE_CORRUPT);
    memcpy(c, buf, len);
    c[1] = RAFT_MSG_HEARTBEAT; /* entries on a heartbeat */
    assert_int_equal(raft_msg_decode(c, len, &d), CE_CORRUPT);
    /* Random bytes and bit flips: never crash; whatever decodes is freed cleanly. */
    uint64_t seed = env_seed(0x5EED);
    print_message("msg fuzz seed %llu (RAFT_SEED)\n", (unsigned long long)seed);
    net rng = {.rng = seed};
    for (int it = 0; it < 20000; it++) {
        size_t n = (size_t)(rnd(&rng) % len) + 1;
        memcpy(c, buf, len);
        if (it % 2) {
            for (size_t k = 0; k < n; k++)
                c[k] = (uint8_t)rnd(&rng);
        } else {
            c[rnd(&rng) % len] ^= (uint8_t)(1u << (rnd(&rng) % 8));
            n = len;
        }
        if (raft_msg_decode(c, n, &d) == 0)
            raft_msg_free(&d);
    }
    free(buf);
    assert_int_equal(raft_msg_decode(NULL, 0, &d), CE_CORRUPT);
}

static void test_conf_change_codec(void **state)
{
    (void)state;
    raft_conf_change cc = {RAFT_CC_ADD_LEARNER, 0x0102030405060708ull, (const uint8_t *)"m", 1};
    uint8_t *buf;
    size_t len;
    assert_int_equal(raft_conf_change_encode(&cc, &buf, &len), 0);
    assert_int_equal(len, 10);
    assert_int_equal(buf[1], 0x08);
    raft_conf_change d;
    assert_int_equal(raft_conf_change_decode(buf, len, &d), 0);
    assert_int_equal(d.type, RAFT_CC_ADD_LEARNER);
    assert_int_equal(d.node_id, cc.node_id);
    assert_int_equal(d.context_len, 1);
    assert_int_equal(raft_conf_change_decode(buf, 8, &d), CE_CORRUPT);
    buf[0] = 9;
    assert_int_equal(raft_conf_change_decode(buf, len, &d), CE_CORRUPT);
    free(buf);
}

static void test_step_rejects_malformed(void **state)
{
    (void)state;
    net *nt = net_new(3, 3, 71, false, false);
    raft *r = nt->m[0].r;
    raft_msg m = {.type = 99, .from = 2, .term = 1};
    assert_int_equal(raft_step(r, &m), CE_INVAL);
    m = (raft_msg){.type = RAFT_MSG_APP, .from = 0, .term = 1};
    assert_int_equal(raft_step(r, &m), CE_INVAL);
    m = (raft_msg){.type = RAFT_MSG_APP, .from = 2, .to = 3, .term = 1};
    assert_int_equal(raft_step(r, &m), CE_INVAL);
    raft_entry e = {1, 7, RAFT_ENTRY_NORMAL, NULL, 0}; /* index not after m.index */
    m = (raft_msg){.type = RAFT_MSG_APP, .from = 2, .term = 1, .index = 1, .log_term = 1,
                   .entries = &e, .n_entries = 1};
    assert_int_equal(raft_step(r, &m), CE_INVAL);
    net_free(nt);
}

static void test_step_survives_random_messages(void **state)
{
    (void)state;
    /* Peers are trusted for correctness, not for memory safety: whatever arrives, raft must
     * neither crash nor break its local invariants. */
    uint64_t seed = env_seed(0xF022);
    print_message("step fuzz seed %llu (RAFT_SEED)\n", (unsigned long long)seed);
    net *nt = net_new(3, 3, seed, true, true);
    int l = wait_leader(nt);
    (void)l;
    fuzzing = true;
    raft_entry ents[4];
    uint64_t ids[3] = {1, 2, 3};
    for (int it = 0; it < 20000; it++) {
        int i = (int)(rnd(nt) % 3);
        raft *r = nt->m[i].r;
        uint64_t small = rnd(nt) % 40, big = rnd(nt) % 4 == 0 ? UINT64_MAX - rnd(nt) % 3 : small;
        raft_msg m = {.type = (raft_msg_type)(rnd(nt) % 16), .to = raft_id(r),
                      .from = (rnd(nt) % 4) + 1, .term = raft_term(r) + rnd(nt) % 3 - 1,
                      .log_term = rnd(nt) % 5, .index = big, .commit = rnd(nt) % 50,
                      .reject_hint = rnd(nt) % 50, .context = rnd(nt) % 5,
                      .reject = rnd(nt) % 2, .transfer = rnd(nt) % 8 == 0};
        if (m.type == RAFT_MSG_APP || m.type == RAFT_MSG_PROP) {
            m.n_entries = (size_t)(rnd(nt) % 4);
            for (size_t k = 0; k < m.n_entries; k++)
                ents[k] = (raft_entry){m.log_term + rnd(nt) % 2, m.index + 1 + k,
                                       (raft_entry_type)(rnd(nt) % 2), NULL, 0};
            m.entries = ents;
        }
        if (m.type == RAFT_MSG_SNAP)
            m.snapshot = (raft_snapshot_meta){small, rnd(nt) % 5, {ids, 3, NULL, 0}};
        (void)raft_step(r, &m);
        if (rnd(nt) % 10 == 0)
            raft_tick(r);
        if (rnd(nt) % 10 == 0)
            (void)raft_propose(r, (const uint8_t *)"f", 1);
        process_all(nt);
        drop_queue(nt);
        /* Local invariants: applied <= commit <= last; first <= last + 1. */
        assert_true(raft_applied_index(r) <= raft_commit_index(r));
        assert_true(raft_commit_index(r) <= raft_last_index(r));
        assert_true(raft_first_index(r) <= raft_last_index(r) + 1);
    }
    fuzzing = false;
    net_free(nt);
}

/* ---------- randomized safety ---------- */

static void test_randomized_safety(void **state)
{
    (void)state;
    uint64_t seed0 = env_seed(20261120);
    print_message("randomized safety seed %llu (RAFT_SEED)\n", (unsigned long long)seed0);
    const char *it = getenv("RAFT_ITERS");
    uint64_t iters = it ? strtoull(it, NULL, 10) : 8;
    size_t total_applied = 0, accepted = 0, compactions = 0, snaps = 0, conf_changes = 0;
    size_t reads = 0;
    for (uint64_t s = 0; s < iters; s++) {
        uint64_t seed = seed0 + s;
        net *nt = net_new(5, 5, seed, s % 2 == 0, s % 4 < 2);
        nt->drop_pct = 5;
        nt->chaos = true;
        char buf[32];
        for (int step = 0; step < 300; step++) {
            uint64_t x = rnd(nt) % 100;
            int i = (int)(rnd(nt) % 5);
            if (x < 30) {
                tick_all(nt, 1);
            } else if (x < 60) {
                if (!nt->m[i].down) {
                    snprintf(buf, sizeof buf, "p%llu-%d", (unsigned long long)seed, step);
                    if (raft_propose(nt->m[i].r, (const uint8_t *)buf, strlen(buf)) == 0)
                        accepted++;
                }
            } else if (x < 64) {
                isolate(nt, i, rnd(nt) % 2);
            } else if (x < 66) {
                if (!nt->m[i].down)
                    crash(nt, i);
                else
                    start_from_disk(nt, i);
            } else if (x < 80 && !nt->m[i].down) {
                nt->read_min[step] = nt->max_commit + 1;
                (void)raft_read_index(nt->m[i].r, (uint64_t)step);
            } else if (x < 84 && !nt->m[i].down) {
                member *mb = &nt->m[i];
                uint64_t a = raft_applied_index(mb->r);
                uint64_t t = a ? mb->applied[a - 1].term : 0;
                if (t && a >= raft_first_index(mb->r)) {
                    assert_int_equal(raft_compact(mb->r, a, t), 0);
                    disk_compact(mb, a, t);
                    compactions++;
                }
            } else if (x < 86 && !nt->m[i].down) {
                (void)raft_transfer_leader(nt->m[i].r, id_of((int)(rnd(nt) % 5)));
            } else if (x < 88 && !nt->m[i].down) {
                /* Member 5 moves between voter and learner, one step at a time. */
                static const raft_conf_change_type kinds[] = {
                    RAFT_CC_ADD_LEARNER, RAFT_CC_PROMOTE, RAFT_CC_ADD_VOTER, RAFT_CC_UPDATE};
                raft_conf_change cc = {kinds[rnd(nt) % 4], 5, NULL, 0};
                if (raft_propose_conf_change(nt->m[i].r, &cc) == 0)
                    conf_changes++;
            }
            stabilize(nt);
        }
        /* Heal and check liveness: everything converges. */
        nt->drop_pct = 0;
        nt->chaos = false;
        for (int i = 0; i < 5; i++) {
            isolate(nt, i, false);
            if (nt->m[i].down)
                start_from_disk(nt, i);
        }
        int l = wait_leader(nt);
        /* A leader transfer may be under way (proposals refused until it ends): retry. */
        for (int t = 0; t < 10 * ET; t++) {
            l = wait_leader(nt);
            if (raft_propose(nt->m[l].r, (const uint8_t *)"final", 5) == 0)
                break;
            tick_all(nt, 1);
        }
        stabilize(nt);
        tick_all(nt, 3 * ET);
        for (int i = 0; i < 5; i++) {
            if (!applied_has(&nt->m[i], "final")) {
                print_message("seed %llu: member %d lacks final\n", (unsigned long long)seed, i);
                for (int k = 0; k < 5; k++) {
                    member *mb = &nt->m[k];
                    raft_progress_info pi = {0};
                    int prc = raft_progress(nt->m[l].r, id_of(k), &pi);
                    print_message(" m%d role %d term %llu lead %llu commit %llu applied %llu "
                                  "last %llu first %llu snapinst %llu | prc %d match %llu "
                                  "next %llu state %d active %d\n", k, raft_get_role(mb->r),
                                  (unsigned long long)raft_term(mb->r),
                                  (unsigned long long)raft_leader(mb->r),
                                  (unsigned long long)raft_commit_index(mb->r),
                                  (unsigned long long)raft_applied_index(mb->r),
                                  (unsigned long long)raft_last_index(mb->r),
                                  (unsigned long long)raft_first_index(mb->r),
                                  (unsigned long long)mb->snap_installed, prc,
                                  (unsigned long long)pi.match, (unsigned long long)pi.next,
                                  pi.state, pi.recent_active);
                }
            }
            assert_true(applied_has(&nt->m[i], "final"));
        }
        total_applied += nt->m[l].n_applied;
        reads += nt->reads_checked;
        raft_conf_state c0, ci;
        raft_conf_state_get(nt->m[0].r, &c0);
        for (int i = 1; i < 5; i++) {
            raft_conf_state_get(nt->m[i].r, &ci);
            assert_int_equal(ci.n_voters, c0.n_voters);
            assert_int_equal(ci.n_learners, c0.n_learners);
        }
        for (int i = 0; i < 5; i++)
            snaps += nt->m[i].snap_installed != 0;
        net_free(nt);
    }
    /* The chaos must not be so harsh that nothing happens. */
    print_message("randomized safety: %zu proposals accepted, %zu entries applied on final "
                  "leaders, %zu compactions, %zu members caught up by snapshot, %zu conf "
                  "changes proposed, %zu reads checked\n", accepted, total_applied, compactions,
                  snaps, conf_changes, reads);
    assert_true(total_applied > 5 * iters && accepted > 5 * iters);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_elects_self_in_timeout),
        cmocka_unit_test(test_single_commits_what_is_durable),
        cmocka_unit_test(test_fresh_single_campaigns_at_once),
        cmocka_unit_test(test_single_restart),
        cmocka_unit_test(test_restore_rejects_inconsistent_state),
        cmocka_unit_test(test_three_elect_one_leader),
        cmocka_unit_test(test_vote_response_waits_for_persistence),
        cmocka_unit_test(test_vote_refused_to_stale_log),
        cmocka_unit_test(test_leader_failure_and_reelection),
        cmocka_unit_test(test_prevote_does_not_disrupt),
        cmocka_unit_test(test_without_prevote_rejoin_disrupts),
        cmocka_unit_test(test_check_quorum_step_down),
        cmocka_unit_test(test_leader_lease_ignores_disruptive_vote),
        cmocka_unit_test(test_replication_and_forwarding),
        cmocka_unit_test(test_no_commit_without_quorum),
        cmocka_unit_test(test_conflicting_entries_replaced),
        cmocka_unit_test(test_divergent_log_backtracks_by_term),
        cmocka_unit_test(test_proposals_batched_per_update),
        cmocka_unit_test(test_commit_only_current_term_by_counting),
        cmocka_unit_test(test_learner_vote_not_counted),
        cmocka_unit_test(test_inflight_window_limits_pipelining),
        cmocka_unit_test(test_read_index),
        cmocka_unit_test(test_read_index_single_voter),
        cmocka_unit_test(test_learner_replicated_not_voting),
        cmocka_unit_test(test_conf_change_add_remove),
        cmocka_unit_test(test_leader_removes_itself),
        cmocka_unit_test(test_leader_transfer),
        cmocka_unit_test(test_transfer_blocks_proposals),
        cmocka_unit_test(test_snapshot_catch_up),
        cmocka_unit_test(test_unreachable_and_snapshot_reports),
        cmocka_unit_test(test_msg_round_trip),
        cmocka_unit_test(test_msg_rejects_truncated_and_garbage),
        cmocka_unit_test(test_conf_change_codec),
        cmocka_unit_test(test_step_rejects_malformed),
        cmocka_unit_test(test_step_survives_random_messages),
        cmocka_unit_test(test_randomized_safety),
        cmocka_unit_test(test_new_member_installs_older_snapshot),
        cmocka_unit_test(test_restore_after_torn_hard_state),
        cmocka_unit_test(test_vote_refusal_teaches_commit),
        cmocka_unit_test(test_demoted_leader_hands_over),
        cmocka_unit_test(test_read_index_not_forwarded_twice),
        cmocka_unit_test(test_leader_refuses_removing_last_voter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
